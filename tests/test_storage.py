"""LMDB storage: built by tools/build_lmdb.py, read equal to the frame folders."""
import functools
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import make_config
from conftest import PY  # noqa: E402  (a fast python: tests/forkserver.py)
from tools.build_lmdb import build_split
from utils.list_file import write_list
from utils.storage import (STORAGE_KINDS, DamagedDatabaseError, FolderStorage, FrameReadError,
                           FrameStorage, LMDBStorage, NoVideosFoundError, Storage,
                           VideoMissingError, check_found, decode_video_record,
                           encode_video_record, lmdb_key, lmdb_path, missing_hint, open_storage)
from utils.video_dataset import build_dataset

pytest.importorskip('lmdb')
pytest.importorskip('pyarrow')


def _build(datadir, split='train', **kw):
    return build_split(datadir, os.path.join(datadir, f'{split}.txt'),
                       os.path.join(datadir, f'{split}.lmdb'), quiet=True, **kw)


def test_record_format_roundtrip_and_version():
    value = encode_video_record(['00001.jpg', '00002.jpg'], [b'a', b'bc'])
    assert decode_video_record(value) == {'00001.jpg': b'a', '00002.jpg': b'bc'}
    with pytest.raises(ValueError, match='not a video record'):
        decode_video_record(b'garbage')


def test_lmdb_reads_equal_folders(frame_dataset):
    s = _build(frame_dataset, map_size_gb=0.0001)           # tiny map: forces growth
    assert s['written'] == 6 and s['failed'] == 0 and s['records'] == 6
    folders = FolderStorage(frame_dataset)
    db = LMDBStorage(os.path.join(frame_dataset, 'train.lmdb'))
    for v, idx in [('videos/v0', [1, 5, 10]), ('videos/v5', [15, 1, 3, 3])]:
        np.testing.assert_array_equal(db.read(v, idx), folders.read(v, idx))
    # Pickles (to DataLoader workers) without the open handle, and reopens there.
    clone = pickle.loads(pickle.dumps(db))
    assert clone._env is None
    np.testing.assert_array_equal(clone.read('videos/v1', [2]), folders.read('videos/v1', [2]))
    with pytest.raises(VideoMissingError, match='key missing'):
        db.read('videos/nope', [1])
    with pytest.raises(FrameReadError, match='frame not in the record') as err:
        db.read('videos/v0', [11])
    assert not isinstance(err.value, VideoMissingError)      # the video is there
    db.close()                                  # a process holds one handle per database
    # Resume: a second run skips everything.
    s2 = _build(frame_dataset)
    assert s2['written'] == 0 and s2['skipped'] == 6


def test_build_reports_broken_folders(frame_dataset):
    os.remove(os.path.join(frame_dataset, 'videos', 'v2', '00003.jpg'))
    s = _build(frame_dataset)
    assert s['written'] == 5 and s['failed'] == 1
    assert 'videos/v2' in open(s['errors_file']).read()


def _args(datadir, *extra):
    """The data options of this command line, for 2 classes."""
    return make_config('--datadir', datadir, '--input_size', '16', '--groups', '4', *extra,
                       num_classes=2).data


def test_dataset_with_use_lmdb_gives_same_clips(frame_dataset):
    for split in ('train', 'val'):
        _build(frame_dataset, split)
    for split, train in (('train', True), ('val', False)):
        a = build_dataset(_args(frame_dataset), split, train=train)
        b = build_dataset(_args(frame_dataset, '--use_lmdb'), split, train=train)
        assert isinstance(b.storage, LMDBStorage)
        for i in range(len(a)):
            torch.testing.assert_close(a[i]['clip'], b[i]['clip'], rtol=0, atol=0)
    # Through DataLoader worker processes too.
    a = build_dataset(_args(frame_dataset), 'train', train=True)
    b = build_dataset(_args(frame_dataset, '--use_lmdb'), 'train', train=True)
    loader = torch.utils.data.DataLoader(b, batch_size=3, num_workers=2)
    clips = torch.cat([batch['clip'] for batch in loader])
    torch.testing.assert_close(clips, torch.stack([a[i]['clip'] for i in range(len(a))]))


