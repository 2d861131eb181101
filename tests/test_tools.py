"""tools/: frame extraction, list writing from annotations, dataset checking."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from tools import annotations, check_dataset, extract_frames
from tools.build_lmdb import build_split
from utils.errors import UserError
from utils.video_dataset import read_exclusion_list

av = pytest.importorskip('av')


def encode_video(path, codec, frames, w, h, fps=10, noise=0):
    """A small video whose frame k has brightness growing with k (plus random noise of this
    amplitude: frames that do not compress to nothing)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(0)
    with av.open(path, 'w') as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, 'yuv420p'
        for k in range(frames):
            img = np.full((h, w, 3), (20 + 10 * k) % 200, np.uint8)
            if noise:
                img += rng.integers(0, noise, img.shape, np.uint8)
            for packet in s.encode(av.VideoFrame.from_ndarray(img, format='rgb24')):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)


@pytest.fixture
def videos(tmp_path):
    root = tmp_path / 'raw'
    encode_video(str(root / 'jump' / 'a.mp4'), 'mpeg4', 12, 64, 48)
    encode_video(str(root / 'jump' / 'b.mkv'), 'libx264', 9, 48, 80)
    encode_video(str(root / 'run' / 'c.avi'), 'mpeg4', 7, 32, 32)
    (root / 'run' / 'broken.mp4').write_bytes(b'\x00\x00\x00\x18ftypmp42' + os.urandom(300))
    return str(root)


def test_extract_frames_sizes_report_and_resume(videos, tmp_path):
    out = str(tmp_path / 'frames')
    s = extract_frames.extract_all(videos, out, short_side=32, quality=90, workers=2, quiet=True)
    assert (s['ok'], s['fail'], s['skip']) == (3, 1, 0)
    counts = {'jump/a': (12, (32, 43)), 'jump/b': (9, (53, 32)), 'run/c': (7, (32, 32))}
    for rel, (n, (h, w)) in counts.items():
        folder = os.path.join(out, rel)
        assert annotations.count_frames(folder) == n
        assert sorted(f for f in os.listdir(folder) if f.endswith('.jpg')) == \
            [f'{k:05d}.jpg' for k in range(1, n + 1)]
        with Image.open(os.path.join(folder, '00001.jpg')) as img:
            assert img.size == (w, h)
        with Image.open(os.path.join(folder, f'{n:05d}.jpg')) as last, \
                Image.open(os.path.join(folder, '00001.jpg')) as first:
            assert np.asarray(last).mean() > np.asarray(first).mean() + 20    # order kept
    report = open(s['report']).read()
    assert 'run/broken.mp4\tFAILED' in report
    assert not os.path.exists(os.path.join(out, 'run', 'broken'))
    # A killed run: one video left half-done (a .part folder, no .done marker).
    os.remove(os.path.join(out, 'run', 'c', '.done'))
    os.rename(os.path.join(out, 'run', 'c'), os.path.join(out, 'run', 'c.part'))
    s2 = extract_frames.extract_all(videos, out, short_side=32, workers=1, quiet=True)
    assert (s2['skip'], s2['ok'], s2['fail']) == (2, 1, 1)
    assert annotations.count_frames(os.path.join(out, 'run', 'c')) == 7
    assert not os.path.exists(os.path.join(out, 'run', 'c.part'))
    # Lists from the generic one-folder-per-class layout.
    st = annotations.make_list('folders', out, out, 'train', videos=videos)
    assert st['written'] == 3 and st['missing'] == 1       # the broken one
    assert open(os.path.join(out, 'categories.txt')).read() == 'jump\nrun\n'
    assert sorted(open(os.path.join(out, 'train.txt')).read().split('\n')[:-1]) == [
        'jump/a 1 12 0', 'jump/b 1 9 0', 'run/c 1 7 1']
    assert extract_frames.main(['--videos', videos, '--out', out, '-q']) == 1   # still failing


def _frames(root, rel, n):
    folder = os.path.join(root, rel)
    os.makedirs(folder, exist_ok=True)
    for k in range(1, n + 1):
        Image.new('RGB', (8, 8), (k, k, k)).save(os.path.join(folder, f'{k:05d}.jpg'))


