import numpy as np
import pytest
import torch

from utils.transforms import (EvalTransform, MultiScaleCrop, ScaleRandomCrop, TrainTransform,
                              crop_boxes, default_scale_range, eval_scale_size, normalize,
                              resize_shorter)


def clip(t=4, h=60, w=80):
    return torch.randint(0, 256, (t, 3, h, w), dtype=torch.uint8)


def test_train_transforms_shape_and_dtype():
    rng = np.random.default_rng(0)
    for version in ('v1', 'v2'):
        tf = TrainTransform(32, version, allow_flip=True)
        for _ in range(10):
            out = tf(clip(), rng)
            assert out.shape == (4, 3, 32, 32) and out.dtype == torch.uint8


def test_multiscale_crop_boxes_inside_frame_and_from_scales():
    rng = np.random.default_rng(0)
    msc = MultiScaleCrop(48)
    sizes = {int(60 * s) if abs(int(60 * s) - 48) >= 3 else 48 for s in (1, .875, .75, .66)}
    for _ in range(200):
        top, left, h, w = msc.box(60, 80, rng)
        assert h in sizes and w in sizes
        assert 0 <= top and top + h <= 60 and 0 <= left and left + w <= 80


def test_scale_random_crop_stays_in_frame():
    rng = np.random.default_rng(0)
    t = ScaleRandomCrop(32, (36, 45))
    for _ in range(50):
        assert t(clip(2, 30, 50), rng).shape == (2, 3, 32, 32)
    assert default_scale_range(224) == [256, 320]


def test_flip_only_where_allowed():
    rng = np.random.default_rng(0)
    c = clip(2, 32, 32)
    no_flip = TrainTransform(32, 'v1', allow_flip=False)
    # With a full-size crop, an unflipped output is the input itself.
    outs = [no_flip(c, rng) for _ in range(30)]
    assert not any(torch.equal(o, c.flip(-1)) for o in outs if not torch.equal(o, c))


def test_eval_crop_positions():
    assert crop_boxes(256, 340, 224, 1) == [(16, 58, 224, 224)]
    assert crop_boxes(256, 340, 224, 3) == [(0, 0, 256, 256), (0, 42, 256, 256),
                                           (0, 84, 256, 256)]
    assert crop_boxes(340, 256, 224, 3)[2] == (84, 0, 256, 256)
    five = crop_boxes(256, 340, 224, 5)
    assert five[:4] == [(0, 0, 224, 224), (0, 116, 224, 224), (32, 0, 224, 224),
                        (32, 116, 224, 224)]
    assert eval_scale_size(224) == 256 and eval_scale_size(224, disable_scaleup=True) == 224


@pytest.mark.parametrize('crops,side', [(1, 28), (3, 32), (5, 28), (10, 28)])
def test_eval_views(crops, side):
    out = EvalTransform(28, 32, crops)(clip(4, 60, 80))
    assert out.shape == (crops, 4, 3, side, side)
    if crops == 10:
        assert torch.equal(out[5:], out[:5].flip(-1))


def test_eval_centre_crop_content():
    c = clip(1, 32, 48)
    out = EvalTransform(16, 32, 1)(c)      # no resize needed: shorter side already 32
    assert torch.equal(out[0], c[:, :, 8:24, 16:32])


def test_resize_shorter_keeps_aspect():
    assert resize_shorter(clip(1, 60, 80), 30).shape[-2:] == (30, 40)
    assert resize_shorter(clip(1, 80, 60), 30).shape[-2:] == (40, 30)


def test_normalize():
    x = torch.full((2, 3, 1, 2, 2), 255, dtype=torch.uint8)
    y = normalize(x, (0.5, 0.5, 0.5), (0.5, 0.25, 0.5))
    assert y.dtype == torch.float32
    assert torch.allclose(y[:, 1], torch.full_like(y[:, 1], 2.0))


def test_flip_of_flow_negates_the_x_component():
    from utils.transforms import flip
    x = torch.randint(0, 256, (2, 4, 5, 6), dtype=torch.uint8)     # channels x0 y0 x1 y1
    f = flip(x.clone(), flow=True)
    assert torch.equal(f[:, 1::2], x[:, 1::2].flip(-1))
    assert torch.equal(f[:, 0::2], 255 - x[:, 0::2].flip(-1))
    assert torch.equal(flip(x.clone()), x.flip(-1))


def test_normalize_matches_the_textbook_formula_in_both_layouts():
    x = torch.randint(0, 256, (2, 3, 4, 5, 6), dtype=torch.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ref = (x.double() / 255 - torch.tensor(mean).double().view(3, 1, 1, 1)) \
        / torch.tensor(std).double().view(3, 1, 1, 1)
    for channels_last in (False, True):
        y = normalize(x, mean, std, channels_last)
        assert y.is_contiguous(memory_format=torch.channels_last_3d) == channels_last
        torch.testing.assert_close(y.double(), ref, rtol=0, atol=1e-6)
