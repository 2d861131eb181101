"""Distributed training and evaluation on the CPU (gloo): every launch style that runs without a
GPU, exactness against one process, and failures that must stop instead of hanging.

Every distributed run is a subprocess with a hard timeout. This file is also a script: the
equivalence check runs `python tests/test_distributed.py equivalence OUT` in a subprocess.
"""
import csv
import glob
import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import tiny_synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from conftest import PY  # noqa: E402  (a fast python: tests/forkserver.py)
RUN = 'synthetic-rgb-resnet18-TSN-uniform-f4'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def env() -> dict:
    e = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    for k in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'SLURM_PROCID',
              'SLURM_NTASKS', 'SLURM_LOCALID', 'LOCAL_WORLD_SIZE'):
        e.pop(k, None)
    return e


def run(cmd, timeout=120, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True,
                          timeout=timeout)
    if check:
        assert proc.returncode == 0, f'{cmd}\n{proc.stdout}\n{proc.stderr}'
    return proc


def common(data, logdir, *extra):
    return ['--dataset', 'synthetic', '--datadir', data, '--backbone_net', 'resnet', '-d', '18',
            '--groups', '4', '--input_size', '32', '-b', '4', '-j', '0',
            '--no_imagenet_pretrained', '--logdir', str(logdir), '--lr', '0.001',
            '--lr_scheduler', 'step', '--lr_steps', '10', '--dist_timeout', '20', *extra]


def spawn2(port):
    return ['--multiprocessing-distributed', '--nproc_per_node', '2',
            '--dist-url', f'tcp://127.0.0.1:{port}']


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """8 training videos; 5 validation and 7 test videos, neither divisible by 2 processes."""
    root = str(tmp_path_factory.mktemp('dist') / 'data')
    tiny_synthetic(root)
    lines = {s: open(os.path.join(root, f'{s}.txt')).read().split('\n') for s in
             ('train', 'val', 'test')}
    lines = {s: [ln for ln in v if ln.strip()] for s, v in lines.items()}
    val = lines['val'] + lines['test'][:1]
    test = lines['test'] + lines['train'][:3]
    open(os.path.join(root, 'val.txt'), 'w').write('\n'.join(val) + '\n')
    open(os.path.join(root, 'test.txt'), 'w').write('\n'.join(test) + '\n')
    return root


@pytest.fixture(scope='module')
def trained(data, tmp_path_factory):
    """Launch style 1: 2 processes spawned on this machine train 2 epochs."""
    logdir = tmp_path_factory.mktemp('spawned')
    t0 = time.time()
    proc = run([PY, 'train_dist.py', *spawn2(free_port()),
                *common(data, logdir, '--epochs', '2', '--sync-bn')])
    return dict(proc=proc, folder=os.path.join(logdir, RUN), seconds=time.time() - t0)


def test_spawned_two_processes_train_checkpoint_and_resume(data, trained, tmp_path):
    folder, out = trained['folder'], trained['proc'].stdout
    ckpt = os.path.join(folder, 'checkpoint.pth.tar')
    assert torch.load(ckpt, map_location='cpu', weights_only=False)['epoch'] == 2
    # Rank 0 alone logs and writes: one log line per epoch, one set of files.
    assert out.count('epoch 2/2') == 1 and out.count('note: --sync-bn is ignored on the CPU') == 1
    log = open(os.path.join(folder, 'log.txt')).read()
    assert log.count('epoch 1/2') == 1 and log.count('epoch 2/2') == 1
    assert 'on 5 videos' in log                      # validation counted every video once
    assert sorted(os.listdir(folder)) == sorted(
        ['.lock', 'checkpoint.pth.tar', 'model_best.pth.tar', 'log.txt', 'metrics.jsonl', 'run.json']
        + [os.path.basename(p) for p in glob.glob(os.path.join(folder, 'events.out.*'))])
    # Every rank resumes from rank 0's checkpoint and goes on with epoch 3.
    res = run([PY, 'train_dist.py', *spawn2(free_port()),
               *common(data, tmp_path, '--epochs', '3', '--resume', ckpt)])
    assert 'resumed from' in res.stdout and 'at epoch 2' in res.stdout
    assert res.stdout.count('epoch 3/3') == 1 and 'epoch 1/3' not in res.stdout
    new = os.path.join(tmp_path, RUN, 'checkpoint.pth.tar')
    assert torch.load(new, map_location='cpu', weights_only=False)['epoch'] == 3


