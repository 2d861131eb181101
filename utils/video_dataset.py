"""List files, video records and the video Dataset.

A list file has one video a line: `relative/path start_frame end_frame [label]` (1-based,
inclusive frame numbers; test lists may have no label; utils/list_file.py defines the
format). The dataset turns a line into a clip: record -> frame indices (utils.sampling) ->
frames (utils.storage) -> clip transform (utils.transforms) -> uint8 tensor (C, T, H, W), or
(V, C, T, H, W) for V evaluation views.
"""
import logging
import os

import numpy as np
import torch
from torch.utils.data import Dataset

from utils.config import DataConfig, EvalConfig
from utils.frame_files import describe, frame_span, guess_template
from utils.list_file import (ListFileError, VideoRecord, labels_required,  # noqa: F401
                             read_exclusions, read_list)
from utils.sampling import frames_per_clip, sample_indices
from utils.storage import (FrameReadError, Storage, check_found, frame_names, missing_hint,
                           open_storage)
from utils.transforms import EvalTransform, TrainTransform, eval_scale_size

log = logging.getLogger(__name__)


def parse_list_file(list_file: str, sep: str = ' ', num_classes: int | None = None,
                    labelled: bool | None = None, root: str | None = None) -> list[VideoRecord]:
    """The videos of a list file (format and errors: utils/list_file.py); ListFileError
    naming the file and line of the first bad line (with `root`: or of a path leaving it)."""
    return read_list(list_file, sep, num_classes, labelled, root)


def read_exclusion_list(path: str, sep: str = ' ') -> set[str]:
    """Video paths to leave out (tools/check_dataset.py's bad-entries file, a list file, or one
    path a line; utils/list_file.read_exclusions); lines starting with # are comments."""
    return set().union(*read_exclusions(path, sep))


def exclusions_for(list_file: str, exclude_lists, list_names) -> list[str]:
    """The files of --exclude_list that apply to `list_file`: one named after a list of the
    dataset as tools/check_dataset.py names its bad entries (`<list stem>.bad.txt`, e.g.
    train.bad.txt for `list_names` train.txt val.txt test.txt) applies to that list alone; any
    other file applies to every list."""
    if isinstance(exclude_lists, str):
        exclude_lists = [exclude_lists]
    stems = {os.path.splitext(name)[0] for name in list_names}
    this = os.path.splitext(os.path.basename(list_file))[0]
    out = []
    for path in exclude_lists or ():
        base = os.path.basename(path)
        for_list = base[:-len('.bad.txt')] if base.endswith('.bad.txt') else None
        if for_list not in stems or for_list == this:
            out.append(path)
    return out


_EMPTY_WARNED: set = set()      # exclusion files said to be empty (once a process)


def leave_out(records: list[VideoRecord], list_file: str, files: list[str],
              sep: str) -> list[VideoRecord]:
    """The records that no exclusion file names, with one warning a file: how many videos it
    left out of the list (an empty file: said once, whatever the splits)."""
    left = records
    paths = {r.path for r in records}
    for path in files:
        entries = read_exclusions(path, sep)
        if not entries:
            if path not in _EMPTY_WARNED:
                _EMPTY_WARNED.add(path)
                log.warning('--exclude_list %s lists no video: nothing left out', path)
            continue
        excluded = set().union(*entries)
        kept = [r for r in left if r.path not in excluded]
        log.warning('%s: %d videos left out by --exclude_list %s (%d of its %d entries are not '
                    'in this list)', list_file, len(left) - len(kept), path,
                    sum(1 for e in entries if not e & paths), len(entries))
        left = kept
    return left


