"""Which frames of a video make a clip: every sampling rule of the toolkit lives here.

Indices are 0-based offsets into the video's frames (the dataset adds the list's start frame).
Training draws from the `rng` it is given (a numpy Generator), never from global state.
Evaluation is the original study's rule (IBM/action-recognition-pytorch,
utils/video_dataset.py `_get_val_indices`), so a checkpoint sees the frames it was validated
on there: the same in every call and process (its one random case, uniform sampling of a video
with no more frames than segments, is seeded by the clip number, as there). Dense clips longer
than the video loop over it.
"""
import numpy as np


def frames_per_clip(groups: int, frames_per_group: int, dense: bool) -> int:
    """Number of frames T in one clip: uniform sampling keeps `frames_per_group` per segment."""
    return groups if dense else groups * frames_per_group


def clip_offsets(num_clips: int) -> np.ndarray:
    """Uniform evaluation: each clip's offset in frames from the segment centres, as the
    original: the integers from -num_clips // 2 + 1 to num_clips // 2 (floor division; 1 clip:
    0; 2: 0, 1; 3: -1, 0, 1; 4: -1 .. 2)."""
    return np.arange(-num_clips // 2 + 1, num_clips // 2 + 1)


def uniform_indices(num_frames: int, groups: int, frames_per_group: int = 1, train: bool = True,
                    rng: np.random.Generator | None = None, random_sampling: bool = False,
                    num_clips: int = 1) -> np.ndarray:
    """TSN segment sampling: split the video into `groups` equal segments, take
    `frames_per_group` frames from each.

    Training: a random position within the segment, the same for every segment (keeps the
    frames evenly spaced) or, with `random_sampling`, an independent one per segment.
    Evaluation (the original's rule): S = groups * frames_per_group segments of tick =
    num_frames / S frames; clip c takes frame int(tick/2 + o_c + tick*s) of segment s, o_c
    from `clip_offsets` clamped to [-tick/2, tick/2). A video of no more than S frames gets,
    for clip c, S frames drawn with replacement by numpy's RandomState(c) and sorted.
    Returns an int array (num_clips, groups * frames_per_group); one clip in training.
    """
    if not train:
        return _uniform_eval(num_frames, groups * frames_per_group, num_clips)
    seg = num_frames / groups
    starts = np.arange(groups)[:, None] * seg                     # (groups, 1)
    n_offsets = groups if random_sampling else 1
    offsets = rng.random((n_offsets, frames_per_group))
    offsets = np.sort(offsets, axis=1) * seg                      # (1 or groups, fpg)
    idx = (starts + offsets).reshape(1, -1)
    return np.minimum(np.floor(idx).astype(np.int64), num_frames - 1)


def _uniform_eval(num_frames: int, segments: int, num_clips: int) -> np.ndarray:
    if num_frames <= segments:
        # A private RandomState: the global numpy state stays untouched.
        return np.stack([np.sort(np.random.RandomState(c).choice(num_frames, segments))
                         for c in range(num_clips)]).astype(np.int64)
    tick = num_frames / segments
    off = clip_offsets(num_clips).astype(np.float64)
    off = np.where(off >= tick / 2, tick / 2 - 1e-4, np.where(off < -tick / 2, -tick / 2, off))
    # Same float operations in the same order as the original, then int() (all >= 0).
    pos = tick / 2 + off[:, None] + tick * np.arange(segments)[None, :]
    return np.sort(pos.astype(np.int64), axis=1)


def dense_indices(num_frames: int, groups: int, stride: int, train: bool = True,
                  rng: np.random.Generator | None = None, num_clips: int = 1) -> np.ndarray:
    """I3D-style dense sampling: `groups` frames, `stride` apart, from one start; a clip that
    runs past the end loops over the video.

    Training: a random start. Evaluation (the original's rule): starts
    linspace(0, max(1, 1 + num_frames - stride * groups) - 1, num_clips) truncated to int, so
    one clip starts at frame 0 and several spread to the last start that fits.
    Returns an int array (num_clips, groups).
    """
    if train:
        span = (groups - 1) * stride + 1
        starts = np.array([rng.integers(0, max(0, num_frames - span) + 1)])
    else:
        last = max(1, 1 + num_frames - stride * groups) - 1
        starts = np.linspace(0, last, num=num_clips, dtype=int).astype(np.int64)
    idx = starts[:, None] + np.arange(groups)[None, :] * stride
    return idx % num_frames


def sample_indices(num_frames: int, groups: int, frames_per_group: int, dense: bool,
                   train: bool, rng: np.random.Generator | None = None,
                   random_sampling: bool = False, num_clips: int = 1) -> np.ndarray:
    """Dispatch to dense or uniform sampling; returns (clips, T) 0-based frame offsets."""
    if num_frames < 1:
        raise ValueError('a video needs at least one frame')
    if train and rng is None:
        raise ValueError('training sampling needs an explicit rng')
    if dense:
        return dense_indices(num_frames, groups, frames_per_group, train, rng,
                             1 if train else num_clips)
    return uniform_indices(num_frames, groups, frames_per_group, train, rng, random_sampling,
                           1 if train else num_clips)
