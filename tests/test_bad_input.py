"""Users' mistakes and bad files, through the real command lines (subprocesses).

Every case must end in exit status != 0 (2 for command-line syntax, 1 otherwise), a last
stderr line ``error: ...`` that names the file or option, exactly one such line, no traceback,
and leave every file the user had (the dataset folders, the trained checkpoint) as it was; an
error of a run that has a run folder is also the last line of its log.txt. Then the endings
that are not a user's mistake: a Ctrl-C (130, how to resume), a full disk (the previous
checkpoint intact), a bug (its traceback and a line saying so), too many unreadable videos
(their paths and the error in log.txt).
"""
import glob
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import pytest

from conftest import write_dataset, write_video

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from conftest import PY  # noqa: E402  (a fast python: tests/forkserver.py)
TINY = ['--backbone_net', 'resnet', '-d', '18', '--groups', '2', '--input_size', '32', '-b', '2',
        '-j', '0', '--no_imagenet_pretrained', '--lr_scheduler', 'step', '--lr_steps', '10']
RUN = 'synthetic-rgb-resnet18-TSN-uniform-f2'


def env() -> dict:
    e = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    for k in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'SLURM_PROCID',
              'SLURM_NTASKS', 'SLURM_LOCALID', 'LOCAL_WORLD_SIZE', 'VIDEO_AR_TEST_BUG'):
        e.pop(k, None)
    return e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def sha256(path) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def snapshot(root: str) -> dict:
    """Every file under root (links not followed): size, mtime and inode, and a hash of its
    content (of the first and last MiB for the large checkpoints, whose rewrite changes inode
    and mtime anyway)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            h = hashlib.sha256()
            if not os.path.islink(path):
                with open(path, 'rb') as f:
                    h.update(f.read(1 << 20))
                    if st.st_size > 2 << 20:
                        f.seek(-(1 << 20), 2)
                    h.update(f.read())
            out[path] = (st.st_size, st.st_mtime_ns, st.st_ino, h.hexdigest())
    return out


@dataclass
class World:
    """What the user has: a dataset, variants of it, and a run trained for 1 epoch."""
    base: str
    data: str
    ckpt: str

    def variant(self, name: str, lists: dict, categories: str = 'a\nb\n') -> str:
        """A dataset folder sharing the videos, with other list files (None: left out)."""
        root = os.path.join(self.base, 'variants', name)
        os.makedirs(root)
        os.symlink(os.path.join(self.data, 'videos'), os.path.join(root, 'videos'))
        for split in ('train', 'val', 'test'):
            text = lists.get(split, open(os.path.join(self.data, f'{split}.txt')).read())
            if text is not None:
                open(os.path.join(root, f'{split}.txt'), 'w').write(text)
        open(os.path.join(root, 'categories.txt'), 'w').write(categories)
        return root

    def lines(self, split: str = 'train') -> list[str]:
        return open(os.path.join(self.data, f'{split}.txt')).read().split('\n')[:-1]


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    base = str(tmp_path_factory.mktemp('bad_input'))
    data = write_dataset(__import__('pathlib').Path(base) / 'data',
                         lambda f, n, i: write_video(f, n, seed=i), 10)
    proc = subprocess.run([PY, 'train.py', *TINY, '--dataset', 'synthetic', '--datadir', data,
                           '--logdir', os.path.join(base, 'logs'), '--epochs', '1'],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    w = World(base, data, os.path.join(base, 'logs', RUN, 'checkpoint.pth.tar'))
    w.ckpt_digest = sha256(w.ckpt)
    open(os.path.join(base, 'garbage.pth.tar'), 'wb').write(b'not a checkpoint at all\n' * 4)
    open(os.path.join(base, 'a_file'), 'w').write('in the way\n')
    open(os.path.join(base, 'k400_no_times.csv'), 'w').write('label,youtube_id\nabseiling,AAA\n')
    w.unlabelled = w.variant('unlabelled_train', {
        'train': '\n'.join(' '.join(ln.split()[:3]) for ln in w.lines()) + '\n'})
    w.unlabelled_val = w.variant('unlabelled_val', {
        'val': '\n'.join(' '.join(ln.split()[:3]) for ln in w.lines('val')) + '\n'})
    w.no_val = w.variant('no_val', {'val': None})
    w.no_test = w.variant('no_test', {'test': None})
    w.short_line = w.variant('short_line', {'train': 'videos/v0 1\n'})
    w.three_classes = w.variant('three_classes', {}, categories='a\nb\nc\n')
    os.makedirs(os.path.join(base, 'empty'))
    return w


@dataclass
class Case:
    id: str
    argv: Callable            # World -> command line after python
    names: Callable           # World -> what the error line must name
    rc: int = 1
    absent: Callable | None = None   # World -> a path that must still not exist afterwards
    ranks: int = 1                   # spawned processes that may each print the line
    marks: list = field(default_factory=list)


def train(extra):
    """train.py on the dataset with extra(World) options."""
    return lambda w: ['train.py', *TINY, '--dataset', 'synthetic', '--datadir', w.data, *extra(w)]


def on(datadir_attr, *extra):
    """train.py on a variant dataset (an attribute of World)."""
    return lambda w: ['train.py', *TINY, '--dataset', 'synthetic', '--datadir',
                      getattr(w, datadir_attr), '--epochs', '1', *extra]


def evaluate(extra):
    """test.py on the dataset with extra(World) options."""
    return lambda w: ['test.py', *TINY, '--dataset', 'synthetic', '--datadir', w.data, *extra(w)]


def dist(extra):
    """train_dist.py on the dataset with extra(World) options."""
    return lambda w: ['train_dist.py', *TINY, '--dataset', 'synthetic', '--datadir', w.data,
                      '--epochs', '1', '--dist_timeout', '20', *extra(w)]


def const(*items):
    return lambda w: list(items)


def text(s: str):
    return lambda w: s


CASES = [
    # --- train.py: data
    Case('train-datadir-missing', lambda w: ['train.py', *TINY, '--dataset', 'st2stv2',
                                             '--datadir', f'{w.base}/nope'],
         lambda w: f'{w.base}/nope'),
    Case('train-synthetic-typo-generates-nothing',
         lambda w: ['train.py', *TINY, '--dataset', 'synthetic', '--datadir', f'{w.base}/mnie'],
         lambda w: '--make_synthetic', absent=lambda w: f'{w.base}/mnie'),
    Case('train-synthetic-folder-without-lists',
         lambda w: ['train.py', *TINY, '--dataset', 'synthetic', '--datadir', f'{w.base}/empty'],
         lambda w: f'{w.base}/empty has no train.txt',
         absent=lambda w: f'{w.base}/empty/videos'),
    Case('train-val-list-missing', on('no_val'), lambda w: f'{w.no_val}/val.txt'),
    Case('train-list-malformed', on('short_line'), lambda w: f'{w.short_line}/train.txt'),
    Case('train-list-without-labels', on('unlabelled'),
         lambda w: f'{w.unlabelled}/train.txt'),
    Case('train-val-list-without-labels', on('unlabelled_val'),
         lambda w: f'{w.unlabelled_val}/val.txt'),
    Case('train-exclude-list-missing', train(lambda w: ['--exclude_list', f'{w.base}/bad.txt']),
         lambda w: f'--exclude_list {w.base}/bad.txt'),
    Case('train-lmdb-missing', train(lambda w: ['--use_lmdb', '--epochs', '1']),
         lambda w: f'{w.data}/val.lmdb'),
    Case('train-batch-larger-than-the-data', train(lambda w: ['-b', '64', '--epochs', '1']),
         lambda w: '-b 64'),
    # --- train.py: weights
    Case('train-pretrained-missing', train(lambda w: ['--pretrained', f'{w.base}/none.pth']),
         lambda w: f'--pretrained {w.base}/none.pth'),
    Case('train-pretrained-garbage', train(lambda w: ['--pretrained', f'{w.base}/garbage.pth.tar']),
         lambda w: f'{w.base}/garbage.pth.tar'),
    Case('train-resume-garbage', train(lambda w: ['--resume', f'{w.base}/garbage.pth.tar']),
         lambda w: f'{w.base}/garbage.pth.tar'),
    Case('train-resume-other-architecture',
         train(lambda w: ['--resume', w.ckpt, '-d', '34', '--epochs', '3']),
         lambda w: '--depth 18 (this run: 34)'),
    Case('train-resume-other-temporal-module',
         train(lambda w: ['--resume', w.ckpt, '--temporal_module_name', 'TAM', '--epochs', '3']),
         lambda w: '--temporal_module_name TSN (this run: TAM)'),
    Case('train-resume-nothing-left-to-train',
         train(lambda w: ['--resume', w.ckpt, '--epochs', '1']),
         lambda w: f'nothing to train: --resume {w.ckpt} has completed 1 epoch and'),
    # --- train.py: numbers and options
    Case('train-lr-negative', train(const('--lr', '-1')), text('--lr -1')),
    Case('train-workers-negative', train(const('-j', '-1')), text('-j/--workers -1')),
    Case('train-epochs-negative', train(const('--epochs', '-1')), text('--epochs -1')),
    Case('train-epochs-zero', train(const('--epochs', '0')), text('--epochs 0 trains nothing')),
    Case('train-batch-zero', train(const('-b', '0')), text('-b/--batch-size 0')),
    Case('train-dropout-above-one', train(const('--dropout', '1.5')), text('--dropout 1.5')),
    Case('train-momentum-negative', train(const('--momentum', '-0.5')), text('--momentum -0.5')),
    Case('train-max-bad-ratio-above-one', train(const('--max_bad_ratio', '2')),
         text('--max_bad_ratio 2')),
    Case('train-start-epoch-past-epochs', train(const('--start-epoch', '5', '--epochs', '3')),
         text('--start-epoch 5')),
    Case('train-lr-not-a-number', train(const('--lr', 'nan')), text('--lr nan')),
    Case('train-input-size-zero', train(const('--input_size', '0')), text('--input_size 0')),
    Case('train-unknown-option', train(const('--learning_rate', '0.1')),
         text('unrecognized arguments: --learning_rate'), rc=2),
    Case('train-bad-choice', train(const('--backbone_net', 'resnet18')),
         text('--backbone_net'), rc=2),
    Case('train-cuda-without-cuda', train(const('--device', 'cuda')), text('--device cuda'),
         marks=[pytest.mark.skipif(__import__('torch').cuda.is_available(), reason='has CUDA')]),
    Case('train-logdir-is-a-file', train(lambda w: ['--logdir', f'{w.base}/a_file/logs']),
         lambda w: f'{w.base}/a_file is a file, not a folder), --logdir'),
    # --- test.py
    Case('test-without-pretrained', evaluate(const()), text('--pretrained')),
    Case('test-pretrained-missing', evaluate(lambda w: ['--pretrained', f'{w.base}/none.pth']),
         lambda w: f'--pretrained {w.base}/none.pth'),
    Case('test-pretrained-garbage',
         evaluate(lambda w: ['--pretrained', f'{w.base}/garbage.pth.tar']),
         lambda w: f'{w.base}/garbage.pth.tar'),
    Case('test-checkpoint-of-another-class-count',
         lambda w: ['test.py', *TINY, '--dataset', 'synthetic', '--datadir', w.three_classes,
                    '--pretrained', w.ckpt], lambda w: w.ckpt),
    Case('test-test-list-missing',
         lambda w: ['test.py', *TINY, '--dataset', 'synthetic', '--datadir', w.no_test,
                    '--pretrained', w.ckpt, '--eval_split', 'test'],
         lambda w: f'{w.no_test}/test.txt'),
    Case('test-num-clips-zero', evaluate(lambda w: ['--pretrained', w.ckpt, '--num_clips', '0']),
         text('--num_clips')),
    Case('test-output-is-a-file',
         evaluate(lambda w: ['--pretrained', w.ckpt, '--output', f'{w.base}/a_file']),
         lambda w: f'{w.base}/a_file is a file, not a folder), --output'),
    # --- train_dist.py
    Case('dist-lr-negative', dist(const('--lr', '-1')), text('--lr -1')),
    Case('dist-batch-does-not-divide',
         dist(lambda w: ['--multiprocessing-distributed', '--nproc_per_node', '2', '-b', '3',
                         '--dist-url', f'tcp://127.0.0.1:{free_port()}']),
         text('-b 3 is the global batch')),
    Case('dist-rank-beyond-world-size', dist(const('--world-size', '2', '--rank', '2')),
         text('--rank 2')),
    Case('dist-nproc-zero', dist(const('--multiprocessing-distributed', '--nproc_per_node', '0')),
         text('--nproc_per_node 0')),
    Case('dist-spawned-rank-reports-unlabelled-list',
         lambda w: ['train_dist.py', *TINY, '--dataset', 'synthetic', '--datadir', w.unlabelled,
                    '--epochs', '1', '--dist_timeout', '20', '--multiprocessing-distributed',
                    '--nproc_per_node', '2', '--dist-url', f'tcp://127.0.0.1:{free_port()}'],
         lambda w: f'{w.unlabelled}/train.txt', ranks=2),
    # --- tools that take user files
    Case('export-weights-missing', lambda w: ['tools/export_weights.py', f'{w.base}/none.pth',
                                              f'{w.base}/out.safetensors'],
         lambda w: f'{w.base}/none.pth', absent=lambda w: f'{w.base}/out.safetensors'),
    Case('export-weights-garbage',
         lambda w: ['tools/export_weights.py', f'{w.base}/garbage.pth.tar',
                                              f'{w.base}/out.safetensors'],
         lambda w: f'{w.base}/garbage.pth.tar', absent=lambda w: f'{w.base}/out.safetensors'),
    Case('check-dataset-root-missing',
         lambda w: ['tools/check_dataset.py', '--root', f'{w.base}/nope'],
         lambda w: f'{w.base}/nope'),
    Case('check-dataset-split-missing',
         lambda w: ['tools/check_dataset.py', '--root', w.data, '--split', 'nosuch'],
         lambda w: f'{w.data}/nosuch.txt'),
    Case('build-lmdb-root-missing', lambda w: ['tools/build_lmdb.py', '--root', f'{w.base}/nope'],
         lambda w: f'{w.base}/nope'),
    Case('extract-frames-videos-missing',
         lambda w: ['tools/extract_frames.py', '--videos', f'{w.base}/nope', '--out',
                    f'{w.base}/frames'], lambda w: f'{w.base}/nope'),
    Case('annotations-videos-missing',
         lambda w: ['tools/annotations.py', 'folders', '--videos', f'{w.base}/nope', '--frames',
                    w.data, '--split', 'train'], lambda w: f'{w.base}/nope'),
    Case('annotations-ann-missing',
         lambda w: ['tools/annotations.py', 'kinetics400', '--ann', f'{w.base}/k400.csv',
                    '--split', 'train', '--frames', w.data], lambda w: f'{w.base}/k400.csv'),
    Case('annotations-kinetics-csv-without-its-columns',
         lambda w: ['tools/annotations.py', 'kinetics400', '--ann', f'{w.base}/k400_no_times.csv',
                    '--split', 'train', '--frames', w.data],
         lambda w: f'{w.base}/k400_no_times.csv: a kinetics400 CSV has the columns'),
    Case('report-pattern-matches-nothing',
         lambda w: ['tools/report.py', f'{w.base}/nologs/*', '--out', f'{w.base}/report'],
         lambda w: f"no run to report in '{w.base}/nologs/*'",
         absent=lambda w: f'{w.base}/report'),
    Case('build-lmdb-out-in-the-way',
         lambda w: ['tools/build_lmdb.py', '--root', w.data, '--split', 'train', '--out',
                    f'{w.base}/a_file/train.lmdb'], lambda w: f'{w.base}/a_file'),
]


def run_case(case: Case, w: World) -> dict:
    argv = case.argv(w)
    logdir = os.path.join(w.base, 'runs', case.id)
    if argv[0] in ('train.py', 'train_dist.py') and '--logdir' not in argv:
        argv += ['--logdir', logdir]
    if argv[0] == 'test.py' and '--output' not in argv:      # (not beside the checkpoint)
        argv += ['--output', logdir]
    t0 = time.time()
    proc = subprocess.run([PY, *argv], cwd=ROOT, env=env(), capture_output=True, text=True,
                          timeout=120)
    return dict(proc=proc, argv=argv, logdir=logdir, seconds=time.time() - t0)


@pytest.fixture(scope='module')
def results(world):
    """Every case, two at a time (most fail within the 1-2 s of starting Python and torch),
    with snapshots of everything the user had before and after all of them."""
    before = snapshot(world.base)
    with ThreadPoolExecutor(2) as pool:
        done = dict(zip([c.id for c in CASES], pool.map(lambda c: run_case(c, world), CASES)))
    after = snapshot(world.base)
    runs = os.path.join(world.base, 'runs')
    changed = sorted(p for p in set(before) | set(after)
                     if not p.startswith(runs + os.sep) and before.get(p) != after.get(p))
    return dict(cases=done, changed=changed, before=before, after=after)


def assert_one_error_line(proc, names: str, ranks: int = 1) -> str:
    """The last stderr line is the one error line (each of `ranks` spawned processes that
    meet the same mistake prints the same line) and names `names`; no traceback."""
    assert 'Traceback' not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert lines and lines[-1].startswith('error: '), proc.stderr
    errors = [ln for ln in lines if ln.startswith('error:')]
    assert 1 <= len(errors) <= ranks and len(set(errors)) == 1, proc.stderr
    assert names in lines[-1], (names, lines[-1])
    return lines[-1]


@pytest.mark.parametrize('case', [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_a_mistake_ends_in_one_line(case, world, results):
    r = results['cases'][case.id]
    proc = r['proc']
    assert proc.returncode == case.rc, (r['argv'], proc.stdout, proc.stderr)
    line = assert_one_error_line(proc, case.names(world), case.ranks)
    # Where the run got a folder, its log.txt ends with the same line.
    for log in glob.glob(os.path.join(r['logdir'], '*', 'log.txt')):
        assert open(log).read().rstrip('\n').endswith(line), log
    if case.absent:
        assert not os.path.exists(case.absent(world))
    assert r['seconds'] < 60


def test_nothing_the_user_had_changed(results):
    assert results['changed'] == []
    assert len(results['before']) > 80          # the dataset, its variants, the trained run


def test_the_trained_checkpoint_is_byte_identical(world, results):
    # (the snapshots hash the ends of large files; this compares all of it)
    assert sha256(world.ckpt) == world.ckpt_digest


# ----------------------------------------------------------------------------- not a mistake

def drive(code: str, argv: list, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run an entrypoint file as `python FILE` does (runpy, as __main__) after `code` has
    patched something, so that its real error path is what the test sees."""
    driver = (f'import runpy, sys\n{code}\nsys.argv = {argv!r}\n'
              f'runpy.run_path({argv[0]!r}, run_name="__main__")\n')
    return subprocess.run([PY, '-c', driver], cwd=ROOT, env=env(), capture_output=True,
                          text=True, timeout=timeout)


