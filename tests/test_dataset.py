import os

import numpy as np
import pytest
import torch

from conftest import make_config
from utils.config import EvalConfig
from utils.dataset_config import DATASET_CONFIG, get_dataset_config
from utils.errors import UserError
from utils.video_dataset import (ListFileError, build_dataset, parse_list_file,
                                 read_exclusion_list)


def args_for(datadir, *extra):
    """The data options of this command line, for 2 classes."""
    return make_config('--datadir', datadir, '--input_size', '16', '--groups', '4', *extra,
                       num_classes=2).data


# The original code's table (IBM/action-recognition-pytorch utils/dataset_config.py):
# (num_classes, train, val, test list names, separator, filter_video = min frames).
ORIGINAL = {
    'st2stv2': (174, 'train.txt', 'val.txt', 'test.txt', ' ', 3),
    'mini_st2stv2': (87, 'mini_train.txt', 'mini_val.txt', 'mini_test.txt', ' ', 3),
    'kinetics400': (400, 'train.txt', 'val.txt', 'test.txt', ';', 30),
    'mini_kinetics400': (200, 'mini_train.txt', 'mini_val.txt', 'mini_test.txt', ';', 30),
    'moments': (339, 'train.txt', 'val.txt', None, ' ', 0),
    'mini_moments': (200, 'mini_train.txt', 'mini_val.txt', None, ' ', 0),
}
ORIGINAL_CONFIG = '/work/original/utils/dataset_config.py'


def test_dataset_table_is_the_originals():
    if os.path.isfile(ORIGINAL_CONFIG):            # the checkout, where there is one
        import runpy
        table = runpy.run_path(ORIGINAL_CONFIG)['DATASET_CONFIG']
        assert {name: (d['num_classes'], d['train_list_name'], d['val_list_name'],
                       d.get('test_list_name'), d['filename_seperator'], d['filter_video'])
                for name, d in table.items()} == ORIGINAL
    for name, (classes, train, val, test, sep, min_frames) in ORIGINAL.items():
        cfg = get_dataset_config(name)
        assert (cfg['num_classes'], cfg['train_list'], cfg['val_list'], cfg['sep'],
                cfg['min_frames']) == (classes, train, val, sep, min_frames), name
        assert cfg['test_list'] == (test or f'{train.removesuffix("train.txt")}test.txt')
    # This project's own entries.
    assert get_dataset_config('st2stv1')['num_classes'] == 174
    assert get_dataset_config('synthetic')['num_classes'] is None
    assert not DATASET_CONFIG['st2stv2']['flip'] and DATASET_CONFIG['kinetics400']['flip']
    assert not DATASET_CONFIG['synthetic']['flip']
    with pytest.raises(KeyError, match='unknown dataset'):
        get_dataset_config('nope')


def test_parse_list_file(tmp_path):
    # The full format is tested in tests/test_list_file.py; this is the dataset's entry.
    f = tmp_path / 'l.txt'
    f.write_text('a/b 1 30 3\n\nmy clip 5 9 0\n')
    recs = parse_list_file(str(f), num_classes=4)
    assert [(r.path, r.start, r.end, r.label, r.num_frames) for r in recs] == [
        ('a/b', 1, 30, 3, 30), ('my clip', 5, 9, 0, 5)]
    f.write_text('a 1 30\nb 1 10\n')
    assert [r.label for r in parse_list_file(str(f))] == [-1, -1]
    with pytest.raises(ListFileError, match=':1: no label'):
        parse_list_file(str(f), labelled=True)
    with pytest.raises(UserError, match='list file not found'):
        parse_list_file(str(tmp_path / 'none.txt'))


