"""Several nodes on one machine: network namespaces joined by veth links, each node with its own
addresses and its own /etc/hosts written as Debian and Ubuntu do (the machine's host name on
127.0.1.1, the nodes by name), the data and logs on the shared file system. Every multi-node
launch style of train_dist.py and test.py runs across them, where a node must pick the
interface that reaches the master (gloo's default, the host name's address, is the loopback
here), and the failures that must end with one error line instead of hanging.

    node0 eth0 10.231.1.1 --- 10.231.1.2 eth1 node1 eth0 10.231.2.1 --- 10.231.2.2 eth0 node2

node1 has two interfaces (the one that reaches node0 is not the first) and routes between
them; node2 reaches node0 only through it. Only addresses inside the namespaces this file
creates are used. It needs root and `ip` (iproute2) and skips with the reason otherwise. Every
process runs in its own session under a timeout; the namespaces, their links and hosts files
are removed in a finally.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import tiny_synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
RUN = 'synthetic-rgb-resnet18-TSN-uniform-f4'
TORCHRUN = [PY, '-m', 'torch.distributed.run']

pytestmark = pytest.mark.slow

# Each node's interfaces (name, address/prefix) and routes; the veth pairs between nodes.
NODES = {
    'node0': dict(links=[('eth0', '10.231.1.1/24')], routes=['10.231.2.0/24 via 10.231.1.2']),
    'node1': dict(links=[('eth1', '10.231.1.2/24'), ('eth0', '10.231.2.1/24')], routes=[]),
    'node2': dict(links=[('eth0', '10.231.2.2/24')], routes=['default via 10.231.2.1']),
}
LINKS = [(('node0', 'eth0'), ('node1', 'eth1')), (('node1', 'eth0'), ('node2', 'eth0'))]


def hosts_file() -> str:
    """/etc/hosts as Debian writes it (the machine's name on 127.0.1.1), plus the nodes by
    their first address."""
    names = [f'{addr.split("/")[0]} {node}' for node, spec in NODES.items()
             for _, addr in spec['links'][:1]]
    return '\n'.join(['127.0.0.1 localhost', f'127.0.1.1 {socket.gethostname()}', *names]) + '\n'


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30)


class Cluster:
    """The namespaces of this module (names unique to this process) and how to run in them."""

    def __init__(self):
        self.prefix = f'mn{os.getpid()}'
        self.ns = {node: f'{self.prefix}{node[-1]}' for node in NODES}
        self.procs: list[subprocess.Popen] = []

    def create(self) -> None:
        for node, ns in self.ns.items():
            sh('ip', 'netns', 'add', ns)
            os.makedirs(f'/etc/netns/{ns}', exist_ok=True)
            with open(f'/etc/netns/{ns}/hosts', 'w') as f:   # `ip netns exec` mounts it
                f.write(hosts_file())
            sh('ip', '-n', ns, 'link', 'set', 'lo', 'up')
        for (a, ifa), (b, ifb) in LINKS:
            sh('ip', 'link', 'add', ifa, 'netns', self.ns[a], 'type', 'veth', 'peer', 'name', ifb,
               'netns', self.ns[b])
        for node, spec in NODES.items():
            for ifname, addr in spec['links']:
                sh('ip', '-n', self.ns[node], 'addr', 'add', addr, 'dev', ifname)
                sh('ip', '-n', self.ns[node], 'link', 'set', ifname, 'up')
            for route in spec['routes']:
                sh('ip', '-n', self.ns[node], 'route', 'add', *route.split())
        sh('ip', 'netns', 'exec', self.ns['node1'], 'sh', '-c',
           'echo 1 > /proc/sys/net/ipv4/ip_forward')   # node1 routes between its links

    def destroy(self) -> None:
        self.stop_all()
        for ns in self.ns.values():         # deleting a namespace deletes its veth ends
            subprocess.run(['ip', 'netns', 'del', ns], capture_output=True, timeout=30)
            shutil.rmtree(f'/etc/netns/{ns}', ignore_errors=True)
        try:
            os.rmdir('/etc/netns')          # only if no one else has namespaces' files there
        except OSError:
            pass

    def start(self, node: str, argv: list, out: str, env: dict | None = None
              ) -> subprocess.Popen:
        """Run argv on `node`, in a session of its own (so that it and its children can be
        killed together), stdout to out.out and stderr to out.err."""
        with open(out + '.out', 'w') as o, open(out + '.err', 'w') as e:
            proc = subprocess.Popen(['ip', 'netns', 'exec', self.ns[node], *map(str, argv)],
                                    cwd=ROOT, env=child_env(env), stdout=o, stderr=e,
                                    start_new_session=True)
        proc.out = out
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        self.procs.clear()

    def link_down(self, node: str, ifname: str) -> None:
        sh('ip', '-n', self.ns[node], 'link', 'set', ifname, 'down')

    def link_up(self, node: str, ifname: str) -> None:
        sh('ip', '-n', self.ns[node], 'link', 'set', ifname, 'up')


def child_env(extra: dict | None) -> dict:
    e = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    for k in list(e):
        if k in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR',
                 'MASTER_PORT', 'GLOO_SOCKET_IFNAME', 'NCCL_SOCKET_IFNAME') or \
                k.startswith(('SLURM_', 'TORCHELASTIC_')):
            del e[k]
    return dict(e, **(extra or {}))


def why_no_namespaces() -> str | None:
    if os.geteuid() != 0:
        return 'needs root to create network namespaces'
    if shutil.which('ip') is None:
        return 'needs `ip` (iproute2) to create network namespaces'
    return None


@pytest.fixture(autouse=True)
def no_process_left(request):
    """Each test's processes end with it, whatever happened."""
    yield
    if 'cluster' in request.fixturenames:
        request.getfixturevalue('cluster').stop_all()


@pytest.fixture(scope='module')
def cluster():
    reason = why_no_namespaces()
    if reason:
        pytest.skip(reason)
    c = Cluster()
    try:
        c.create()
    except subprocess.CalledProcessError as exc:
        c.destroy()
        pytest.skip(f'cannot create network namespaces here: {" ".join(exc.cmd)}: '
                    f'{exc.stderr.strip()}')
    try:
        yield c
    finally:
        c.destroy()


def text(proc, stream: str = 'out') -> str:
    with open(f'{proc.out}.{stream}') as f:
        return f.read()


def finish(procs, timeout: float = 150) -> list[int]:
    """Wait for all of `procs` (at most `timeout` seconds in all); their exit codes."""
    deadline = time.time() + timeout
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=max(deadline - time.time(), 0.1)))
        except subprocess.TimeoutExpired:
            pytest.fail(f'{p.args} still running after {timeout}s:\n{text(p)}\n{text(p, "err")}')
    return codes


