"""Users' file names, end to end: videos and classes whose names hold spaces, brackets, quotes,
commas and non-ASCII go through extraction, list writing, checking, LMDB, training and testing
(frame folders, --use_lmdb, --video_backend pyav), and test.py's predictions name the classes
with their spaces. Also Kinetics-style `;` lists of the same data."""
import csv
import glob
import os
import shutil

import numpy as np
import pytest

from conftest import encode_moving_square
import test as test_entry
import train as train_entry
from tools import annotations, build_lmdb, check_dataset, extract_frames
from utils.list_file import read_categories, read_list

av = pytest.importorskip('av')
pytest.importorskip('lmdb')
pytestmark = pytest.mark.usefixtures('one_thread')

CLASSES = ['air drumming', 'brushing teeth']
# (class, file name, codec): a name ending in a space and a number ("clip 3") must not lose
# its number to the list's frame fields.
VIDEOS = [('air drumming', "my clip (1) 'x', ü.mp4", 'libx264'),
          ('air drumming', 'other, [take 2].avi', 'mpeg4'),
          ('brushing teeth', '"quoted" 日本.mkv', 'libx264'),
          ('brushing teeth', 'clip 3.mp4', 'libx264')]
FRAMES = 32            # >= 30: kinetics400 keeps videos of 30 frames or more


@pytest.fixture(scope='module')
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp('names') / 'raw'
    for i, (cls, name, codec) in enumerate(VIDEOS):
        encode_moving_square(str(root / cls / name), codec, FRAMES, 1 if cls == CLASSES[0] else -1,
                             i, h=32, w=40, side=10)
    return str(root)


def model_args(datadir: str, logdir: str, *extra) -> list:
    return ['--dataset', 'synthetic', '--datadir', datadir, '--backbone_net', 'resnet', '-d', '18',
            '--groups', '4', '--input_size', '32', '-b', '4', '-j', '0',
            '--no_imagenet_pretrained', '--logdir', logdir, *extra]


def train_then_test(datadir: str, logdir: str, *extra) -> list:
    """train.py one epoch, then test.py on the val list; the predictions CSV's rows."""
    args = model_args(datadir, logdir, *extra)
    run = train_entry.main(args + ['--epochs', '1', '--lr', '0.01'])
    assert np.isfinite(run['loss']) and run['count'] == 4 and run['bad'] == 0
    result = test_entry.main(args + ['--pretrained',
                                     os.path.join(run['folder'], 'checkpoint.pth.tar'),
                                     '--eval_split', 'val'])
    assert result['count'] == 4 and result['bad'] == 0
    [path] = glob.glob(os.path.join(run['folder'], 'val_*_predictions.csv'))
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.DictReader(f))


def check_predictions(rows: list, videos: set) -> None:
    assert {row['video'] for row in rows} == videos
    for row in rows:
        assert {row['top1'], row['top2']} == set(CLASSES)           # whole names, spaces kept


def test_names_through_frames_and_lmdb(raw, tmp_path):
    data = str(tmp_path / 'data')
    assert extract_frames.main(['--videos', raw, '--out', data, '--short_side', '32', '-q']) == 0
    for split in ('train', 'val'):
        assert annotations.main(['folders', '--videos', raw, '--frames', data,
                                 '--split', split]) == 0
    assert read_categories(os.path.join(data, 'categories.txt')) == CLASSES
    records = read_list(os.path.join(data, 'train.txt'), labelled=True)
    stems = {f'{c}/{os.path.splitext(n)[0]}' for c, n, _ in VIDEOS}
    assert {(r.path, r.num_frames) for r in records} == {(s, FRAMES) for s in stems}
    assert check_dataset.main(['--root', data, '--split', 'train', 'val', '-q']) == 0
    assert build_lmdb.main(['--root', data, '--split', 'train', 'val', '-q']) == 0
    assert check_dataset.main(['--root', data, '--split', 'train', 'val', '--use_lmdb',
                               '-q']) == 0
    check_predictions(train_then_test(data, str(tmp_path / 'logs')), stems)
    check_predictions(train_then_test(data, str(tmp_path / 'logs_lmdb'), '--use_lmdb'), stems)

    # The same frames as a Kinetics-400 dataset: `;` lists (the original's), class folders with
    # spaces, its 30-frame minimum kept.
    k400 = str(tmp_path / 'k400')
    shutil.copytree(data, k400, ignore=shutil.ignore_patterns('*.lmdb', '*.txt'))
    for split in ('train', 'val'):
        assert annotations.main(['folders', '--videos', raw, '--frames', k400, '--split', split,
                                 '--dataset', 'kinetics400']) == 0
    first = open(os.path.join(k400, 'train.txt'), encoding='utf-8').readline()
    assert first.count(';') == 3 and ' ' in first.split(';')[0]
    assert read_list(os.path.join(k400, 'train.txt'), ';', labelled=True) == records
    assert build_lmdb.main(['--root', k400, '--dataset', 'kinetics400', '--split', 'train',
                            '-q']) == 0
    assert check_dataset.main(['--root', k400, '--dataset', 'kinetics400', '--split', 'train',
                               '--use_lmdb', '-q']) == 0


def test_names_through_pyav(raw, tmp_path):
    videos = shutil.copytree(raw, str(tmp_path / 'raw'))          # the lists go beside them
    for split in ('train', 'val'):
        assert annotations.main(['folders', '--videos', videos, '--from_videos',
                                 '--split', split, '-q']) == 0
    names = {f'{c}/{n}' for c, n, _ in VIDEOS}
    assert {r.path for r in read_list(os.path.join(videos, 'train.txt'))} == names
    rows = train_then_test(videos, str(tmp_path / 'logs'), '--video_backend', 'pyav',
                           '--video_short_side', '32')
    check_predictions(rows, names)