def test_annotation_formats(tmp_path):
    fr = str(tmp_path / 'frames')
    # Kinetics-400: frames under <split>/<label>/<ytid>_<start>_<end>
    _frames(fr, 'train/abseiling/AAA_000010_000020', 5)
    _frames(fr, 'train/zumba/BBB_000000_000010', 6)
    k = tmp_path / 'k400.csv'
    k.write_text('label,youtube_id,time_start,time_end,split\n'
                 'abseiling,AAA,10,20,train\nzumba,BBB,0,10,train\nzumba,CCC,0,10,train\n'
                 'abseiling,DDD,0,10,val\n')
    out = str(tmp_path / 'k')
    s = annotations.make_list('kinetics400', fr, out, 'train', ann=str(k))
    assert (s['written'], s['missing'], s['classes']) == (2, 1, 2)
    # kinetics400 lists are `;`-separated, as the original's (its paths may hold spaces).
    assert open(os.path.join(out, 'train.txt')).read() == \
        'train/abseiling/AAA_000010_000020;1;5;0\ntrain/zumba/BBB_000000_000010;1;6;1\n'
    s = annotations.make_list('kinetics400', fr, out, 'train', ann=str(k),
                              dataset='mini_kinetics400')
    assert s['list'] == os.path.join(out, 'mini_train.txt')
    # Something-Something v2: JSON + labels JSON; test JSON without labels.
    _frames(fr, '101', 4)
    _frames(fr, '102', 3)
    labels = tmp_path / 'labels.json'
    labels.write_text(json.dumps({'Pushing something from left to right': '1',
                                  'Holding something': '0'}))
    tr = tmp_path / 'ssv2_train.json'
    tr.write_text(json.dumps([
        {'id': '101', 'label': 'pushing a pen from left to right',
         'template': 'Pushing [something] from left to right', 'placeholders': ['a pen']},
        {'id': '102', 'label': 'holding a cup', 'template': 'Holding [something]',
         'placeholders': ['a cup']}]))
    out = str(tmp_path / 's2')
    annotations.make_list('ssv2', fr, out, 'train', ann=str(tr), classes_file=str(labels))
    assert open(os.path.join(out, 'train.txt')).read() == '101 1 4 1\n102 1 3 0\n'
    te = tmp_path / 'ssv2_test.json'
    te.write_text(json.dumps([{'id': '102'}]))
    annotations.make_list('ssv2', fr, out, 'test', ann=str(te), classes_file=str(labels))
    assert open(os.path.join(out, 'test.txt')).read() == '102 1 3 -1\n'     # -1: no label
    # Something-Something v1: `id;label` + one name a line.
    v1 = tmp_path / 'v1.csv'
    v1.write_text('101;Holding something\n102;Pushing something from left to right\n')
    names = tmp_path / 'v1_labels.csv'
    names.write_text('Holding something\nPushing something from left to right\n')
    out = str(tmp_path / 's1')
    annotations.make_list('ssv1', fr, out, 'val', ann=str(v1), classes_file=str(names))
    assert open(os.path.join(out, 'val.txt')).read() == '101 1 4 0\n102 1 3 1\n'
    # Moments in Time: `path,label,...` + `name,index` categories.
    _frames(fr, 'training/bathing/x1', 4)
    m = tmp_path / 'moments.csv'
    m.write_text('bathing/x1.mp4,bathing,3,0\nbathing/x2.mp4,bathing,3,0\n')
    cats = tmp_path / 'moments_categories.txt'
    cats.write_text('arresting,0\nbathing,1\n')
    out = str(tmp_path / 'm')
    s = annotations.make_list('moments', fr, out, 'train', ann=str(m), classes_file=str(cats))
    assert open(os.path.join(out, 'train.txt')).read() == 'training/bathing/x1 1 4 1\n'
    assert s['missing'] == 1 and os.path.isfile(os.path.join(out, 'train.missing.txt'))


@pytest.mark.parametrize('use_lmdb', [False, True])
def test_check_dataset_finds_each_fault(frame_dataset, tmp_path, use_lmdb):
    vids = os.path.join(frame_dataset, 'videos')
    with open(os.path.join(vids, 'v1', '00004.jpg'), 'r+b') as f:     # truncated JPEG
        f.truncate(200)
    os.remove(os.path.join(vids, 'v2', '00012.jpg'))                   # count disagrees
    os.makedirs(os.path.join(vids, 'v6'))                               # empty folder
    lst = os.path.join(frame_dataset, 'train.txt')
    with open(lst, 'a') as f:
        f.write('videos/v6 1 10 0\nvideos/gone 1 10 1\n')             # + missing video
    db = None
    if use_lmdb:
        db = str(tmp_path / 'train.lmdb')
        build_split(frame_dataset, lst, db, image_tmpl='', quiet=True)  # pack what is there
    bad = str(tmp_path / 'bad.txt')
    s = check_dataset.check_split(lst, frame_dataset, db, bad_file=bad, quiet=True)
    assert s['videos'] == 8
    assert s['unreadable frame'] == 1 and s['missing frames'] == 1 and s['missing video'] >= 1
    assert s['missing video'] + s['empty folder'] == 2
    excluded = read_exclusion_list(bad)
    assert {'videos/v1', 'videos/v2', 'videos/v6', 'videos/gone'} <= excluded
    assert not excluded & {'videos/v0', 'videos/v3', 'videos/v4', 'videos/v5'}
    if not use_lmdb:
        assert s['empty folder'] == 1
    # The CLI: exit status 1, a cleaned list.
    assert check_dataset.main(['--root', frame_dataset, '--split', 'train', '-q', '--bad', bad,
                               '--write_clean'] + (['--lmdb', db] if db else [])) == 1
    clean = open(os.path.join(frame_dataset, 'train.clean.txt')).read().split('\n')
    assert [line.split()[0] for line in clean if line] == ['videos/v0', 'videos/v3',
                                                             'videos/v4', 'videos/v5']