def test_splits_read_the_datasets_list_names_and_separator(frame_dataset, tmp_path):
    """kinetics400 reads `;` lists (paths with spaces); the mini datasets read mini_*.txt;
    train and val lists must have labels, a test list may have none; Moments keeps every
    video (min 0) where kinetics400 drops those under 30 frames."""
    os.rename(os.path.join(frame_dataset, 'videos', 'v0'),
              os.path.join(frame_dataset, 'videos', 'air drumming 1'))
    lines = [f'videos/v{i};1;{10 + i};{i % 2}' for i in range(1, 6)]
    with open(os.path.join(frame_dataset, 'train.txt'), 'w') as f:
        f.write('videos/air drumming 1;1;10;0\n' + '\n'.join(lines) + '\n')
    args = args_for(frame_dataset, '--dataset', 'kinetics400')
    with pytest.raises(ListFileError, match='no video left .*shorter than 30'):
        build_dataset(args, 'train', train=True)
    with open(os.path.join(frame_dataset, 'mini_train.txt'), 'w') as f:
        f.write('videos/air drumming 1 1 10 0\nvideos/v1 1 11 1\n')
    args = args_for(frame_dataset, '--dataset', 'mini_moments')
    ds = build_dataset(args, 'train', train=True)
    assert [r.path for r in ds.records] == ['videos/air drumming 1', 'videos/v1']
    assert ds[0]['clip'].shape == (3, 4, 16, 16)
    with open(os.path.join(frame_dataset, 'mini_val.txt'), 'w') as f:
        f.write('videos/v1 1 11\n')
    with pytest.raises(ListFileError, match='mini_val.txt:1: no label'):
        build_dataset(args, 'val', train=False)
    with open(os.path.join(frame_dataset, 'mini_test.txt'), 'w') as f:
        f.write('videos/v1 1 11\nvideos/air drumming 1 1 10\n')
    ds = build_dataset(args, 'test', train=False)
    assert [(r.path, r.label) for r in ds.records] == [('videos/v1', -1),
                                                       ('videos/air drumming 1', -1)]


def test_train_sample_deterministic_per_epoch_and_index(frame_dataset):
    ds = build_dataset(args_for(frame_dataset), 'train', train=True)
    a, b = ds[2], ds[2]
    assert a['clip'].shape == (3, 4, 16, 16) and a['clip'].dtype == torch.uint8
    assert torch.equal(a['clip'], b['clip']) and a['label'] == 0 and a['bad'] == 0
    others = []
    for epoch in range(1, 6):
        ds.set_epoch(epoch)
        others.append(ds[2]['clip'])
    ds.set_epoch(0)
    assert torch.equal(ds[2]['clip'], a['clip'])
    assert any(not torch.equal(o, a['clip']) for o in others)


def test_eval_views_and_frame_order(frame_dataset):
    args = args_for(frame_dataset)
    ds = build_dataset(args, 'val', train=False, views=EvalConfig(num_clips=2, num_crops=3))
    s = ds[5]
    assert s['clip'].shape == (6, 3, 4, 16, 16)
    # frame brightness grows with the frame number, so the sampled frames are in order
    means = s['clip'][0].float().mean(dim=(0, 2, 3))
    assert torch.all(means[1:] > means[:-1])
    assert torch.equal(ds[5]['clip'], s['clip'])


def test_unreadable_video_replaced_in_training_and_flagged_in_eval(frame_dataset):
    import shutil
    shutil.rmtree(os.path.join(frame_dataset, 'videos', 'v1'))          # missing video
    for k in range(1, 13):                                               # corrupt frames
        with open(os.path.join(frame_dataset, 'videos', 'v2', f'{k:05d}.jpg'), 'wb') as f:
            f.write(b'not a jpeg')
    args = args_for(frame_dataset)
    train = build_dataset(args, 'train', train=True)
    s = train[1]
    assert s['bad'] == 1 and s['index'] == 3          # v1 and v2 skipped, v3 used
    ev = build_dataset(args, 'val', train=False)
    e = ev[2]
    assert e['bad'] == 1 and e['clip'].abs().sum() == 0 and e['clip'].shape == (1, 3, 4, 16, 16)


def test_short_videos_filtered_except_in_the_test_split(frame_dataset, caplog):
    args = args_for(frame_dataset)
    for split in ('train', 'val', 'test'):
        with open(os.path.join(frame_dataset, f'{split}.txt'), 'a') as f:
            f.write('videos/v0 1 3 0\n')
    assert len(build_dataset(args, 'train', train=True)) == 6
    assert 'shorter than 8 frames' in caplog.text
    assert len(build_dataset(args, 'val', train=False)) == 6
    # as the original's test mode: every video of the test list gets a prediction
    assert len(build_dataset(args, 'test', train=False)) == 7


