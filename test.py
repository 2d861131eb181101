#!/usr/bin/env python3
"""Evaluate a checkpoint with --num_clips x --num_crops views per video.

The model is the one the checkpoint holds: its stored options (family, depth, temporal module,
frames, modality, dataset, datadir, input size and statistics) are the defaults, so
`--pretrained FILE` alone evaluates it; a given option that changes the model the weights make
and differs from the stored one is an error, other differences a note (opts.py: checkpoint
options). Files without options (the original study's release, torchvision's) take the
command line's.

The views of a video are fused as --view_fusion says: by default their logits are averaged,
as the original study's test.py does.
Prints top-1/top-5 and mean class accuracy, and writes per-video fused scores (.npy: mean
logits, or mean probabilities with --view_fusion softmax), a CSV of top-5 predictions and a
test_log.txt next to the checkpoint (or into --output DIR). A labelled list also gets per-class
accuracy (<tag>_per_class.csv), a confusion-matrix PNG with confused classes side by side
(<tag>_confusion.png, ordering: utils/confusion.py), the most confused pairs
(<tag>_confused_pairs.txt), both also in TensorBoard, and on the synthetic dataset the
within-pair accuracy. A list without labels gets predictions only. Every file is written whole
(utils/files.atomic_write): never half, never through a link planted in the folder.
Runs distributed too, launched like train_dist.py (see main).
"""
import csv
import io
import os

import numpy as np

from models.checkpoint_file import load_file
from opts import (arg_parser, checkpoint_conflicts, parse_config, stored_options,
                  with_checkpoint_options)
from utils.distributed import add_launch_options, launch, wants_distribution
from utils import confusion
from utils.engine import (Runtime, class_names, evaluate, load_for_eval, make_loader,
                          precision_note, prepare_data, select_device, setup_process)
from utils.config import Config
from utils.errors import UserError, reading_user_files, run_main, stop_on_sigterm
from utils.files import atomic_write, csv_cell
from utils.run_log import RunLog, make_folder
from utils.video_dataset import build_dataset


