"""What attackers and crashing machines bring: crafted and damaged files, a second run in the
same folder, planted links, a full disk (README: Errors and safety).

Where the failure used to kill the process (a segfault, memory exhausted), the case runs the
real entrypoint in a subprocess under a memory limit (RLIMIT_AS), so that an allocation a
crafted header asks for fails at once instead of swapping: the process must end with one
`error:` line or a counted skip, never a signal, and leave the victim's files as they were.
"""
import errno
import glob
import hashlib
import io
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import encode_moving_square, write_dataset, write_video
from conftest import PY  # noqa: E402  (a fast python: tests/forkserver.py)

import test as test_entry
import train as train_entry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--backbone_net', 'resnet', '-d', '18', '--groups', '2', '--input_size', '32', '-b', '2',
        '-j', '0', '--no_imagenet_pretrained', '--lr_scheduler', 'step', '--lr_steps', '10',
        '--epochs', '1']
RUN = 'synthetic-rgb-resnet18-TSN-uniform-f2'
MEMORY_LIMIT = 3 << 30          # a process that imports torch peaks at ~1 GiB of address space


def run(argv: list, timeout: int = 120) -> subprocess.CompletedProcess:
    """An entrypoint in a subprocess, one thread, under MEMORY_LIMIT."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    return subprocess.run([PY, *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limit)


def one_error(proc, *names) -> str:
    """The process ended by exit (no signal) with one `error:` line last, naming `names`."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert 'Traceback' not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith('error: '), proc.stderr
    assert sum(ln.startswith('error:') for ln in lines) == 1, proc.stderr
    for name in names:
        assert name in lines[-1], (name, lines[-1])
    return lines[-1]


def digest(folder: str) -> dict:
    """{relative path: sha256} of every file under `folder` (links as their target path)."""
    out = {}
    for where, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(where, name)
            rel = os.path.relpath(path, folder)
            if os.path.islink(path):
                out[rel] = 'link to ' + os.readlink(path)
            else:
                with open(path, 'rb') as f:
                    out[rel] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A dataset of 6 videos and a run trained on it for one epoch (in this process)."""
    base = tmp_path_factory.mktemp('hardening')
    data = write_dataset(base / 'data', lambda f, n, i: write_video(f, n, seed=i), 10)
    result = train_entry.main(['--dataset', 'synthetic', '--datadir', data,
                               '--logdir', str(base / 'logs'), *TINY])
    return dict(base=str(base), data=data, folder=result['folder'],
                ckpt=os.path.join(result['folder'], 'checkpoint.pth.tar'))


def copy_data(trained, dest: str) -> str:
    shutil.copytree(trained['data'], dest)
    return dest


# ----------------------------------------------------------------------------- 1. paths from lists

@pytest.fixture
def videos(tmp_path):
    """Videos under raw/, and a victim's folder elsewhere holding a video and a folder of the
    video's name with a file in it."""
    raw, victim = tmp_path / 'raw', tmp_path / 'victim'
    encode_moving_square(str(raw / 'a' / 'one.mp4'), 'mpeg4', 6, 1, 0)
    encode_moving_square(str(victim / 'clip.mp4'), 'mpeg4', 6, 1, 1)
    (victim / 'clip').mkdir()
    (victim / 'clip' / 'important.txt').write_text('keep me\n')
    return raw, victim


def extract(raw, out, *extra) -> subprocess.CompletedProcess:
    return run(['tools/extract_frames.py', '--videos', str(raw), '--out', str(out), '-q',
                *map(str, extra)])


def test_extraction_lists_cannot_reach_outside_videos(videos, tmp_path):
    raw, victim = videos
    before = digest(str(victim))
    for entry in (str(victim / 'clip.mp4'), '../victim/clip.mp4', 'a/../../victim/clip.mp4'):
        listed = tmp_path / 'list.txt'
        listed.write_text(f'a/one.mp4\n{entry}\n')
        one_error(extract(raw, victim, '--video_list', listed), f'{listed}:2', repr(entry),
                  '--allow_outside_root')
        assert digest(str(victim)) == before
    # An extraction report passed back as --video_list is held to the same rule.
    report = tmp_path / 'extract_report.txt'
    report.write_text(f'# summary\n{victim / "clip.mp4"}\tFAILED\tboom\n')
    one_error(extract(raw, tmp_path / 'frames', '--video_list', report), f'{report}:2')
    assert digest(str(victim)) == before


