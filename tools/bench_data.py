"""tools/benchmark.py data: the benchmark dataset, and the clips/s of this toolkit's data
loaders against the per-frame PIL baseline (tools/bench_baseline.py).

The dataset is generated once (utils/synthetic.py) under --root at a realistic frame size, and
read from its frame folders, LMDB databases built from them, or H.264 mp4 files encoded from
them (`prepare_storage`). Our loaders are the engine's (tools/bench_common.py); our uint8
batches are normalised on the device inside the timed loop, so both sides do the same work.
`compare_outputs` checks that both give the same clips (shape, dtype, range, layout).
"""
import os
import time

import torch

from tools import bench_common as toolkit
from tools.bench_baseline import BaselineDataset
from utils.list_file import read_list, write_list
from utils.storage import FolderStorage, lmdb_path
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


# ----------------------------------------------------------------------------- the benchmark


def bench_data(opts, rest) -> dict:
    frames_dir = opts.datadir or ensure_bench_dataset(opts.root, opts.height, opts.width,
                                                      opts.videos, opts.frames, opts.quiet)
    datadir, storage_args = prepare_storage(frames_dir, opts.storage, opts.quiet, opts.gop)
    cfg = toolkit.prepare_data(toolkit.toolkit_config(
        ['--dataset', 'synthetic', '--datadir', datadir] + storage_args + rest))
    data, batch_size = cfg.data, cfg.optim.batch_size
    device = torch.device(opts.device if opts.device != 'auto' else
                          ('cuda' if torch.cuda.is_available() else 'cpu'))
    stats = (data.mean, data.std)
    toolkit.setup_process(cfg, device)     # as the entrypoints do; both sides share it
    # The main process (which normalises our batches) takes the cores the workers leave, so
    # that it does not fight them for the CPU: the same for both sides.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - data.workers))

    configs = [('train', True, 1, 1, batch_size, opts.train_batches)]
    configs.append(('eval 1x1', False, 1, 1, batch_size, opts.eval_batches))
    if opts.multiview:
        configs.append((f'eval {opts.mv_clips}x{opts.mv_crops}', False, opts.mv_clips,
                        opts.mv_crops, opts.mv_batch, opts.mv_batches))
    rows, checks = [], {}
    for name, train, clips, crops, bs, batches in configs:
        ours = toolkit.dataset(cfg, 'train' if train else 'val', train, clips, crops)
        need = (opts.warmup + batches) * bs + bs
        _repeat(ours, max(1, -(-need // len(ours))))
        base = BaselineDataset(ours, *stats, frames=FolderStorage(frames_dir))
        checks[name] = compare_outputs(ours, base, min(2, bs), stats)
        # 'uint8' is our loader alone, before the device normalises: what a GPU run waits for.
        sides = (('ours', ours, stats), ('baseline', base, None), ('uint8', ours, None))
        best = {side: None for side, _, _ in sides}
        for _ in range(opts.repeats):                         # alternate; keep the best of each
            for side, ds, st in sides:
                loader = toolkit.make_loader(ds, cfg, device, train, bs)
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
                  gop=opts.gop if opts.storage == 'video' else None, frames=data.groups,
                  input_size=data.input_size, workers=data.workers, batch_size=batch_size,
                  device=str(device), machine=toolkit.machine(), rows=rows, checks=checks)
    return toolkit.emit(result, print_data_table, opts.quiet)


def print_data_table(r: dict) -> None:
    print(f'\nData pipeline: {r["frames"]} frames, {r["input_size"]} crops, -j {r["workers"]}, '
          f'device {r["device"]}, ours from {r["storage"]}; clips/s after warm-up (eval: '
          f'videos/s, each of `views` views)')
    print('ours: our loader + normalising on the device; uint8: our loader alone (normalising '
          'on a GPU costs ~nothing)')
    print(f'{"loader":<12} {"batch":>5} {"views":>5} {"ours":>10} {"baseline":>10} '
          f'{"ours/base":>10} {"uint8":>10} {"uint8/base":>10}')
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
