"""tools/benchmark.py data: the benchmark dataset, and the clips/s of this toolkit's data
loaders against the original study's pipeline (tools/bench_baseline.py) and against the decode
limit (the same JPEG frames decoded and nothing else).

The dataset is generated once (utils/synthetic.py) under --root at a realistic frame size, and
read from its frame folders, LMDB databases built from them, or H.264 mp4 files encoded from
them (`prepare_storage`). Our loaders are the engine's (tools/bench_common.py); our uint8
batches are normalised on the device inside the timed loop, so both sides do the same work.
`compare_outputs` checks that both give the same clips (shape, dtype, range, layout).
"""
import io
import multiprocessing
import os
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import default_collate

from tools import bench_common as toolkit
from tools.bench_baseline import (BaselineDataset, draw_frames, frame_files, original_loader,
                                  to_our_layout)
from utils.list_file import read_list, write_list
from utils.sampling import frames_per_clip
from utils.storage import FolderStorage, decode_images, lmdb_path, simplejpeg
from utils.synthetic import COMPLETE, generate
from utils.transforms import normalize

# ----------------------------------------------------------------------------- the dataset

DATA_DEFAULT_ROOT = '/tmp/bench_data'


def dataset_dir(root: str, height: int, width: int, videos: int, frames: int) -> str:
    return os.path.join(root, f'synthetic_{height}x{width}_v{videos}_f{frames}')


def ensure_bench_dataset(root, height, width, videos, frames, quiet=False) -> str:
    """Generate (once) `videos` training videos of `frames` frames (12 classes, half as many
    for val and test) at height x width; returns the data directory."""
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
        for split in splits:
            if not os.path.isdir(lmdb_path(datadir, split)):
                build_split(datadir, os.path.join(datadir, f'{split}.txt'),
                            lmdb_path(datadir, split), quiet=quiet)
        return datadir, ['--storage', 'lmdb']
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
    return videos, ['--storage', 'video']


# ----------------------------------------------------------------------------- timing


def time_loader(loader, warmup: int, batches: int, device, normalise_stats=None) -> dict:
    """Clips (items) per second over `batches` batches after `warmup` batches. Our uint8
    batches are moved to the device and, with `normalise_stats`, normalised there inside the
    timed loop; the baseline's (clip, label) batches arrive normalised."""
    it = iter(loader)
    n_items = 0
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
        clip = batch['clip'] if isinstance(batch, dict) else batch[0]
        clip = clip.to(device, non_blocking=True)
        if normalise_stats is not None:
            clip = normalize(clip, *normalise_stats)
        if i >= warmup:
            n_items += clip.shape[0]
    if device.type == 'cuda':
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    del it
    return dict(items_per_s=n_items / dt, seconds=dt, items=n_items)


def frame_paths(ours, frames: FolderStorage, index: int) -> list[str]:
    """The JPEG files our dataset decodes for item `index`: a training clip's sampled frames,
    or in evaluation each distinct frame of the video's clips once."""
    record, idx, rng = draw_frames(ours, index)
    return frame_files(frames, record, idx if rng is not None else np.unique(idx))


def _read_files(paths: list[str]) -> list[bytes]:
    """The bytes of these files (the decode limit's and the profile's read step)."""
    blobs = []
    for path in paths:
        with open(path, 'rb') as f:
            blobs.append(f.read())
    return blobs


def _decode_files(paths: list[str]) -> int:
    """Read and decode these JPEGs at full size (libjpeg-turbo through simplejpeg, else PIL),
    keeping nothing: the decode limit's work."""
    for data in _read_files(paths):
        if simplejpeg is not None:
            simplejpeg.decode_jpeg(data, colorspace='RGB')
        else:
            with Image.open(io.BytesIO(data)) as img:
                img.load()
    return len(paths)