def test_use_lmdb_missing_database_or_keys_is_clear(frame_dataset):
    with pytest.raises(FileNotFoundError, match='train.lmdb.*data.mdb'):
        build_dataset(_args(frame_dataset, '--use_lmdb'), 'train', train=True)
    # A database built from another list: no listed key is present.
    other = os.path.join(frame_dataset, 'other.txt')
    with open(other, 'w') as f:
        f.write('videos/v0 1 10 0\n')
    build_split(frame_dataset, other, os.path.join(frame_dataset, 'val.lmdb'), quiet=True)
    with open(os.path.join(frame_dataset, 'val.txt'), 'w') as f:
        f.write('videos/v1 1 11 1\n')
    with pytest.raises(FileNotFoundError, match='none of the 1 videos'):
        build_dataset(_args(frame_dataset, '--use_lmdb'), 'val', train=False)


def test_any_name_is_a_key(frame_dataset):
    """Spaces, quotes, non-ASCII, and a path past LMDB's 511-byte key limit (a digest key)."""
    names = ["videos/my clip (1) 'x', ü", 'videos/' + '/'.join(['ü' * 100] * 3)]
    for i, name in enumerate(names):
        os.makedirs(os.path.dirname(os.path.join(frame_dataset, name)), exist_ok=True)
        os.rename(os.path.join(frame_dataset, 'videos', f'v{i}'),
                  os.path.join(frame_dataset, name))
    lst = os.path.join(frame_dataset, 'names.txt')
    write_list(lst, [(name, 1, 10 + i, 0) for i, name in enumerate(names)])
    s = build_split(frame_dataset, lst, os.path.join(frame_dataset, 'names.lmdb'), quiet=True)
    assert s['written'] == 2 and s['failed'] == 0
    db = LMDBStorage(os.path.join(frame_dataset, 'names.lmdb'))
    for name in names:
        np.testing.assert_array_equal(db.read(name, [1, 3]),
                                      FolderStorage(frame_dataset).read(name, [1, 3]))
    assert db.missing(names + ['videos/v2']) == ['videos/v2']
    db.close()
    assert len(lmdb_key(names[1])) < 511 < len(names[1].encode())


