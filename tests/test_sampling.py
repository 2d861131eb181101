import numpy as np
import pytest

from utils.sampling import (clip_offsets, dense_indices, frames_per_clip, sample_indices,
                            uniform_indices)


def test_uniform_train_in_range_and_one_per_segment():
    rng = np.random.default_rng(0)
    for n in (3, 8, 50, 301):
        for _ in range(20):
            idx = uniform_indices(n, 8, 1, train=True, rng=rng)
            assert idx.shape == (1, 8)
            assert idx.min() >= 0 and idx.max() < n
            assert np.all(np.diff(idx[0]) >= 0)
            # one frame inside each of the 8 segments [floor(i*n/8), (i+1)*n/8)
            seg = n / 8
            for i, k in enumerate(idx[0]):
                assert np.floor(i * seg) <= k < max((i + 1) * seg, np.floor(i * seg) + 1)


def test_uniform_train_shared_offset_vs_random_sampling():
    rng = np.random.default_rng(1)
    idx = uniform_indices(80, 8, 1, True, rng)[0]
    assert len(set(np.diff(idx))) == 1          # evenly spaced: one offset shared
    spacings = set()
    for _ in range(10):
        spacings |= set(np.diff(uniform_indices(80, 8, 1, True, rng, random_sampling=True)[0]))
    assert len(spacings) > 1


# Evaluation indices (0-based) printed by the original code's VideoDataSet._get_val_indices
# (IBM/action-recognition-pytorch utils/video_dataset.py, fixed_offset=True, minus its +1)
# for (frames, groups, clips); dense: (frames, groups, clips, stride).
ORIGINAL_UNIFORM = {
    (80, 8, 1): [[5, 15, 25, 35, 45, 55, 65, 75]],
    (80, 8, 2): [[5, 15, 25, 35, 45, 55, 65, 75], [6, 16, 26, 36, 46, 56, 66, 76]],
    (80, 8, 3): [[4, 14, 24, 34, 44, 54, 64, 74], [5, 15, 25, 35, 45, 55, 65, 75],
                 [6, 16, 26, 36, 46, 56, 66, 76]],
    (80, 8, 4): [[4, 14, 24, 34, 44, 54, 64, 74], [5, 15, 25, 35, 45, 55, 65, 75],
                 [6, 16, 26, 36, 46, 56, 66, 76], [7, 17, 27, 37, 47, 57, 67, 77]],
    (30, 8, 5): [[0, 3, 7, 11, 15, 18, 22, 26], [0, 4, 8, 12, 15, 19, 23, 27],
                 [1, 5, 9, 13, 16, 20, 24, 28], [2, 6, 10, 14, 17, 21, 25, 29],
                 [3, 7, 11, 14, 18, 22, 26, 29]],
    # offsets clamped to half a segment: the first 4 and the last 6 clips coincide
    (10, 8, 10): [[0, 1, 2, 3, 5, 6, 7, 8]] * 4 + [[0, 1, 3, 4, 5, 6, 8, 9]]
                 + [[1, 2, 3, 4, 6, 7, 8, 9]] * 5,
    (17, 16, 3): [list(range(16)), [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16],
                  list(range(1, 17))],
    # no more frames than segments: sorted draws with replacement, seeded by the clip number
    (3, 8, 1): [[0, 0, 0, 1, 1, 1, 2, 2]],
    (8, 8, 2): [[0, 3, 3, 3, 4, 5, 7, 7], [0, 1, 3, 3, 4, 5, 5, 7]],
    (5, 8, 3): [[0, 1, 2, 3, 3, 3, 3, 4], [0, 0, 0, 1, 1, 3, 3, 4], [0, 0, 0, 1, 2, 2, 3, 3]],
}
ORIGINAL_DENSE = {
    (100, 8, 1, 4): [[0, 4, 8, 12, 16, 20, 24, 28]],           # one clip starts at frame 0
    (100, 8, 3, 4): [[0, 4, 8, 12, 16, 20, 24, 28], [34, 38, 42, 46, 50, 54, 58, 62],
                     [68, 72, 76, 80, 84, 88, 92, 96]],
    (100, 8, 10, 8): [[s + 8 * i for i in range(8)] for s in range(0, 40, 4)],
    (20, 8, 2, 2): [[0, 2, 4, 6, 8, 10, 12, 14], [4, 6, 8, 10, 12, 14, 16, 18]],
    (5, 4, 1, 2): [[0, 2, 4, 1]],                                # loops over a short video
    (64, 32, 2, 2): [list(range(0, 64, 2))] * 2,
}


@pytest.mark.parametrize('key', list(ORIGINAL_UNIFORM), ids=str)
def test_uniform_eval_is_the_original_rule(key):
    n, groups, clips = key
    idx = sample_indices(n, groups, 1, dense=False, train=False, num_clips=clips)
    assert idx.tolist() == ORIGINAL_UNIFORM[key]
    assert np.array_equal(idx, sample_indices(n, groups, 1, False, False, num_clips=clips))


@pytest.mark.parametrize('key', list(ORIGINAL_DENSE), ids=str)
def test_dense_eval_is_the_original_rule(key):
    n, groups, clips, stride = key
    idx = sample_indices(n, groups, stride, dense=True, train=False, num_clips=clips)
    assert idx.tolist() == ORIGINAL_DENSE[key]


def test_clip_offsets():
    assert [clip_offsets(n).tolist() for n in (1, 2, 3, 4, 5)] == [
        [0], [0, 1], [-1, 0, 1], [-1, 0, 1, 2], [-2, -1, 0, 1, 2]]


def test_uniform_eval_frames_per_group_takes_one_frame_of_each_sub_segment():
    # groups x frames_per_group segments; the original took `groups` frames only (see README)
    idx = uniform_indices(80, 4, 2, train=False)
    assert idx.shape == (1, 8)
    assert list(idx[0]) == [5, 15, 25, 35, 45, 55, 65, 75]
    rng = np.random.default_rng(0)
    assert uniform_indices(80, 4, 2, True, rng).shape == (1, 8)
    assert frames_per_clip(4, 2, dense=False) == 8 and frames_per_clip(4, 2, dense=True) == 4


def test_dense_train_loops_over_a_short_video():
    rng = np.random.default_rng(0)
    assert list(dense_indices(5, 4, 2, train=True, rng=rng)[0]) == [0, 2, 4, 1]


def test_dense_train_in_range():
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = dense_indices(100, 8, 4, train=True, rng=rng)[0]
        assert np.all(np.diff(idx) == 4) and idx.min() >= 0 and idx.max() < 100


def test_eval_does_not_touch_global_random_state():
    state = np.random.get_state()
    sample_indices(50, 8, 1, dense=False, train=False, num_clips=4)
    sample_indices(5, 8, 1, dense=False, train=False, num_clips=4)      # the seeded draws
    sample_indices(50, 8, 2, dense=True, train=False, num_clips=4)
    assert np.array_equal(state[1], np.random.get_state()[1])


def test_training_needs_explicit_rng():
    with pytest.raises(ValueError):
        sample_indices(50, 8, 1, dense=False, train=True)