def test_two_nodes_by_rank_and_by_torchrun(data, tmp_path):
    # Launch style 2: the same command twice, --rank 0 and --rank 1 (two "nodes" of 1 process).
    port = free_port()
    cmd = [PY, 'train_dist.py', '--world-size', '2', '--dist-url', f'tcp://127.0.0.1:{port}',
           *common(data, tmp_path / 'nodes', '--epochs', '1')]
    procs = [subprocess.Popen(cmd + ['--rank', str(r)], cwd=ROOT, env=env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for r in (0, 1)]
    try:
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outs
    assert 'epoch 1/1' in outs[0][0] and outs[1][0] == ''          # rank 1 stays quiet
    assert os.path.isfile(os.path.join(tmp_path, 'nodes', RUN, 'checkpoint.pth.tar'))
    # Launch style 3: torchrun (env://), 2 processes on this "node".
    tr = run([PY, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_addr',
              '127.0.0.1', '--master_port', str(free_port()), 'train_dist.py',
              *common(data, tmp_path / 'torchrun', '--epochs', '1')])
    assert tr.stdout.count('epoch 1/1') == 1 and 'on 5 videos' in tr.stdout
    assert os.path.isfile(os.path.join(tmp_path, 'torchrun', RUN, 'checkpoint.pth.tar'))


def test_one_step_of_two_processes_equals_one_process_with_twice_the_batch(tmp_path):
    proc = run([PY, os.path.abspath(__file__), 'equivalence', str(tmp_path)], timeout=90)
    single = torch.load(tmp_path / 'single.pt')
    double = torch.load(tmp_path / 'ddp.pt')
    start = torch.load(tmp_path / 'start.pt')
    assert single.keys() == double.keys()
    moved = 0
    for k in single:
        assert torch.allclose(single[k], double[k], rtol=1e-5, atol=1e-6), (k, proc.stdout)
        moved += not torch.equal(single[k], start[k])
    assert moved >= 4                                # the step did change the weights


def eval_line(text: str) -> str:
    m = re.search(r'val loss \S+ top1 \S+ top5 \S+ on \d+ videos', text)
    assert m, text
    return m.group(0)


def test_distributed_evaluation_counts_each_video_once_and_equals_one_process(
        data, trained, tmp_path):
    import test as test_entry
    import train as train_entry
    ckpt = os.path.join(trained['folder'], 'checkpoint.pth.tar')
    # Validation of train_dist.py -e (5 videos over 2 processes) against train.py -e.
    dist_val = run([PY, 'train_dist.py', *spawn2(free_port()),
                    *common(data, tmp_path / 'd', '-e', '--pretrained', ckpt)])
    single_args = common(data, tmp_path / 's', '-e', '--pretrained', ckpt)
    single_args = single_args[:single_args.index('--dist_timeout')] + single_args[
        single_args.index('--dist_timeout') + 2:]
    single = train_entry.main(single_args)
    assert single['count'] == 5
    # Accuracy and count exactly; the loss to float32 round-off: it is the cross-entropy of the
    # logits (the original's fusion rule), whose float32 values depend on how the batches fall
    # (here the untrained-looking model gives logits in the thousands, a loss of ~1e5).
    line = eval_line(dist_val.stdout)
    assert line.split(' top1 ')[1] == (f'{single["top1"]:.2f} top5 {single["top5"]:.2f} '
                                       f'on {single["count"]} videos')
    assert float(line.split()[2]) == pytest.approx(single['loss'], rel=1e-6)
    # test.py: 7 test videos x 2 clips over 2 processes; rank 0 gathers and writes the files.
    extra = ['--pretrained', ckpt, '--eval_split', 'test', '--num_clips', '2']
    out = {x: str(tmp_path / x) for x in ('dt', 'st')}        # test.py's --output folders
    run([PY, 'test.py', *spawn2(free_port()), *common(data, tmp_path / 'dt', *extra),
         '--output', out['dt']])
    ref = test_entry.main([a for a in common(data, tmp_path / 'st', *extra)
                           if a not in ('--dist_timeout', '20')] + ['--output', out['st']])
    tag = 'test_2clips_1crops'
    d_scores = np.load(os.path.join(out['dt'], f'{tag}_scores.npy'))
    s_scores = np.load(os.path.join(out['st'], f'{tag}_scores.npy'))
    assert d_scores.shape == s_scores.shape == (7, 4)
    assert np.allclose(d_scores, s_scores, rtol=1e-5, atol=1e-6)
    rows = [list(csv.reader(open(os.path.join(out[x], f'{tag}_predictions.csv'))))
            for x in ('dt', 'st')]
    assert [r[:3] for r in rows[0]] == [r[:3] for r in rows[1]]     # same videos, same order
    assert len({r[0] for r in rows[0][1:]}) == 7                      # each video once
    d_log = open(os.path.join(out['dt'], 'test_log.txt')).read()
    assert (f'top1 {ref["top1"]:.2f} top5 {ref["top5"]:.2f} mean class accuracy '
            f'{ref["mean_class_acc"]:.2f} on 7 videos') in d_log


def test_a_killed_rank_stops_the_other_with_an_error(data, tmp_path):
    port = free_port()
    cmd = [PY, 'train_dist.py', '--world-size', '2', '--dist-url', f'tcp://127.0.0.1:{port}',
           *common(data, tmp_path, '--epochs', '100')]
    out0 = open(tmp_path / 'rank0.txt', 'w+')
    r0 = subprocess.Popen(cmd + ['--rank', '0'], cwd=ROOT, env=env(), stdout=out0,
                          stderr=subprocess.STDOUT)
    r1 = subprocess.Popen(cmd + ['--rank', '1'], cwd=ROOT, env=env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        while 'epoch 1/100' not in open(tmp_path / 'rank0.txt').read():   # training is running
            assert time.time() < deadline and r0.poll() is None
            time.sleep(0.2)
        r1.kill()
        t0 = time.time()
        rc = r0.wait(timeout=60)
        waited = time.time() - t0
    finally:
        r0.kill()
        r1.kill()
    text = open(tmp_path / 'rank0.txt').read()
    assert rc != 0 and waited < 40, text
    assert 'error: rank 0: lost the other processes' in text, text


def test_a_rank_that_never_arrives_times_out(data, tmp_path):
    port = free_port()
    t0 = time.time()
    proc = run([PY, 'train_dist.py', '--world-size', '2', '--rank', '0', '--dist-url',
                f'tcp://127.0.0.1:{port}', *common(data, tmp_path, '--epochs', '1'),
                '--dist_timeout', '3'], timeout=60, check=False)
    assert proc.returncode != 0 and time.time() - t0 < 40
    assert 'error: rank 0: could not form the group of 2 processes' in proc.stderr, proc.stderr


def test_port_in_use_batch_not_dividing_and_sync_bn_note(data, tmp_path):
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run([PY, 'train_dist.py', *spawn2(port), *common(data, tmp_path, '--epochs', '1')],
                   timeout=60, check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f'error: cannot listen on tcp://127.0.0.1:{port} (Address already in use)')
    proc = run([PY, 'train_dist.py', *spawn2(free_port()),
                *common(data, tmp_path, '--epochs', '1'), '-b', '3'], timeout=60, check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip() == ('error: -b 3 is the global batch and must divide evenly '
                                   'among the 2 processes')
    help_text = ' '.join(run([PY, 'train_dist.py', '--help'], timeout=60).stdout.split())
    assert 'GLOBAL batch: clips per iteration summed over all processes' in help_text


# ----------------------------------------------------------------------------- network choice
# The decisions of utils.distributed's interface choice, in this process; tests/test_multinode.py
# runs them across network namespaces.

def test_master_of_names_the_host_of_each_rendezvous(monkeypatch):
    from utils.distributed import master_of
    assert master_of('tcp://node0:23456') == ('node0', '--dist-url tcp://node0:23456')
    monkeypatch.setenv('MASTER_ADDR', 'head')
    assert master_of('env://') == ('head', 'MASTER_ADDR=head')
    assert master_of('file:///tmp/rendezvous') is None


def test_route_prefers_a_network_address_and_refuses_loopback_across_nodes(monkeypatch):
    from utils import distributed
    from utils.errors import UserError
    assert distributed.interface_of('127.0.0.1') == 'lo'
    route = distributed.route_to_master('127.0.0.1', 'test')
    assert (route.interface, route.address, route.loopback) == ('lo', '127.0.0.1', True)
    # Debian's /etc/hosts: the master's own name on 127.0.1.1 above its network address.
    answers = {'node0': ['127.0.1.1', '192.0.2.7']}
    monkeypatch.setattr(distributed.socket, 'getaddrinfo', lambda host, *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, '', (ip, 0)) for ip in answers[host]])
    sources = {'127.0.1.1': '127.0.0.1', '192.0.2.7': '192.0.2.7'}
    monkeypatch.setattr(distributed, 'source_address', sources.__getitem__)
    monkeypatch.setattr(distributed, 'interface_of',
                        lambda a: 'lo' if a.startswith('127.') else 'eth1')
    route = distributed.route_to_master('node0', 'test', nodes=2)
    assert (route.interface, route.address, route.master_ip) == ('eth1', '192.0.2.7', '192.0.2.7')
    # Only loopback: fine on one machine, an error across nodes.
    answers['node0'] = ['127.0.1.1']
    assert distributed.route_to_master('node0', 'test', nodes=1).interface == 'lo'
    with pytest.raises(UserError, match=r'resolves on this node only to 127\.0\.1\.1, a loopback '
                                        r'address.*--local-addr'):
        distributed.route_to_master('node0', 'MASTER_ADDR=node0', nodes=2)


def test_route_errors_name_the_master_and_what_was_tried(monkeypatch):
    from utils import distributed
    from utils.errors import UserError

    def unknown(*a, **k):
        raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known')
    monkeypatch.setattr(distributed.socket, 'getaddrinfo', unknown)
    with pytest.raises(UserError, match=r'cannot resolve the master nodeX \(--dist-url '
                                        r'tcp://nodeX:1\): Name or service not known'):
        distributed.route_to_master('nodeX', '--dist-url tcp://nodeX:1')
    monkeypatch.setattr(distributed.socket, 'getaddrinfo', lambda *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, '', ('192.0.2.9', 0))])

    def unreachable(ip):
        raise OSError(101, 'Network is unreachable')
    monkeypatch.setattr(distributed, 'source_address', unreachable)
    with pytest.raises(UserError, match=r'no network interface of this node reaches the master '
                                        r'nodeX \(test; tried 192\.0\.2\.9: Network is unreachable'):
        distributed.route_to_master('nodeX', 'test')


