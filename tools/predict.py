#!/usr/bin/env python3
"""Top-5 classes of video files or frame folders, with no list file.

    python3 tools/predict.py --pretrained logs/RUN/model_best.pth.tar clip.mp4 frames/v1 \\
        --out predictions.csv
    python3 tools/predict.py --pretrained logs/RUN/model_best.pth.tar long.mp4 --window 2 \\
        --out long.json          # one row per 2 s, and long_timeline.png

An input is a video file (any container PyAV reads) or a folder of frames named as the
dataset's image_tmpl (flow: flow_tmpl). The model and its views are as test.py's: the options
stored in the checkpoint (`args`), overridden by any test.py model option given here
(--backbone_net, --groups, --num_clips, --num_crops, ...); the views of a video are fused by
--view_fusion and the scores shown are the softmax probabilities of the fused scores (with
--view_fusion softmax: the mean probabilities). Class names: --categories FILE (one a line),
else the checkpoint's `classes`, else the label numbers (said in a note).

--window SECONDS (video files): one prediction per window of that many seconds (frame rate from
the container), also drawn as a timeline of the top classes' scores (<out stem>_timeline.png,
or <video name>_timeline.png in the current folder without --out). A file that cannot be read
is one line `error: PATH: why` and the other inputs are still predicted; the exit status is 1
if any failed.
"""
import argparse
import csv
import io
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from utils.list_file import NO_LABEL, VideoRecord, read_categories  # noqa: E402


class InputError(Exception):
    """An input that cannot be predicted (the message says why)."""


def load_model(checkpoint: str, argv: list[str], trust: bool, num_classes: int | None):
    """(model in eval mode on its device, Config, class names stored in the checkpoint or
    None): the checkpoint's options overridden by `argv` (tools/export_weights.model_options)."""
    from models import load_pretrained
    from models.checkpoint_file import load_file
    from tools.export_weights import model_options
    from utils.engine import build, select_device
    content = load_file(checkpoint, trust)
    cfg = model_options(content, argv, num_classes, checkpoint)
    model, _ = build(cfg)
    load_pretrained(model, checkpoint, trust=trust, new_classifier=False)
    device = select_device(cfg.run)
    classes = content.get('classes') if isinstance(content, dict) else None
    if not (isinstance(classes, list) and len(classes) == cfg.model.num_classes
            and all(isinstance(c, str) for c in classes)):
        classes = None                        # not the class names of this model: not shown
    return model.to(device).eval(), cfg, classes, device


def video_info(path: str) -> tuple[int, float]:
    """(frames, frames per second) of the first video stream of a file; InputError if it
    cannot be read."""
    import av
    from tools.annotations import count_video_frames
    n, why = count_video_frames(path)
    if not n:
        raise InputError(why)
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    except Exception as exc:  # noqa: BLE001 - any failure is this input's error
        raise InputError(f'cannot read video: {type(exc).__name__}: {exc}') from None
    return n, float(rate) if rate else 0.0


