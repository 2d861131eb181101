"""tools/benchmark.py: the fast pipeline gives the clips of the original study's pipeline
(tools/bench_baseline.py), and both commands run.

Tiny and fast: correctness and output keys only, never timings.
"""
import os

import numpy as np
import pytest
import torch

from tools import bench_baseline, benchmark
from utils.storage import FolderStorage
from utils.transforms import (IMAGENET_MEAN, IMAGENET_STD, EvalTransform, crop, normalize,
                              resize)


def _textured_video(folder, frames=4, h=48, w=64):
    """Smooth gradients plus texture, so resize round-off stays small but crops matter."""
    import os
    from PIL import Image
    os.makedirs(folder, exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w]
    for k in range(frames):
        img = np.stack([(xx * 4 + k * 9) % 256, (yy * 5) % 256,
                        ((xx + yy) * 3 + 40 * k) % 256], -1).astype(np.uint8)
        Image.fromarray(img).save(os.path.join(folder, f'{k + 1:05d}.jpg'), quality=95)


@pytest.mark.parametrize('threed', [True, False])
def test_fast_clip_matches_original_pipeline_for_fixed_crop(tmp_path, threed):
    _textured_video(str(tmp_path / 'v'))
    storage = FolderStorage(str(tmp_path))
    numbers = [1, 2, 3, 4]
    box = (5, 9, 36, 42)                                     # top, left, h, w
    size = 24
    # Fast path: uint8 whole-clip crop then one resize; normalised as on the device.
    frames = torch.from_numpy(storage.read('v', numbers)).permute(0, 3, 1, 2)   # (T, C, H, W)
    fast = resize(crop(frames, *box), (size, size)).permute(1, 0, 2, 3)         # (C, T, h, w)
    fast = normalize(fast[None], IMAGENET_MEAN, IMAGENET_STD)[0]
    paths = [storage.frame_path('v', n) for n in numbers]
    original = bench_baseline.original_train_clip(paths, box, size, False, threed)
    # The original's layouts: (3, T, H, W) for 3D models, frames along channels for 2D ones.
    assert original.shape == ((3, 4, size, size) if threed else (12, size, size))
    base = bench_baseline.to_our_layout(original, 4, None, threed)
    assert fast.shape == base.shape == (3, 4, size, size)
    assert fast.dtype == base.dtype == torch.float32
    diff = (fast - base).abs()
    # Resize round-off only: ~1 grey level on average (1/255/0.225 = 0.017 after normalising).
    assert diff.mean() < 0.02, diff.mean()
    assert diff.max() < 0.1, diff.max()
    # Same clip statistics (the benchmark's output check prints these).
    for stat in (torch.mean, torch.std, torch.amin, torch.amax):
        assert abs(float(stat(fast)) - float(stat(base))) < 0.02, stat
    # A different crop is far away: the comparison does see the crop.
    other = bench_baseline.to_our_layout(
        bench_baseline.original_train_clip(paths, (0, 0, 36, 42), size, False, threed), 4, None,
        threed)
    assert (fast - other).abs().mean() > 10 * diff.mean()
    # The flip is a flip of the same clip.
    flipped = bench_baseline.to_our_layout(
        bench_baseline.original_train_clip(paths, box, size, True, threed), 4, None, threed)
    assert torch.allclose(flipped, base.flip(-1))


@pytest.mark.parametrize('num_crops', [1, 3, 10])
@pytest.mark.parametrize('threed', [True, False])
def test_eval_views_match_original_pipeline(tmp_path, num_crops, threed):
    """Two clips x num_crops views: the original's GroupScale + crops, chunked as its test.py,
    equal our EvalTransform's views (same order) up to resize round-off."""
    _textured_video(str(tmp_path / 'v'), frames=4)
    storage = FolderStorage(str(tmp_path))
    clips = [[1, 2], [3, 4]]
    scale, size = 28, 24
    ours_t = EvalTransform(size, scale, num_crops)
    ours = []
    for numbers in clips:
        frames = torch.from_numpy(storage.read('v', numbers)).permute(0, 3, 1, 2)
        ours.append(ours_t(frames))                            # (crops, T, C, h, w)
    ours = torch.cat(ours).permute(0, 2, 1, 3, 4)              # (V, C, T, h, w), clip major
    ours = normalize(ours, IMAGENET_MEAN, IMAGENET_STD)
    paths = [storage.frame_path('v', n) for numbers in clips for n in numbers]
    original = bench_baseline.original_eval_views(paths, scale, size, num_crops, threed)
    base = bench_baseline.to_our_layout(original, 2, (2, num_crops), threed)
    assert base.shape == ours.shape == (2 * num_crops, 3, 2, size, size)
    diff = (ours - base).abs()
    assert diff.mean() < 0.02 and diff.max() < 0.1, (diff.mean(), diff.max())
    # Each view is itself: swapping two views' order would fail.
    if num_crops > 1:
        assert (ours[0] - base[1]).abs().mean() > 10 * diff.mean()