def test_choice_sets_the_backend_variable_unless_the_user_did(monkeypatch):
    from utils.distributed import _first_line, choose_interface
    for var in ('GLOO_SOCKET_IFNAME', 'NCCL_SOCKET_IFNAME'):
        monkeypatch.delenv(var, raising=False)
    assert choose_interface('gloo', 'tcp://127.0.0.1:1', nodes=2) is None   # loopback: quiet
    assert os.environ['GLOO_SOCKET_IFNAME'] == 'lo'
    assert choose_interface('nccl', 'tcp://127.0.0.1:1') is None
    assert os.environ['NCCL_SOCKET_IFNAME'] == '=lo'        # NCCL: '=' for the exact name
    monkeypatch.setenv('GLOO_SOCKET_IFNAME', 'mine0')
    assert choose_interface('gloo', 'tcp://127.0.0.1:1') is None
    assert os.environ['GLOO_SOCKET_IFNAME'] == 'mine0'
    assert _first_line(RuntimeError('[/src/gloo/transport/tcp/pair.cc:152] timed out '
                                    'connecting\nmore')) == 'timed out connecting'
    from utils.distributed import describe_addresses
    assert describe_addresses({0: 'A', 1: 'B', 2: 'B', 3: 'C'}, most=2) == \
        'rank 0: A; ranks 1, 2: B; 1 more'