def test_check_dataset_classifies_by_error_type(frame_dataset, tmp_path, monkeypatch):
    """A missing video is the VideoMissingError type, whatever the message says; any other
    FrameReadError is an unreadable one."""
    from utils.storage import FrameReadError, LMDBStorage, VideoMissingError
    lst = os.path.join(frame_dataset, 'train.txt')
    db = str(tmp_path / 'train.lmdb')
    build_split(frame_dataset, lst, db, quiet=True)

    def get_record(self, path, wanted=None):
        if path == 'videos/v0':
            raise VideoMissingError('gone, said without the usual words')
        if path == 'videos/v1':
            raise FrameReadError('bad record (key missing, says the text)')
        return real(self, path, wanted)

    real = LMDBStorage.get_record
    monkeypatch.setattr(LMDBStorage, 'get_record', get_record)
    check_dataset._STORAGES.pop(db, None)
    try:
        s = check_dataset.check_split(lst, frame_dataset, db, bad_file=str(tmp_path / 'bad.txt'),
                                      quiet=True)
    finally:
        check_dataset._STORAGES.pop(db).close()
    kinds = {r.path: (kind, reason) for r, kind, reason in s['bad_entries']}
    assert kinds == {'videos/v0': ('missing video', 'gone, said without the usual words'),
                     'videos/v1': ('unreadable frame', 'bad record (key missing, says the text)')}