def test_eval_views_are_the_originals_frames_and_crops(frame_dataset):
    """Video v5 (15 frames of 24x32), 4 groups, 2 clips x 3 crops at input size 16: the
    original takes frames [1, 5, 9, 13] and [2, 6, 10, 14] (0-based), scales to 18x24
    (int(16 / 0.875 + 0.5) = 18) and crops 16x16 at left 0, 8 and 4, top 2 * ((18 - 16) // 4),
    which is 0 (not the centre row 1)."""
    from PIL import Image
    from utils.transforms import resize
    ds = build_dataset(args_for(frame_dataset), 'val', train=False, views=EvalConfig(num_clips=2, num_crops=3))
    views = ds[5]['clip']                                          # (6, C, T, 16, 16)
    folder = os.path.join(frame_dataset, 'videos', 'v5')
    for c, frames in enumerate(([1, 5, 9, 13], [2, 6, 10, 14])):
        clip = torch.stack([torch.from_numpy(np.array(Image.open(
            os.path.join(folder, f'{1 + k:05d}.jpg')).convert('RGB'))).permute(2, 0, 1)
            for k in frames])
        clip = resize(clip, (18, 24))
        for k, left in enumerate((0, 8, 4)):
            expected = clip[:, :, 0:16, left:left + 16].permute(1, 0, 2, 3)
            assert torch.equal(views[3 * c + k], expected), (c, k)


def test_frames_are_read_in_rgb_order(tmp_path):
    """A red video reads as red: channel 0 (which the rgb mean/std's first value, ImageNet's
    red 0.485, normalises) holds the red plane."""
    from PIL import Image
    folder = tmp_path / 'videos' / 'red'
    folder.mkdir(parents=True)
    for k in range(1, 9):
        Image.fromarray(np.full((24, 32, 3), (250, 10, 60), np.uint8)).save(
            folder / f'{k:05d}.jpg', quality=95)
    (tmp_path / 'val.txt').write_text('videos/red 1 8 0\n')
    clip = build_dataset(args_for(str(tmp_path)), 'val', train=False)[0]['clip'].float()
    assert clip[0, 0].mean() > 200 and clip[0, 1].mean() < 50 and clip[0, 2].mean() < 100


def _flow_value(k: int, direction: str) -> int:
    return (10 * k + (5 if direction == 'y' else 0)) % 250     # as conftest.write_flow_video


@pytest.mark.parametrize('train', [True, False])
def test_flow_clip_stacks_x_y_pairs_of_consecutive_frames(flow_dataset, train):
    from utils.sampling import sample_indices
    args = args_for(flow_dataset, '--modality', 'flow', '--flow_length', '3')
    ds = build_dataset(args, 'train' if train else 'val', train=train)
    assert ds.channels == 6
    s = ds[4]                                                    # 13 flow frames
    clip = s['clip'][0] if not train else s['clip']
    assert clip.shape == (6, 4, 16, 16) and clip.dtype == torch.uint8
    rng = np.random.default_rng([0, 0, 4]) if train else None
    # 11 positions: a stack of 3 starting at the last one still ends at frame 13
    idx = sample_indices(13 - 2, 4, 1, False, train, rng)[0]
    for t, i in enumerate(idx):
        for k in range(3):
            for c, d in enumerate('xy'):
                expected = _flow_value(1 + int(i) + k, d)
                assert abs(int(clip[2 * k + c, t].float().mean().round()) - expected) <= 1


def test_flow_stack_repeats_the_last_frame_of_a_short_video(flow_dataset):
    args = args_for(flow_dataset, '--modality', 'flow', '--flow_length', '5')
    ds = build_dataset(args, 'val', train=False)
    frames = ds._read(ds.records[0], np.array([6]))             # 9 frames: 7, 8, 9, 9, 9
    x = [int(frames[0, 2 * k].float().mean().round()) for k in range(5)]
    assert x == [_flow_value(k, 'x') for k in (7, 8, 9, 9, 9)]


def test_flipped_flow_views_negate_x(flow_dataset, monkeypatch):
    """10-crop evaluation on a dataset whose labels survive flips: views 5-9 are the flips of
    views 0-4, and flipping flow negates its x component (255 - x); y is unchanged."""
    monkeypatch.setitem(DATASET_CONFIG['synthetic'], 'flip', True)
    args = args_for(flow_dataset, '--modality', 'flow', '--flow_length', '2', '--num_crops', '10')
    views = build_dataset(args, 'val', train=False, views=EvalConfig(num_crops=10))[0]['clip'].int()
    assert views.shape == (10, 4, 4, 16, 16)
    assert torch.equal(views[5:, 0::2], 255 - views[:5, 0::2].flip(-1))
    assert torch.equal(views[5:, 1::2], views[:5, 1::2].flip(-1))
    assert views[0, 0].float().mean() < 128 < views[5, 0].float().mean()   # not a no-op