def test_ranks_of_a_torchrun_start_agree_on_its_key_space_despite_an_earlier_start(monkeypatch):
    """utils.distributed.agree_on_start on a TCPStore that keeps an earlier start's keys, as
    torchrun's agent store does: ranks 1 and 2 of the second start come before its rank 0 and
    must not take the first start's token; the number says it is restart 1."""
    import datetime
    import threading
    import torch.distributed as dist
    from utils import runtime
    from utils.distributed import agree_on_start
    timeout = datetime.timedelta(seconds=20)
    server = dist.TCPStore('127.0.0.1', 0, 1, is_master=True, timeout=timeout)
    found = {}

    def start(name, ranks, world_size=3):
        def rank_of(r):
            client = dist.TCPStore('127.0.0.1', server.port, 1, is_master=False,
                                   timeout=timeout)
            found[name, r] = agree_on_start(client, r, world_size, timeout)
        threads = [threading.Thread(target=rank_of, args=(r,)) for r in ranks]
        for t in threads:
            t.start()
        return threads

    for t in start('first', range(3)):
        t.join()
    late = start('second', (1, 2))
    time.sleep(1)                            # they see only the first start's token
    for t in start('second', (0,)) + late:
        t.join(timeout=30)
    first = {found['first', r] for r in range(3)}
    second = {found['second', r] for r in range(3)}
    assert len(first) == len(second) == 1 and first != second
    assert first.pop()[1] == 1 and second.pop()[1] == 2
    monkeypatch.setenv('TORCHELASTIC_RESTART_COUNT', '0')   # this node's agent did not count
    monkeypatch.setattr(runtime, '_torchrun_restarts', 1)
    assert runtime.job_restart() == (1, 'torchrun')
    monkeypatch.setattr(runtime, '_torchrun_restarts', 0)
    monkeypatch.setenv('TORCHELASTIC_RESTART_COUNT', '2')   # the agreed number wins
    assert runtime.job_restart() is None


