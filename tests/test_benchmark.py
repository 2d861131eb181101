"""tools/benchmark.py: the fast pipeline gives the PIL baseline's clip (tools/bench_baseline.py),
and both commands run.

Tiny and fast: correctness and output keys only, never timings.
"""
import numpy as np
import torch

from tools import bench_baseline, benchmark
from utils.storage import FolderStorage
from utils.transforms import IMAGENET_MEAN, IMAGENET_STD, crop, normalize, resize


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


def test_fast_clip_matches_pil_baseline_for_fixed_crop(tmp_path):
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
    base = bench_baseline.baseline_train_clip(paths, box, size, False)
    assert fast.shape == base.shape == (3, 4, size, size)
    assert fast.dtype == base.dtype == torch.float32
    diff = (fast - base).abs()
    # Resize round-off only: ~1 grey level on average (1/255/0.225 = 0.017 after normalising).
    assert diff.mean() < 0.02, diff.mean()
    assert diff.max() < 0.1, diff.max()
    # A different crop is far away: the comparison does see the crop.
    other = bench_baseline.baseline_train_clip(paths, (0, 0, 36, 42), size, False)
    assert (fast - other).abs().mean() > 10 * diff.mean()
    # The flip is a flip of the same clip.
    flipped = bench_baseline.baseline_train_clip(paths, box, size, True)
    assert torch.allclose(flipped, base.flip(-1))


def test_data_and_model_commands_return_results(tmp_path, frame_dataset):
    data = benchmark.main(['data', '--datadir', frame_dataset, '--groups', '4',
                           '--input_size', '16', '-j', '0', '-b', '2', '--warmup', '1',
                           '--train_batches', '1', '--eval_batches', '1', '--mv_clips', '2',
                           '--mv_crops', '3', '--mv_batches', '1', '--repeats', '1', '--quiet'])
    assert data['kind'] == 'data'
    assert [r['loader'] for r in data['rows']] == ['train', 'eval 1x1', 'eval 2x3']
    for row in data['rows']:
        assert {'ours_clips_per_s', 'baseline_clips_per_s', 'ratio'} <= set(row)
        assert row['ours_clips_per_s'] > 0 and row['baseline_clips_per_s'] > 0
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
