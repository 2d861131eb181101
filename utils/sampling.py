"""Which frames of a video make a clip: every sampling rule of the toolkit lives here.

Indices are 0-based offsets into the video's frames (the dataset adds the list's start frame).
Training draws from the `rng` it is given (a numpy Generator), never from global state, and
evaluation uses no randomness at all, so it is the same in every call and every process.
Videos shorter than a clip repeat frames deterministically (uniform: neighbouring segments
share a frame; dense: the clip loops over the video).
"""
import numpy as np


def frames_per_clip(groups: int, frames_per_group: int, dense: bool) -> int:
    """Number of frames T in one clip: uniform sampling keeps `frames_per_group` per segment."""
    return groups if dense else groups * frames_per_group


def uniform_indices(num_frames: int, groups: int, frames_per_group: int = 1, train: bool = True,
                    rng: np.random.Generator | None = None, random_sampling: bool = False,
                    num_clips: int = 1) -> np.ndarray:
    """TSN segment sampling: split the video into `groups` equal segments, take
    `frames_per_group` frames from each.

    Training: a random position within the segment, the same for every segment (keeps the
    frames evenly spaced) or, with `random_sampling`, an independent one per segment.
    Evaluation: `num_clips` clips at evenly interleaved, centred positions of each segment.
    Returns an int array (num_clips, groups * frames_per_group); one clip in training.
    """
    seg = num_frames / groups
    starts = np.arange(groups)[:, None] * seg                     # (groups, 1)
    if train:
        n_offsets = groups if random_sampling else 1
        offsets = rng.random((n_offsets, frames_per_group))
        offsets = np.sort(offsets, axis=1) * seg                  # (1 or groups, fpg)
        idx = (starts + offsets).reshape(1, -1)
    else:
        # Clip c, frame j of a segment sits at sub-position (j * num_clips + c + 0.5) / (fpg * clips).
        sub = (np.arange(frames_per_group)[None, :] * num_clips
               + np.arange(num_clips)[:, None] + 0.5) / (frames_per_group * num_clips)
        idx = (starts[None, :, :] + sub[:, None, :] * seg).reshape(num_clips, -1)
    return np.minimum(np.floor(idx).astype(np.int64), num_frames - 1)


def dense_indices(num_frames: int, groups: int, stride: int, train: bool = True,
                  rng: np.random.Generator | None = None, num_clips: int = 1) -> np.ndarray:
    """I3D-style dense sampling: `groups` frames, `stride` apart, from one start.

    Training: a random start. Evaluation: `num_clips` starts evenly spread over the video
    (the centre when num_clips is 1). Returns an int array (num_clips, groups).
    """
    span = (groups - 1) * stride + 1
    room = max(0, num_frames - span)
    if train:
        starts = np.array([rng.integers(0, room + 1)])
    else:
        starts = np.floor((np.arange(num_clips) + 0.5) * room / num_clips).astype(np.int64)
        if room == 0:
            starts = np.zeros(num_clips, dtype=np.int64)
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