def test_extraction_outside_videos_on_purpose_writes_under_out_only(videos, tmp_path):
    raw, victim = videos
    before = digest(str(victim))
    listed = tmp_path / 'list.txt'
    listed.write_text(f'{victim / "clip.mp4"}\n')
    out = tmp_path / 'frames'
    proc = extract(raw, out, '--video_list', listed, '--allow_outside_root')
    assert proc.returncode == 0, proc.stderr
    inside = out / str(victim).lstrip('/') / 'clip'
    assert len(glob.glob(str(inside / '*.jpg'))) == 6
    assert digest(str(victim)) == before


def test_extraction_never_deletes_a_folder_it_did_not_write(videos, tmp_path):
    raw, _ = videos
    out = tmp_path / 'frames'
    for name in ('one', 'one.part'):                  # the frame folder and its temporary
        (out / 'a' / name).mkdir(parents=True)
        (out / 'a' / name / 'mine.txt').write_text('mine\n')
    before = digest(str(out))
    proc = extract(raw, out, '--overwrite')
    assert proc.returncode == 1 and 'holds other files than extracted frames' in proc.stdout + \
        proc.stderr
    assert digest(str(out)) == {**before, 'extract_report.txt': digest(str(out))[
        'extract_report.txt']}
    shutil.rmtree(out / 'a' / 'one.part')
    shutil.rmtree(out / 'a' / 'one')
    assert extract(raw, out).returncode == 0            # its own folders it replaces
    assert extract(raw, out, '--overwrite').returncode == 0
    assert len(glob.glob(str(out / 'a' / 'one' / '*.jpg'))) == 6


def test_training_lists_stay_under_datadir(trained, tmp_path):
    data = copy_data(trained, str(tmp_path / 'data'))
    lines = open(os.path.join(data, 'train.txt')).read().splitlines()
    outside = os.path.join(trained['data'], 'videos', 'v0')
    lines[2] = f'{outside} 1 10 0'
    open(os.path.join(data, 'train.txt'), 'w').write('\n'.join(lines) + '\n')
    argv = ['--dataset', 'synthetic', '--datadir', data, '--logdir', str(tmp_path / 'l'), *TINY]
    with pytest.raises(SystemExit, match=f'train.txt:3: the path .* leaves --datadir {data}.*'
                                         f'--allow_outside_root'):
        train_entry.main(argv)
    assert train_entry.main(argv + ['--allow_outside_root'])['count'] == 6


# ----------------------------------------------------------------------------- 2. LMDB records

def crafted_records(record: bytes) -> dict:
    """A valid record changed as an attacker would: offsets past the data, a negative offset,
    garbage, a record of another schema."""
    import pyarrow as pa
    table = pa.ipc.open_stream(pa.py_buffer(record)).read_all()
    offsets = table.column('data').chunk(0).buffers()[1].to_pybytes()
    n = len(offsets) // 4
    at = record.find(offsets)
    assert at > 0 and n > 2
    past = bytearray(record)
    past[at + 4 * (n - 1):at + 4 * n] = struct.pack('<i', 1 << 30)
    negative = bytearray(record)
    negative[at + 4:at + 8] = struct.pack('<i', -(1 << 20))
    other = pa.ipc.new_stream(sink := pa.BufferOutputStream(), pa.schema([('x', pa.int64())]))
    other.write_batch(pa.record_batch([pa.array([1])], names=['x']))
    other.close()
    return {'videos/v1': bytes(past), 'videos/v2': bytes(negative),
            'videos/v3': b'\x00' * 64 + record[64:], 'videos/v4': sink.getvalue().to_pybytes()}


@pytest.fixture(scope='module')
def crafted_lmdb(trained, tmp_path_factory):
    """The dataset with train/val/test LMDB databases whose records of v1-v4 are crafted."""
    from tools.build_lmdb import build_split
    from utils.storage import lmdb_key, open_lmdb
    data = copy_data(trained, str(tmp_path_factory.mktemp('lmdb') / 'data'))
    for split in ('train', 'val', 'test'):
        db = os.path.join(data, f'{split}.lmdb')
        build_split(data, os.path.join(data, f'{split}.txt'), db, quiet=True)
        env = open_lmdb(db, readonly=False)
        with env.begin(write=True) as txn:
            for path, value in crafted_records(txn.get(lmdb_key('videos/v0'))).items():
                txn.put(lmdb_key(path), value)
        env.close()
    return data