def time_decode_limit(clips: list[list[str]], workers: int) -> dict:
    """Clips/s of decoding exactly the JPEG files of `clips` and nothing else (no transforms,
    no batches), in one process per loader worker (the main process with -j 0): the most any
    loader of these frames could deliver with that many processes."""
    if workers == 0:
        t0 = time.perf_counter()
        frames = sum(_decode_files(c) for c in clips)
        dt = time.perf_counter() - t0
    else:
        method = 'fork' if 'fork' in multiprocessing.get_all_start_methods() else 'spawn'
        with multiprocessing.get_context(method).Pool(workers) as pool:
            pool.map(_decode_files, clips[:workers], chunksize=1)      # start the processes
            t0 = time.perf_counter()
            frames = sum(pool.imap_unordered(_decode_files, clips, chunksize=1))
            dt = time.perf_counter() - t0
    return dict(items_per_s=len(clips) / dt, frames=frames,
                ms_per_frame=1000 * dt * max(workers, 1) / frames)


def _stats(x: torch.Tensor) -> dict:
    return dict(shape=list(x.shape), dtype=str(x.dtype).replace('torch.', ''),
                min=round(float(x.min()), 4), max=round(float(x.max()), 4),
                mean=round(float(x.mean()), 4), std=round(float(x.std()), 4))


def compare_outputs(ours, base, n: int, stats) -> dict:
    """Items 0..n-1 of both datasets collated to a batch: ours normalised as on the device,
    the baseline's put in our layout."""
    frames = frames_per_clip(ours.groups, ours.frames_per_group, ours.dense)
    views = None if ours.train else (ours.num_clips, ours.transform.num_crops)
    a = normalize(torch.stack([ours[i]['clip'] for i in range(n)]), *stats)
    b = torch.stack([to_our_layout(base[i][0], frames, views, base.threed) for i in range(n)])
    diff = (a - b).abs()
    return dict(ours=_stats(a), baseline=_stats(b), same_shape=list(a.shape) == list(b.shape),
                same_dtype=a.dtype == b.dtype, layout='(B, V, C, T, H, W)' if a.dim() == 6
                else '(B, C, T, H, W)', mean_abs_diff=round(float(diff.mean()), 5),
                max_abs_diff=round(float(diff.max()), 4))


def _repeat(ds, times: int):
    ds.records = list(ds.records) * times
    return ds


# ----------------------------------------------------------------------------- profile


def profile_items(ours, frames: FolderStorage, n: int) -> dict:
    """Milliseconds per clip of each step of our dataset's __getitem__, run in this process
    on items 0..n-1 (training: read the files, decode, crop + resize (+ flip), to the
    (C, T, H, W) layout), and of the whole __getitem__ for comparison. A first untimed pass
    brings the files into the page cache, as they are in a long run."""
    for i in range(n):
        ours[i]
    steps = dict(read=0.0, decode=0.0, crop_resize=0.0, layout=0.0)
    for i in range(n):
        record, idx, rng = draw_frames(ours, i)
        paths = frame_files(frames, record, idx)
        t0 = time.perf_counter()
        blobs = _read_files(paths)
        t1 = time.perf_counter()
        clip = torch.from_numpy(decode_images(blobs, paths)).permute(0, 3, 1, 2)
        t2 = time.perf_counter()
        clip = ours.transform(clip, rng)
        t3 = time.perf_counter()
        clip.permute(1, 0, 2, 3).contiguous()
        t4 = time.perf_counter()
        for k, dt in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            steps[k] += dt
    t0 = time.perf_counter()
    for i in range(n):
        ours[i]
    whole = time.perf_counter() - t0
    out = {k: round(1000 * v / n, 3) for k, v in steps.items()}
    out['getitem'] = round(1000 * whole / n, 3)
    return out


def profile_batches(ours, cfg, device, bs: int, batches: int) -> dict:
    """Milliseconds per batch: collating `bs` items (what each worker does before sending a
    batch) and moving + normalising the uint8 batch on `device` (the main process's work)."""
    items = [ours[i] for i in range(bs)]
    normalize(default_collate(items)['clip'].to(device), cfg.data.mean, cfg.data.std)  # warm
    t0 = time.perf_counter()
    for _ in range(batches):
        batch = default_collate(items)
    t1 = time.perf_counter()
    for _ in range(batches):
        normalize(batch['clip'].to(device), cfg.data.mean, cfg.data.std)
    if device.type == 'cuda':
        torch.cuda.synchronize()
    t2 = time.perf_counter()
    return dict(collate=round(1000 * (t1 - t0) / batches, 3),
                normalise=round(1000 * (t2 - t1) / batches, 3))


