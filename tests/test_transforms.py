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


# Crop windows (top, left, h, w) that the original's GroupOverSample
# (IBM/action-recognition-pytorch utils/video_transforms.py) cut, in its order, read back from
# frames whose pixels encode their coordinates; 10 crops are each of the 5 and then its flip.
ORIGINAL_CROPS = {
    (256, 340, 224, 3): [(16, 0), (16, 116), (16, 58)],          # left, right, centre
    (340, 256, 224, 3): [(0, 16), (116, 16), (58, 16)],          # top, bottom, centre
    (256, 256, 224, 3): [(16, 0), (16, 32), (16, 16)],           # square: along the width
    (128, 171, 112, 3): [(8, 0), (8, 56), (8, 28)],
    (60, 80, 28, 3): [(16, 0), (16, 52), (16, 26)],
    (256, 340, 224, 5): [(0, 0), (0, 116), (32, 0), (32, 116), (16, 58)],
    (340, 256, 224, 5): [(0, 0), (0, 32), (116, 0), (116, 32), (58, 16)],
    (128, 171, 112, 5): [(0, 0), (0, 56), (16, 0), (16, 56), (8, 28)],
    (60, 80, 28, 5): [(0, 0), (0, 52), (32, 0), (32, 52), (16, 26)],
}


@pytest.mark.parametrize('key', list(ORIGINAL_CROPS), ids=str)
def test_eval_crops_are_the_originals(key):
    h, w, size, crops = key
    assert crop_boxes(h, w, size, crops) == [(t, l, size, size) for t, l in ORIGINAL_CROPS[key]]
    if crops == 5:
        assert crop_boxes(h, w, size, 10) == crop_boxes(h, w, size, 5)


def test_centre_crop_rounds_as_torchvision():
    # torchvision CenterCrop (the original's GroupCenterCrop): int(round((h - size) / 2)),
    # Python's round: 58.5 -> 58, 59.5 -> 60
    assert crop_boxes(256, 341, 224, 1) == [(16, 58, 224, 224)]
    assert crop_boxes(256, 343, 224, 1) == [(16, 60, 224, 224)]
    assert crop_boxes(343, 256, 224, 1) == [(60, 16, 224, 224)]


def test_eval_scale_size_is_the_originals():
    # int(input_size / 0.875 + 0.5), the original's test.py and get_augmentor
    sizes = {224: 256, 112: 128, 160: 183, 299: 342, 96: 110, 64: 73, 32: 37}
    assert {s: eval_scale_size(s) for s in sizes} == sizes
    assert all(eval_scale_size(s, disable_scaleup=True) == s for s in sizes)


@pytest.mark.parametrize('crops', [1, 3, 5, 10])
def test_eval_views(crops):
    c = clip(4, 60, 80)
    out = EvalTransform(28, 32, crops)(c)
    assert out.shape == (crops, 4, 3, 28, 28)
    if crops == 10:
        assert torch.equal(out[1::2], out[0::2].flip(-1))     # each crop, then its flip
        assert torch.equal(out[0::2], EvalTransform(28, 32, 5)(c))


def test_eval_centre_crop_content():
    c = clip(1, 32, 48)
    out = EvalTransform(16, 32, 1)(c)      # no resize needed: shorter side already 32
    assert torch.equal(out[0], c[:, :, 8:24, 16:32])


def test_eval_resize_truncates_the_longer_side_as_torchvision():
    # torchvision Resize(256) (the original's GroupScale): longer side int(256 * 355 / 240) = 378
    assert resize_shorter(clip(1, 240, 355), 256).shape[-2:] == (256, 378)
    assert resize_shorter(clip(1, 355, 240), 256).shape[-2:] == (378, 256)
    assert resize_shorter(clip(1, 240, 427), 256).shape[-2:] == (256, 455)


def test_eval_resize_matches_pil_bilinear_within_one_level():
    """The original resized PIL images (BILINEAR, antialiased); the uint8 tensor resize agrees
    within one grey level."""
    from PIL import Image
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:120, 0:160]
    img = (np.stack([np.sin(x / 7) * 100 + 120, np.cos(y / 5) * 90 + 128, (x + y) % 256], -1)
           + rng.integers(0, 30, (120, 160, 3))).clip(0, 255).astype(np.uint8)
    for short in (128, 64, 37):
        ref = np.asarray(Image.fromarray(img).resize((int(short * 160 / 120), short),
                                                     Image.BILINEAR)).astype(int)
        out = resize_shorter(torch.from_numpy(img).permute(2, 0, 1)[None], short)
        out = out[0].permute(1, 2, 0).numpy().astype(int)
        assert out.shape == ref.shape and np.abs(out - ref).max() <= 1


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
