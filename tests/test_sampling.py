import numpy as np
import pytest

from utils.sampling import dense_indices, frames_per_clip, sample_indices, uniform_indices


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


def test_uniform_eval_deterministic_centred_multiclip():
    a = uniform_indices(80, 8, 1, train=False, num_clips=1)
    assert np.array_equal(a, uniform_indices(80, 8, 1, train=False, num_clips=1))
    assert list(a[0]) == [5, 15, 25, 35, 45, 55, 65, 75]      # segment centres
    b = uniform_indices(80, 8, 1, train=False, num_clips=2)
    assert b.shape == (2, 8)
    assert list(b[0]) == [2, 12, 22, 32, 42, 52, 62, 72]
    assert list(b[1]) == [7, 17, 27, 37, 47, 57, 67, 77]


def test_uniform_frames_per_group():
    idx = uniform_indices(80, 4, 2, train=False)
    assert idx.shape == (1, 8)
    assert list(idx[0]) == [5, 15, 25, 35, 45, 55, 65, 75]
    rng = np.random.default_rng(0)
    assert uniform_indices(80, 4, 2, True, rng).shape == (1, 8)
    assert frames_per_clip(4, 2, dense=False) == 8 and frames_per_clip(4, 2, dense=True) == 4


def test_short_video_repeats_frames_deterministically():
    idx = uniform_indices(3, 8, 1, train=False)
    assert list(idx[0]) == [0, 0, 0, 1, 1, 2, 2, 2]
    d = dense_indices(5, 4, 2, train=False)
    assert list(d[0]) == [0, 2, 4, 1]         # loops over the video


def test_dense_train_and_eval():
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = dense_indices(100, 8, 4, train=True, rng=rng)[0]
        assert np.all(np.diff(idx) == 4) and idx.min() >= 0 and idx.max() < 100
    ev = dense_indices(100, 8, 4, train=False, num_clips=3)
    assert ev.shape == (3, 8)
    room = 100 - 29
    assert list(ev[:, 0]) == [int((c + 0.5) * room / 3) for c in range(3)]
    assert np.array_equal(ev, dense_indices(100, 8, 4, train=False, num_clips=3))


def test_eval_does_not_touch_global_random_state():
    state = np.random.get_state()
    sample_indices(50, 8, 1, dense=False, train=False, num_clips=4)
    sample_indices(50, 8, 2, dense=True, train=False, num_clips=4)
    assert np.array_equal(state[1], np.random.get_state()[1])


def test_training_needs_explicit_rng():
    with pytest.raises(ValueError):
        sample_indices(50, 8, 1, dense=False, train=True)
