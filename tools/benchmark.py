#!/usr/bin/env python3
"""Speed benchmark: the data pipeline against a per-frame PIL baseline, and model step speed.

    python3 tools/benchmark.py data  [--groups 8 --input_size 224 -j 2 -b 8 ...]
    python3 tools/benchmark.py model [--backbone_net i3d_resnet -d 18 --groups 8 --input_size 112 -b 4 ...]

`data` generates (once, cached under --root) a synthetic dataset of realistic frame size
(256x340 JPEGs) and measures, after warm-up, the clips/s of this toolkit's training and
evaluation DataLoaders (built as the engine builds them) and of a BASELINE written here: the
straightforward per-frame PIL pipeline of TSN-style loaders (open each JPEG with PIL, crop and
resize each frame, flip, convert to float and normalise each frame on the CPU), with the same
sampling, crops, DataLoader settings and output size. Our clips are uint8 and are normalised on
the device (here: in the timed loop, on the device the model would use), so both sides do the
same work. It also checks that both give tensors of the same shape, dtype, range and layout
(B, C, T, H, W), and how far apart the two clips of the same video and crop are.

`model` measures training and inference clips/s of one model in eager fp32, with --amp (bf16
autocast on CPU, fp16/bf16 on CUDA), with channels_last weights and inputs, and optionally with
torch.compile; on CPU and on CUDA when present. Peak memory: CUDA max_memory_allocated, or the
process's peak RSS on CPU (cumulative over modes). MFU on CUDA only: conv FLOPs (2 x MACs, x3
for a training step) per second over --peak_tflops.

Both print a table and one line `BENCHMARK_JSON {...}` for comparison across commits; `main()`
returns the same dict. Only ratios measured in the same run on the same machine are meaningful.
"""
import argparse
import copy
import json
import os
import platform
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from utils.list_file import read_list, write_list  # noqa: E402
from utils.sampling import sample_indices  # noqa: E402
from utils.storage import FolderStorage  # noqa: E402
from utils.transforms import (IMAGENET_MEAN, IMAGENET_STD, MultiScaleCrop,  # noqa: E402
                              crop_boxes, normalize)

# ============================================================================ the PIL baseline


def _pil_open(path: str) -> Image.Image:
    with Image.open(path) as img:
        return img.convert('RGB')