def test_crafted_lmdb_records_are_found_not_fatal(crafted_lmdb):
    proc = run(['tools/check_dataset.py', '--root', crafted_lmdb, '--split', 'train',
                '--use_lmdb', '-q'])
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr
    bad = open(os.path.join(crafted_lmdb, 'train.bad.txt')).read()
    for v in ('v1', 'v2', 'v3', 'v4'):
        assert f'videos/{v} ' in bad, bad
    assert 'videos/v0 ' not in bad and 'videos/v5 ' not in bad


def test_crafted_lmdb_records_are_unreadable_videos_in_test_py(crafted_lmdb, trained):
    proc = run(['test.py', '--pretrained', trained['ckpt'], '--datadir', crafted_lmdb,
                '--use_lmdb', '-j', '0', '--output', os.path.join(crafted_lmdb, 'out')])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '4 unreadable videos were skipped' in proc.stdout, proc.stdout


# ----------------------------------------------------------------------------- 3. bombs

def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) declares width x height."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buffer, 'JPEG')
    data = bytearray(buffer.getvalue())
    sof = data.find(b'\xff\xc0')
    data[sof + 5:sof + 9] = struct.pack('>HH', height, width)
    return bytes(data)


def png_declaring(width: int, height: int) -> bytes:
    """A PNG header (IHDR) declaring width x height grey pixels, then one empty IDAT."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack('>I', len(body)) + kind + body + struct.pack(
            '>I', zlib.crc32(kind + body))
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b''))
            + chunk(b'IEND', b''))


def test_image_bombs_are_unreadable_frames_before_any_allocation():
    from utils.storage import TooLargeError, decode_images
    for data in (jpeg_declaring(60000, 60000), png_declaring(14000, 14000)):
        with pytest.raises(TooLargeError, match='more than the limit of 35389440 '
                                                r'\(--max_pixels'):
            decode_images([data], ['bomb.jpg'])
    frame = jpeg_declaring(9000, 9000)
    with pytest.raises(TooLargeError, match='9000x9000'):
        decode_images([frame], ['big.jpg'], max_pixels=8192 * 4320)


def test_bombs_in_a_training_video_are_skipped_and_counted(trained, tmp_path):
    data = copy_data(trained, str(tmp_path / 'data'))
    frames = sorted(glob.glob(os.path.join(data, 'videos', 'v1', '*.jpg')))
    for path in frames[:4]:
        open(path, 'wb').write(jpeg_declaring(60000, 60000))
    for path in frames[4:]:
        open(path, 'wb').write(png_declaring(14000, 14000))     # a PNG named .jpg
    proc = run(['train.py', '--dataset', 'synthetic', '--datadir', data, '--logdir',
                str(tmp_path / 'logs'), *TINY, '--max_bad_ratio', '0.5'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'videos/v1' in proc.stderr and '60000x60000 pixels is more than the limit' in \
        proc.stderr, proc.stderr[-3000:]
    assert '1 unreadable replaced' in proc.stdout or '(1 unreadable videos skipped' in proc.stdout


def test_a_zip_bomb_checkpoint_is_refused_before_inflating(tmp_path):
    bomb = tmp_path / 'bomb.pth'
    with zipfile.ZipFile(bomb, 'w', zipfile.ZIP_DEFLATED) as z:
        z.writestr('bomb/data.pkl', b'\x80\x02}q\x00.')
        z.writestr('bomb/data/0', bytes(1 << 28))           # 256 MiB of zeros in 250 KB
    assert bomb.stat().st_size < 1 << 20
    one_error(run(['test.py', '--pretrained', str(bomb), '--output', str(tmp_path / 'o')]),
              f'{bomb} declares', 'zip bomb')


# ----------------------------------------------------------------------------- 4. one folder, one run

def test_a_second_run_on_a_held_folder_is_refused(trained, tmp_path):
    from utils.run_folder import FolderLock
    logdir = tmp_path / 'logs'
    shutil.copytree(trained['folder'], logdir / RUN)
    before = digest(str(logdir))
    lock = FolderLock(str(logdir / RUN))
    assert lock.acquire()
    try:
        for resume in ([], ['--resume', 'auto', '--epochs', '2']):
            line = one_error(run(['train.py', '--dataset', 'synthetic', '--datadir',
                                  trained['data'], '--logdir', str(logdir), *TINY, *resume]),
                             f'the run folder {logdir / RUN} is in use by another run',
                             f'pid {os.getpid()}')
            assert 'another --logdir' in line
    finally:
        lock.release()
    after = digest(str(logdir))
    assert {k: v for k, v in after.items() if k != f'{RUN}/.lock'} == \
        {k: v for k, v in before.items() if k != f'{RUN}/.lock'}


def test_a_new_run_never_replaces_an_earlier_runs_files(trained, tmp_path):
    logdir = tmp_path / 'logs'
    shutil.copytree(trained['folder'], logdir / RUN)
    before = digest(str(logdir / RUN))
    other = copy_data(trained, str(tmp_path / 'other'))       # another dataset, same options
    result = train_entry.main(['--dataset', 'synthetic', '--datadir', other, '--logdir',
                               str(logdir), *TINY])
    assert result['folder'] == str(logdir / f'{RUN}-2')
    assert digest(str(logdir / RUN)) == before
    log = open(logdir / f'{RUN}-2' / 'log.txt').read()
    assert f'{logdir / RUN} holds an earlier run, which this run leaves as it is' in log
    assert json.load(open(logdir / f'{RUN}-2' / 'run.json'))['name'] == f'{RUN}-2'
    # --resume auto continues the earlier run in its own folder
    again = train_entry.main(['--dataset', 'synthetic', '--datadir', other, '--logdir',
                              str(logdir), *TINY[:-1], '2', '--resume', 'auto'])
    assert again['folder'] == str(logdir / RUN)


# ----------------------------------------------------------------------------- 5. damaged files

def test_a_flipped_bit_in_a_checkpoint_is_refused(trained, tmp_path):
    damaged = tmp_path / 'checkpoint.pth.tar'
    data = bytearray(open(trained['ckpt'], 'rb').read())
    with zipfile.ZipFile(trained['ckpt']) as z:       # a byte inside the largest tensor
        member = max(z.infolist(), key=lambda m: m.file_size)
        start = member.header_offset + 30 + len(member.filename.encode()) + len(member.extra)
    data[start + member.file_size // 2] ^= 0x10
    damaged.write_bytes(bytes(data))
    with pytest.raises(SystemExit, match=f'{damaged} is damaged .Bad CRC-32 for file '
                                         f"'{member.filename}'"):
        test_entry.main(['--pretrained', str(damaged), '--output', str(tmp_path / 'o')])


def test_flipped_bits_in_an_lmdb_database_never_give_other_pixels(trained, tmp_path):
    """Every single-bit flip in the records' pages (a deterministic sample of 40) reads as the
    same frames or as an unreadable video, never as other pixels."""
    from tools.build_lmdb import build_split
    from utils.storage import DamagedDatabaseError, FrameReadError, LMDBStorage
    db = str(tmp_path / 'train.lmdb')
    build_split(trained['data'], os.path.join(trained['data'], 'train.txt'), db, quiet=True)
    videos = [(f'videos/v{i}', list(range(1, 11 + i))) for i in range(6)]
    storage = LMDBStorage(db)
    clean = [storage.read(v, n) for v, n in videos]
    storage.close()
    original = open(os.path.join(db, 'data.mdb'), 'rb').read()
    rng = np.random.default_rng(0)
    seen = {'same': 0, 'unreadable': 0}
    for position in rng.integers(8192, len(original), 40):      # past the two meta pages
        flipped = bytearray(original)
        flipped[position] ^= 1 << int(rng.integers(8))
        open(os.path.join(db, 'data.mdb'), 'wb').write(flipped)
        try:
            storage = LMDBStorage(db)
        except DamagedDatabaseError:
            seen['unreadable'] += 1
            continue
        for (video, numbers), frames in zip(videos, clean):
            try:
                got = storage.read(video, numbers)
            except FrameReadError:
                seen['unreadable'] += 1
                continue
            assert np.array_equal(got, frames), (position, video)
            seen['same'] += 1
        storage.close()
    assert seen['unreadable'] > 0


# ----------------------------------------------------------------------------- 6. resume

@pytest.fixture
def fresh(trained):
    """A run's fresh model, optimizer and scheduler, and its checkpoint loaded."""
    from opts import arg_parser, parse_config
    from utils.engine import build, make_optimizer, make_scheduler
    cfg, _, _ = parse_config(arg_parser(), ['--datadir', trained['data'], *TINY])
    cfg = cfg.with_classes(2)
    model, _ = build(cfg)
    optimizer = make_optimizer(model, cfg.optim)
    return dict(model=model, optimizer=optimizer, scheduler=make_scheduler(optimizer, cfg.optim),
                ckpt=torch.load(trained['ckpt'], weights_only=False))