def test_a_bug_prints_its_traceback_and_says_it_is_a_bug(world, tmp_path):
    code = ('import utils.engine\n'
            'def broken(*a, **k):\n'
            '    return {}["lr"]           # a bug: a KeyError no user can cause\n'
            'utils.engine.make_optimizer = broken')
    proc = drive(code, ['train.py', *TINY, '--datadir', world.data, '--logdir', str(tmp_path),
                        '--epochs', '1'])
    assert proc.returncode == 1
    assert 'Traceback (most recent call last)' in proc.stderr and 'in broken' in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last == 'error: unexpected KeyError (a bug; please report it with the traceback above)'
    log = open(os.path.join(tmp_path, RUN, 'log.txt')).read()
    assert 'in broken' in log and log.rstrip().endswith(last)


@pytest.mark.parametrize('sig, code, what', [(signal.SIGINT, 130, 'interrupted'),
                                              (signal.SIGTERM, 143, 'terminated (SIGTERM)')])
def test_ctrl_c_or_sigterm_after_a_checkpoint_says_how_to_resume(world, tmp_path, sig, code, what):
    cmd = [PY, 'train.py', *TINY, '--datadir', world.data, '--logdir', str(tmp_path),
           '--epochs', '1000']
    # A shell starts a background job with SIGINT ignored, and a child inherits that (Python
    # then installs no KeyboardInterrupt handler): `pytest ... &` made this test hang. A
    # terminal's Ctrl-C reaches a foreground process, whose SIGINT is the default.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    ckpt = os.path.join(tmp_path, RUN, 'checkpoint.pth.tar')
    try:
        deadline = time.time() + 90
        while not os.path.isfile(ckpt):
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.1)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert 'Traceback' not in err
    assert err.strip().splitlines()[-1] == f'{what}; resume with --resume {ckpt}'
    log = open(os.path.join(tmp_path, RUN, 'log.txt')).read()
    assert log.rstrip().endswith(f'{what}; resume with --resume {ckpt}')
    assert not glob.glob(os.path.join(tmp_path, RUN, '.tmp-*'))
    import torch
    assert torch.load(ckpt, weights_only=False)['epoch'] >= 1       # a whole checkpoint