def _to_normalised(img: Image.Image, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """One frame: PIL image -> float32 (H, W, 3), scaled to [0, 1] and normalised."""
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return (arr - mean) / std


def baseline_train_clip(paths, box, input_size: int, do_flip: bool, mean=IMAGENET_MEAN,
                        std=IMAGENET_STD) -> torch.Tensor:
    """The baseline training clip: per frame, open with PIL, crop `box` = (top, left, h, w),
    resize to input_size (PIL bilinear), flip, to float, normalise; stack to (C, T, H, W)."""
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    top, left, h, w = box
    frames = []
    for path in paths:
        img = _pil_open(path)
        img = img.crop((left, top, left + w, top + h)).resize((input_size, input_size),
                                                               Image.BILINEAR)
        if do_flip:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        frames.append(_to_normalised(img, mean, std))
    clip = np.stack(frames)                                   # (T, H, W, C)
    return torch.from_numpy(clip).permute(3, 0, 1, 2).contiguous()


def baseline_eval_views(clip_paths, scale_size: int, input_size: int, num_crops: int,
                        mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """The baseline evaluation views: for each clip (a list of frame paths), per frame: open,
    resize the shorter side to scale_size, take the crops (10: 5 crops and their flips), each
    to float and normalised. Returns (clips * crops, C, T, h, w), the order the dataset uses."""
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    views = []
    for paths in clip_paths:
        per_crop = None
        for path in paths:
            img = _pil_open(path)
            w, h = img.size
            if h <= w:
                size = (max(1, int(w * scale_size / h)), scale_size)   # truncated, as Resize
            else:
                size = (scale_size, max(1, int(h * scale_size / w)))
            if size != img.size:
                img = img.resize(size, Image.BILINEAR)
            boxes = crop_boxes(size[1], size[0], input_size, num_crops)
            crops = [img.crop((l, t, l + cw, t + ch)) for t, l, ch, cw in boxes]
            if num_crops == 10:                  # each crop followed by its flip
                crops = [v for c in crops for v in (c, c.transpose(Image.FLIP_LEFT_RIGHT))]
            if per_crop is None:
                per_crop = [[] for _ in crops]
            for k, c in enumerate(crops):
                per_crop[k].append(_to_normalised(c, mean, std))
        for frames in per_crop:
            views.append(torch.from_numpy(np.stack(frames)).permute(3, 0, 1, 2))
    return torch.stack(views).contiguous()


class BaselineDataset(Dataset):
    """The per-frame PIL pipeline over the same videos, sampling and crops as a VideoDataset.

    Training draws from the same generator in the same order as VideoDataset (frame indices,
    multi-scale crop box, flip), so item i of both is the same clip up to resize round-off.
    Returns float32 clips, already normalised: (C, T, H, W), or (V, C, T, h, w) in evaluation.
    """

    def __init__(self, ours, mean=IMAGENET_MEAN, std=IMAGENET_STD, frames: FolderStorage = None):
        # The baseline always reads frame folders: ours' own, or `frames` when ours reads an
        # LMDB database or video files (whose list paths may end in a video extension).
        self.frames = frames or ours.storage
        if not isinstance(self.frames, FolderStorage):
            raise ValueError('the PIL baseline reads frame folders: pass frames=FolderStorage')
        self.ours, self.mean, self.std = ours, mean, std
        t = ours.transform
        if ours.train and not isinstance(getattr(t, 'spatial', None), MultiScaleCrop):
            raise ValueError('the PIL baseline implements augmentation v1 (multi-scale crop)')

    def __len__(self) -> int:
        return len(self.ours.records)

    def _paths(self, record, idx):
        video = os.path.splitext(record.path)[0] if record.path.endswith('.mp4') else record.path
        return [self.frames.frame_path(video, record.start + int(n)) for n in idx]

    def __getitem__(self, index: int) -> dict:
        o = self.ours
        record = o.records[index]
        if not o.train:
            idx = sample_indices(record.num_frames, o.groups, o.frames_per_group, o.dense,
                                 False, None, o.random_sampling, o.num_clips)
            t = o.transform
            clip = baseline_eval_views([self._paths(record, row) for row in idx], t.scale_size,
                                       t.input_size, t.num_crops, self.mean, self.std)
            return dict(clip=clip, label=record.label, index=index, bad=0)
        rng = np.random.default_rng([o.seed, o.epoch, index])
        idx = sample_indices(record.num_frames, o.groups, o.frames_per_group, o.dense, True, rng,
                             o.random_sampling, 1)[0]
        paths = self._paths(record, idx)
        with Image.open(paths[0]) as first:
            w, h = first.size
        spatial = o.transform.spatial
        box = spatial.box(h, w, rng)
        do_flip = o.transform.allow_flip and rng.random() < 0.5
        clip = baseline_train_clip(paths, box, spatial.input_size, do_flip, self.mean, self.std)
        return dict(clip=clip, label=record.label, index=index, bad=0)


# ============================================================================ data benchmark

DATA_DEFAULT_ROOT = '/tmp/bench_data'


def dataset_dir(root: str, height: int, width: int, videos: int, frames: int) -> str:
    return os.path.join(root, f'synthetic_{height}x{width}_v{videos}_f{frames}')


def ensure_bench_dataset(root, height, width, videos, frames, quiet=False) -> str:
    """Generate (once) `videos` training videos of `frames` frames (12 classes, half as many
    for val and test) at height x width; returns the data directory."""
    from tools.make_synthetic_dataset import COMPLETE, generate
    classes = min(12, videos)
    per_class = max(1, videos // classes)
    path = dataset_dir(root, height, width, per_class * classes, frames)
    if not os.path.isfile(os.path.join(path, COMPLETE)):
        if not quiet:
            print(f'generating the benchmark dataset in {path} (one time)', flush=True)
        os.makedirs(root, exist_ok=True)
        generate(path, seed=0, videos_per_class=per_class, val_per_class=max(1, per_class // 2),
                 height=height, width=width, min_frames=frames, max_frames=frames,
                 classes=classes, workers=min(2, os.cpu_count() or 1), progress=False)
    return path


def prepare_storage(datadir: str, storage: str, quiet: bool = False, gop: int = 25
                    ) -> tuple[str, list]:
    """(datadir, extra options) that make the toolkit read the benchmark dataset from
    `storage`: its frame folders, LMDB databases built from them (tools/build_lmdb.py), or
    H.264 mp4 files encoded from them at 25 fps with a keyframe every `gop` frames (one file
    per video, in <datadir>_mp4_gop<gop>)."""
    if storage == 'folders':
        return datadir, []
    splits = ('train', 'val')
    if storage == 'lmdb':
        from tools.build_lmdb import build_split
        from utils.video_dataset import lmdb_path
        for split in splits:
            if not os.path.isdir(lmdb_path(datadir, split)):
                build_split(datadir, os.path.join(datadir, f'{split}.txt'),
                            lmdb_path(datadir, split), quiet=quiet)
        return datadir, ['--use_lmdb']
    import av
    videos = datadir.rstrip('/') + f'_mp4_gop{gop}'
    done = os.path.join(videos, 'COMPLETE')
    if not os.path.isfile(done):
        if not quiet:
            print(f'encoding the benchmark videos to {videos} (one time)', flush=True)
        storage_ = FolderStorage(datadir)
        for split in splits:
            lines = []
            for r in read_list(os.path.join(datadir, f'{split}.txt')):
                out = os.path.join(videos, r.path + '.mp4')
                os.makedirs(os.path.dirname(out), exist_ok=True)
                frames = storage_.read(r.path, range(r.start, r.end + 1))
                with av.open(out, 'w') as c:
                    s = c.add_stream('libx264', rate=25)
                    s.codec_context.gop_size = gop
                    s.height, s.width, s.pix_fmt = frames.shape[1], frames.shape[2], 'yuv420p'
                    for img in frames:
                        for packet in s.encode(av.VideoFrame.from_ndarray(img, format='rgb24')):
                            c.mux(packet)
                    for packet in s.encode():
                        c.mux(packet)
                lines.append((f'{r.path}.mp4', r.start, r.end, r.label))
            write_list(os.path.join(videos, f'{split}.txt'), lines)
        with open(os.path.join(datadir, 'categories.txt')) as f, \
                open(os.path.join(videos, 'categories.txt'), 'w') as g:
            g.write(f.read())
        open(done, 'w').close()
    return videos, ['--video_backend', 'pyav']


def toolkit_args(argv):
    """An options namespace exactly as the entrypoints parse it (opts.arg_parser)."""
    from opts import arg_parser
    return arg_parser().parse_args(argv)


def make_loader(dataset, args, device: torch.device, train: bool, batch_size: int):
    """The engine's DataLoader (so the benchmark follows its settings), else an equivalent."""
    try:
        from utils.engine import Runtime
        from utils.engine import make_loader as engine_loader
        return engine_loader(dataset, args, Runtime(device), train, batch_size)
    except (ImportError, TypeError):
        return DataLoader(dataset, batch_size=batch_size, shuffle=train,
                          num_workers=args.workers, drop_last=train,
                          pin_memory=device.type == 'cuda')


def time_loader(loader, warmup: int, batches: int, device, normalise_stats=None) -> dict:
    """Clips (items) per second over `batches` batches after `warmup` batches. Our uint8
    batches are moved to the device and normalised there inside the timed loop."""
    it = iter(loader)
    n_items = n_views = 0
    t0 = None
    for i in range(warmup + batches):
        if i == warmup:
            if device.type == 'cuda':
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        clip = batch['clip'].to(device, non_blocking=True)
        if normalise_stats is not None:
            clip = normalize(clip, *normalise_stats)
        if i >= warmup:
            n_items += clip.shape[0]
            n_views += clip.shape[0] * (clip.shape[1] if clip.dim() == 6 else 1)
    if device.type == 'cuda':
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    del it
    return dict(items_per_s=n_items / dt, views_per_s=n_views / dt, seconds=dt, items=n_items)


def _stats(x: torch.Tensor) -> dict:
    return dict(shape=list(x.shape), dtype=str(x.dtype).replace('torch.', ''),
                min=round(float(x.min()), 4), max=round(float(x.max()), 4),
                mean=round(float(x.mean()), 4), std=round(float(x.std()), 4))


def compare_outputs(ours, base, n: int, stats) -> dict:
    """Items 0..n-1 of both datasets collated to a batch: ours normalised as on the device."""
    a = normalize(torch.stack([ours[i]['clip'] for i in range(n)]), *stats)
    b = torch.stack([base[i]['clip'] for i in range(n)])
    diff = (a - b).abs()
    return dict(ours=_stats(a), baseline=_stats(b), same_shape=list(a.shape) == list(b.shape),
                same_dtype=a.dtype == b.dtype, layout='(B, V, C, T, H, W)' if a.dim() == 6
                else '(B, C, T, H, W)', mean_abs_diff=round(float(diff.mean()), 5),
                max_abs_diff=round(float(diff.max()), 4))


def _repeat(ds, times: int):
    ds.records = list(ds.records) * times
    return ds


def bench_data(opts, rest) -> dict:
    from utils.engine import input_stats, num_classes_of, setup_process
    from utils.video_dataset import build_dataset
    frames_dir = opts.datadir or ensure_bench_dataset(opts.root, opts.height, opts.width,
                                                      opts.videos, opts.frames, opts.quiet)
    datadir, storage_args = prepare_storage(frames_dir, opts.storage, opts.quiet, opts.gop)
    args = toolkit_args(['--dataset', 'synthetic', '--datadir', datadir] + storage_args + rest)
    args.num_classes = num_classes_of(args)
    device = torch.device(opts.device if opts.device != 'auto' else
                          ('cuda' if torch.cuda.is_available() else 'cpu'))
    stats = input_stats(args)
    setup_process(args, device)            # as the entrypoints do; both sides share it
    # The main process (which normalises our batches) takes the cores the workers leave, so
    # that it does not fight them for the CPU: the same for both sides.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - args.workers))

    configs = [('train', True, 1, 1, args.batch_size, opts.train_batches)]
    configs.append(('eval 1x1', False, 1, 1, args.batch_size, opts.eval_batches))
    if opts.multiview:
        configs.append((f'eval {opts.mv_clips}x{opts.mv_crops}', False, opts.mv_clips,
                        opts.mv_crops, opts.mv_batch, opts.mv_batches))
    rows, checks = [], {}
    for name, train, clips, crops, bs, batches in configs:
        ours = build_dataset(args, 'train' if train else 'val', train, clips, crops)
        need = (opts.warmup + batches) * bs + bs
        _repeat(ours, max(1, -(-need // len(ours))))
        base = BaselineDataset(ours, *stats, frames=FolderStorage(frames_dir))
        checks[name] = compare_outputs(ours, base, min(2, bs), stats)
        # 'uint8' is our loader alone, before the device normalises: what a GPU run waits for.
        sides = (('ours', ours, stats), ('baseline', base, None), ('uint8', ours, None))
        best = {side: None for side, _, _ in sides}
        for _ in range(opts.repeats):                         # alternate; keep the best of each
            for side, ds, st in sides:
                loader = make_loader(ds, args, device, train, bs)
                r = time_loader(loader, opts.warmup, batches, device, st)
                del loader
                if best[side] is None or r['items_per_s'] > best[side]['items_per_s']:
                    best[side] = r
        rows.append(dict(loader=name, batch_size=bs, views=clips * crops,
                         ours_clips_per_s=round(best['ours']['items_per_s'], 2),
                         baseline_clips_per_s=round(best['baseline']['items_per_s'], 2),
                         ratio=round(best['ours']['items_per_s']
                                     / best['baseline']['items_per_s'], 2),
                         ours_uint8_clips_per_s=round(best['uint8']['items_per_s'], 2),
                         uint8_ratio=round(best['uint8']['items_per_s']
                                           / best['baseline']['items_per_s'], 2)))
        if not opts.quiet:
            print(f'  measured {name}: ours {rows[-1]["ours_clips_per_s"]} clips/s, baseline '
                  f'{rows[-1]["baseline_clips_per_s"]} clips/s', flush=True)
    result = dict(kind='data', datadir=datadir, storage=opts.storage,
                  gop=opts.gop if opts.storage == 'video' else None, frames=args.groups,
                  input_size=args.input_size, workers=args.workers, batch_size=args.batch_size, device=str(device),
                  machine=machine(), rows=rows, checks=checks)
    if not opts.quiet:
        print_data_table(result)
    print('BENCHMARK_JSON ' + json.dumps(result), flush=True)
    return result


def print_data_table(r: dict) -> None:
    print(f'\nData pipeline: {r["frames"]} frames, {r["input_size"]} crops, -j {r["workers"]}, '
          f'device {r["device"]}, ours from {r["storage"]}; clips/s after warm-up (eval: '
          f'videos/s, each of `views` views)')
    print('ours: our loader + normalising on the device; uint8: our loader alone (normalising '
          'on a GPU costs ~nothing)')
    print(f'{"loader":<12} {"batch":>5} {"views":>5} {"ours":>10} {"baseline":>10} {"ours/base":>10}'
          f' {"uint8":>10} {"uint8/base":>10}')
    for row in r['rows']:
        print(f'{row["loader"]:<12} {row["batch_size"]:>5} {row["views"]:>5} '
              f'{row["ours_clips_per_s"]:>10.2f} {row["baseline_clips_per_s"]:>10.2f} '
              f'{row["ratio"]:>9.2f}x {row["ours_uint8_clips_per_s"]:>10.2f} '
              f'{row["uint8_ratio"]:>9.2f}x')
    print('\nOutput check (ours: uint8 batch normalised as on the device; baseline: float on CPU)')
    for name, c in r['checks'].items():
        print(f'{name:<12} shape {c["ours"]["shape"]} vs {c["baseline"]["shape"]} '
              f'layout {c["layout"]} dtype {c["ours"]["dtype"]}/{c["baseline"]["dtype"]} '
              f'range [{c["ours"]["min"]}, {c["ours"]["max"]}] vs '
              f'[{c["baseline"]["min"]}, {c["baseline"]["max"]}] '
              f'mean|diff| {c["mean_abs_diff"]} max|diff| {c["max_abs_diff"]}')


# ============================================================================ model benchmark


def machine() -> dict:
    info = dict(cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                torch=torch.__version__, threads=torch.get_num_threads())
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name(0)
    return info


def _peak_memory_mb(device) -> float:
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    # ru_maxrss is KiB on Linux: the process's peak so far (cumulative over modes).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def bench_one(model, args, device, mode: dict, opts, train: bool) -> dict:
    """Clips/s of training steps (or inference batches) of `model` in one mode."""
    from utils.engine import autocast
    from utils.engine import input_stats
    from utils.video_dataset import clip_length, input_channels
    stats = input_stats(args)
    amp_args = copy.copy(args)
    amp_args.amp = mode['amp']
    t = clip_length(args)
    b = args.batch_size
    gen = torch.Generator().manual_seed(0)
    clips = torch.randint(0, 256, (b, input_channels(args), t, args.input_size, args.input_size),
                          dtype=torch.uint8,
                          generator=gen).to(device)
    labels = torch.randint(0, args.num_classes, (b,), generator=gen).to(device)
    run = model
    if mode['compile']:
        run = torch.compile(model)
    if train:
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        scaler = None
        if mode['amp'] and device.type == 'cuda' and args.amp_dtype == 'fp16':
            scaler = torch.amp.GradScaler('cuda')
    else:
        model.eval()

    def step():
        x = normalize(clips, *stats, channels_last=mode['channels_last'])
        if not train:
            with torch.inference_mode(), autocast(amp_args, device):
                return run(x)
        with autocast(amp_args, device):
            loss = F.cross_entropy(run(x).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        return loss

    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(opts.warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(opts.steps):
        step()
    _sync(device)
    dt = time.perf_counter() - t0
    return dict(clips_per_s=opts.steps * b / dt, step_s=dt / opts.steps,
                peak_mem_mb=_peak_memory_mb(device))


def bench_model(opts, rest) -> dict:
    from utils.engine import build, setup_process, to_channels_last
    args = toolkit_args(rest)
    args.num_classes = opts.num_classes
    devices = [opts.device] if opts.device != 'auto' else (
        ['cpu', 'cuda'] if torch.cuda.is_available() else ['cpu'])
    modes = [dict(name='fp32 eager', amp=False, channels_last=False, compile=False),
             dict(name='amp', amp=True, channels_last=False, compile=False),
             dict(name='amp+channels_last', amp=True, channels_last=True, compile=False)]
    if opts.channels_last_fp32:
        modes.insert(1, dict(name='fp32 channels_last', amp=False, channels_last=True,
                             compile=False))
    if opts.compile:
        modes.append(dict(name='amp+compile', amp=True, channels_last=False, compile=True))
    if opts.modes:
        modes = [m for m in modes if m['name'] in opts.modes]
    from utils.video_dataset import clip_length, input_channels
    from models import count_conv_macs
    model0, arch = build(args)
    macs = count_conv_macs(model0, clip_length(args), args.input_size, input_channels(args))
    rows = []
    for dev in devices:
        device = torch.device(dev)
        setup_process(args, device)
        if device.type == 'cuda':
            torch.backends.cudnn.benchmark = True
        for mode in modes:
            row = dict(device=dev, mode=mode['name'])
            for train in (True, False):
                torch.manual_seed(0)
                model, _ = build(args)
                model.to(device)
                if mode['channels_last']:
                    to_channels_last(model)
                key = 'train' if train else 'infer'
                try:
                    r = bench_one(model, args, device, mode, opts, train)
                except Exception as exc:  # noqa: BLE001  (e.g. compile without a compiler)
                    row[f'{key}_error'] = f'{type(exc).__name__}: {str(exc)[:200]}'
                    continue
                row[f'{key}_clips_per_s'] = round(r['clips_per_s'], 3)
                row[f'{key}_peak_mem_mb'] = round(r['peak_mem_mb'], 1)
                if device.type == 'cuda' and opts.peak_tflops:
                    flops = 2 * macs * (3 if train else 1) * r['clips_per_s']
                    row[f'{key}_mfu'] = round(flops / (opts.peak_tflops * 1e12), 4)
                del model
            rows.append(row)
            if not opts.quiet:
                print(f'  measured {dev} {mode["name"]}: '
                      f'train {row.get("train_clips_per_s", "-")} clips/s, '
                      f'infer {row.get("infer_clips_per_s", "-")} clips/s', flush=True)
    for dev in devices:
        ref = next((r for r in rows if r['device'] == dev and r['mode'] == 'fp32 eager'), None)
        for r in rows:
            if ref is None or r['device'] != dev:
                continue
            for key in ('train', 'infer'):
                if f'{key}_clips_per_s' in r and f'{key}_clips_per_s' in ref:
                    r[f'{key}_speedup'] = round(r[f'{key}_clips_per_s']
                                                / ref[f'{key}_clips_per_s'], 2)
    result = dict(kind='model', arch=arch, backbone_net=args.backbone_net, depth=args.depth,
                  temporal_module=args.temporal_module_name, frames=clip_length(args),
                  input_size=args.input_size, batch_size=args.batch_size,
                  conv_gmacs_per_clip=round(macs / 1e9, 3), steps=opts.steps,
                  machine=machine(), rows=rows)
    if not opts.quiet:
        print_model_table(result)
    print('BENCHMARK_JSON ' + json.dumps(result), flush=True)
    return result


def print_model_table(r: dict) -> None:
    print(f'\nModel {r["arch"]}: {r["frames"]}x{r["input_size"]}x{r["input_size"]}, batch '
          f'{r["batch_size"]}, {r["conv_gmacs_per_clip"]} conv GMACs/clip; {r["steps"]} timed steps')
    print(f'{"device":<6} {"mode":<20} {"train c/s":>10} {"x fp32":>7} {"infer c/s":>10} '
          f'{"x fp32":>7} {"peak MB":>9} {"MFU":>6}')
    for row in r['rows']:
        def f(key, fmt):
            v = row.get(key)
            return format(v, fmt) if v is not None else '-'
        mem = max(row.get('train_peak_mem_mb', 0), row.get('infer_peak_mem_mb', 0))
        mfu = f('train_mfu', '.1%')
        print(f'{row["device"]:<6} {row["mode"]:<20} {f("train_clips_per_s", ".2f"):>10} '
              f'{f("train_speedup", ".2f"):>7} {f("infer_clips_per_s", ".2f"):>10} '
              f'{f("infer_speedup", ".2f"):>7} {mem:>9.0f} {mfu:>6}')
        for key in ('train_error', 'infer_error'):
            if key in row:
                print(f'       {key}: {row[key]}')


# ============================================================================ command line


def arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                epilog='Other options (--groups, --input_size, -j, -b, '
                                       '--backbone_net, ...) are the toolkit\'s (opts.py).')
    sub = p.add_subparsers(dest='what', required=True)
    d = sub.add_parser('data', help='data pipeline vs the per-frame PIL baseline')
    d.add_argument('--root', default=DATA_DEFAULT_ROOT, help='cache of generated datasets')
    d.add_argument('--datadir', default=None, help='use this synthetic-layout dataset instead')
    d.add_argument('--storage', default='folders', choices=['folders', 'lmdb', 'video'],
                   help='what our loader reads: the JPEG folders, LMDB databases built from '
                        'them, or H.264 mp4 files encoded from them (--video_backend pyav); '
                        'the baseline always reads the folders')
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
