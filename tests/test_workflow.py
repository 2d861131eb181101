"""The README's data-preparation workflow, end to end: a folder of one's own videos ->
frames -> list files -> LMDB -> check -> train.py -> test.py, and the same videos read
directly with --video_backend pyav. Every step is the command-line entry point."""
import os

import numpy as np
import pytest

import test as test_entry
import train as train_entry
from conftest import encode_moving_square
from tools import annotations, build_lmdb, check_dataset, extract_frames

av = pytest.importorskip('av')


@pytest.fixture(scope='module')
def raw_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp('workflow') / 'raw'
    for i in range(4):
        codec, ext = [('libx264', 'mp4'), ('mpeg4', 'avi')][i % 2]
        encode_moving_square(str(root / 'left_to_right' / f'r{i}.{ext}'), codec, 16, +1, i)
        encode_moving_square(str(root / 'right_to_left' / f'l{i}.{ext}'), codec, 16, -1, 10 + i)
    (root / 'right_to_left' / 'broken.mp4').write_bytes(b'\x00\x00\x00\x18ftypmp42' + bytes(300))
    return str(root)


def model_args(datadir: str, logdir: str, *extra) -> list:
    return ['--dataset', 'synthetic', '--datadir', datadir, '--backbone_net', 'resnet', '-d', '18',
            '--temporal_module_name', 'TAM', '--groups', '4', '--input_size', '32', '-b', '4',
            '-j', '0', '--no_imagenet_pretrained', '--logdir', logdir, *extra]


def test_videos_to_frames_to_lmdb_to_trained_model(raw_videos, tmp_path):
    data = str(tmp_path / 'data')
    # 1. frames (the broken video is reported, the run goes on, exit status 1)
    assert extract_frames.main(['--videos', raw_videos, '--out', data, '--short_side', '48',
                                '-j', '2', '-q']) == 1
    assert 'broken.mp4' in open(os.path.join(data, 'extract_report.txt')).read()
    # 2. lists: every video in train and val here (a real dataset uses --val_fraction)
    for split in ('train', 'val'):
        assert annotations.main(['folders', '--videos', raw_videos, '--frames', data,
                                 '--split', split]) == 0
    lines = open(os.path.join(data, 'train.txt')).read().split('\n')[:-1]
    assert len(lines) == 8 and all(line.split()[1:3] == ['1', '16'] for line in lines)
    assert open(os.path.join(data, 'categories.txt')).read() == 'left_to_right\nright_to_left\n'
    # 3. LMDB, 4. check
    assert build_lmdb.main(['--root', data, '--split', 'train', 'val', '-q']) == 0
    assert check_dataset.main(['--root', data, '--split', 'train', 'val', '--use_lmdb', '-q']) == 0
    # 5. train and test from the databases
    args = model_args(data, str(tmp_path / 'logs'), '--use_lmdb')
    run = train_entry.main(args + ['--epochs', '2', '--lr', '0.01'])
    assert np.isfinite(run['loss']) and run['count'] == 8
    result = test_entry.main(args + ['--pretrained', os.path.join(run['folder'], 'model_best.pth.tar'),
                                     '--num_clips', '2', '--num_crops', '3'])
    assert result['count'] == 8 and result['scores'].shape == (8, 2)


def test_videos_read_directly_with_pyav(raw_videos, tmp_path):
    import shutil
    raw_videos = shutil.copytree(raw_videos, str(tmp_path / 'raw'))   # the lists go beside them
    lists = str(tmp_path / 'lists')
    assert annotations.main(['folders', '--videos', raw_videos, '--from_videos', '--out', lists,
                             '--split', 'train', '-q']) == 0
    lines = open(os.path.join(lists, 'train.txt')).read().split('\n')[:-1]
    assert len(lines) == 8 and lines[0].split()[0].endswith(('.mp4', '.avi'))
    assert 'broken.mp4' in open(os.path.join(lists, 'train.missing.txt')).read()
    # the lists beside the videos, as annotations.py writes them by default
    for name in ('train.txt', 'categories.txt'):
        os.replace(os.path.join(lists, name), os.path.join(raw_videos, name))
    os.link(os.path.join(raw_videos, 'train.txt'), os.path.join(raw_videos, 'val.txt'))
    args = model_args(raw_videos, str(tmp_path / 'logs'), '--video_backend', 'pyav',
                      '--video_short_side', '48')
    run = train_entry.main(args + ['--epochs', '1', '--lr', '0.01'])
    assert np.isfinite(run['loss']) and run['count'] == 8 and run['bad'] == 0
    result = test_entry.main(args + ['--pretrained', os.path.join(run['folder'], 'checkpoint.pth.tar'),
                                     '--num_clips', '2'])
    assert result['count'] == 8