class VideoDataset(Dataset):
    """Clips from the videos of a list file.

    Training returns one augmented clip per video with randomness drawn from
    (seed, epoch, index), so a clip does not depend on worker count or process, and resuming
    an epoch reproduces it; call `set_epoch` before each epoch. Evaluation returns
    `num_clips x num_crops` views with no randomness. A video that cannot be read is, in
    training, replaced by the next readable one; in evaluation returned as zeros; both are
    flagged by `bad` = 1 in the sample so the engine counts them.

    With `flow_length` L > 0 the videos are optical flow: each sampled frame n stacks the grey
    images `flow_tmpl.format(m, 'x')` and `(m, 'y')` of frames m = n .. n+L-1 (the last frame
    repeats near the end) into 2L channels x0 y0 x1 y1 ...
    """

    def __init__(self, records: list[VideoRecord], storage, groups: int, frames_per_group: int,
                 dense_sampling: bool, train: bool, transform, random_sampling: bool = False,
                 num_clips: int = 1, seed: int = 0, max_retries: int = 10, flow_length: int = 0,
                 flow_tmpl: str = '{:05d}_{}.jpg'):
        self.records = records
        self.storage = storage
        self.groups, self.frames_per_group = groups, frames_per_group
        self.dense, self.train = dense_sampling, train
        self.random_sampling, self.num_clips = random_sampling, num_clips
        self.transform = transform
        self.seed, self.epoch = seed, 0
        self.max_retries = max_retries
        self.flow_length, self.flow_tmpl = flow_length, flow_tmpl

    @property
    def channels(self) -> int:
        return 2 * self.flow_length if self.flow_length else 3

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self, record: VideoRecord, rng) -> np.ndarray:
        # A flow stack of L frames starts at most L-1 frames before the end.
        positions = max(1, record.num_frames - max(self.flow_length - 1, 0))
        return sample_indices(positions, self.groups, self.frames_per_group, self.dense,
                              self.train, rng, self.random_sampling, self.num_clips)

    def _read(self, record: VideoRecord, idx: np.ndarray) -> torch.Tensor:
        """Frames at 0-based offsets `idx` as uint8 (T, C, H, W)."""
        if not self.flow_length:
            return torch.from_numpy(self.storage.read(record.path, record.start + idx)
                                    ).permute(0, 3, 1, 2)
        last = record.num_frames - 1
        names = [name for i in idx for k in range(self.flow_length)
                 for name in frame_names(self.flow_tmpl, record.start + min(int(i) + k, last))]
        flow = self.storage.read_files(record.path, names, gray=True)   # (T*2L, H, W, 1)
        return torch.from_numpy(flow).view(len(idx), self.channels, *flow.shape[1:3])

    def _train_clip(self, record: VideoRecord, rng) -> torch.Tensor:
        idx = self._indices(record, rng)[0]
        clip = self.transform(self._read(record, idx), rng)             # (T, C, H, W)
        return clip.permute(1, 0, 2, 3).contiguous()                      # (C, T, H, W)

    def _eval_views(self, record: VideoRecord) -> torch.Tensor:
        idx = self._indices(record, None)                                  # (clips, T)
        # Decode and resize each distinct frame once for all clips and crops.
        unique, inverse = np.unique(idx, return_inverse=True)
        frames = self._read(record, unique)
        views = [self.transform(frames[torch.from_numpy(inv)])
                 for inv in inverse.reshape(idx.shape)]                    # (crops, T, C, h, w)
        views = torch.cat(views)                                           # (V, T, C, h, w)
        return views.permute(0, 2, 1, 3, 4).contiguous()                   # (V, C, T, h, w)

    def __getitem__(self, index: int) -> dict:
        if not self.train:
            record = self.records[index]
            try:
                return dict(clip=self._eval_views(record), label=record.label, index=index, bad=0)
            except FrameReadError as exc:
                log.warning('skipping unreadable video in evaluation: %s', exc)
                return dict(clip=self._zeros_like_views(), label=record.label, index=index, bad=1)
        for attempt in range(self.max_retries + 1):
            i = (index + attempt) % len(self.records)
            record = self.records[i]
            rng = np.random.default_rng([self.seed, self.epoch, i])
            try:
                clip = self._train_clip(record, rng)
                return dict(clip=clip, label=record.label, index=i, bad=int(attempt > 0))
            except FrameReadError as exc:
                log.warning('replacing unreadable training video: %s', exc)
                last = exc
        raise FrameReadError(f'{self.max_retries + 1} videos in a row from index {index} could '
                             f'not be read (the last: {last}); is the data directory right?')

    def _zeros_like_views(self) -> torch.Tensor:
        t = self.transform
        views = self.num_clips * t.num_crops
        frames = frames_per_clip(self.groups, self.frames_per_group, self.dense)
        return torch.zeros(views, self.channels, frames, t.input_size, t.input_size,
                           dtype=torch.uint8)