def test_exclude_list_leaves_videos_out(frame_dataset, tmp_path):
    bad = tmp_path / 'bad.txt'
    # the format of tools/check_dataset.py's bad-entries file, a comment, a plain path
    bad.write_text('videos/v1 1 11 1\tmissing: no folder\n# note\nvideos/v4\n')
    ds = build_dataset(args_for(frame_dataset, '--exclude_list', str(bad)), 'train', train=True)
    assert [r.path for r in ds.records] == ['videos/v0', 'videos/v2', 'videos/v3', 'videos/v5']
    with pytest.raises(UserError, match='exclusion list not found'):
        read_exclusion_list(str(tmp_path / 'no.txt'))


def test_frames_named_otherwise_are_named_before_training(tmp_path):
    """PNG frames under the default template: one line naming the list line, the template and
    what the folder holds, and the --image_tmpl that reads them (which then does)."""
    from conftest import write_dataset, write_video
    data = write_dataset(tmp_path / 'png', lambda f, n, i: write_video(
        f, n, seed=i, tmpl='{:05d}.png'), 10)
    with pytest.raises(UserError) as err:
        build_dataset(args_for(data), 'train', train=True)
    msg = err.value.message
    assert msg.startswith(f'{data}/train.txt:1: frames 1..10 of ') and "'{:05d}.jpg'" in msg
    assert 'holds 10 images, 00001.png .. 00010.png' in msg
    assert msg.endswith("give --image_tmpl '{:05d}.png' (every line of the list whose folder is "
                        "there is like this)")
    ds = build_dataset(args_for(data, '--image_tmpl', '{:05d}.png'), 'train', train=True)
    assert ds[0]['clip'].shape == (3, 4, 16, 16)


def test_list_lines_past_the_frames_on_disk_are_named(frame_dataset, caplog):
    """A line past its folder's frames is a warning naming file:line (the others train); all
    lines past them (a list numbered from 1 over frames from 0) an error naming the first."""
    lst = os.path.join(frame_dataset, 'train.txt')
    lines = open(lst).read().splitlines()
    lines[2] = 'videos/v2 1 40 0'                         # v2 has 12 frames
    open(lst, 'w').write('\n'.join(lines) + '\n')
    ds = build_dataset(args_for(frame_dataset), 'train', train=True)
    assert len(ds) == 6
    assert f"{lst}:3: frames 1..40 of 'videos/v2'" in caplog.text
    assert '1 of 6 videos list frames that are not on disk' in caplog.text
    for i in range(6):                                   # frames renumbered from 0
        folder = os.path.join(frame_dataset, 'videos', f'v{i}')
        for name in sorted(os.listdir(folder)):
            k = int(name[:5])
            os.rename(os.path.join(folder, name), os.path.join(folder, f'{k - 1:05d}.jpg'))
    with pytest.raises(UserError, match=rf"{lst}:1: frames 1\.\.10 of 'videos/v0'.* the folder "
                                        r"has frames 0\.\.9: write the list again"):
        build_dataset(args_for(frame_dataset), 'train', train=True)


def test_exclusion_files_apply_to_their_split(frame_dataset, tmp_path, caplog):
    """train.bad.txt leaves videos out of train only, val.bad.txt out of val only, another
    file out of every split; an empty file is one warning, however many splits."""
    root = frame_dataset
    open(os.path.join(root, 'train.bad.txt'), 'w').write('videos/v1 1 11 1\tmissing frames\n')
    open(os.path.join(root, 'val.bad.txt'), 'w').write('videos/v2 1 12 0\tunreadable frame\n')
    other = tmp_path / 'mine.txt'
    other.write_text('videos/v5\n')
    empty = tmp_path / 'empty.txt'
    empty.write_text('')
    args = args_for(root, '--exclude_list', os.path.join(root, 'train.bad.txt'),
                    os.path.join(root, 'val.bad.txt'), str(other), str(empty))
    kept = {split: [r.path for r in build_dataset(args, split, train=split == 'train').records]
            for split in ('train', 'val', 'test')}
    assert kept == {'train': ['videos/v0', 'videos/v2', 'videos/v3', 'videos/v4'],
                    'val': ['videos/v0', 'videos/v1', 'videos/v3', 'videos/v4'],
                    'test': ['videos/v0', 'videos/v1', 'videos/v2', 'videos/v3', 'videos/v4']}
    assert caplog.text.count(f'--exclude_list {empty} lists no video') == 1
    assert caplog.text.count('left out by --exclude_list') == 2 + 3      # its own + mine.txt
