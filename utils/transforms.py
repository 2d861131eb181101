"""Clip transforms: every spatial augmentation and evaluation crop of the toolkit.

A clip is a uint8 tensor (T, C, H, W). Clips stay uint8 (the device converts and normalises
them), each operation treats the whole clip at once, and crops come before resizes so the
resize touches only the pixels that are kept. Randomness comes from the numpy Generator passed
in, never from global state.
"""
import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize(clip: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize of a (T, C, H, W) uint8 clip to `size` = (h, w)."""
    if tuple(clip.shape[-2:]) == tuple(size):
        return clip
    # channels_last is the layout decoded frames have, and the fastest uint8 resize path.
    clip = clip.contiguous(memory_format=torch.channels_last)
    return F.interpolate(clip, size=size, mode='bilinear', antialias=True, align_corners=False)


def resize_shorter(clip: torch.Tensor, shorter: int) -> torch.Tensor:
    """Resize so that the shorter side is `shorter`; the longer side is
    int(shorter * longer / shorter_side), truncated as torchvision's Resize (the original's
    GroupScale) does, so evaluation crops come from frames of the original's size."""
    h, w = clip.shape[-2:]
    if h <= w:
        size = (shorter, max(1, int(shorter * w / h)))
    else:
        size = (max(1, int(shorter * h / w)), shorter)
    return resize(clip, size)


def crop(clip: torch.Tensor, top: int, left: int, h: int, w: int) -> torch.Tensor:
    """Crop a window of the clip (a view, no copy)."""
    return clip[..., top:top + h, left:left + w]


def flip(clip: torch.Tensor, flow: bool = False) -> torch.Tensor:
    """Horizontal flip. For flow (channels x0 y0 x1 y1 ...) the x components change sign too:
    255 - x, as flow images store 128 + scaled displacement."""
    clip = clip.flip(-1)
    if flow:
        clip[:, 0::2] = 255 - clip[:, 0::2]
    return clip