def mean_class_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average over the classes present of the fraction of their videos predicted right."""
    pred = scores.argmax(axis=1)
    accs = [np.mean(pred[labels == c] == c) for c in np.unique(labels)]
    return 100.0 * float(np.mean(accs))


def write_predictions(path: str, dataset, result: dict, class_names: list[str]) -> None:
    scores, index = result['scores'], result['index']
    k = min(5, scores.shape[1])
    top = np.argsort(-scores, axis=1)[:, :k]
    text = io.StringIO(newline='')
    w = csv.writer(text)
    w.writerow(['video', 'label'] + [f'top{i + 1}' for i in range(k)]
               + [f'score{i + 1}' for i in range(k)])
    for row, i in enumerate(index):
        rec = dataset.records[i]
        names = [csv_cell(class_names[c]) if c < len(class_names) else str(c) for c in top[row]]
        w.writerow([csv_cell(rec.path), rec.label] + names
                   + [f'{scores[row, c]:.6f}' for c in top[row]])
    atomic_write(path, text.getvalue(), OUTPUT_TODO)


OUTPUT_TODO = 'free some space or give another --output'


def write_class_analysis(folder: str, tag: str, scores: np.ndarray, labels: np.ndarray,
                         names: list[str], log: RunLog, top: int = 20) -> dict:
    """Per-class accuracy CSV, confusion PNG and most-confused pairs of the labelled, readable
    videos (`scores`, `labels`), into `folder` and TensorBoard (the run folder's event file);
    returns extra result fields (within_pair_acc on the synthetic dataset's classes)."""
    n = scores.shape[1]
    names = [names[c] if c < len(names) else str(c) for c in range(n)]
    cm = confusion.confusion_matrix(labels, scores.argmax(axis=1), n)
    videos, acc = confusion.per_class_accuracy(cm)
    per_class = os.path.join(folder, f'{tag}_per_class.csv')
    text = io.StringIO(newline='')
    w = csv.writer(text)
    w.writerow(['class', 'name', 'videos', 'top1'])
    for c in range(n):
        w.writerow([c, csv_cell(names[c]), int(videos[c]),
                    '' if np.isnan(acc[c]) else f'{acc[c]:.2f}'])
    atomic_write(per_class, text.getvalue(), OUTPUT_TODO)
    pairs_path = os.path.join(folder, f'{tag}_confused_pairs.txt')
    pairs_text = confusion.format_confused_pairs(cm, names, top)
    atomic_write(pairs_path, pairs_text, OUTPUT_TODO)
    png = os.path.join(folder, f'{tag}_confusion.png')
    image = io.BytesIO()
    fig = confusion.plot_confusion(cm, names, image, top, title=f'{tag}: confusion, rows '
                                   f'normalised, confused classes together')
    atomic_write(png, image.getvalue(), OUTPUT_TODO)
    from torch.utils.tensorboard import SummaryWriter
    tb = SummaryWriter(log_dir=folder)
    tb.add_figure(f'test/{tag}_confusion', fig)             # closes the figure
    table = ['| class | name | videos | top-1 |', '|---|---|---|---|'] + [
        f'| {c} | {names[c]} | {int(videos[c])} | '
        f'{"" if np.isnan(acc[c]) else f"{acc[c]:.2f}"} |' for c in range(n)]
    tb.add_text(f'test/{tag}_per_class', '\n'.join(table))
    tb.add_text(f'test/{tag}_confused_pairs', '    ' + pairs_text.replace('\n', '\n    '))
    tb.close()
    extra = {}
    if confusion.is_synthetic_classes(names):
        within, count = confusion.within_pair_accuracy(scores, labels,
                                                       confusion.synthetic_pairs(names))
        if within is not None:
            extra['within_pair_acc'] = within
            log.info(f'within-pair accuracy (true class scored above its time-reversed '
                     f'partner) {within:.2f} on {count} videos')
    log.info(f'per-class accuracy: {per_class}\nconfusion: {png}\nmost confused: {pairs_path}')
    return extra


def test_parser():
    p = add_launch_options(arg_parser())
    p.add_argument('--output', default=None, metavar='DIR',
                   help='where the scores, predictions, analysis and test_log.txt go (default: '
                        'the folder of the --pretrained checkpoint)')
    return p


def parse_with_checkpoint(argv) -> tuple[Config, list]:
    """The options of this evaluation: the checkpoint's stored ones as defaults (with_checkpoint_
    options: checked as a command line's), then the command line; a given option that changes
    the model and differs from the stored one is an error (checkpoint_conflicts)."""
    first = test_parser().parse_args(argv)
    if not first.pretrained:                 # before any data is generated or read
        raise UserError('test.py needs --pretrained CHECKPOINT, the weights to evaluate')
    if not os.path.isfile(first.pretrained):
        what = 'is a folder, not a file' if os.path.isdir(first.pretrained) else 'does not exist'
        raise UserError(f'--pretrained {first.pretrained} {what}; check the path')
    stored = stored_options(load_file(first.pretrained, first.trust_checkpoint))
    parser = test_parser()
    taken = with_checkpoint_options(parser, stored, first.pretrained) if stored else {}
    cfg, notes, args = parse_config(parser, argv, 'test', from_checkpoint=tuple(taken))
    notes += checkpoint_conflicts(args, taken, first.pretrained)
    plain = test_parser()                   # (only what differs from the defaults is shown)
    shown = [f'--{k} {" ".join(map(str, v)) if isinstance(v, list) else v}'
             for k, v in taken.items()
             if k not in args.given_options and v != plain.get_default(k)]
    if shown:
        notes.append(f'options from {first.pretrained}: {" ".join(shown)}')
    elif not stored:
        notes.append(f'{first.pretrained} stores no options: the model is the command line\'s')
    return cfg, notes


def main(argv=None) -> dict | None:
    """One process by default. Under torchrun/SLURM, or with --multiprocessing-distributed
    (--nproc_per_node N) or --world-size/--rank/--dist-url as in train_dist.py, every process
    evaluates its share of the videos and rank 0 gathers the scores and writes the files;
    returns the result in the process that ran rank 0 (None where mp.spawn started it)."""
    cfg, notes = parse_with_checkpoint(argv)
    if wants_distribution(cfg):
        return launch(test_worker, cfg, notes, global_batch=False)
    return test_worker(cfg, Runtime(device=select_device(cfg.run)), notes)


def output_folder(cfg: Config) -> str:
    """--output, else the folder of the checkpoint: a test of a run's checkpoint lands in that
    run's folder, never in another run's."""
    return cfg.options.get('output') or os.path.dirname(os.path.abspath(cfg.run.pretrained))


def test_worker(cfg: Config, runtime: Runtime, notes) -> dict | None:
    setup_process(cfg.run, runtime.device)
    folder = output_folder(cfg)
    if runtime.is_main:
        make_folder(folder, '--output')      # a folder in the way stops before any data work
    log = RunLog(folder, tensorboard=False, enabled=runtime.is_main, log_name='test_log.txt')
    log.info(f'test.py: {cfg.run.pretrained}')
    for note in notes:
        log.info(f'note: {note}')
    cfg = prepare_data(cfg, runtime)
    views = cfg.eval
    model, arch, report = load_for_eval(cfg, runtime)
    log.info(report)
    if note := precision_note(cfg.run, runtime.device):
        log.info(f'note: {note}')
    if runtime.distributed:
        log.info(f'distributed evaluation: {runtime.world_size} processes, each video once')

    with reading_user_files():
        dataset = build_dataset(cfg.data, views.eval_split, train=False, views=views,
                                seed=cfg.seed)
    loader = make_loader(dataset, cfg.data, runtime, train=False,
                         batch_size=views.videos_per_batch(cfg.optim.batch_size))
    log.info(f'{views.views} views a video fused by averaging their '
             f'{"logits" if views.view_fusion == "logits" else "softmax probabilities"} '
             f'(--view_fusion {views.view_fusion})')
    result = evaluate(model, loader, cfg, runtime, log, desc=f'test {views.views} views',
                      keep_scores=True)
    if not runtime.is_main:                  # rank 0 has every video's scores and writes
        log.close()
        return result

    tag = views.tag
    scores = io.BytesIO()
    np.save(scores, result['scores'])
    atomic_write(os.path.join(folder, f'{tag}_scores.npy'), scores.getvalue(), OUTPUT_TODO)
    names = class_names(cfg.data)
    csv_path = os.path.join(folder, f'{tag}_predictions.csv')
    write_predictions(csv_path, dataset, result, names)

    ok = (result['labels'] >= 0) & (result['bad_mask'] == 0)
    if ok.any():
        result['mean_class_acc'] = mean_class_accuracy(result['scores'][ok], result['labels'][ok])
        result.update(write_class_analysis(folder, tag, result['scores'][ok],
                                           result['labels'][ok], names, log))
        log.info(f'{views.eval_split}: {views.views} views ({views.num_clips} clips x '
                 f'{views.num_crops} crops) top1 {result["top1"]:.2f} top5 {result["top5"]:.2f} mean class '
                 f'accuracy {result["mean_class_acc"]:.2f} on {result["count"]} videos')
    else:
        log.info(f'{views.eval_split}: the list has no labels; predictions only')
    if result['bad']:
        log.info(f'{result["bad"]} unreadable videos were skipped and are NOT in the accuracy')
    log.write_json(f'{tag}_result', dict(
        split=views.eval_split, num_clips=views.num_clips, num_crops=views.num_crops,
        views=views.views, view_fusion=views.view_fusion, checkpoint=cfg.run.pretrained,
        **{k: result.get(k) for k in ('top1', 'top5', 'mean_class_acc', 'loss', 'count',
                                      'bad')},
        **({'within_pair_acc': result['within_pair_acc']} if 'within_pair_acc' in result
           else {})))
    log.info(f'scores: {os.path.join(folder, tag + "_scores.npy")}\npredictions: {csv_path}')
    log.close()
    return result


if __name__ == '__main__':
    stop_on_sigterm()
    run_main(main, trains=False)
