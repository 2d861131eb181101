"""utils.clip_grid: the picture of training clips, and the one a training run writes to
TensorBoard (train/augmented_clips) from its first batch."""
import os

import pytest
import torch

from conftest import tiny_synthetic
from utils.clip_grid import clip_grid
from utils.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize


def numbered_clips(b: int, c: int, t: int, h: int, w: int) -> torch.Tensor:
    """uint8 clips whose every pixel of clip i, channel k, frame j is 40 i + 10 j + k."""
    i, k, j = torch.meshgrid(torch.arange(b), torch.arange(c), torch.arange(t), indexing='ij')
    return (40 * i + 10 * j + k).to(torch.uint8)[..., None, None].expand(b, c, t, h, w).clone()


def test_clips_are_rows_frames_are_columns_with_white_separators():
    clips = numbered_clips(5, 3, 3, 4, 6)
    grid = clip_grid(clips)                                  # the first 4 of the 5 clips
    assert grid.dtype == torch.uint8 and grid.shape == (3, 4 * 4 + 3 * 2, 3 * 6 + 2 * 2)
    for i in range(4):
        for j in range(3):
            cell = grid[:, i * 6:i * 6 + 4, j * 8:j * 8 + 6]
            assert torch.equal(cell, clips[i, :, j]), (i, j)
    assert (grid[:, 4:6] == 255).all() and (grid[:, :, 6:8] == 255).all()
    assert clip_grid(clips, max_clips=2, sep=0).shape == (3, 2 * 4, 3 * 6)


def test_normalised_clips_come_back_to_their_uint8_values():
    clips = torch.randint(0, 256, (2, 3, 4, 5, 7), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    shown = clip_grid(normalize(clips, IMAGENET_MEAN, IMAGENET_STD), IMAGENET_MEAN, IMAGENET_STD)
    assert (shown.int() - clip_grid(clips).int()).abs().max() <= 1
    with pytest.raises(ValueError, match='need the mean and std'):
        clip_grid(normalize(clips, IMAGENET_MEAN, IMAGENET_STD))


def test_flow_shows_the_first_x_y_pair_of_each_frame_in_grey():
    clips = numbered_clips(2, 6, 3, 4, 4)                    # flow_length 3: x0 y0 x1 y1 x2 y2
    grid = clip_grid(clips, modality='flow')
    assert grid.shape == (3, 2 * 4 + 2, 6 * 4 + 5 * 2)       # 2 columns a frame: x, then y
    for i in range(2):
        for j in range(3):
            for k in range(2):                               # x0 = 40 i + 10 j, y0 = that + 1
                cell = grid[:, i * 6:i * 6 + 4, (2 * j + k) * 6:(2 * j + k) * 6 + 4]
                assert (cell == 40 * i + 10 * j + k).all(), (i, j, k)


def test_what_is_not_a_training_batch_is_refused():
    with pytest.raises(ValueError, match=r'\(B, C, T, H, W\)'):
        clip_grid(numbered_clips(2, 3, 2, 4, 4)[:, None])    # 6-D evaluation views
    with pytest.raises(ValueError, match='rgb clips have 3 channels'):
        clip_grid(numbered_clips(2, 4, 2, 4, 4))


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return tiny_synthetic(str(tmp_path_factory.mktemp('grid') / 'data'), videos_per_class=1,
                          classes=2)


def test_training_writes_its_first_clips_to_tensorboard(data, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    import train as train_entry
    run = train_entry.main(['--dataset', 'synthetic', '--datadir', data, '--backbone_net',
                            'resnet', '-d', '18', '--groups', '4', '--input_size', '32', '-b',
                            '2', '-j', '0', '--no_imagenet_pretrained', '--epochs', '1',
                            '--logdir', str(tmp_path)])
    events = EventAccumulator(run['folder'], size_guidance={'images': 0})
    events.Reload()
    assert events.Tags()['images'] == ['train/augmented_clips']
    [image] = events.Images('train/augmented_clips')         # once, before the first step
    assert (image.step, image.height, image.width) == (0, 2 * 32 + 2, 4 * 32 + 3 * 2)
    log = open(os.path.join(run['folder'], 'log.txt')).read()
    assert 'TensorBoard: train/augmented_clips (2 clips x 4 frames)' in log
    assert 'augmented_clips' not in capsys.readouterr().out  # log.txt only