# ----------------------------------------------------------------------------- the benchmark


def _rate(r: dict) -> float:
    return round(r['items_per_s'], 2)


def bench_data(opts, rest) -> dict:
    if opts.profile and opts.storage != 'folders':
        raise SystemExit('error: --profile times the steps of reading frame folders: use it '
                         'with --storage folders')
    frames_dir = opts.datadir or ensure_bench_dataset(opts.root, opts.height, opts.width,
                                                      opts.videos, opts.frames, opts.quiet)
    datadir, storage_args = prepare_storage(frames_dir, opts.storage, opts.quiet, opts.gop)
    cfg = toolkit.prepare_data(toolkit.toolkit_config(
        ['--dataset', 'synthetic', '--datadir', datadir] + storage_args + rest))
    data, batch_size = cfg.data, cfg.optim.batch_size
    device = torch.device(opts.device if opts.device != 'auto' else
                          ('cuda' if torch.cuda.is_available() else 'cpu'))
    stats = (data.mean, data.std)
    threed = toolkit.temporal_module(cfg) is None     # the original's threed_data
    frames = FolderStorage(frames_dir)
    toolkit.setup_process(cfg, device)     # as the entrypoints do; both sides share it
    # The main process (which normalises our batches) takes the cores the workers leave, so
    # that it does not fight them for the CPU: the same for both sides.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - data.workers))

    configs = [('train', True, 1, 1, batch_size, opts.train_batches)]
    configs.append(('eval 1x1', False, 1, 1, batch_size, opts.eval_batches))
    if opts.multiview:
        configs.append((f'eval {opts.mv_clips}x{opts.mv_crops}', False, opts.mv_clips,
                        opts.mv_crops, opts.mv_batch, opts.mv_batches))
    rows, checks, profile = [], {}, None
    for name, train, clips, crops, bs, batches in configs:
        ours = toolkit.dataset(cfg, 'train' if train else 'val', train, clips, crops)
        need = (opts.warmup + batches) * bs + bs
        _repeat(ours, max(1, -(-need // len(ours))))
        base = BaselineDataset(ours, *stats, frames=frames, threed=threed)
        checks[name] = compare_outputs(ours, base, min(2, bs), stats)
        if train and opts.profile:
            profile = dict(items=profile_items(ours, frames, min(len(ours), 4 * bs)),
                           batches=profile_batches(ours, cfg, device, bs, 20))
        timed = [frame_paths(ours, frames, i)
                 for i in range(opts.warmup * bs, (opts.warmup + batches) * bs)]
        # 'uint8' is our loader alone, before the device normalises: what a GPU run waits for.
        sides = (('ours', ours, stats), ('baseline', base, None), ('uint8', ours, None),
                 ('decode limit', timed, None))
        best = {side: None for side, _, _ in sides}
        for _ in range(opts.repeats):                         # alternate; keep the best of each
            for side, ds, st in sides:
                if side == 'decode limit':
                    r = time_decode_limit(ds, data.workers)
                else:
                    loader = (original_loader(ds, train, bs, data.workers)
                              if side == 'baseline' else
                              toolkit.make_loader(ds, cfg, device, train, bs))
                    r = time_loader(loader, opts.warmup, batches, device, st)
                    del loader
                if best[side] is None or r['items_per_s'] > best[side]['items_per_s']:
                    best[side] = r
        base_rate, limit = best['baseline']['items_per_s'], best['decode limit']['items_per_s']
        rows.append(dict(loader=name, batch_size=bs, views=clips * crops,
                         ours_clips_per_s=_rate(best['ours']),
                         baseline_clips_per_s=_rate(best['baseline']),
                         ratio=round(best['ours']['items_per_s'] / base_rate, 2),
                         ours_uint8_clips_per_s=_rate(best['uint8']),
                         uint8_ratio=round(best['uint8']['items_per_s'] / base_rate, 2),
                         decode_limit_clips_per_s=_rate(best['decode limit']),
                         decode_ms_per_frame=round(best['decode limit']['ms_per_frame'], 3),
                         ours_of_limit=round(best['ours']['items_per_s'] / limit, 3),
                         uint8_of_limit=round(best['uint8']['items_per_s'] / limit, 3),
                         baseline_of_limit=round(base_rate / limit, 3)))
        if not opts.quiet:
            print(f'  measured {name}: ours {rows[-1]["ours_clips_per_s"]} clips/s, baseline '
                  f'{rows[-1]["baseline_clips_per_s"]} clips/s, decode limit '
                  f'{rows[-1]["decode_limit_clips_per_s"]} clips/s', flush=True)
    result = dict(kind='data', datadir=datadir, storage=opts.storage,
                  gop=opts.gop if opts.storage == 'video' else None, frames=data.groups,
                  input_size=data.input_size, workers=data.workers, batch_size=batch_size,
                  baseline_layout='3D (threed_data)' if threed else '2D (frames along channels)',
                  device=str(device), machine=toolkit.machine(), rows=rows, checks=checks,
                  profile=profile)
    return toolkit.emit(result, print_data_table, opts.quiet)


def print_data_table(r: dict) -> None:
    print(f'\nData pipeline: {r["frames"]} frames, {r["input_size"]} crops, -j {r["workers"]}, '
          f'device {r["device"]}, ours from {r["storage"]}; clips/s after warm-up (eval: '
          f'videos/s, each of `views` views)')
    print('ours: our loader + normalising on the device; uint8: our loader alone (normalising '
          'on a GPU costs ~nothing); baseline: the original study\'s pipeline '
          f'({r["baseline_layout"]}); limit: decoding the same JPEGs, nothing else, '
          f'{max(r["workers"], 1)} process(es)')
    print(f'{"loader":<12} {"batch":>5} {"views":>5} {"limit":>8} {"baseline":>9} '
          f'{"ours":>8} {"x base":>7} {"of lim":>7} {"uint8":>8} {"x base":>7} {"of lim":>7}')
    for row in r['rows']:
        print(f'{row["loader"]:<12} {row["batch_size"]:>5} {row["views"]:>5} '
              f'{row["decode_limit_clips_per_s"]:>8.2f} {row["baseline_clips_per_s"]:>9.2f} '
              f'{row["ours_clips_per_s"]:>8.2f} {row["ratio"]:>6.2f}x '
              f'{100 * row["ours_of_limit"]:>6.1f}% {row["ours_uint8_clips_per_s"]:>8.2f} '
              f'{row["uint8_ratio"]:>6.2f}x {100 * row["uint8_of_limit"]:>6.1f}%')
    print('\nOutput check (ours: uint8 batch normalised as on the device; baseline: float, '
          'in our layout)')
    for name, c in r['checks'].items():
        print(f'{name:<12} shape {c["ours"]["shape"]} vs {c["baseline"]["shape"]} '
              f'layout {c["layout"]} dtype {c["ours"]["dtype"]}/{c["baseline"]["dtype"]} '
              f'range [{c["ours"]["min"]}, {c["ours"]["max"]}] vs '
              f'[{c["baseline"]["min"]}, {c["baseline"]["max"]}] '
              f'mean|diff| {c["mean_abs_diff"]} max|diff| {c["max_abs_diff"]}')
    if r.get('profile'):
        items, batches = r['profile']['items'], r['profile']['batches']
        parts = ', '.join(f'{k} {v:.2f}' for k, v in items.items() if k != 'getitem')
        print(f'\nProfile, training, ms per clip in one process: {parts} '
              f'(sum {sum(v for k, v in items.items() if k != "getitem"):.2f}; the whole '
              f'__getitem__ {items["getitem"]:.2f}); per batch: collate '
              f'{batches["collate"]:.2f} ms, to the device and normalise '
              f'{batches["normalise"]:.2f} ms')
