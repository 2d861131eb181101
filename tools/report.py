#!/usr/bin/env python3
"""One table and two figures of train.py runs, from their run folders.

    python3 tools/report.py logs/* --out report

For each run folder (`<logdir>/<run name>/`, holding run.json and metrics.jsonl as train.py
writes them; a glob in quotes is expanded here too) a row: run, model, frames, parameters,
GFLOPs (2 x the conv multiply-accumulates of one clip, as the README's model tables), best
validation top-1 and the top-5 of that epoch, the test top-1 of the newest test.py result in the
folder with its views (clips x crops), on the synthetic dataset the within-pair accuracy of
those test predictions (utils/confusion.within_pair_accuracy), mean training clips/s, epochs
and wall time (the sum of the epochs' seconds). A resumed run's metrics.jsonl repeats epochs:
the last line of each counts.

Writes report.md, report.csv, accuracy_vs_gflops.png (top-1 against GFLOPs, one labelled point
per run: the test top-1 where there is one, else the best val top-1) and curves.png (val top-1
and train loss per epoch of every run) into --out, and prints the table. A folder that is not a
run folder is a one-line warning; no run at all is an error.
"""
import argparse
import csv
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from utils import confusion, figures  # noqa: E402
from utils.errors import UserError, run_main  # noqa: E402

COLUMNS = [  # (csv key, markdown header)
    ('run', 'run'), ('model', 'model'), ('frames', 'frames'), ('params_m', 'params (M)'),
    ('gflops', 'GFLOPs (2 x conv GMACs)'), ('val_top1', 'best val top-1'),
    ('val_top5', 'val top-5 (at best)'), ('best_epoch', 'best epoch'),
    ('test_top1', 'test top-1 (clips x crops)'), ('within_pair', 'within-pair (test)'),
    ('clips_per_s', 'train clips/s'), ('epochs', 'epochs'), ('wall_s', 'wall time')]


class NotARun(Exception):
    """A folder without the files of a train.py run (the message says which)."""


def read_metrics(path: str) -> list[dict]:
    """The epochs of metrics.jsonl in order, the last line of each epoch (a resumed run
    appends the epochs it trains again)."""
    rows = {}
    with open(path, encoding='utf-8') as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                rows[int(row['epoch'])] = row
    return [rows[e] for e in sorted(rows)]


def newest_result(folder: str) -> tuple[str, dict] | None:
    """(tag, content) of the newest <tag>_result.json of test.py in `folder`, if any."""
    paths = glob.glob(os.path.join(glob.escape(folder), '*_result.json'))
    if not paths:
        return None
    path = max(paths, key=lambda p: (os.path.getmtime(p), p))
    with open(path, encoding='utf-8') as f:
        return os.path.basename(path)[:-len('_result.json')], json.load(f)


def test_labels(csv_path: str) -> np.ndarray:
    """The label column of a test.py predictions CSV, in its rows' order (the scores' order)."""
    with open(csv_path, newline='', encoding='utf-8') as f:
        return np.array([int(row['label']) for row in csv.DictReader(f)], int)


def within_pair(folder: str, tag: str, classes: list[str]) -> float | None:
    """The within-pair accuracy of test predictions <tag>_scores.npy / _predictions.csv on
    the synthetic dataset's classes, None if they are not there or not synthetic."""
    scores_path = os.path.join(folder, f'{tag}_scores.npy')
    csv_path = os.path.join(folder, f'{tag}_predictions.csv')
    if not (confusion.is_synthetic_classes(classes) and os.path.isfile(scores_path)
            and os.path.isfile(csv_path)):
        return None
    scores, labels = np.load(scores_path), test_labels(csv_path)
    if len(scores) != len(labels):
        return None
    keep = labels >= 0
    acc, _ = confusion.within_pair_accuracy(scores[keep], labels[keep],
                                            confusion.synthetic_pairs(classes))
    return acc


def read_run(folder: str) -> dict:
    """One row of the report (raw numbers) and the run's epochs; NotARun for a folder that is
    not a complete run folder."""
    missing = [n for n in ('run.json', 'metrics.jsonl')
               if not os.path.isfile(os.path.join(folder, n))]
    if not os.path.isdir(folder):
        raise NotARun('not a folder')
    if missing:
        raise NotARun(f'no {" or ".join(missing)} (not a train.py run folder?)')
    try:
        with open(os.path.join(folder, 'run.json'), encoding='utf-8') as f:
            run = json.load(f)
        epochs = read_metrics(os.path.join(folder, 'metrics.jsonl'))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NotARun(f'cannot read its run.json/metrics.jsonl: {type(exc).__name__}: {exc}')
    if not epochs:
        raise NotARun('metrics.jsonl has no epoch yet')
    best = max(range(len(epochs)), key=lambda k: (epochs[k]['val_top1'], -k))   # first best
    row = dict(run=run.get('name') or os.path.basename(os.path.normpath(folder)),
               model=run.get('arch'), frames=run.get('frames'),
               params_m=run['params'] / 1e6 if run.get('params') is not None else None,
               gflops=2 * run['conv_gmacs'] if run.get('conv_gmacs') is not None else None,
               val_top1=epochs[best]['val_top1'], val_top5=epochs[best]['val_top5'],
               best_epoch=epochs[best]['epoch'],
               test_top1=None, test_views=None, within_pair=None,
               clips_per_s=float(np.mean([e['train_clips_per_s'] for e in epochs])),
               epochs=len(epochs), wall_s=float(sum(e['epoch_seconds'] for e in epochs)),
               folder=folder)
    result = newest_result(folder)
    if result is not None:
        tag, content = result
        if content.get('count'):             # a labelled list: an accuracy to show
            row['test_top1'] = content.get('top1')
            row['test_views'] = f'{content.get("num_clips")}x{content.get("num_crops")}'
            row['within_pair'] = within_pair(folder, tag, run.get('classes') or [])
    return dict(row=row, epochs=epochs)