def test_a_full_disk_keeps_the_previous_checkpoint(world, tmp_path):
    folder = tmp_path / RUN
    shutil.copytree(os.path.dirname(world.ckpt), folder)
    ckpt = str(folder / 'checkpoint.pth.tar')
    before = sha256(ckpt)
    code = ('import errno, os\n'            # the disk fills when checkpoints are written
            'fsync = os.fsync\n'
            'def full(fd):\n'
            '    if os.readlink(f"/proc/self/fd/{fd}").endswith(".tar"):\n'
            '        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n'
            '    return fsync(fd)\n'
            'os.fsync = full')
    proc = drive(code, ['train.py', *TINY, '--datadir', world.data, '--logdir', str(tmp_path),
                        '--resume', ckpt, '--epochs', '2'])
    assert proc.returncode == 1, proc.stderr
    line = assert_one_error_line(proc, f'the disk is full writing {ckpt}')
    assert 'the previous checkpoint.pth.tar is intact' in line
    assert sha256(ckpt) == before
    assert not glob.glob(str(folder / '.tmp-*'))
    assert open(folder / 'log.txt').read().rstrip().endswith(line)


def test_too_many_unreadable_videos_stop_with_their_paths_in_the_log(world, tmp_path):
    data = tmp_path / 'data'
    shutil.copytree(world.data, data)
    for v in ('v1', 'v4'):                                 # 2 of 6 training videos
        for jpg in glob.glob(str(data / 'videos' / v / '*.jpg')):
            open(jpg, 'wb').write(b'not a jpeg')
    before = snapshot(str(data))
    proc = subprocess.run([PY, 'train.py', *TINY, '--datadir', str(data), '--logdir',
                           str(tmp_path / 'logs'), '--epochs', '1'], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    log_path = tmp_path / 'logs' / RUN / 'log.txt'
    line = assert_one_error_line(
        proc, f'exceed --max_bad_ratio 0.01; their paths are in {log_path}')
    log = open(log_path).read()
    assert 'videos/v1' in log and 'videos/v4' in log and 'unreadable' in log
    assert 'videos/v1' in proc.stderr                      # the warnings reach the console too
    assert log.rstrip().endswith(line)
    assert snapshot(str(data)) == before