def test_data_and_model_commands_return_results(tmp_path, frame_dataset):
    data = benchmark.main(['data', '--datadir', frame_dataset, '--groups', '4',
                           '--input_size', '16', '-j', '0', '-b', '2', '--warmup', '1',
                           '--train_batches', '1', '--eval_batches', '1', '--mv_clips', '2',
                           '--mv_crops', '3', '--mv_batches', '1', '--repeats', '1', '--profile',
                           '--quiet'])
    assert data['kind'] == 'data'
    assert [r['loader'] for r in data['rows']] == ['train', 'eval 1x1', 'eval 2x3']
    for row in data['rows']:
        assert {'ours_clips_per_s', 'baseline_clips_per_s', 'ratio', 'decode_limit_clips_per_s',
                'uint8_of_limit', 'ours_of_limit', 'baseline_of_limit'} <= set(row)
        assert row['ours_clips_per_s'] > 0 and row['baseline_clips_per_s'] > 0
        assert row['decode_limit_clips_per_s'] > 0 and row['decode_ms_per_frame'] > 0
        assert row['uint8_of_limit'] == pytest.approx(
            row['ours_uint8_clips_per_s'] / row['decode_limit_clips_per_s'], abs=0.01)
    assert data['baseline_layout'].startswith('2D')             # resnet: frames along channels
    assert set(data['profile']['items']) == {'read', 'decode', 'crop_resize', 'layout', 'getitem'}
    assert set(data['profile']['batches']) == {'collate', 'normalise'}
    for name, check in data['checks'].items():
        assert check['same_shape'] and check['same_dtype'], name
        assert check['mean_abs_diff'] < 0.05, (name, check)
    assert data['checks']['train']['layout'] == '(B, C, T, H, W)'

    model = benchmark.main(['model', '--backbone_net', 'resnet', '-d', '18',
                            '--temporal_module_name', 'TAM', '--groups', '2', '--input_size',
                            '32', '-b', '2', '--steps', '1', '--warmup', '1', '--device', 'cpu',
                            '--num_classes', '3', '--quiet'])
    assert model['kind'] == 'model' and model['frames'] == 2
    assert [r['mode'] for r in model['rows']] == ['fp32 eager', 'amp', 'amp+channels_last']
    for row in model['rows']:
        assert row['train_clips_per_s'] > 0 and row['infer_clips_per_s'] > 0, row
        assert row['train_peak_mem_mb'] > 0
        assert 'train_mfu' not in row                      # MFU is reported on CUDA only
    assert model['rows'][0]['train_speedup'] == 1.0


def test_decode_limit_reads_the_frames_our_loader_reads(tmp_path, frame_dataset, monkeypatch):
    """The decode limit decodes exactly the JPEGs our dataset reads for an item: the sampled
    frames of a training clip, each distinct frame of a video once in evaluation."""
    from tools import bench_common as toolkit
    from tools.bench_data import frame_paths, time_decode_limit
    cfg = toolkit.prepare_data(toolkit.toolkit_config(
        ['--dataset', 'synthetic', '--datadir', frame_dataset, '--groups', '4',
         '--input_size', '16']))
    frames = FolderStorage(frame_dataset)
    read = []

    def spy(self, video_path, names, gray=False):
        read.extend(os.path.join(self.root, video_path, n) for n in names)
        return real(self, video_path, names, gray)

    real = FolderStorage.read_files
    monkeypatch.setattr(FolderStorage, 'read_files', spy)
    for train, clips in ((True, 1), (False, 3)):
        ds = toolkit.dataset(cfg, 'train' if train else 'val', train, clips=clips, crops=1)
        for index in range(2):
            read.clear()
            ds[index]
            assert frame_paths(ds, frames, index) == read, (train, index)
    monkeypatch.undo()
    paths = frame_paths(ds, frames, 0)
    for workers in (0, 2):
        r = time_decode_limit([paths] * 3, workers)
        assert r['frames'] == 3 * len(paths) and r['items_per_s'] > 0


def test_model_benchmark_times_the_engine_training_step(monkeypatch):
    """Train mode runs utils.engine.train_step (scaler, --clip_gradient and all) with each
    mode's config: --amp and --channels_last replaced, every other option the command line's."""
    from utils import engine
    seen = []
    real = engine.train_step

    def spy(model, clips, labels, optimizer, scaler, cfg):
        seen.append((cfg.run.amp, cfg.run.channels_last, cfg.optim.clip_gradient,
                     cfg.model.num_classes, clips.dtype, tuple(clips.shape)))
        return real(model, clips, labels, optimizer, scaler, cfg)
    monkeypatch.setattr(engine, 'train_step', spy)
    model = benchmark.main(['model', '--backbone_net', 'resnet', '-d', '18', '--groups', '2',
                            '--input_size', '32', '-b', '2', '--steps', '1', '--warmup', '0',
                            '--device', 'cpu', '--num_classes', '3', '--clip_gradient', '1',
                            '--modes', 'fp32 eager', 'amp+channels_last', '--quiet'])
    assert [r['mode'] for r in model['rows']] == ['fp32 eager', 'amp+channels_last']
    assert seen == [(False, False, 1.0, 3, torch.uint8, (2, 3, 2, 32, 32)),
                    (True, True, 1.0, 3, torch.uint8, (2, 3, 2, 32, 32))]