class Predictor:
    """Fused scores of one (path, first frame, last frame) with test.py's evaluation views."""

    def __init__(self, model, cfg, device):
        from utils.storage import FolderStorage
        from utils.transforms import EvalTransform, eval_scale_size
        from utils.video_reader import VideoStorage
        self.model, self.cfg, self.device = model, cfg, device
        data, lists = cfg.data, cfg.data.dataset_config
        self.flow = data.modality == 'flow'
        self.image_tmpl, self.flow_tmpl = lists['image_tmpl'], lists['flow_tmpl']
        self.transform = EvalTransform(data.input_size,
                                       eval_scale_size(data.input_size, data.disable_scaleup),
                                       cfg.eval.num_crops, flow=self.flow)
        self.folders = FolderStorage('', self.image_tmpl)            # absolute paths
        self.videos = VideoStorage('', data.video_short_side)

    def frame_count(self, folder: str) -> int:
        from tools.annotations import count_frames
        if not self.flow:
            return count_frames(folder, self.image_tmpl)
        names, n = set(os.listdir(folder)), 0
        while all(self.flow_tmpl.format(n + 1, d) in names for d in 'xy'):
            n += 1
        return n

    @torch.no_grad()
    def scores(self, path: str, start: int, end: int, video: bool) -> np.ndarray:
        """Probabilities (classes,) of frames start..end (1-based) of `path`."""
        from utils.engine import fuse_views
        from utils.storage import FrameReadError
        from utils.transforms import normalize
        from utils.video_dataset import VideoDataset
        data, views = self.cfg.data, self.cfg.eval
        dataset = VideoDataset([VideoRecord(path, start, end, NO_LABEL)],
                               self.videos if video else self.folders, data.groups,
                               data.frames_per_group, data.dense_sampling, False, self.transform,
                               data.random_sampling, views.num_clips, self.cfg.seed,
                               flow_length=data.flow_length if self.flow else 0,
                               flow_tmpl=self.flow_tmpl)
        try:
            clips = dataset._eval_views(dataset.records[0])     # (V, C, T, H, W), errors raised
        except (FrameReadError, OSError, ValueError) as exc:
            raise InputError(str(exc).splitlines()[-1]) from None
        logits = []
        for chunk in clips.split(self.cfg.optim.batch_size):
            chunk = normalize(chunk.to(self.device), data.mean, data.std)
            logits.append(self.model(chunk).float())
        fused = fuse_views(torch.cat(logits)[None], views.view_fusion)[0]
        probs = fused if views.view_fusion == 'softmax' else fused.softmax(0)
        return probs.cpu().numpy()


def top_k(probs: np.ndarray, names: list[str], k: int = 5) -> list[dict]:
    order = np.argsort(-probs, kind='stable')[:k]
    return [dict(label=int(c), name=names[c] if c < len(names) else str(c),
                 score=float(probs[c])) for c in order]


def predict_input(predictor: Predictor, path: str, names: list[str], window: float | None,
                  k: int = 5) -> list[dict]:
    """The rows of one input: one for the whole of it, or one per window."""
    if os.path.isdir(path):
        if window:
            raise InputError('--window is for video files; this is a frame folder')
        n = predictor.frame_count(path)
        if not n:
            tmpl = predictor.flow_tmpl if predictor.flow else predictor.image_tmpl
            raise InputError(f'no frames named as {tmpl} from 1 in this folder')
        spans, fps, video = [(1, n)], 0.0, False
    elif os.path.isfile(path):
        if predictor.flow:
            raise InputError('a flow model reads folders of flow images, not video files')
        n, fps = video_info(path)
        video = True
        if window:
            if not fps:
                raise InputError('the container gives no frame rate for --window')
            step = max(1, int(round(window * fps)))
            spans = [(s + 1, min(s + step, n)) for s in range(0, n, step)]
        else:
            spans = [(1, n)]
    else:
        raise InputError('no such file or folder')
    rows = []
    for start, end in spans:
        probs = predictor.scores(os.path.abspath(path), start, end, video)
        row = dict(input=path, frames=end - start + 1, top=top_k(probs, names, k))
        if window:
            row.update(start_s=(start - 1) / fps, end_s=end / fps)
        row['_probs'] = probs
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    for row in rows:
        where = (f' [{row["start_s"]:.1f}-{row["end_s"]:.1f} s]' if 'start_s' in row else '')
        print(f'{row["input"]}{where} ({row["frames"]} frames)')
        for rank, t in enumerate(row['top'], 1):
            print(f'  {rank}. {t["score"]:7.4f}  {t["name"]} ({t["label"]})')


def write_out(path: str, rows: list[dict], errors: list[dict]) -> None:
    clean = [{k: v for k, v in r.items() if k != '_probs'} for r in rows]
    from utils.files import atomic_write, csv_cell
    todo = 'free some space or give another --out'
    if path.lower().endswith('.json'):
        atomic_write(path, json.dumps(dict(predictions=clean, errors=errors), indent=1), todo)
        return
    k = max((len(r['top']) for r in clean), default=0)
    text = io.StringIO(newline='')
    w = csv.writer(text)
    w.writerow(['input', 'start_s', 'end_s', 'frames']
               + [f'top{i}_{x}' for i in range(1, k + 1) for x in ('label', 'name', 'score')])
    for r in clean:
        w.writerow([csv_cell(r['input']), '' if 'start_s' not in r else f'{r["start_s"]:.3f}',
                    '' if 'end_s' not in r else f'{r["end_s"]:.3f}', r['frames']]
                   + [v for t in r['top'] for v in (t['label'], csv_cell(t['name']),
                                                    f'{t["score"]:.6f}')])
    atomic_write(path, text.getvalue(), todo)


