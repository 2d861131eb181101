"""The baseline of tools/benchmark.py data: the original study's data pipeline
(IBM/action-recognition-pytorch), step for step, to measure this toolkit's loader against.

Each step stands for lines of the original (its utils/ folder):

    load a frame       video_dataset.py VideoDataSet._load_image: Image.open, .copy(), .close()
                       per frame, in __getitem__'s loop over the sampled frames (no reuse of a
                       frame that two clips share)
    train crop         video_transforms.py GroupMultiScaleCrop.__call__: crop every frame with
                       PIL, then resize every crop to input_size x input_size (BILINEAR)
    flip               GroupRandomHorizontalFlip: transpose(FLIP_LEFT_RIGHT) per frame
    eval scale         GroupScale = torchvision Resize(shorter side), PIL BILINEAR, longer side
                       int(size * long / short)
    eval crops         GroupCenterCrop (1 crop: torchvision CenterCrop's rounding) or
                       GroupOverSample (3/5/10 crops; 10 = each crop then its flip, copied)
    stack              Stack: np.stack of the PIL images (T, H, W, 3) for 3D models
                       (threed_data), np.concatenate along channels (H, W, 3T) for 2D models
    to tensor          ToTorchFormatTensor: from_numpy, permute, .contiguous(), .float().div(255)
    normalise          GroupNormalize: sub_/div_ by (3, 1, 1, 1) tensors (3D), or a Python loop
                       over the 3T channels (2D)
    loader             utils.py build_dataflow: DataLoader(shuffle=is_train,
                       num_workers=min(workers, cpu_count), pin_memory=True), (clip, label)
                       tuples, default collate

All of it runs in the loader's workers, as in the original: the batch it yields is float32 and
normalised. What the baseline does not copy is where the randomness comes from: it takes the
frame indices, crop box and flip of this toolkit's dataset (the original draws them from the
global `random` / `np.random`), so that item i of both is the same clip and the two can be
compared pixel for pixel (`to_our_layout`); drawing them costs microseconds either way.
"""
import os

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from utils.storage import FolderStorage
from utils.transforms import IMAGENET_MEAN, IMAGENET_STD, MultiScaleCrop, crop_boxes


def load_frame(path: str) -> Image.Image:
    """VideoDataSet._load_image: open, copy (which decodes), close."""
    tmp = Image.open(path)
    img = tmp.copy()
    tmp.close()
    return img


def _scale(img: Image.Image, size: int) -> Image.Image:
    """GroupScale (torchvision Resize with an int on a PIL image): shorter side -> size."""
    w, h = img.size
    if (w <= h and w == size) or (h <= w and h == size):
        return img
    if w < h:
        return img.resize((size, int(size * h / w)), Image.BILINEAR)
    return img.resize((int(size * w / h), size), Image.BILINEAR)


def _to_tensor(images: list, threed: bool, mean, std) -> torch.Tensor:
    """Stack + ToTorchFormatTensor + GroupNormalize: (3, N, H, W) for 3D models, (3N, H, W)
    for 2D models, float32, normalised."""
    if threed:
        tensor = torch.from_numpy(np.stack(images, axis=0)).permute(3, 0, 1, 2).contiguous()
        tensor = tensor.float().div(255)
        return tensor.sub_(torch.tensor(mean).view(3, 1, 1, 1)).div_(
            torch.tensor(std).view(3, 1, 1, 1))
    tensor = torch.from_numpy(np.concatenate(images, axis=2)).permute(2, 0, 1).contiguous()
    tensor = tensor.float().div(255)
    reps = tensor.shape[0] // len(mean)
    for t, m, s in zip(tensor, list(mean) * reps, list(std) * reps):
        t.sub_(m).div_(s)
    return tensor