# ----------------------------------------------------------------------------- equivalence script

class FrozenBN(torch.nn.BatchNorm3d):
    """BatchNorm that stays in eval mode: its running statistics are used and never change."""

    def train(self, mode: bool = True):
        return super().train(False)


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3, padding=1), FrozenBN(4),
                                torch.nn.ReLU(), torch.nn.AdaptiveAvgPool3d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 3))
    model[1].running_mean.uniform_(-0.1, 0.1)
    model[1].running_var.uniform_(0.5, 1.5)
    return model


class ToyClips(torch.utils.data.Dataset):
    def __init__(self, n: int = 8):
        g = torch.Generator().manual_seed(1)
        self.clips = torch.randint(0, 256, (n, 3, 2, 6, 6), generator=g, dtype=torch.uint8)

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, i):
        return {'clip': self.clips[i], 'label': i % 3, 'bad': 0, 'index': i}


def one_step(rank: int, world_size: int, port: int, out: str) -> None:
    """One SGD step through the engine (wrap_model, per_process_batch, make_loader,
    train_one_epoch): rank 0 saves the weights."""
    import torch.distributed as dist
    from torch.distributed.constants import default_pg_timeout
    from opts import arg_parser, parse_config
    from utils.distributed import join_group
    from utils.engine import (Runtime, make_loader, make_optimizer, per_process_batch,
                              train_one_epoch, wrap_model)
    from utils.run_log import RunLog
    torch.set_num_threads(1)
    if world_size > 1:                       # as run_rank does (see join_group for why)
        join_group('gloo', f'tcp://127.0.0.1:{port}', world_size, rank, default_pg_timeout)
    cfg, _, _ = parse_config(arg_parser(), ['-b', '8', '-j', '0', '--lr', '0.5', '--epochs', '1',
                                            '--weight-decay', '1e-3'])
    runtime = Runtime(device=torch.device('cpu'), rank=rank, world_size=world_size)
    model = wrap_model(tiny_model(), cfg, runtime)
    assert isinstance(model, torch.nn.parallel.DistributedDataParallel) == (world_size > 1)
    loader = make_loader(ToyClips(), cfg.data, runtime, train=True,
                         batch_size=per_process_batch(cfg.optim.batch_size, runtime))
    assert len(loader) == 1 and loader.batch_size == 8 // world_size
    loader.generator.manual_seed(0)
    if hasattr(loader.sampler, 'set_epoch'):
        loader.sampler.set_epoch(0)
    train_one_epoch(model, loader, make_optimizer(model, cfg.optim), None, cfg, runtime, 0,
                    RunLog(None, enabled=False))
    if rank == 0:
        bare = model.module if world_size > 1 else model
        torch.save(bare.state_dict(), os.path.join(out, 'ddp.pt' if world_size > 1 else
                                                   'single.pt'))
    if world_size > 1:
        dist.barrier()                       # leave together (gloo may abort a lone peer)
        dist.destroy_process_group()
        del model                            # DDP holds the group: now nothing should
        left = group_threads()
        assert not left, (f'rank {rank}: the group outlived destroy_process_group: its threads '
                          f'{left} would be torn down at exit, each rank on its own')


def group_threads() -> list:
    """This process's threads of a process group: gloo's workers and event loop, rank 0's
    TCPStore server (torch's thread names, read from /proc: none seen elsewhere)."""
    names = []
    for task in glob.glob('/proc/self/task/*/comm'):
        try:
            name = open(task).read().strip()
        except OSError:                      # the thread ended meanwhile
            continue
        if 'gloo' in name or 'tcpstore' in name:
            names.append(name)
    return names


def equivalence(out: str) -> None:
    import torch.multiprocessing as mp
    torch.save(tiny_model().state_dict(), os.path.join(out, 'start.pt'))
    one_step(0, 1, 0, out)
    mp.spawn(one_step, nprocs=2, args=(2, free_port(), out))
    a = torch.load(os.path.join(out, 'single.pt'))
    b = torch.load(os.path.join(out, 'ddp.pt'))
    print('max difference', max(float((a[k].float() - b[k].float()).abs().max()) for k in a))


if __name__ == '__main__':
    if sys.argv[1:2] == ['equivalence']:
        equivalence(sys.argv[2])