@pytest.mark.parametrize('edit, key', [
    (lambda c: c['scheduler'].update(get_last_lr=None), 'scheduler.get_last_lr is an unknown key'),
    (lambda c: c['scheduler'].pop('step_size'), 'scheduler.step_size is missing'),
    (lambda c: c['scheduler'].update(last_epoch='1'), 'scheduler.last_epoch'),
    (lambda c: c.update(iteration=10 ** 9, progress=None), 'progress is not a mid-epoch state'),
    (lambda c: c.update(epoch=-1), 'epoch = -1'),
    (lambda c: c.update(best_top1=float('nan')), 'best_top1 = nan'),
    (lambda c: c['rng'].update(torch=torch.zeros(7, dtype=torch.uint8)), 'rng.torch is not'),
    (lambda c: c['rng'].update(numpy=('MT19937', torch.zeros(3), 0, 0, 0.0)), 'rng.numpy'),
    (lambda c: c['optimizer']['param_groups'][0].update(lr=1e4),
     "optimizer.param_groups[0].lr = 10000 is not the schedule's lr 0.01"),
    (lambda c: c['optimizer']['param_groups'][0].update(momentum=float('inf')),
     'optimizer.param_groups[0].momentum = inf is not finite'),
    (lambda c: c['optimizer']['state'].update({0: {'momentum_buffer': torch.zeros(3)}}),
     'optimizer.state[0].momentum_buffer does not fit parameter 0'),
    (lambda c: c.update(extra=1), 'extra is an unknown key'),
])
def test_resume_refuses_states_this_toolkit_does_not_write(fresh, tmp_path, edit, key):
    from utils.checkpoint import resume
    ckpt = fresh['ckpt']
    edit(ckpt)
    path = str(tmp_path / 'edited.pth.tar')
    torch.save(ckpt, path)
    weights = {k: v.clone() for k, v in fresh['model'].state_dict().items()}
    with pytest.raises(SystemExit, match=f'--resume {path}: {key}'.replace('[', r'\[')
                       .replace(']', r'\]').replace('(', r'\(')):
        resume(path, fresh['model'], fresh['optimizer'], fresh['scheduler'], None)
    for k, v in fresh['model'].state_dict().items():        # nothing was restored
        assert torch.equal(v, weights[k]), k