def original_train_clip(paths, box, input_size: int, do_flip, threed: bool = True,
                        mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """The original's training clip of the frames `paths`: load every frame, crop every frame
    to `box` = (top, left, h, w), resize every crop, flip if `do_flip`, stack, to float,
    normalise. `box` may be a function of the frames' (h, w) and `do_flip` a function of
    nothing, drawn after loading, as the original draws them from the loaded images."""
    images = [load_frame(p) for p in paths]
    w, h = images[0].size
    top, left, ch, cw = box(h, w) if callable(box) else box
    images = [img.crop((left, top, left + cw, top + ch)) for img in images]
    images = [img.resize((input_size, input_size), Image.BILINEAR) for img in images]
    if do_flip() if callable(do_flip) else do_flip:
        images = [img.transpose(Image.FLIP_LEFT_RIGHT) for img in images]
    return _to_tensor(images, threed, mean, std)


def original_eval_views(paths, scale_size: int, input_size: int, num_crops: int,
                        threed: bool = True, mean=IMAGENET_MEAN, std=IMAGENET_STD
                        ) -> torch.Tensor:
    """The original's evaluation tensor of the frames of all clips of a video (`paths`, clip
    after clip): scale, crop (crop after crop, each over all frames), stack, to float,
    normalise. (3, V*N, h, w) for 3D models, (3*V*N, h, w) for 2D models; view order: crop
    major (test.py's eval_a_batch chunks it that way), clips within a crop."""
    images = [_scale(load_frame(p), scale_size) for p in paths]
    w, h = images[0].size
    if num_crops == 1:                                     # GroupCenterCrop
        top, left = int(round((h - input_size) / 2.0)), int(round((w - input_size) / 2.0))
        views = [img.crop((left, top, left + input_size, top + input_size)) for img in images]
    else:                                                  # GroupOverSample
        views = []
        for top, left, ch, cw in crop_boxes(h, w, input_size, min(num_crops, 5)):
            normal = [img.crop((left, top, left + cw, top + ch)) for img in images]
            views += normal
            if num_crops == 10:
                views += [c.copy().transpose(Image.FLIP_LEFT_RIGHT) for c in normal]
    return _to_tensor(views, threed, mean, std)


def to_our_layout(clip: torch.Tensor, frames: int, views: tuple[int, int] | None = None,
                  threed: bool = True) -> torch.Tensor:
    """A baseline item in this toolkit's layout: (C, T, H, W) for a training clip (`views`
    None), (clips * crops, C, T, h, w) for the evaluation views (clips, crops) of a video
    (clip major, crops within a clip)."""
    if not threed:                                         # (3N, H, W): frame after frame
        clip = clip.view(-1, 3, *clip.shape[-2:]).permute(1, 0, 2, 3)
    if views is None:
        return clip
    clips, crops = views
    out = clip.reshape(3, crops, clips, frames, *clip.shape[-2:])
    return out.permute(2, 1, 0, 3, 4, 5).reshape(clips * crops, 3, frames, *clip.shape[-2:])


def draw_frames(ours, index: int) -> tuple:
    """(record, frame offsets, generator) of item `index` of our dataset, drawn as the dataset
    draws them: training from the item's (seed, epoch, index) generator, which is returned
    positioned after the draw (the crop box and flip come next); evaluation all clips' offsets
    (clips, T) and None."""
    record = ours.records[index]
    if not ours.train:
        return record, ours._indices(record, None), None
    rng = np.random.default_rng([ours.seed, ours.epoch, index])
    return record, ours._indices(record, rng)[0], rng


def video_folder(path: str) -> str:
    """The frame folder of a list path (the benchmark's mp4 copies are named <folder>.mp4)."""
    return os.path.splitext(path)[0] if path.endswith('.mp4') else path


def frame_files(frames: FolderStorage, record, offsets) -> list[str]:
    """The JPEG files of these 0-based frame offsets of a video."""
    return [frames.frame_path(video_folder(record.path), record.start + int(n))
            for n in np.asarray(offsets).reshape(-1)]


class BaselineDataset(Dataset):
    """The original's VideoDataSet + augmentor over the videos of one of our datasets.

    Item i is (float32 normalised clip, label), the same clip as our item i (same frames, crop
    box and flip; see the module docstring), in the original's layout for a 3D (`threed`) or
    2D model. Always reads JPEG frame folders: our dataset's own, or `frames` when ours reads
    an LMDB database or video files.
    """

    def __init__(self, ours, mean=IMAGENET_MEAN, std=IMAGENET_STD, frames: FolderStorage = None,
                 threed: bool = True):
        self.frames = frames or ours.storage
        if not isinstance(self.frames, FolderStorage):
            raise ValueError('the baseline reads frame folders: pass frames=FolderStorage')
        self.ours, self.mean, self.std, self.threed = ours, mean, std, threed
        if ours.train and not isinstance(getattr(ours.transform, 'spatial', None),
                                         MultiScaleCrop):
            raise ValueError('the baseline implements augmentation v1 (multi-scale crop)')

    def __len__(self) -> int:
        return len(self.ours.records)

    def __getitem__(self, index: int):
        record, idx, rng = draw_frames(self.ours, index)
        paths = frame_files(self.frames, record, idx)
        t = self.ours.transform
        if rng is None:
            clip = original_eval_views(paths, t.scale_size, t.input_size, t.num_crops,
                                       self.threed, self.mean, self.std)
            return clip, record.label
        box = lambda h, w: t.spatial.box(h, w, rng)              # noqa: E731
        flip = lambda: t.allow_flip and rng.random() < 0.5        # noqa: E731
        clip = original_train_clip(paths, box, t.spatial.input_size, flip, self.threed,
                                   self.mean, self.std)
        return clip, record.label


def original_loader(dataset: BaselineDataset, train: bool, batch_size: int, workers: int
                    ) -> DataLoader:
    """build_dataflow: shuffled for training, workers capped at the CPU count, pinned memory
    (which only means something with a GPU; without one the original's loader pins nothing
    either, so it is asked for only when CUDA is there, to spare a warning)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=train,
                      num_workers=min(workers, os.cpu_count() or 1),
                      pin_memory=torch.cuda.is_available())