def error_lines(proc) -> list[str]:
    return [ln for ln in text(proc, 'err').splitlines() if ln.startswith('error:')]


def train_args(data: str, logdir, *extra) -> list:
    """An epoch of 4 steps of TSN-ResNet-18 at 32 px, 2 clips a step on each of 2 processes."""
    return ['--dataset', 'synthetic', '--datadir', data, '--backbone_net', 'resnet', '-d', '18',
            '--groups', '4', '--input_size', '32', '-b', '4', '-j', '0',
            '--no_imagenet_pretrained', '--logdir', logdir, '--lr', '0.01', '--epochs', '1',
            '--dist_timeout', '20', *extra]


def weights(logdir) -> dict:
    return torch.load(os.path.join(logdir, RUN, 'checkpoint.pth.tar'), map_location='cpu',
                      weights_only=False)


def assert_same_weights(logdir, reference: dict) -> None:
    ckpt = weights(logdir)
    assert ckpt['epoch'] == reference['epoch'] and ckpt['iteration'] == 0
    same = [torch.equal(ckpt['state_dict'][k], v) for k, v in reference['state_dict'].items()]
    assert ckpt['state_dict'].keys() == reference['state_dict'].keys() and all(same), \
        f'{same.count(False)} of {len(same)} tensors differ from one node x 2 processes'


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> str:
    """16 training videos (4 steps of -b 4), 4 validation videos."""
    return tiny_synthetic(str(tmp_path_factory.mktemp('multinode') / 'data'), videos_per_class=4)