def test_extract_frames_reports_a_video_cut_short(tmp_path):
    """A video cut mid-file decodes without an error to fewer frames than its header gives:
    reported as truncated (summary and report, with the path), its frames kept."""
    root = tmp_path / 'raw'
    encode_video(str(root / 'jump' / 'whole clip.avi'), 'mpeg4', 40, 64, 48)
    cut = root / 'jump' / 'cut clip (1).avi'
    encode_video(str(cut), 'mpeg4', 40, 64, 48, noise=50)
    with open(cut, 'r+b') as f:
        f.truncate(os.path.getsize(cut) // 2)
    out = str(tmp_path / 'frames')
    s = extract_frames.extract_all(str(root), out, short_side=0, quiet=True)
    assert (s['ok'], s['warn'], s['fail']) == (1, 1, 0)
    report = open(s['report']).read().split('\n')
    assert report[0].startswith('#') and report[0].endswith('1 truncated, 0 failed')
    line = next(r for r in report if r.startswith('jump/cut clip (1).avi\t'))
    kept = annotations.count_frames(os.path.join(out, 'jump', 'cut clip (1)'))
    assert line.split('\t')[1] == 'WARNING' and f'ended after {kept} of the 40 frames' in line
    assert 0 < kept < 38
    assert annotations.count_frames(os.path.join(out, 'jump', 'whole clip')) == 40
    # The report can be given back as the list of videos to redo.
    assert extract_frames.main(['--videos', str(root), '--out', out, '-q', '--overwrite',
                                '--video_list', s['report']]) == 0
    assert '0 extracted, 0 already done, 1 truncated' in open(s['report']).read()
    # A resumed run (nothing to redo) still reports it.
    s = extract_frames.extract_all(str(root), out, short_side=0, quiet=True)
    assert (s['skip'], s['warn']) == (1, 1) and 'jump/cut clip (1).avi\tWARNING' in \
        open(s['report']).read()
    # The tolerance: a header count off by a frame or two is no truncation.
    assert not extract_frames.ended_early(98, 100) and extract_frames.ended_early(97, 100)
    assert not extract_frames.ended_early(5, 0)                   # no count in the header


def test_cli_help():
    for mod in (extract_frames, annotations, check_dataset):
        with pytest.raises(SystemExit) as e:
            mod.main(['--help'])
        assert e.value.code == 0


def _numbered(folder, numbers, ext='.jpg'):
    os.makedirs(folder, exist_ok=True)
    for k in numbers:
        Image.new('RGB', (8, 8), (k, k, k)).save(os.path.join(folder, f'{k:05d}{ext}'))


def test_annotations_read_the_numbering_and_names_of_the_folders(tmp_path, capsys):
    """Frames from 0 (ffmpeg -start_number 0) are listed from 0, none dropped; PNG frames are
    listed by their own names with a note naming the --image_tmpl they need."""
    raw, frames = tmp_path / 'raw', str(tmp_path / 'frames')
    for name in ('from zero', 'from one', 'png'):
        (raw / 'jump').mkdir(parents=True, exist_ok=True)
        (raw / 'jump' / f'{name}.mp4').write_bytes(b'')
    _numbered(os.path.join(frames, 'jump', 'from zero'), range(0, 10))
    _numbered(os.path.join(frames, 'jump', 'from one'), range(1, 10))
    _numbered(os.path.join(frames, 'jump', 'png'), range(1, 8), '.png')
    assert annotations.main(['folders', '--videos', str(raw), '--frames', frames,
                             '--split', 'train']) == 0
    assert sorted(open(os.path.join(frames, 'train.txt')).read().splitlines()) == [
        'jump/from one 1 9 0', 'jump/from zero 0 9 0', 'jump/png 1 7 0']
    out = capsys.readouterr().out
    assert 'note: 1 videos have frames numbered from 0: listed from 0' in out
    assert "note: 1 videos have frames named '{:05d}.png', not --image_tmpl '{:05d}.jpg': " \
           "give train.py, test.py and tools/check_dataset.py --image_tmpl '{:05d}.png'" in out


def test_stratified_split_puts_every_class_in_val_and_test(tmp_path):
    """3 classes x 6 videos at 0.2/0.2: 4 train, 1 val, 1 test of each class, disjoint,
    the same on every run and whatever order the files were made in; a class of 2 videos
    gives one to val, a class of 1 keeps it in train."""
    def make(root, order):
        for cls, n in order:
            for k in (range(n) if n > 0 else reversed(range(-n))):
                folder = os.path.join(root, 'frames', cls, f'clip {k} é')
                _numbered(folder, [1])
                open(os.path.join(folder, '.done'), 'w').write('12 12\n')
                os.makedirs(os.path.join(root, 'raw', cls), exist_ok=True)
                open(os.path.join(root, 'raw', cls, f'clip {k} é.mp4'), 'wb').close()

    def lists(root):
        assert annotations.main(['folders', '--videos', os.path.join(root, 'raw'), '--frames',
                                 os.path.join(root, 'frames'), '--split', 'train', 'val', 'test',
                                 '--val_fraction', '0.2', '--test_fraction', '0.2', '-q']) == 0
        return {split: [ln.rsplit(' ', 3) for ln in open(os.path.join(
            root, 'frames', f'{split}.txt'), encoding='utf-8').read().splitlines()]
            for split in ('train', 'val', 'test')}

    classes = [('waving hands', 6), ('sauter à la corde', 6), ('跳舞 dance', 6), ('pair', 2),
               ('solo', 1)]
    make(str(tmp_path / 'a'), classes)
    a = lists(str(tmp_path / 'a'))
    make(str(tmp_path / 'b'), [(c, -n) for c, n in reversed(classes)])  # made the other way
    assert lists(str(tmp_path / 'b')) == a == lists(str(tmp_path / 'a'))
    names = open(tmp_path / 'a' / 'frames' / 'categories.txt', encoding='utf-8').read().split('\n')
    count = {split: {names[c]: sum(int(r[3]) == c for r in rows) for c in range(5)}
             for split, rows in a.items()}
    for cls in ('waving hands', 'sauter à la corde', '跳舞 dance'):
        assert (count['train'][cls], count['val'][cls], count['test'][cls]) == (4, 1, 1)
    assert (count['train']['pair'], count['val']['pair'], count['test']['pair']) == (1, 1, 0)
    assert (count['train']['solo'], count['val']['solo'], count['test']['solo']) == (1, 0, 0)
    paths = [r[0] for rows in a.values() for r in rows]
    assert len(paths) == len(set(paths)) == 21 and all(r[1:3] == ['1', '12'] for r in a['val'])
    assert annotations.split_counts(18, 0.2, 0.2) == (4, 4)       # 18 videos: 10 / 4 / 4


def test_kinetics_csv_without_its_columns_is_one_line(tmp_path):
    csv_file = tmp_path / 'k400.csv'
    csv_file.write_text('label,youtube_id\nabseiling,AAA\n')
    with pytest.raises(UserError) as err:
        annotations.make_list('kinetics400', str(tmp_path), str(tmp_path), 'train',
                              ann=str(csv_file))
    assert str(csv_file) in err.value.message and 'without time_start, time_end' in \
        err.value.message and '\n' not in err.value.message
    bad_json = tmp_path / 'ssv2.json'
    bad_json.write_text('[{"label": "x"}]')
    with pytest.raises(UserError, match=r"ssv2\.json: not a ssv2 annotation file \(no field 'id'"):
        annotations.make_list('ssv2', str(tmp_path), str(tmp_path), 'train', ann=str(bad_json))