def hms(seconds: float) -> str:
    s = int(round(seconds))
    return f'{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}'


def formatted(row: dict) -> dict:
    """The row as the Markdown table shows it."""
    def num(v, digits=2):
        return '-' if v is None else f'{v:.{digits}f}'
    test = '-' if row['test_top1'] is None else f'{row["test_top1"]:.2f} ({row["test_views"]})'
    return dict(row, params_m=num(row['params_m']), gflops=num(row['gflops']),
                val_top1=num(row['val_top1']), val_top5=num(row['val_top5']), test_top1=test,
                within_pair=num(row['within_pair']), clips_per_s=num(row['clips_per_s'], 1),
                wall_s=hms(row['wall_s']), frames='-' if row['frames'] is None else row['frames'])


def markdown(rows: list[dict]) -> str:
    lines = ['| ' + ' | '.join(h for _, h in COLUMNS) + ' |',
             '|' + '|'.join('---' for _ in COLUMNS) + '|']
    for row in rows:
        f = formatted(row)
        lines.append('| ' + ' | '.join(str(f[k]) for k, _ in COLUMNS) + ' |')
    return '\n'.join(lines) + '\n'


def write_csv(path: str, rows: list[dict]) -> None:
    keys = [k for k, _ in COLUMNS] + ['test_views', 'folder']
    with open(path, 'w', newline='', encoding='utf-8') as f:
        w = csv.writer(f)
        w.writerow(keys)
        for row in rows:
            w.writerow(['' if row[k] is None else row[k] for k in keys])


def labels_of(rows: list[dict]) -> list[str]:
    """Short names for the plots: the model (e.g. resnet18-TAM-b3-sum), or the run name where
    several runs share a model, or the folder where several share a run name."""
    models, names = [r['model'] for r in rows], [r['run'] for r in rows]
    return [r['model'] if r['model'] and models.count(r['model']) == 1 else
            r['folder'] if names.count(r['run']) > 1 else r['run'] for r in rows]


def _label_offsets(points: list[tuple[float, float]], xspan: float, yspan: float) -> list[int]:
    """Vertical offsets (points) for labels, so that labels of nearby points (models of the
    same cost and accuracy) are stacked instead of printed over each other."""
    placed, offsets = [], []                 # (x, y, slot) of the labels so far
    for x, y in points:
        taken = {slot for px, py, slot in placed
                 if abs(px - x) < 0.04 * xspan and abs(py - y) < 0.06 * yspan}
        slot = min(set(range(len(taken) + 1)) - taken)
        offsets.append(4 - 11 * slot)
        placed.append((x, y, slot))
    return offsets


def _accuracy_panel(ax, rows, labels, key: str, ylabel: str, title: str) -> None:
    pts = [(r['gflops'], r[key], lab, r.get(f'{key}_is_val', False))
           for r, lab in zip(rows, labels) if r['gflops'] is not None and r[key] is not None]
    if not pts:
        return
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    # One point, or all of one cost: a span of a quarter of the cost, not of nothing.
    xspan = max(max(xs) - min(xs), 0.25 * max(xs), 1e-9)
    yspan = max(max(ys) - min(ys), 1.0)
    order = sorted(range(len(pts)), key=lambda i: (-pts[i][1], pts[i][0]))
    offsets = _label_offsets([pts[i][:2] for i in order], xspan, yspan)
    for i, dy in zip(order, offsets):
        x, y, label, val = pts[i]               # a hollow square: best val, no test ran
        ax.scatter(x, y, s=40, marker='s' if val else 'o', facecolors='none' if val else 'C0',
                   edgecolors='C0')
        ax.annotate(label, (x, y), textcoords='offset points', xytext=(6, dy), fontsize=7)
    ax.set(xlabel='GFLOPs per clip (2 x conv GMACs)', ylabel=ylabel)
    ax.set_title(title, fontsize=9)
    ax.set_xlim(min(xs) - 0.05 * xspan, max(xs) + 0.45 * xspan)   # room for the labels
    figures.keep_span(ax, ys, 10, 0, 100)
    ax.grid(alpha=0.3)