def plot_timeline(path: str, rows: list[dict], names: list[str], top: int = 5) -> None:
    """The scores against time of the classes with the highest mean score over the windows."""
    from utils import figures
    figures.setup()                      # class names in any script, no glyph warnings
    import matplotlib.pyplot as plt
    probs = np.stack([r['_probs'] for r in rows])
    centres = [(r['start_s'] + r['end_s']) / 2 for r in rows]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for c in np.argsort(-probs.mean(axis=0), kind='stable')[:top]:
        ax.plot(centres, probs[:, c], marker='.', label=names[c] if c < len(names) else str(c))
    ax.set(xlabel='time (s, window centre)', ylabel='score (probability)', ylim=(0, 1),
           title=f'{rows[0]["input"]}: top classes over time')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, dpi=110, format='png')
    plt.close(fig)
    from utils.files import atomic_write
    atomic_write(path, image.getvalue(), 'free some space or give another --out')


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog='Any other option is '
                                'a test.py model option and overrides the checkpoint\'s.')
    p.add_argument('inputs', nargs='+', help='video files or frame folders')
    p.add_argument('--pretrained', required=True, help='the checkpoint to predict with')
    p.add_argument('--categories', help='class names, one a line in label order')
    p.add_argument('--out', help='write the predictions to this .csv or .json file')
    p.add_argument('--window', type=float, help='seconds: predictions over time (video files)')
    p.add_argument('--top', type=int, default=5, help='classes shown per prediction (5)')
    p.add_argument('--num_classes', type=int, help='classes of the model when the checkpoint '
                   'does not say (default: from its options or --categories)')
    p.add_argument('--trust_checkpoint', action='store_true',
                   help='read a file that needs full unpickling: RUNS CODE stored in it')
    args, rest = p.parse_known_args(argv)
    if args.window is not None and args.window <= 0:
        p.error('--window must be a positive number of seconds')
    if args.out and not args.out.lower().endswith(('.csv', '.json')):
        p.error(f'--out should end in .csv or .json: {args.out}')
    from utils.errors import UserError
    try:
        categories = read_categories(args.categories) if args.categories else None
        model, cfg, stored, device = load_model(
            args.pretrained, rest, args.trust_checkpoint,
            args.num_classes or (len(categories) if categories else None))
    except UserError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    from utils.engine import precision_note
    if note := precision_note(cfg.run, device):
        print(f'note: {note}', file=sys.stderr)
    names = categories or stored
    if not names:
        print(f'note: {args.pretrained} holds no class names and no --categories was given: '
              f'classes are shown as label numbers', file=sys.stderr)
        names = [str(c) for c in range(cfg.model.num_classes)]
    predictor = Predictor(model, cfg, device)
    rows, errors = [], []
    for path in args.inputs:
        try:
            got = predict_input(predictor, path, names, args.window, args.top)
        except InputError as exc:
            print(f'error: {path}: {exc}', file=sys.stderr)
            errors.append(dict(input=path, error=str(exc)))
            continue
        print_table(got)
        rows.extend(got)
        if args.window:
            stem = (os.path.splitext(args.out)[0] if args.out and len(args.inputs) == 1 else
                    os.path.splitext(args.out)[0] + '_' + os.path.splitext(
                        os.path.basename(path))[0] if args.out else
                    os.path.splitext(os.path.basename(path))[0])
            plot_timeline(stem + '_timeline.png', got, names)
            print(f'timeline: {stem}_timeline.png')
    if args.out:
        write_out(args.out, rows, errors)
        print(f'wrote {args.out}')
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
