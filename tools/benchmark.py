#!/usr/bin/env python3
"""Speed benchmark: the data pipeline against the original study's pipeline and the decode
limit, and model step speed.

    python3 tools/benchmark.py data  [--groups 8 --input_size 224 -j 2 -b 8 ...]
    python3 tools/benchmark.py model [--backbone_net i3d_resnet -d 18 --groups 8 --input_size 112 -b 4 ...]

`data` generates (once, cached under --root) a synthetic dataset of realistic frame size
(256x340 JPEGs) and measures, after warm-up, the clips/s of this toolkit's training and
evaluation DataLoaders (built as the engine builds them), of the BASELINE: the original study's
pipeline written step for step in tools/bench_baseline.py (PIL open + copy per frame, its crops
and resizes, flip, stack, float and normalisation in the workers, its DataLoader options), and
the DECODE LIMIT: the time to read and decode exactly the JPEGs our loader reads, in one
process per worker, with nothing else. Our clips are uint8 and are normalised on the device
(here: in the timed loop, on the device the model would use); the `uint8` column is our loader
alone. It also checks that both give the same clips (shape, dtype, range, layout (B, C, T, H,
W)) and how far apart the two clips of the same video and crop are. `--profile` adds where a
training clip's time goes in one process.

`model` measures training and inference clips/s of one model in eager fp32, with --amp (bf16
autocast on CPU, fp16/bf16 on CUDA), with channels_last weights and inputs, and optionally with
torch.compile; on CPU and on CUDA when present. A training step is the engine's
(utils.engine.train_step: grad scaler, --clip_gradient and all) with its optimiser. Peak memory:
CUDA max_memory_allocated, or the process's peak RSS on CPU (cumulative over modes). MFU on CUDA
only: conv FLOPs (2 x MACs, x3 for a training step) per second over --peak_tflops.

Both print a table and one line `BENCHMARK_JSON {...}` for comparison across commits; `main()`
returns the same dict. Only ratios measured in the same run on the same machine are meaningful.

This file is the command line; the work is in tools/bench_baseline.py (the original's pipeline),
tools/bench_data.py (the benchmark dataset and the data timing), tools/bench_model.py (the
model timing) and tools/bench_common.py (the toolkit as both call it, and the machine).
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.bench_data import DATA_DEFAULT_ROOT, bench_data  # noqa: E402
from tools.bench_model import bench_model  # noqa: E402

# ============================================================================ command line


def arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                epilog='Other options (--groups, --input_size, -j, -b, '
                                       '--backbone_net, ...) are the toolkit\'s (opts.py).')
    sub = p.add_subparsers(dest='what', required=True)
    d = sub.add_parser('data', help="data pipeline vs the original's and the decode limit")
    d.add_argument('--root', default=DATA_DEFAULT_ROOT, help='cache of generated datasets')
    d.add_argument('--datadir', default=None, help='use this synthetic-layout dataset instead')
    d.add_argument('--storage', default='folders', choices=['folders', 'lmdb', 'video'],
                   help='what our loader reads: the JPEG folders, LMDB databases built from '
                        'them, or H.264 mp4 files encoded from them (--video_backend pyav); '
                        'the baseline and the decode limit always read the folders')
    d.add_argument('--gop', default=25, type=int,
                   help='--storage video: frames between keyframes of the encoded videos')
    d.add_argument('--height', default=256, type=int)
    d.add_argument('--width', default=340, type=int)
    d.add_argument('--videos', default=48, type=int, help='training videos to generate')
    d.add_argument('--frames', default=32, type=int, help='frames per generated video')
    d.add_argument('--warmup', default=2, type=int, help='batches before timing')
    d.add_argument('--train_batches', default=20, type=int, help='timed training batches')
    d.add_argument('--eval_batches', default=10, type=int, help='timed 1x1 evaluation batches')
    d.add_argument('--no_multiview', dest='multiview', action='store_false',
                   help='skip the many-view evaluation loader')
    d.add_argument('--mv_clips', default=10, type=int)
    d.add_argument('--mv_crops', default=3, type=int)
    d.add_argument('--mv_batch', default=1, type=int, help='videos per many-view batch')
    d.add_argument('--mv_batches', default=6, type=int, help='timed many-view batches')
    d.add_argument('--repeats', default=2, type=int,
                   help='alternate ours/baseline this many times, keep the best of each')
    d.add_argument('--device', default='cpu', choices=['auto', 'cpu', 'cuda'],
                   help='where our uint8 batches are normalised')
    d.add_argument('--profile', action='store_true',
                   help='also time each step of a training clip in one process (read, decode, '
                        'crop + resize, layout) and the per-batch collate and normalising')
    d.add_argument('--quiet', action='store_true')
    m = sub.add_parser('model', help='training / inference clips/s of a model')
    m.add_argument('--steps', default=5, type=int, help='timed steps per mode')
    m.add_argument('--warmup', default=2, type=int, help='steps before timing')
    m.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    m.add_argument('--compile', action='store_true', help='also time torch.compile (slow)')
    m.add_argument('--channels_last_fp32', action='store_true',
                   help='also time channels_last without amp')
    m.add_argument('--modes', nargs='+', default=None,
                   help="only these modes ('fp32 eager', 'amp', 'amp+channels_last', ...)")
    m.add_argument('--num_classes', default=174, type=int)
    m.add_argument('--peak_tflops', default=None, type=float,
                   help='peak bf16 TFLOP/s of the GPU, for MFU (H100 SXM dense: 989)')
    m.add_argument('--quiet', action='store_true')
    return p


def main(argv=None) -> dict:
    opts, rest = arg_parser().parse_known_args(argv)
    if opts.what == 'data':
        return bench_data(opts, rest)
    return bench_model(opts, rest)


if __name__ == '__main__':
    main()
