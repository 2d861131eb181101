"""Preemption: a run killed with SIGKILL mid-epoch and started again with the same command
(--resume auto, or no --resume under torchrun's restarts) ends with exactly the weights of a run
that was never interrupted, for train.py and for train_dist.py under torchrun."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import tiny_synthetic
from conftest import PY  # noqa: E402  (a fast python: tests/forkserver.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = 'synthetic-rgb-resnet18-TSN-uniform-f4'


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """16 training videos: 8 iterations an epoch at -b 2."""
    root = str(tmp_path_factory.mktemp('resume') / 'data')
    tiny_synthetic(root, videos_per_class=4)
    return root


def env(**extra) -> dict:
    e = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1', **extra)
    for k in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT',
              'TORCHELASTIC_RESTART_COUNT', 'SLURM_RESTART_COUNT', 'SLURM_PROCID', 'SLURM_NTASKS'):
        e.pop(k, None)
    return e


def options(data, logdir, *extra):
    return ['--dataset', 'synthetic', '--datadir', data, '--groups', '4', '--input_size', '32',
            '-b', '2', '--epochs', '2', '--lr', '0.01', '--lr_scheduler', 'step', '--lr_steps',
            '1', '--no_imagenet_pretrained', '--save_every', '3', '--logdir', str(logdir),
            '--print-freq', '1', *extra]


def weights(logdir) -> dict:
    ckpt = torch.load(os.path.join(logdir, RUN, 'checkpoint.pth.tar'), map_location='cpu',
                      weights_only=True)
    assert ckpt['epoch'] == 2 and ckpt['iteration'] == 0
    return ckpt['state_dict']


def mid_epoch_checkpoint(logdir) -> bool:
    path = os.path.join(logdir, RUN, 'checkpoint.pth.tar')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)['iteration'] > 0
    except (OSError, RuntimeError, EOFError, KeyError):
        return False


def kill_at_first_mid_epoch_checkpoint(proc, logdir, victim=None, timeout=240) -> None:
    """SIGKILL `victim()`'s pid (default: the process) once a mid-epoch checkpoint exists."""
    end = time.time() + timeout
    while not mid_epoch_checkpoint(logdir):
        assert proc.poll() is None, f'the run ended before a mid-epoch checkpoint:\n' \
                                    f'{proc.communicate()[0]}'
        assert time.time() < end, 'no mid-epoch checkpoint in time'
        time.sleep(0.05)
    os.kill(victim() if victim else proc.pid, signal.SIGKILL)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f'{len(different)} tensors differ, first {different[0]}'


def test_train_killed_mid_epoch_continues_to_the_same_weights(data, tmp_path):
    cmd = [PY, 'train.py', '-j', '1']
    plain = subprocess.run(cmd + options(data, tmp_path / 'plain'), cwd=ROOT, env=env(),
                           capture_output=True, text=True, timeout=600)
    assert plain.returncode == 0, plain.stdout + plain.stderr

    again = cmd + options(data, tmp_path / 'killed', '--resume', 'auto')
    proc = subprocess.Popen(again, cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    kill_at_first_mid_epoch_checkpoint(proc, tmp_path / 'killed')
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    second = subprocess.run(again, cwd=ROOT, env=env(), capture_output=True, text=True,
                            timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    assert 'note: --resume auto: resuming from' in second.stdout
    assert ' iteration ' in second.stdout.split('resumed from', 1)[1].split('\n', 1)[0]
    assert_same_weights(weights(tmp_path / 'plain'), weights(tmp_path / 'killed'))


def test_resume_auto_without_a_checkpoint_starts_the_run(data, tmp_path):
    cmd = [PY, 'train.py', '-j', '0', *options(data, tmp_path, '--resume', 'auto',
                                                            '--epochs', '1')]
    out = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'note: --resume auto: no checkpoint.pth.tar in' in out.stdout


def test_torchrun_restart_after_a_killed_rank_continues_to_the_same_weights(data, tmp_path):
    def torchrun(logdir, restarts):
        return [sys.executable, '-m', 'torch.distributed.run', '--standalone',
                '--nproc_per_node', '2', '--max-restarts', str(restarts), 'train_dist.py',
                '-j', '0', '--dist_timeout', '30', *options(data, logdir, '-b', '4')]
    plain = subprocess.run(torchrun(tmp_path / 'plain', 0), cwd=ROOT, env=env(),
                           capture_output=True, text=True, timeout=600)
    assert plain.returncode == 0, plain.stdout + plain.stderr

    proc = subprocess.Popen(torchrun(tmp_path / 'killed', 1), cwd=ROOT, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def a_rank():                            # a worker process of torchrun's
        children = subprocess.run(['pgrep', '-P', str(proc.pid)], capture_output=True,
                                  text=True).stdout.split()
        return int(children[-1])
    kill_at_first_mid_epoch_checkpoint(proc, tmp_path / 'killed', a_rank)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert 'restart 1 of this job by torchrun: resuming from' in out
    assert_same_weights(weights(tmp_path / 'plain'), weights(tmp_path / 'killed'))


class Indices(torch.utils.data.Dataset):
    def __len__(self):
        return 23

    def __getitem__(self, i):
        return i


@pytest.mark.parametrize('workers', [0, 2])
def test_training_order_is_dataloader_shuffles_and_a_skip_continues_it(workers):
    """The training loader (utils.engine.make_loader) draws the order DataLoader(shuffle=True)
    draws from the same seeded generator, so runs made before the resumable sampler keep their
    numbers; skipping k batches gives the rest of that epoch's batches."""
    from utils.config import DataConfig
    from utils.engine import make_loader
    from utils.runtime import Runtime
    ours = make_loader(Indices(), DataConfig(workers=workers), Runtime(torch.device('cpu')),
                       train=True, batch_size=4)
    theirs = torch.utils.data.DataLoader(Indices(), batch_size=4, shuffle=True, drop_last=True,
                                         num_workers=workers, generator=torch.Generator())
    for epoch in range(2):
        ours.generator.manual_seed(epoch)
        theirs.generator.manual_seed(epoch)
        whole = [b.tolist() for b in ours]
        assert whole == [b.tolist() for b in theirs] and len(whole) == 5
        ours.generator.manual_seed(epoch)
        ours.sampler.skip = 2 * 4
        assert [b.tolist() for b in ours] == whole[2:] and len(ours) == 3
        ours.sampler.skip = 0
