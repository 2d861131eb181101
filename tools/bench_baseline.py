"""The per-frame PIL baseline of tools/benchmark.py data: the straightforward pipeline of
TSN-style loaders, to compare this toolkit's data pipeline with.

Per frame: open the JPEG with PIL, crop and resize it, flip it, convert it to float and
normalise it on the CPU; stack the frames into (C, T, H, W) float32 clips (evaluation: the
(V, C, T, h, w) views). `BaselineDataset` draws the same frames, crop boxes and flips as a
VideoDataset over the same videos, so both give the same clip up to resize round-off.

Kept apart from the benchmark's timing code, so that it can be rewritten on its own.
"""
import os

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from utils.sampling import sample_indices
from utils.storage import FolderStorage
from utils.transforms import IMAGENET_MEAN, IMAGENET_STD, MultiScaleCrop, crop_boxes


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
