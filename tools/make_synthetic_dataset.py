#!/usr/bin/env python3
"""Generate the toolkit's synthetic action-recognition dataset: folders of JPEG frames + lists.

The command line of utils/synthetic.py (the generator, its classes and layout are described
there). Like Something-Something, most classes come in time-reversed pairs, so a model that
ignores frame order cannot tell them apart; two more are decided by appearance alone. The same
options give byte-identical files whatever the number of worker processes (-j).

With --modality flow it writes the exact optical flow of the same videos instead (grey x/y
pairs <k>_x.jpg, <k>_y.jpg between frames k and k+1), for the toolkit's --modality flow.

Usage: python3 tools/make_synthetic_dataset.py --root data/synthetic -j 2
       python3 tools/make_synthetic_dataset.py --root data/synthetic_flow --modality flow -j 2
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from utils.synthetic import CLASS_NAMES, DEFAULTS as D, generate  # noqa: E402


def arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog='Classes, in label order: ' + ', '.join(CLASS_NAMES))
    p.add_argument('--root', default='data/synthetic',
                   help='output folder; must be new, empty, or written by this tool before '
                        '(its files are then replaced)')
    p.add_argument('--seed', type=int, default=D['seed'], help='seed; same options => identical files')
    p.add_argument('--videos_per_class', type=int, default=D['videos_per_class'],
                   help='training videos per class')
    p.add_argument('--val_per_class', type=int, default=D['val_per_class'],
                   help='videos per class in each of val and test')
    p.add_argument('--height', type=int, default=D['height'], help='frame height in pixels')
    p.add_argument('--width', type=int, default=D['width'], help='frame width in pixels')
    p.add_argument('--min_frames', type=int, default=D['min_frames'], help='fewest frames in a video')
    p.add_argument('--max_frames', type=int, default=D['max_frames'], help='most frames in a video')
    p.add_argument('--classes', type=int, default=None,
                   help=f'keep only the first N of the {len(CLASS_NAMES)} classes (default: all)')
    p.add_argument('--modality', default='rgb', choices=['rgb', 'flow'],
                   help='flow: the exact optical flow of the same videos as <k>_x.jpg/<k>_y.jpg '
                        'grey pairs (128 = still, 20 px a frame = 255), for --modality flow')
    p.add_argument('-j', '--workers', type=int, default=1,
                   help='processes to render with (does not change the output)')
    p.add_argument('-q', '--quiet', action='store_true', help='no progress bar')
    return p


def main(argv=None) -> None:
    args = arg_parser().parse_args(argv)
    start = time.time()
    try:
        summary = generate(args.root, seed=args.seed, videos_per_class=args.videos_per_class,
                           val_per_class=args.val_per_class, height=args.height,
                           width=args.width, min_frames=args.min_frames,
                           max_frames=args.max_frames, classes=args.classes,
                           workers=args.workers, progress=not args.quiet,
                           modality=args.modality)
    except (ValueError, OSError) as exc:
        sys.exit(f'error: {exc}')
    counts = ', '.join(f'{n} {s}' for s, n in summary['videos'].items())
    print(f'{summary["root"]}: {summary["num_classes"]} classes, {counts} videos, '
          f'{summary["frames"]} frames in {time.time() - start:.1f}s')


if __name__ == '__main__':
    main()