def test_resume_of_an_iteration_past_the_epoch_is_one_line(trained, tmp_path):
    logdir = tmp_path / 'logs'
    shutil.copytree(trained['folder'], logdir / RUN)
    ckpt = torch.load(trained['ckpt'], weights_only=False)
    ckpt.update(epoch=0, iteration=10 ** 9,
                progress=dict(totals=[dict.fromkeys(('loss_sum', 'correct1', 'correct5', 'count',
                                                     'bad', 'seen'), 0.0)],
                              world_size=1, batch_size=2))
    torch.save(ckpt, logdir / RUN / 'checkpoint.pth.tar')
    with pytest.raises(SystemExit, match='iteration 1000000000 is past the 3 batches'):
        train_entry.main(['--dataset', 'synthetic', '--datadir', trained['data'], '--logdir',
                          str(logdir), *TINY, '--resume', 'auto'])


def test_a_diverged_loss_names_the_lr_in_use(trained, tmp_path, monkeypatch):
    import utils.engine as engine

    def diverged(*args, **kwargs):
        raise engine.LossNotFinite(float('nan'))
    monkeypatch.setattr(engine, 'train_step', diverged)
    # 3 batches an epoch warmed up over 2 epochs: the first step takes 1/6 of the lr
    with pytest.raises(SystemExit, match=r'diverged\) at lr 0.00166667 \(--lr 0.01\)'):
        train_entry.main(['--dataset', 'synthetic', '--datadir', trained['data'], '--logdir',
                          str(tmp_path), *TINY, '--warmup_epochs', '2'])