def plot(runs: list[dict], out: str) -> list[str]:
    """accuracy_vs_gflops.png and curves.png in `out`; returns their paths."""
    figures.setup()
    import matplotlib.pyplot as plt
    rows = []
    for run in runs:                         # the test top-1, or the best val's if none ran
        row, untested = run['row'], run['row']['test_top1'] is None
        rows.append(dict(row, top1=row['val_top1'] if untested else row['test_top1'],
                         top1_is_val=untested))
    labels = labels_of(rows)
    paths = [os.path.join(out, 'accuracy_vs_gflops.png'), os.path.join(out, 'curves.png')]

    pairs = any(r['within_pair'] is not None for r in rows)
    fig, axes = plt.subplots(1, 2 if pairs else 1, figsize=(12 if pairs else 7, 4.6),
                             squeeze=False)
    _accuracy_panel(axes[0][0], rows, labels, 'top1', 'top-1 (%)',
                    'top-1 against cost (test top-1; hollow square: best val top-1, no test)')
    if pairs:
        ax = axes[0][1]
        _accuracy_panel(ax, rows, labels, 'within_pair', 'within-pair accuracy (%)',
                        'time-reversed pairs told apart (test)')
        ax.axhline(50, color='grey', linestyle='--', linewidth=1)
        ax.annotate('blind to frame order', (ax.get_xlim()[0], 50), textcoords='offset points',
                    xytext=(4, -10), fontsize=7, color='grey')
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    fig, (top, loss) = plt.subplots(1, 2, figsize=(12, 4.8))
    for run, label in zip(runs, labels):
        epochs = [e['epoch'] for e in run['epochs']]
        top.plot(epochs, [e['val_top1'] for e in run['epochs']], marker='.', label=label)
        loss.plot(epochs, [e['train_loss'] for e in run['epochs']], marker='.', label=label)
    top.set(xlabel='epoch', ylabel='val top-1 (%)', title='validation top-1')
    loss.set(xlabel='epoch', ylabel='train loss', title='training loss')
    # Flat curves (a run that learnt nothing yet) on a readable scale, not +-0.04.
    figures.keep_span(top, [e['val_top1'] for r in runs for e in r['epochs']], 10, 0, 100)
    losses = [e['train_loss'] for r in runs for e in r['epochs']]
    figures.keep_span(loss, losses, max(0.1, 0.2 * max(map(abs, losses), default=0)), 0)
    from matplotlib.ticker import MaxNLocator
    epochs = [e['epoch'] for r in runs for e in r['epochs']]
    for ax in (top, loss):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if max(epochs) - min(epochs) < 2:          # 1 or 2 epochs: whole numbers, not 0.95
            ax.set_xticks(range(min(epochs), max(epochs) + 1))
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    top.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(paths[1], dpi=120)
    plt.close(fig)
    return paths


def expand(patterns: list[str]) -> list[str]:
    """The folders the arguments name: each a folder or a glob (a shell leaves an unmatched
    or quoted one as it is; the files it matches, such as predictions written beside the
    runs, are no runs); in the order given, each once."""
    out = []
    for p in patterns:
        found = [f for f in sorted(glob.glob(p)) if os.path.isdir(f)] if glob.has_magic(p) \
            else [p]
        if not found:
            print(f'warning: {p}: matches no folder', file=sys.stderr)
        for f in found:
            if f not in out:
                out.append(f)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('runs', nargs='+', help='run folders (<logdir>/<run name>) or globs of them')
    p.add_argument('--out', default='report', help='folder for report.md, report.csv and the '
                   'figures (default: report)')
    args = p.parse_args(argv)
    runs = []
    for folder in expand(args.runs):
        try:
            runs.append(read_run(folder))
        except NotARun as exc:
            print(f'warning: {folder}: {exc}; left out', file=sys.stderr)
    if not runs:
        given = ' '.join(repr(r) for r in args.runs)
        raise UserError(f'no run to report in {given} (a run folder holds run.json and '
                        f'metrics.jsonl, as train.py writes them under --logdir); give the '
                        f'run folders or a pattern of them, e.g. \'logs/*\'')
    os.makedirs(args.out, exist_ok=True)
    rows = [r['row'] for r in runs]
    table = markdown(rows)
    with open(os.path.join(args.out, 'report.md'), 'w', encoding='utf-8') as f:
        f.write(table)
    write_csv(os.path.join(args.out, 'report.csv'), rows)
    figures = plot(runs, args.out)
    print(table, end='')
    print(f'wrote {os.path.join(args.out, "report.md")}, report.csv, '
          f'{", ".join(os.path.basename(f) for f in figures)} in {args.out}')
    return 0


if __name__ == '__main__':
    run_main(lambda: sys.exit(main()), trains=False)