def _cut_database(datadir, split='train'):
    _build(datadir, split)
    data = os.path.join(datadir, f'{split}.lmdb', 'data.mdb')
    with open(data, 'r+b') as f:
        f.truncate(os.path.getsize(data) // 2)
    return os.path.join(datadir, f'{split}.lmdb')


def _one_error_line(proc, *named):
    assert proc.returncode == 1, (proc.returncode, proc.stderr)     # not SIGBUS (135 / -7)
    lines = proc.stderr.strip().split('\n')
    assert 'Traceback' not in proc.stderr and len(lines) == 1, proc.stderr
    assert lines[0].startswith('error: ') and all(n in lines[0] for n in named), lines[0]


def test_damaged_database_is_one_line_not_a_signal(frame_dataset):
    db = _cut_database(frame_dataset)
    with pytest.raises(DamagedDatabaseError, match='header says'):
        LMDBStorage(db)
    with pytest.raises(DamagedDatabaseError, match='rebuild it: rm -r .*train.lmdb && python3 '
                                                   'tools/build_lmdb.py --root .* --split train'):
        _build(frame_dataset)                    # resuming a build over it: also refused
    for size in (1000, 0):                       # less than its two meta pages: even opening
        with open(os.path.join(db, 'data.mdb'), 'r+b') as f:   # it would be a SIGBUS
            f.truncate(size)
        with pytest.raises(DamagedDatabaseError, match='not an LMDB file or cut short'):
            LMDBStorage(db)
    _cut_database(frame_dataset, 'val')
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    run = functools.partial(subprocess.run, capture_output=True, text=True, env=env,
                            timeout=120, cwd=root)
    _one_error_line(run([PY, 'tools/check_dataset.py', '--root', frame_dataset,
                         '--split', 'val', '--use_lmdb', '-q']), 'val.lmdb', 'build_lmdb.py')
    _one_error_line(run([PY, 'train.py', '--datadir', frame_dataset, '--use_lmdb',
                         '--input_size', '16', '--groups', '4', '-b', '2', '-j', '2',
                         '--epochs', '1', '--backbone_net', 'resnet', '-d', '18',
                         '--no_imagenet_pretrained', '--logdir',
                         os.path.join(frame_dataset, 'logs')]),
                    '.lmdb: damaged LMDB database', 'build_lmdb.py')


def test_missing_key_is_replaced_in_training(frame_dataset):
    lst = os.path.join(frame_dataset, 'part.txt')
    with open(os.path.join(frame_dataset, 'train.txt')) as f:
        lines = f.readlines()
    with open(lst, 'w') as f:
        f.writelines(lines[1:])                     # v0 is not packed
    build_split(frame_dataset, lst, os.path.join(frame_dataset, 'train.lmdb'), quiet=True)
    ds = build_dataset(_args(frame_dataset, '--use_lmdb'), 'train', train=True)
    sample = ds[0]
    assert sample['bad'] == 1 and sample['index'] == 1


def test_lmdb_flow_reads_equal_folders(flow_dataset):
    os.remove(os.path.join(flow_dataset, 'videos', 'v3', '00004_y.jpg'))
    s = _build(flow_dataset, image_tmpl='{:05d}_{}.jpg')     # packs the x and y images
    assert s['written'] == 5 and s['failed'] == 1             # v3 lacks a y image
    assert '00004_y.jpg' in open(s['errors_file']).read()
    from tools.check_dataset import check_split
    c = check_split(os.path.join(flow_dataset, 'train.txt'), flow_dataset, tmpl='{:05d}_{}.jpg',
                    quiet=True)
    assert c['bad'] == 1 and c['missing frames'] == 1 and c['bad_entries'][0][0].path == 'videos/v3'
    names = ['00002_x.jpg', '00002_y.jpg', '00009_x.jpg']
    db = LMDBStorage(os.path.join(flow_dataset, 'train.lmdb'))
    grey = db.read_files('videos/v0', names, gray=True)
    assert grey.shape == (3, 24, 32, 1)
    np.testing.assert_array_equal(grey, FolderStorage(flow_dataset).read_files('videos/v0', names,
                                                                              gray=True))
    db.close()


@pytest.mark.parametrize('mode,kw', [('RGB', dict(subsampling=0)), ('RGB', dict(subsampling=2)),
                                     ('RGB', dict(progressive=True)), ('L', {}), ('CMYK', {})])
def test_fast_jpeg_decode_gives_the_pixels_pil_gives(tmp_path, mode, kw):
    """decode_image takes simplejpeg where it can: the same pixels as PIL, in RGB and grey."""
    from PIL import Image
    from utils.storage import decode_image
    rgb = np.random.default_rng(0).integers(0, 256, (30, 44, 3), dtype=np.uint8)
    path = str(tmp_path / 'f.jpg')
    Image.fromarray(rgb).convert(mode).save(path, quality=90, **kw)
    with Image.open(path) as img:
        expected_rgb, expected_grey = np.asarray(img.convert('RGB')), np.asarray(img.convert('L'))
    np.testing.assert_array_equal(decode_image(path, path), expected_rgb)
    with open(path, 'rb') as f:
        blob = f.read()
    np.testing.assert_array_equal(decode_image(blob, 'blob'), expected_rgb)
    if mode == 'L':          # grey from colour differs between decoders by rounding only
        np.testing.assert_array_equal(decode_image(path, path, gray=True)[..., 0], expected_grey)


def test_decode_errors_name_the_file(tmp_path):
    from utils.storage import decode_image
    path = tmp_path / 'f.jpg'
    path.write_bytes(b'\xff\xd8\xff\xe0 truncated')
    with pytest.raises(FrameReadError, match=str(path)):
        decode_image(str(path), str(path))
    with pytest.raises(FrameReadError, match='missing.jpg'):
        decode_image(str(tmp_path / 'missing.jpg'), str(tmp_path / 'missing.jpg'))


def test_lmdb_read_in_the_parent_then_in_loader_workers(frame_dataset):
    """A process that read the database before its DataLoader forks workers: each worker
    opens its own handle (py-lmdb refuses the inherited one's path until it is closed)."""
    from torch.utils.data import DataLoader
    _build(frame_dataset)
    ds = build_dataset(_args(frame_dataset, '--use_lmdb'), 'train', train=True)
    first = ds[0]['clip']                                 # opens the database in this process
    loader = DataLoader(ds, batch_size=2, num_workers=2)
    batches = list(loader)
    assert sum(b['clip'].shape[0] for b in batches) == 6 and all(b['bad'].sum() == 0 for b in batches)
    assert torch.equal(batches[0]['clip'][0], first)
    ds.storage.close()


def test_frames_of_different_sizes_are_an_error_naming_the_video(frame_dataset):
    from PIL import Image
    Image.new('RGB', (10, 10)).save(os.path.join(frame_dataset, 'videos', 'v0', '00002.jpg'))
    with pytest.raises(FrameReadError, match=r'videos/v0: frames of different sizes'):
        FolderStorage(frame_dataset).read('videos/v0', [1, 2])


# ----------------------------------------------------------------------------- the interface

def test_each_storage_implements_the_protocol(frame_dataset):
    _build(frame_dataset)
    folders = open_storage('folders', frame_dataset, 'train')
    db = open_storage('lmdb', frame_dataset, 'train')
    try:
        assert isinstance(folders, FolderStorage) and isinstance(db, LMDBStorage)
        assert db.path == lmdb_path(frame_dataset, 'train') == \
            os.path.join(frame_dataset, 'train.lmdb')
        for storage in (folders, db):
            assert isinstance(storage, Storage) and isinstance(storage, FrameStorage)
            assert storage.read('videos/v0', [1, 2]).shape == (2, 24, 32, 3)
            assert storage.missing(['videos/v0']) == []
            line = storage.describe()
            assert isinstance(line, str) and '\n' not in line
        assert folders.describe() == f'frame folders under {frame_dataset}'
        assert db.describe() == f'LMDB database {db.path}'
        np.testing.assert_array_equal(folders.read('videos/v3', [4, 1]),
                                      db.read('videos/v3', [4, 1]))
    finally:
        db.close()
    assert not isinstance(object(), Storage)
    with pytest.raises(ValueError, match='unknown storage .*folders, lmdb, video'):
        open_storage('tape', frame_dataset, 'train')
    assert STORAGE_KINDS == ('folders', 'lmdb', 'video')
    with pytest.raises(FileNotFoundError, match='val.lmdb'):          # not built
        open_storage('lmdb', frame_dataset, 'val')


def test_folder_missing_and_missing_vs_unreadable(frame_dataset):
    import shutil
    storage = FolderStorage(frame_dataset)
    shutil.rmtree(os.path.join(frame_dataset, 'videos', 'v2'))
    with open(os.path.join(frame_dataset, 'a_file'), 'w') as f:       # not a folder
        f.write('x')
    paths = [f'videos/v{i}' for i in range(6)] + ['a_file', 'videos/nope']
    assert storage.missing(paths) == ['videos/v2', 'a_file', 'videos/nope']
    # Gone: VideoMissingError, with the message it always had (the first frame file).
    with pytest.raises(VideoMissingError, match=r'videos/v2/00001\.jpg'):
        storage.read('videos/v2', [1, 2])
    with pytest.raises(VideoMissingError):
        storage.read_files('videos/nope', ['00001_x.jpg'], gray=True)
    # There but unreadable (a frame cut short, a frame absent): plain FrameReadError.
    with open(os.path.join(frame_dataset, 'videos', 'v1', '00004.jpg'), 'r+b') as f:
        f.truncate(200)
    for numbers in ([3, 4], [1, 99]):
        with pytest.raises(FrameReadError, match='videos/v1/') as err:
            storage.read('videos/v1', numbers)
        assert not isinstance(err.value, VideoMissingError), numbers


def test_lmdb_missing_and_missing_vs_unreadable(frame_dataset):
    lst = os.path.join(frame_dataset, 'part.txt')
    with open(os.path.join(frame_dataset, 'train.txt')) as f:
        lines = f.readlines()
    with open(lst, 'w') as f:
        f.writelines(lines[:4])                                         # v4, v5 not packed
    path = lmdb_path(frame_dataset, 'train')
    build_split(frame_dataset, lst, path, quiet=True)
    import lmdb
    env = lmdb.open(path, subdir=True)
    with env.begin(write=True) as txn:                                  # a malformed record
        txn.put(lmdb_key('videos/v3'), b'not arrow')
    env.close()
    db = LMDBStorage(path)
    try:
        assert db.missing([f'videos/v{i}' for i in range(6)]) == ['videos/v4', 'videos/v5']
        with pytest.raises(VideoMissingError, match="no record for video 'videos/v4'"):
            db.read('videos/v4', [1])
        with pytest.raises(VideoMissingError):
            db.get_record('videos/v5')
        with pytest.raises(FrameReadError, match='not a video record') as err:
            db.read('videos/v3', [1])
        assert not isinstance(err.value, VideoMissingError)
    finally:
        db.close()


def test_check_found_raises_when_none_is_there_and_warns_when_some_are(frame_dataset, caplog):
    import logging
    import shutil
    storage = open_storage('folders', frame_dataset, 'train')
    hint = missing_hint('folders', frame_dataset, 'train')
    assert '--datadir' in hint and 'tools/extract_frames.py' in hint
    paths = [f'videos/v{i}' for i in range(6)]
    with caplog.at_level(logging.WARNING):
        check_found(storage, 'train', paths, hint)                     # all there: silent
    assert not caplog.records
    shutil.rmtree(os.path.join(frame_dataset, 'videos', 'v0'))
    with caplog.at_level(logging.WARNING):
        check_found(storage, 'train', paths, hint)
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert message.startswith(storage.describe()) and '1 of 6 videos of the train list are ' \
        "missing (first: 'videos/v0'); they will be treated as unreadable" in message
    with pytest.raises(NoVideosFoundError) as err:
        check_found(storage, 'val', ['videos/x', 'videos/y'], hint)
    assert isinstance(err.value, FileNotFoundError)
    assert str(err.value) == (f'{storage.describe()}: none of the 2 videos of the val list is '
                              f"there (first: 'videos/x'); {hint}")
    check_found(storage, 'train', [], hint)                             # nothing to check


def test_check_found_on_lmdb_closes_the_handle_it_opened(frame_dataset):
    _build(frame_dataset)
    storage = open_storage('lmdb', frame_dataset, 'train')
    hint = missing_hint('lmdb', frame_dataset, 'train')
    assert hint == (f'build it with: python3 tools/build_lmdb.py --root {frame_dataset} '
                    f'--split train')
    check_found(storage, 'train', ['videos/v0', 'videos/v1'], hint)
    assert storage._env is None                  # workers open their own handle
    with pytest.raises(NoVideosFoundError, match=r'LMDB database .*train\.lmdb: none of the 1 '
                                                 r'videos .*build_lmdb\.py'):
        check_found(storage, 'train', ['videos/elsewhere'], hint)
    assert storage._env is None
    assert storage.read('videos/v0', [1]).shape == (1, 24, 32, 3)       # reopens lazily
    storage.close()