def build_dataset(data: DataConfig, split: str, train: bool, views: EvalConfig | None = None,
                  seed: int = 0) -> VideoDataset:
    """The dataset of `split` ('train', 'val' or 'test') as the data options describe it;
    evaluation datasets give the `views` layout (clips x crops; one centre crop of one clip if
    None)."""
    cfg = data.dataset_config
    list_file = os.path.join(data.datadir, cfg[f'{split}_list'])
    records = parse_list_file(list_file, cfg['sep'], data.num_classes, labels_required(split),
                              None if data.allow_outside_root else f'--datadir {data.datadir}')
    if data.exclude_list:
        lists = [cfg[f'{s}_list'] for s in ('train', 'val', 'test')]
        records = leave_out(records, list_file, exclusions_for(list_file, data.exclude_list,
                                                               lists), cfg['sep'])
    # As the original, the test split keeps its short videos: every one gets a prediction.
    kept = records if split == 'test' else [r for r in records
                                            if r.num_frames >= cfg['min_frames']]
    if len(kept) < len(records):
        log.warning('%s: %d videos shorter than %d frames are skipped',
                    list_file, len(records) - len(kept), cfg['min_frames'])
    if not kept:
        raise ListFileError(f'{list_file}: no video left (every one is excluded or shorter '
                            f'than {cfg["min_frames"]} frames); check --exclude_list and '
                            f'--dataset')
    flow = data.modality == 'flow'
    views = views or EvalConfig()
    if train:
        transform = TrainTransform(data.input_size, data.augmentor_ver, data.scale_range,
                                   allow_flip=cfg['flip'], flow=flow)
    else:
        transform = EvalTransform(data.input_size,
                                  eval_scale_size(data.input_size, data.disable_scaleup),
                                  views.num_crops, flow=flow)
    storage = open_checked_storage(data, split, kept)
    if data.storage == 'folders':
        check_listed_frames(data.datadir, list_file, kept,
                            cfg['flow_tmpl'] if flow else cfg['image_tmpl'], flow)
    return VideoDataset(kept, storage, data.groups, data.frames_per_group, data.dense_sampling,
                        train, transform, data.random_sampling, views.num_clips, seed,
                        flow_length=data.flow_length if flow else 0, flow_tmpl=cfg['flow_tmpl'])


def open_checked_storage(data: DataConfig, split: str, records: list[VideoRecord]) -> Storage:
    """The storage --storage names for a split, checked to hold the list's videos (an error
    naming it if it holds none, a warning if some are missing) before training starts."""
    storage = open_storage(data.storage, data.datadir, split, data.dataset_config['image_tmpl'],
                           data.video_short_side, data.max_pixels)
    check_found(storage, split, [r.path for r in records],
                missing_hint(data.storage, data.datadir, split))
    return storage


def check_listed_frames(root: str, list_file: str, records: list[VideoRecord], tmpl: str,
                        flow: bool = False) -> None:
    """Frame folders: the first and last frame of each line are files (two stats a video,
    before training). When no line's frames are there (frames named otherwise than `tmpl`, or
    numbered otherwise than the list) it is an error, and when some lines' are not a warning
    (a clip that needs a missing frame counts as unreadable), each naming the first such line
    (file:line), the template and what its folder holds. Folders that are not there at all are
    check_found's to report."""
    bad, absent = [], 0
    for r in records:
        folder = os.path.join(root, r.path)
        names = frame_names(tmpl, r.start) + frame_names(tmpl, r.end)
        if not all(os.path.isfile(os.path.join(folder, n)) for n in names):
            if os.path.isdir(folder):
                bad.append(r)
            else:
                absent += 1
    if not bad:
        return
    r = bad[0]
    folder = os.path.join(root, r.path)
    names = os.listdir(folder)
    guessed = None if flow else guess_template(names)
    span = frame_span(names, tmpl)
    if guessed and guessed != tmpl and frame_span(names, guessed):
        todo = f'the frames are named {guessed!r}: give --image_tmpl {guessed!r}'
    elif span:
        todo = (f'the folder has frames {span[0]}..{span[1]}: write the list again with '
                f'tools/annotations.py (it reads the numbering from the folders)')
    else:
        todo = 'check the folder, the list and the frame names'
    where = (f'{list_file}:{r.line}: frames {r.start}..{r.end} of {r.path!r} (named {tmpl!r}) '
             f'are not all in {folder}, which {describe(folder, names)}')
    if len(bad) == len(records) - absent:
        raise ListFileError(f'{where}; {todo} (every line of the list whose folder is there is '
                            f'like this)')
    log.warning('%s: %d of %d videos list frames that are not on disk, e.g. %s; %s '
                '(tools/check_dataset.py lists them all; they count as unreadable)',
                list_file, len(bad), len(records), where, todo)