# ----------------------------------------------------------------------------- 7. planted links

def test_links_planted_in_a_run_folder_are_never_followed(trained, tmp_path):
    victim = tmp_path / 'victim.txt'
    victim.write_text('precious\n')
    logdir = tmp_path / 'logs'
    shutil.copytree(trained['folder'], logdir / RUN)
    for name in ('run.json', 'model_best.pth.tar'):             # replaced, not written through
        os.remove(logdir / RUN / name)
        os.symlink(victim, logdir / RUN / name)
    argv = ['--dataset', 'synthetic', '--datadir', trained['data'], '--logdir', str(logdir),
            *TINY[:-1], '2', '--resume', 'auto']
    train_entry.main(argv)
    assert victim.read_text() == 'precious\n'
    assert not os.path.islink(logdir / RUN / 'run.json')
    os.remove(logdir / RUN / 'log.txt')                        # appended: refused
    os.symlink(victim, logdir / RUN / 'log.txt')
    with pytest.raises(SystemExit, match='log.txt is a symbolic link'):
        train_entry.main(argv[:-3] + ['3', '--resume', 'auto'])
    assert victim.read_text() == 'precious\n'


def test_links_planted_among_test_outputs_are_replaced(trained, tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    victim = tmp_path / 'victim.txt'
    victim.write_text('precious\n')
    tag = 'val_1clips_1crops'
    names = [f'{tag}_{s}' for s in ('scores.npy', 'predictions.csv', 'per_class.csv',
                                    'confusion.png', 'confused_pairs.txt', 'result.json')]
    for name in names:
        os.symlink(victim, out / name)
    test_entry.main(['--pretrained', trained['ckpt'], '--datadir', trained['data'], '-j', '0',
                     '--output', str(out)])
    assert victim.read_text() == 'precious\n'
    for name in names:
        assert os.path.isfile(out / name) and not os.path.islink(out / name), name


# ----------------------------------------------------------------------------- 8. leaks and gaps

def test_stale_temporaries_are_removed_and_none_is_left(trained, tmp_path):
    logdir = tmp_path / 'logs'
    shutil.copytree(trained['folder'], logdir / RUN)
    dead = 4194304 + 7                                         # above any pid_max: no process
    (logdir / RUN / f'.tmp-{dead}-abc.tar').write_bytes(b'half a checkpoint')
    (logdir / RUN / '.tmp-old.tar').write_bytes(b'an older version\'s temporary')
    alive = logdir / RUN / f'.tmp-{os.getppid()}-xyz.tar'     # a live writer's: kept
    alive.write_bytes(b'being written')
    train_entry.main(['--dataset', 'synthetic', '--datadir', trained['data'], '--logdir',
                      str(logdir), *TINY[:-1], '2', '--resume', 'auto'])
    assert [os.path.basename(p) for p in glob.glob(str(logdir / RUN / '.tmp-*'))] == \
        [alive.name]
    assert 'removed 2 temporary files of an interrupted checkpoint write' in \
        open(logdir / RUN / 'log.txt').read()


def test_model_best_is_written_before_the_checkpoint(tmp_path, monkeypatch):
    """A crash between the two renames keeps the best weights: model_best is written first."""
    import utils.checkpoint as checkpoint
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def save(epoch):
        checkpoint.save_checkpoint(str(tmp_path), epoch=epoch, arch='x', model=model,
                                   optimizer=optimizer, scheduler=None, scaler=None,
                                   best_top1=float(epoch), is_best=True, options={})
    save(1)
    write = checkpoint.atomic_write

    def killed_at_the_checkpoint(path, data, todo):
        if path.endswith(checkpoint.CHECKPOINT):
            raise KeyboardInterrupt
        write(path, data, todo)
    monkeypatch.setattr(checkpoint, 'atomic_write', killed_at_the_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        save(2)
    assert torch.load(tmp_path / 'model_best.pth.tar', weights_only=False)['epoch'] == 2
    assert torch.load(tmp_path / 'checkpoint.pth.tar', weights_only=False)['epoch'] == 1


def test_a_full_disk_before_any_checkpoint_says_to_run_again(tmp_path, monkeypatch):
    import utils.files as files
    from utils.checkpoint import save_checkpoint

    def full(fd):
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(files.os, 'fsync', full)
    model = torch.nn.Linear(2, 2)
    with pytest.raises(SystemExit, match='nothing was written; free some space or choose '
                                         'another --logdir, then run the command again'):
        save_checkpoint(str(tmp_path), epoch=1, arch='x', model=model,
                        optimizer=torch.optim.SGD(model.parameters(), lr=0.1), scheduler=None,
                        scaler=None, best_top1=0.0, is_best=True, options={})
    assert os.listdir(tmp_path) == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A 3 MiB file system (tmpfs; needs root): skipped where it cannot be mounted."""
    mount = tmp_path / 'disk'
    mount.mkdir()
    if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', str(mount)],
                      capture_output=True).returncode:
        pytest.skip('cannot mount a tmpfs here (needs root)')
    try:
        yield mount
    finally:
        subprocess.run(['umount', '-l', str(mount)], capture_output=True)


def test_a_full_disk_is_named_by_the_data_tools(trained, tiny_disk, tmp_path):
    raw = tmp_path / 'raw'
    for i in range(3):
        encode_moving_square(str(raw / 'c' / f'v{i}.mp4'), 'mpeg4', 60, 1, i, h=240, w=320)
    line = one_error(run(['tools/extract_frames.py', '--videos', str(raw), '--out',
                          str(tiny_disk / 'frames'), '--quality', '95', '-q']),
                     'the disk is full')
    assert 'Traceback' not in line
    for path in glob.glob(str(tiny_disk / '*')):
        shutil.rmtree(path)
    big = copy_data(trained, str(tmp_path / 'big'))
    for jpg in glob.glob(os.path.join(big, 'videos', '*', '*.jpg')):
        open(jpg, 'wb').write(os.urandom(200_000))           # 13 MB in all, unpackable here
    one_error(run(['tools/build_lmdb.py', '--root', big, '--split', 'train', '--out',
                   str(tiny_disk), '-q']), 'the disk is full writing', 'run the same command')


def test_options_in_a_files_metadata_are_bounded(trained, tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.torch import save_file
    from tools import predict
    from tools.export_weights import export
    good = str(tmp_path / 'model.safetensors')
    export(trained['ckpt'], good, [])
    with safe_open(good, framework='pt') as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    args = json.loads(meta['args'])
    for name, value, said in (
            ('classes', dict(args, num_classes=10 ** 7), 'num_classes 10000000 is not a number'),
            ('dataset', dict(args, dataset='nope'), "--dataset 'nope' is not valid"),
            ('groups', dict(args, groups=-3), 'its stored options are not valid'),
            ('depth', dict(args, depth=[18]), "-depth [18] is not valid")):
        path = str(tmp_path / f'{name}.safetensors')
        save_file(tensors, path, metadata=dict(meta, args=json.dumps(value)))
        assert predict.main([str(trained['data']), '--pretrained', path]) == 1
        err = capsys.readouterr().err
        assert said in err and 'Traceback' not in err, err
    odd = str(tmp_path / 'odd.safetensors')                    # args that are no dict: none
    save_file(tensors, odd, metadata=dict(meta, args=json.dumps([1, 2])))
    with pytest.raises(SystemExit, match='cannot tell the number of classes'):
        predict.load_model(odd, [], False, None)


def test_csv_cells_are_never_formulas(trained, tmp_path):
    from utils.files import csv_cell
    assert [csv_cell(t) for t in ('=1+1', '+x', '-y', '@z', 'a=b', 'plain')] == \
        ["'=1+1", "'+x", "'-y", "'@z", 'a=b', 'plain']
    data = copy_data(trained, str(tmp_path / 'data'))
    open(os.path.join(data, 'categories.txt'), 'w').write('=HYPERLINK("x")\n@SUM(A1)\n')
    out = tmp_path / 'out'
    test_entry.main(['--pretrained', trained['ckpt'], '--datadir', data, '-j', '0', '--output',
                     str(out)])
    for name in ('val_1clips_1crops_predictions.csv', 'val_1clips_1crops_per_class.csv'):
        text = open(out / name).read()
        assert '=HYPERLINK' in text and ',=' not in text and ',@' not in text, text