@pytest.fixture(scope='module')
def reference(data, tmp_path_factory) -> dict:
    """The checkpoint of one node with 2 processes (spawned, on the loopback)."""
    logdir = str(tmp_path_factory.mktemp('one_node'))
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    proc = subprocess.run([PY, 'train_dist.py', '--multiprocessing-distributed',
                           '--nproc_per_node', '2', '--dist-url', f'tcp://127.0.0.1:{port}',
                           *train_args(data, logdir)], cwd=ROOT, env=child_env(None),
                          capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return weights(logdir)


def seed_command(node_rank: int, port: int, data: str, logdir, *extra) -> list:
    """The original study's multi-node command (one process a node here)."""
    return [PY, 'train_dist.py', '--multiprocessing-distributed', '--nproc_per_node', '1',
            '--world-size', '2', '--rank', node_rank, '--dist-url', f'tcp://node0:{port}',
            *train_args(data, logdir, *extra)]


# ----------------------------------------------------------------------------- cases

def test_seed_command_on_two_nodes_equals_one_node(cluster, data, reference, tmp_path):
    logdir = str(tmp_path)
    procs = [cluster.start(node, seed_command(r, 29400, data, logdir), f'{tmp_path}/{node}')
             for r, node in enumerate(('node0', 'node1'))]
    assert finish(procs) == [0, 0], [text(p, 'err') for p in procs]
    # Each node says which interface it talks through: node1's second one, not its first.
    assert 'note: network: eth0 (10.231.1.1) reaches node0' in text(procs[0])
    assert 'network: eth1 (10.231.1.2) reaches node0 (10.231.1.1)' in text(procs[1])
    assert_same_weights(logdir, reference)


def test_addresses_no_peer_reaches_end_both_ranks_within_the_timeout(cluster, data, tmp_path):
    """The bug as it was, both nodes advertising a loopback address, here by the user's
    GLOO_SOCKET_IFNAME (which is respected). Both ranks stop within --dist_timeout, not five
    times it, each with one error line; the one that tried to connect names the address."""
    t0 = time.time()
    procs = [cluster.start(node, seed_command(r, 29401, data, tmp_path, '--dist_timeout', '8'),
                           f'{tmp_path}/{node}', env={'GLOO_SOCKET_IFNAME': 'lo'})
             for r, node in enumerate(('node0', 'node1'))]
    codes = finish(procs, timeout=60)
    took = time.time() - t0
    assert codes == [1, 1] and took < 8 + 30, (took, [text(p, 'err') for p in procs])
    lines = [error_lines(p) for p in procs]
    assert [len(x) for x in lines] == [1, 1], lines
    assert all("the ranks' addresses: ranks 0, 1: 127.0.0.1 by GLOO_SOCKET_IFNAME=lo;" in x[0]
               for x in lines), lines
    assert re.search(r'could not connect to 127\.0\.0\.1:\d+ \(Connection refused\)',
                     ' '.join(x[0] for x in lines)), lines
    assert not any('network:' in text(p) for p in procs)        # the user's choice, kept


def c10d(node: str, port: int, run_id: str, *extra) -> list:
    """torchrun's options for the c10d rendezvous at node0:port, as run on `node`."""
    return ['--nnodes', '2', '--nproc_per_node', '1', '--rdzv-backend', 'c10d',
            '--rdzv-endpoint', f'node0:{port}', '--rdzv-id', run_id, '--local-addr', node,
            *(['--rdzv-conf', 'is_host=1'] if node == 'node0' else []), *extra]


def test_torchrun_static_and_c10d_rendezvous_across_nodes(cluster, data, reference, tmp_path):
    static = [cluster.start(node, [*TORCHRUN, '--nnodes', '2', '--node_rank', r,
                                   '--nproc_per_node', '1', '--master_addr', 'node0',
                                   '--master_port', '29402', 'train_dist.py',
                                   *train_args(data, tmp_path / 'static')],
                            f'{tmp_path}/static{node}')
              for r, node in enumerate(('node0', 'node1'))]
    assert finish(static) == [0, 0], [text(p, 'err') for p in static]
    assert 'network: eth1 (10.231.1.2) reaches node0' in text(static[1])
    assert_same_weights(tmp_path / 'static', reference)
    # c10d: torchrun knows the node that hosts the rendezvous store by its host name, and the
    # rank-0 node names the master by its host name: both are 'vm' on 127.0.1.1 here, so the
    # nodes are named (--rdzv-conf is_host, --local-addr; docs/distributed.md).
    procs = [cluster.start(node, [*TORCHRUN, *c10d(node, 29403, 'c10d'), 'train_dist.py',
                                  *train_args(data, tmp_path / 'c10d')],
                           f'{tmp_path}/c10d{node}')
             for node in ('node0', 'node1')]
    assert finish(procs) == [0, 0], [text(p, 'err') for p in procs]
    assert 'network: eth1 (10.231.1.2) reaches node0' in text(procs[1])
    assert_same_weights(tmp_path / 'c10d', reference)


def test_slurm_variables_across_a_routed_link(cluster, data, reference, tmp_path):
    """srun's variables on node0 and node2, which reaches node0 through node1."""
    procs = []
    for r, node in enumerate(('node0', 'node2')):
        env = dict(SLURM_PROCID=str(r), SLURM_NTASKS='2', SLURM_LOCALID='0', SLURM_NNODES='2',
                   SLURM_NTASKS_PER_NODE='1', MASTER_ADDR='node0', MASTER_PORT='29404')
        procs.append(cluster.start(node, [PY, 'train_dist.py', *train_args(data, tmp_path)],
                                   f'{tmp_path}/{node}', env=env))
    assert finish(procs) == [0, 0], [text(p, 'err') for p in procs]
    assert 'network: eth0 (10.231.2.2) reaches node0 (10.231.1.1)' in text(procs[1])
    assert_same_weights(tmp_path, reference)


def wait_for(condition, timeout: float, procs) -> None:
    deadline = time.time() + timeout
    while not condition():
        for p in procs:
            assert p.poll() is None, f'{p.args} ended:\n{text(p)}\n{text(p, "err")}'
        assert time.time() < deadline, 'timed out waiting'
        time.sleep(0.05)


@pytest.mark.parametrize('failure', ['kill node0', 'link down'])
def test_a_lost_node_ends_the_other_with_one_error_line(cluster, data, tmp_path, failure):
    timeout = 10
    port = 29405 if failure == 'kill node0' else 29408    # a killed master's port lingers
    procs = [cluster.start(node, seed_command(r, port, data, tmp_path, '--epochs', '100',
                                              '--dist_timeout', timeout), f'{tmp_path}/{node}')
             for r, node in enumerate(('node0', 'node1'))]
    wait_for(lambda: 'epoch 1/100' in text(procs[0]), 120, procs)     # training is running
    t0 = time.time()
    if failure == 'kill node0':
        os.killpg(procs[0].pid, signal.SIGKILL)
        survivors = procs[1:]
    else:
        cluster.link_down('node1', 'eth1')
        survivors = procs
    try:
        codes = finish(survivors, timeout=timeout + 60)
    finally:
        cluster.link_up('node1', 'eth1')
    took = time.time() - t0
    assert set(codes) == {1} and took < timeout + 30, (took, codes)
    for p in survivors:
        lines = error_lines(p)
        assert len(lines) == 1 and 'lost the other processes' in lines[0], text(p, 'err')
        assert 'Traceback' not in text(p, 'err')


def worker_of(agent: subprocess.Popen) -> int:
    """The pid of the train_dist.py worker that a torchrun agent started."""
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/stat') as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                cmd = f.read().split(b'\0')
        except (OSError, ValueError, IndexError):
            continue
        if ppid == agent.pid and b'train_dist.py' in cmd:
            return int(pid)
    raise AssertionError(f'no worker of {agent.pid}')


def test_elastic_restart_across_nodes_continues_to_the_same_weights(cluster, data, reference,
                                                                    tmp_path):
    """torchrun --max-restarts 1 with the c10d rendezvous: node1's worker killed after the
    first mid-epoch checkpoint. Node0's worker is held (SIGSTOP) meanwhile, so that its agent
    restarts it for node1's new round, without counting a restart (the harder way: had the
    worker failed first, its agent would have counted one). Both workers start again, agree
    that this is restart 1, resume and end with the uninterrupted weights."""
    procs = [cluster.start(node, [*TORCHRUN, *c10d(node, 29406, 'elastic', '--max-restarts', '1'),
                                  'train_dist.py', *train_args(data, tmp_path, '--save_every', '1')],
                           f'{tmp_path}/{node}')
             for node in ('node0', 'node1')]
    ckpt = os.path.join(tmp_path, RUN, 'checkpoint.pth.tar')
    wait_for(lambda: os.path.exists(ckpt), 120, procs)
    held = worker_of(procs[0])
    os.kill(held, signal.SIGSTOP)
    os.kill(worker_of(procs[1]), signal.SIGKILL)
    wait_for(lambda: f'Sending process {held} closing signal SIGTERM' in text(procs[0], 'err'),
             60, procs)
    os.kill(held, signal.SIGCONT)            # it takes the SIGTERM
    assert finish(procs) == [0, 0], [text(p, 'err') for p in procs]
    log = open(os.path.join(tmp_path, RUN, 'log.txt')).read()
    assert re.search(r'restart 1 of this job by torchrun: resuming from \S+', log), log
    assert re.search(r'resumed from \S+ at epoch 0 iteration [1-3]', log), log
    assert_same_weights(tmp_path, reference)


def test_distributed_test_py_over_two_nodes_equals_one_process(cluster, data, reference,
                                                               tmp_path, one_thread):
    import test as test_entry
    ckpt = str(tmp_path / 'reference.pth.tar')
    torch.save(reference, ckpt)
    args = ['--dataset', 'synthetic', '--datadir', data, '--backbone_net', 'resnet', '-d', '18',
            '--groups', '4', '--input_size', '32', '-b', '4', '-j', '0',
            '--no_imagenet_pretrained', '--pretrained', ckpt, '--eval_split', 'val',
            '--num_clips', '2']
    procs = [cluster.start(node, [PY, 'test.py', '--world-size', '2', '--rank', r,
                                  '--dist-url', 'tcp://node0:29407', '--dist_timeout', '20',
                                  '--output', tmp_path / 'two', *args], f'{tmp_path}/{node}')
             for r, node in enumerate(('node0', 'node1'))]
    assert finish(procs) == [0, 0], [text(p, 'err') for p in procs]
    assert 'network: eth1 (10.231.1.2) reaches node0' in text(procs[1])
    single = test_entry.main(args + ['--output', str(tmp_path / 'one')])
    line = (f'top1 {single["top1"]:.2f} top5 {single["top5"]:.2f} mean class accuracy '
            f'{single["mean_class_acc"]:.2f} on {single["count"]} videos')
    assert line in text(procs[0]), text(procs[0])
    tag = 'val_2clips_1crops'
    two = np.load(os.path.join(tmp_path, 'two', f'{tag}_scores.npy'))
    assert np.allclose(two, single['scores'], rtol=1e-5, atol=1e-6)