class MultiScaleCrop:
    """TSN multi-scale crop (augmentation v1): a crop whose sides are chosen from
    `scales` x the shorter side (aspect distortion at most one scale step), placed at one of
    13 fixed positions, then resized to input_size x input_size."""

    def __init__(self, input_size: int, scales=(1, .875, .75, .66), max_distort: int = 1):
        self.input_size = input_size
        self.scales = scales
        self.max_distort = max_distort

    def box(self, h: int, w: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        base = min(h, w)
        sizes = [int(base * s) for s in self.scales]
        # A side within 3 pixels of the target is snapped to it, as in TSN.
        sizes = [self.input_size if abs(s - self.input_size) < 3 else s for s in sizes]
        pairs = [(sh, sw) for i, sh in enumerate(sizes) for j, sw in enumerate(sizes)
                 if abs(i - j) <= self.max_distort]
        ch, cw = pairs[rng.integers(len(pairs))]
        hs, ws = (h - ch) // 4, (w - cw) // 4
        positions = [(0, 0), (0, 4 * ws), (4 * hs, 0), (4 * hs, 4 * ws), (2 * hs, 2 * ws),
                     (2 * hs, 0), (2 * hs, 4 * ws), (4 * hs, 2 * ws), (0, 2 * ws),
                     (hs, ws), (hs, 3 * ws), (3 * hs, ws), (3 * hs, 3 * ws)]
        top, left = positions[rng.integers(len(positions))]
        return top, left, ch, cw

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        top, left, ch, cw = self.box(*clip.shape[-2:], rng)
        return resize(crop(clip, top, left, ch, cw), (self.input_size, self.input_size))


class ScaleRandomCrop:
    """Augmentation v2: the shorter side resized to a random size in `scale_range`
    (inclusive), then a random input_size x input_size crop. Crops first: only the window that
    is kept is resized."""

    def __init__(self, input_size: int, scale_range: tuple[int, int]):
        self.input_size = input_size
        self.scale_range = scale_range

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        h, w = clip.shape[-2:]
        shorter = int(rng.integers(self.scale_range[0], self.scale_range[1] + 1))
        shorter = max(shorter, self.input_size)
        ratio = shorter / min(h, w)
        nh, nw = max(self.input_size, round(h * ratio)), max(self.input_size, round(w * ratio))
        top = int(rng.integers(0, nh - self.input_size + 1))
        left = int(rng.integers(0, nw - self.input_size + 1))
        # The window of the original frame that maps onto the crop after scaling.
        t0, l0 = int(top / ratio), int(left / ratio)
        size = max(1, int(round(self.input_size / ratio)))
        win = crop(clip, t0, l0, min(size, h - t0), min(size, w - l0))
        return resize(win, (self.input_size, self.input_size))


class TrainTransform:
    """The training augmentation: v1 (multi-scale crop) or v2 (scale jitter), then a random
    horizontal flip where the dataset allows it."""

    def __init__(self, input_size: int, version: str = 'v1', scale_range=None,
                 allow_flip: bool = True, flow: bool = False):
        if version == 'v1':
            self.spatial = MultiScaleCrop(input_size)
        elif version == 'v2':
            if scale_range is None:
                scale_range = default_scale_range(input_size)
            self.spatial = ScaleRandomCrop(input_size, tuple(scale_range))
        else:
            raise ValueError(f'unknown augmentor version {version!r}')
        self.allow_flip, self.flow = allow_flip, flow

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        clip = self.spatial(clip, rng)
        if self.allow_flip and rng.random() < 0.5:
            clip = flip(clip, self.flow)
        return clip


def default_scale_range(input_size: int) -> list[int]:
    """[256, 320] for 224 inputs, scaled in proportion for other sizes."""
    return [int(round(input_size * 256 / 224)), int(round(input_size * 320 / 224))]


def eval_scale_size(input_size: int, disable_scaleup: bool = False) -> int:
    """Shorter side before evaluation crops, as the original: int(input_size / 0.875 + 0.5)
    (224 -> 256, 112 -> 128, 299 -> 342), or input_size itself with --disable_scaleup."""
    return input_size if disable_scaleup else int(input_size / 0.875 + 0.5)


def crop_boxes(h: int, w: int, input_size: int, num_crops: int) -> list[tuple[int, int, int, int]]:
    """Evaluation crop windows (top, left, h, w), all input_size square, on a frame already
    resized for evaluation; the original's positions and order (GroupCenterCrop,
    GroupOverSample), with steps hs, ws = (h - input_size) // 4, (w - input_size) // 4.

    1: centre, rounded as torchvision's CenterCrop: round((h - input_size) / 2) (half to even).
    3: along the longer side (width when the frame is square) at 0, 4 steps and 2 steps
    (left, right, centre / top, bottom, centre), centred across it.
    5 (and 10): top-left, top-right, bottom-left, bottom-right, centre at 0, 4 and 2 steps.
    """
    s = input_size
    if num_crops == 1:
        return [(int(round((h - s) / 2.0)), int(round((w - s) / 2.0)), s, s)]
    hs, ws = (h - s) // 4, (w - s) // 4
    if num_crops == 3:
        if w < h:
            return [(top, 2 * ws, s, s) for top in (0, 4 * hs, 2 * hs)]
        return [(2 * hs, left, s, s) for left in (0, 4 * ws, 2 * ws)]
    if num_crops in (5, 10):
        return [(top, left, s, s) for top, left in
                ((0, 0), (0, 4 * ws), (4 * hs, 0), (4 * hs, 4 * ws), (2 * hs, 2 * ws))]
    raise ValueError(f'num_crops must be 1, 3, 5 or 10, got {num_crops}')


class EvalTransform:
    """Evaluation views of one clip: resize the shorter side, then `num_crops` crops.
    Returns (num_crops, T, C, input_size, input_size). 10 crops are the 5 crops each followed
    by its flip, in the original's order."""

    def __init__(self, input_size: int, scale_size: int, num_crops: int = 1, flow: bool = False):
        self.input_size, self.scale_size, self.num_crops = input_size, scale_size, num_crops
        self.flow = flow

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        clip = resize_shorter(clip, self.scale_size)
        h, w = clip.shape[-2:]
        if min(h, w) < self.input_size:
            raise ValueError(f'evaluation scale {self.scale_size} is smaller than input '
                             f'size {self.input_size}')
        views = []
        for box in crop_boxes(h, w, self.input_size, self.num_crops):
            view = crop(clip, *box)
            views.append(view)
            if self.num_crops == 10:
                views.append(flip(view, self.flow))
        return torch.stack([v.contiguous() for v in views])


def normalize(batch: torch.Tensor, mean, std, channels_last: bool = False) -> torch.Tensor:
    """uint8 (..., C, T, H, W) on any device -> float, scaled to [0, 1] and normalised;
    `channels_last` gives a 5-D batch the channels_last_3d layout in the same pass.

    One conversion and two in-place passes, (x * 1/(255 std)) - mean/std, instead of
    dividing and subtracting into new tensors; equal to float32 round-off.
    """
    c = batch.shape[-4]
    shape = (c, 1, 1, 1)
    mean = torch.as_tensor(mean, dtype=torch.float64).view(shape)
    std = torch.as_tensor(std, dtype=torch.float64).view(shape)
    scale = (1.0 / (255.0 * std)).to(batch.device, torch.float32)
    shift = (mean / std).to(batch.device, torch.float32)
    layout = torch.channels_last_3d if channels_last and batch.dim() == 5 else torch.preserve_format
    return batch.to(torch.float32, memory_format=layout).mul_(scale).sub_(shift)
