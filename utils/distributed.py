"""Distributed helpers: process start-up shared by train_dist.py and test.py (the network
interface a node talks through, every wait bounded by --dist_timeout), samplers that count every
video exactly once, and exact reductions and gathers."""
import contextlib
import dataclasses
import datetime
import fcntl
import ipaddress
import logging
import os
import re
import socket
import struct
import sys
import threading
import time
import uuid
from urllib.parse import urlparse

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler, Sampler

from utils.errors import UserError
from utils.runtime import Runtime, set_torchrun_restarts


# ----------------------------------------------------------------------------- samplers

class ShardSampler(Sampler):
    """Evaluation sampler: rank r takes videos r, r+W, r+2W, ... with no padding, so each video
    is evaluated exactly once (DistributedSampler pads with duplicates to equal lengths)."""

    def __init__(self, dataset, rank: int, world_size: int):
        self.indices = list(range(rank, len(dataset), world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def make_sampler(dataset, runtime, train: bool) -> Sampler:
    if train:
        return DistributedSampler(dataset, num_replicas=runtime.world_size, rank=runtime.rank,
                                  shuffle=True, drop_last=True)
    return ShardSampler(dataset, runtime.rank, runtime.world_size)


# ----------------------------------------------------------------------------- collectives

def all_reduce_sum(values: list[float], runtime) -> list[float]:
    """Sum a list of numbers over all processes (float64, so counts stay exact)."""
    device = runtime.device if dist.get_backend() == 'nccl' else torch.device('cpu')
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()


def gather_by_index(parts: dict, index_key: str = 'index') -> dict:
    """Concatenate every rank's numpy arrays (all ranks get the result), ordered by dataset
    index, so the result equals what one process evaluating everything in order gives."""
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, parts)
    merged = {}
    for key in parts:
        arrays = [g[key] for g in gathered if g[key].shape[0]]   # skip empty shards
        merged[key] = np.concatenate(arrays) if arrays else parts[key]
    order = np.argsort(merged[index_key], kind='stable')
    return {k: v[order] for k, v in merged.items()}


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics), as DDP does before a
    training forward, so that evaluation on every rank uses the same model."""
    for buf in module.buffers():
        dist.broadcast(buf.data, src)


# ----------------------------------------------------------------------------- network

# The variable each backend reads for the interface its transport binds to and advertises to
# the other processes (NCCL takes a prefix unless the name starts with '=').
IFNAME_VARS = {'gloo': 'GLOO_SOCKET_IFNAME', 'nccl': 'NCCL_SOCKET_IFNAME'}
SIOCGIFADDR = 0x8915                        # ioctl: an interface's IPv4 address (linux/sockios.h)


@dataclasses.dataclass(frozen=True)
class Route:
    """The way from this host to the master: the master's address, and the interface and local
    address that the kernel's route to it leaves from."""
    master_ip: str
    interface: str | None
    address: str

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.address.split('%')[0]).is_loopback


def master_of(init_method: str) -> tuple[str, str] | None:
    """(host, where it was given) of the master that `init_method` names: tcp://HOST:PORT, or
    env:// with MASTER_ADDR; None for other rendezvous (file://)."""
    if init_method == 'env://':
        host = os.environ.get('MASTER_ADDR')
        return (host, f'MASTER_ADDR={host}') if host else None
    parsed = urlparse(init_method)
    if parsed.scheme == 'tcp' and parsed.hostname:
        return parsed.hostname, f'--dist-url {init_method}'
    return None


def source_address(ip: str) -> str:
    """The local address that packets to `ip` leave from: the source of the kernel's route to
    it, read from a connected UDP socket (connect sends nothing)."""
    family = socket.AF_INET6 if ':' in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((ip, 9))
        return s.getsockname()[0]


def ipv4_of(interface: str) -> str | None:
    """The IPv4 address of `interface` (its primary one), None if it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            req = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack('256s', interface.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(req[20:24])      # struct ifreq: name[16], sockaddr_in (port, addr)


def interface_of(address: str) -> str | None:
    """The name of the interface that holds `address` (IPv4: each interface's address by
    ioctl; IPv6: /proc/net/if_inet6), None if none does."""
    if '%' in address:                       # a link-local IPv6 address names its interface
        return address.split('%')[1]
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return next((name for _, name in socket.if_nameindex() if ipv4_of(name) == address),
                    None)
    try:
        with open('/proc/net/if_inet6') as f:
            rows = [line.split() for line in f]
    except OSError:
        return None
    return next((row[-1] for row in rows if ipaddress.ip_address(int(row[0], 16)) == ip), None)


def route_to_master(host: str, where: str, nodes: int = 1) -> Route:
    """The route to the master `host` (a name or an address; `where`: the option that gave it)
    from this node, one of `nodes`.

    A name may resolve to several addresses: Debian and Ubuntu put the machine's own name on
    127.0.1.1 in /etc/hosts, possibly above its network address. The first address whose route
    leaves through a network interface wins; a loopback one only where there is nothing else,
    which across nodes is an error unless the master was given as a loopback address (several
    "nodes" on one machine, as in the tests)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f'cannot resolve the master {host} ({where}): {exc.strerror}; give its '
                        f'address or a name that every node resolves') from None
    routes, failures = [], []
    for ip in dict.fromkeys(info[4][0] for info in infos):
        try:
            address = source_address(ip)
        except OSError as exc:
            failures.append(f'{ip}: {exc.strerror}')
            continue
        routes.append(Route(ip, interface_of(address), address))
    if not routes:
        raise UserError(f'no network interface of this node reaches the master {host} ({where}; '
                        f'tried {", ".join(failures)}); check the address and this node\'s '
                        f'network')
    route = next((r for r in routes if not r.loopback), routes[0])
    if route.loopback and nodes > 1 and not is_loopback_address(host):
        found = ', '.join(r.master_ip for r in routes)
        raise UserError(f'the master {host} ({where}) resolves on this node only to {found}, '
                        f'a loopback address, which the other nodes of this {nodes}-node group '
                        f'cannot reach; name it by an address or by a name that every node '
                        f'resolves to one (torchrun --rdzv-backend c10d names it by its host '
                        f'name: give each node\'s torchrun --local-addr ADDRESS)')
    if route.interface is None:
        raise UserError(f'the master {host} ({where}) is reached from {route.address}, which is '
                        f'on no interface this process can list; name the interface with '
                        f'{" or ".join(IFNAME_VARS.values())}')
    return route


def is_loopback_address(host: str) -> bool:
    """Whether `host` is written as a loopback address (127.0.0.1, ::1) or is localhost."""
    try:
        return host == 'localhost' or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def choose_interface(backend: str, init_method: str, nodes: int = 1) -> str | None:
    """Point the backend's transport at the interface that reaches the master, before any
    process group forms; returns the line that says so.

    By default gloo binds to the address its host name resolves to and advertises it to the
    other nodes: with Debian's /etc/hosts that is 127.0.1.1, which no other node can reach
    (NCCL has its own guess: the first interface by name). Unless the user has set the
    backend's variable (GLOO_SOCKET_IFNAME, NCCL_SOCKET_IFNAME: kept as it is), it is set here,
    in this process's environment (spawned processes inherit it), to the interface of the
    route to the master (`route_to_master`; this node is one of `nodes`). None, with nothing
    to say, where the user chose, where the master is on this host's loopback (one machine),
    or for a file:// rendezvous."""
    var, master = IFNAME_VARS.get(backend), master_of(init_method)
    if var is None or master is None or os.environ.get(var):
        return None
    host, where = master
    route = route_to_master(host, where, nodes)
    os.environ[var] = ('=' if backend == 'nccl' else '') + route.interface
    if route.loopback:
        return None
    master_ip = '' if route.master_ip == host else f' ({route.master_ip})'
    return (f'network: {route.interface} ({route.address}) reaches {host}{master_ip}; '
            f'{var}={os.environ[var]}')


def transport_address(backend: str) -> str:
    """Where this process's transport is reached, for messages: the address of the interface
    its variable names, else of its host name (gloo's default)."""
    var = IFNAME_VARS.get(backend)
    chosen = os.environ.get(var, '') if var else ''
    if chosen and not chosen.startswith('^'):
        name = chosen.lstrip('=').split(',')[0]
        return f'{ipv4_of(name) or "?"} by {var}={chosen}'
    host = socket.gethostname()
    try:
        return f'{socket.gethostbyname(host)} by host name {host}'
    except OSError:
        return f'? by host name {host}'


def describe_addresses(addresses: dict[int, str], most: int = 8) -> str:
    """'ranks 0, 2: A; rank 1: B' from {rank: address}, at most `most` addresses."""
    ranks: dict[str, list[int]] = {}
    for rank, address in sorted(addresses.items()):
        ranks.setdefault(address, []).append(rank)
    parts = [f'rank{"s" if len(r) > 1 else ""} {", ".join(map(str, r))}: {a}'
             for a, r in ranks.items()]
    more = f'; {len(parts) - most} more' if len(parts) > most else ''
    return '; '.join(parts[:most]) + more


def end_now(message: str) -> None:
    """Say `error: message` as run_main would (stderr and the open log.txt) and end the process
    at once with status 1, skipping the interpreter's teardown: for a process whose group has
    lost its peers, where that teardown can hang (see run_rank) or a wait cannot be cut
    short."""
    from utils.errors import ERROR_SINKS
    line = f'error: {message}'
    sys.stdout.flush()
    print(line, file=sys.stderr, flush=True)
    for sink in ERROR_SINKS:                 # the log files flush each line
        try:
            sink(line)
        except Exception:
            pass
    os._exit(1)


@contextlib.contextmanager
def deadline(seconds: float, message):
    """End the process with `error: message()` (end_now) if the block has not finished within
    `seconds`: for waits in torch that outlast their timeout (gloo's connect waits about five
    times it, torch 2.13). The waiting call runs in C++ without the GIL, so a thread can watch
    it; nothing can interrupt it."""
    done = threading.Event()

    def watch():
        if not done.wait(seconds):
            end_now(message())

    threading.Thread(target=watch, name='dist-deadline', daemon=True).start()
    try:
        yield
    finally:
        done.set()


# ----------------------------------------------------------------------------- start-up

def add_launch_options(parser):
    """Options of the processes' start-up, shared by train_dist.py and test.py."""
    g = parser.add_argument_group('process start-up (train_dist.py, distributed test.py)')
    g.add_argument('--nproc_per_node', default=None, type=int,
                   help='processes per node with --multiprocessing-distributed '
                        '(default: the number of GPUs; required on the CPU)')
    g.add_argument('--dist_timeout', default=300, type=int,
                   help='seconds a process waits for the others (at the master, for their '
                        'connections, in every collective, at the end) before stopping with '
                        'an error')
    return parser


def launch_from_env():
    """(rank, local_rank, world_size) set by torchrun or SLURM, or None."""
    env = os.environ
    if 'RANK' in env and 'WORLD_SIZE' in env:
        return int(env['RANK']), int(env.get('LOCAL_RANK', 0)), int(env['WORLD_SIZE'])
    if 'SLURM_PROCID' in env and 'SLURM_NTASKS' in env and int(env['SLURM_NTASKS']) > 1:
        return int(env['SLURM_PROCID']), int(env.get('SLURM_LOCALID', 0)), int(env['SLURM_NTASKS'])
    return None


def nodes_from_env(world_size: int, local_size: int) -> int:
    """The number of nodes of a torchrun or SLURM job: SLURM_NNODES, else (torchrun) the
    processes over those of this node."""
    if os.environ.get('SLURM_NNODES', '').isdigit() and 'RANK' not in os.environ:
        return int(os.environ['SLURM_NNODES'])
    return -(-world_size // max(local_size, 1))


def wants_distribution(cfg) -> bool:
    """Whether the options (a utils.config.Config) or the environment ask for more than one
    process."""
    return (launch_from_env() is not None or cfg.dist.multiprocessing_distributed
            or cfg.dist.world_size > 1)


def check_port_free(url: str) -> None:
    """On the master, a tcp:// port already in use fails with a clear message up front."""
    parsed = urlparse(url)
    if parsed.scheme != 'tcp':
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((parsed.hostname, parsed.port))
        except OSError as exc:
            raise SystemExit(f'error: cannot listen on {url} ({exc.strerror}); the port is '
                             f'taken (another run?): pick a free one with --dist-url '
                             f'tcp://HOST:PORT') from None


def _first_line(exc: BaseException) -> str:
    """The first line of an error's message, without the source location gloo puts first
    ('[/path/to/pair.cc:152] ')."""
    text = str(exc).strip().splitlines()
    return re.sub(r'^\[[^\]]*:\d+\] ', '', text[0]) if text else type(exc).__name__


def _spawned(local_rank: int, worker, cfg, nproc: int, node_rank: int, world_size: int,
             init_method: str, notes) -> None:
    """Entry of a process started by mp.spawn: its global rank follows from the node's. It ends
    as the error policy says (utils.errors.run_main: one line, or a bug's traceback); on a
    Ctrl-C only rank 0 says how to resume."""
    from utils.errors import run_main
    rank = node_rank * nproc + local_rank
    run_main(run_rank, worker, rank, local_rank, world_size, init_method, cfg, nproc, notes,
             report_interrupt=rank == 0)


def group_store(init_method: str, world_size: int, rank: int,
                timeout: datetime.timedelta) -> dist.Store:
    """The store the processes meet at, once every process has reached it (the master's
    TCPStore waits for them all), within `timeout`; under torchrun, this start's own part of
    its agent's store (`agree_on_start`), whose restart number job_restart then reports."""
    env = os.environ
    if init_method == 'env://' and env.get('TORCHELASTIC_USE_AGENT_STORE') == 'True':
        store = dist.TCPStore(env['MASTER_ADDR'], int(env['MASTER_PORT']), world_size,
                              is_master=False, timeout=timeout)
        token, number = agree_on_start(store, rank, world_size, timeout)
        set_torchrun_restarts(number - 1)
        return dist.PrefixStore(token, store)
    store, _, _ = next(dist.rendezvous(init_method, rank, world_size, timeout=timeout))
    store.set_timeout(timeout)
    return store


def agree_on_start(store: dist.Store, rank: int, world_size: int,
                   timeout: datetime.timedelta) -> tuple[str, int]:
    """(token, number) of this start of a torchrun job, the same on every rank: the key space
    of its process group in the agent's store, and 1 for the job's first start.

    torchrun's workers share its agent's store (TORCHELASTIC_USE_AGENT_STORE), which keeps
    across a restart the keys the dead processes wrote, their gloo/NCCL addresses among them
    (torch 2.13): restarted ranks that read those fail to connect. TORCHELASTIC_RESTART_COUNT
    cannot tell the starts apart: an agent counts only its own workers' failures, and under
    the c10d rendezvous the other nodes' agents restart their healthy workers without
    counting (seen: the nodes then waited in different key spaces, and one would not have
    resumed). So rank 0 draws a token and numbers the start; another rank takes the token
    only once rank 0 has echoed a nonce of the rank's own, which the token of an earlier
    start, whose rank 0 is gone or past this point, never does."""
    end = time.monotonic() + timeout.total_seconds()

    def left() -> datetime.timedelta:
        seconds = end - time.monotonic()
        if seconds <= 0:
            raise dist.DistStoreError('not every rank of this start arrived')
        return datetime.timedelta(seconds=seconds)

    if rank == 0:
        token = uuid.uuid4().hex
        number = store.add('starts', 1)
        store.set('start', f'{token} {number}')
        for r in range(1, world_size):       # echo each rank's nonce
            store.wait([f'{token}/ping/{r}'], left())
            store.set(f'{token}/echo/{r}', store.get(f'{token}/ping/{r}'))
        return token, number
    token, nonce = None, uuid.uuid4().hex
    while True:                              # polled: a store wait that times out logs twice
        store.wait(['start'], left())
        current, number = store.get('start').decode().split()
        if current != token:                 # a rank 0 (maybe of an earlier start): ping it
            token = current
            store.set(f'{token}/ping/{rank}', nonce)
        echo = f'{token}/echo/{rank}'
        if store.check([echo]) and store.get(echo).decode() == nonce:
            return token, int(number)
        left()
        time.sleep(0.2)                      # no echo yet, or an earlier start's


def join_group(backend: str, init_method: str, world_size: int, rank: int,
               timeout: datetime.timedelta) -> None:
    """init_process_group in two phases, each bounded by `timeout` on every rank, each failure
    one UserError line: meeting at the store (`group_store`), then the transport's connections
    between every pair of processes (gloo's connect would wait five times the timeout)."""
    # Before the group exists: torch.distributed.nn binds group.WORLD into its functions'
    # defaults when first imported, and DDP imports it (via torch._dynamo). Imported later it
    # would keep this group alive past destroy_process_group, so its gloo threads and sockets
    # (rank 0: the TCPStore server) would end at interpreter exit, each rank on its own
    # instead of together after the barrier: the abort at exit seen under load.
    import torch.distributed.nn  # noqa: F401
    seconds = int(timeout.total_seconds())
    try:
        store = group_store(init_method, world_size, rank, timeout)
        # Every rank's transport address, for the messages if the connections fail.
        store.set(f'address/{rank}', transport_address(backend))
        keys = [f'address/{r}' for r in range(world_size)]
        store.wait(keys, timeout)
        addresses = {r: store.get(k).decode() for r, k in enumerate(keys)}
    except (RuntimeError, ValueError) as exc:         # DistError is a RuntimeError
        raise UserError(f'rank {rank}: could not form the group of {world_size} processes at '
                        f'{init_method} within --dist_timeout {seconds}s ({_first_line(exc)}); '
                        f'check that every rank was started with the same --world-size and '
                        f'--dist-url, and that every node reaches the master') from None
    where = (f'the ranks\' addresses: {describe_addresses(addresses)}; each must be reachable '
             f'from every node (see docs/distributed.md, Network)')

    def unanswered():
        return (f'rank {rank}: the other processes did not connect within --dist_timeout '
                f'{seconds}s; {where}')

    with deadline(seconds, unanswered):
        try:
            dist.init_process_group(backend, store=store, world_size=world_size, rank=rank,
                                    timeout=timeout)
        except (RuntimeError, ValueError) as exc:
            # gloo names the peer it tried: 'remote=[ADDRESS]:PORT', 'SO_ERROR: REASON'.
            found = re.search(r'remote=\[([^\]]+)\]:(\d+)', str(exc))
            reason = re.search(r'SO_ERROR: ([^,]+)', str(exc))
            tried = f'{found.group(1)}:{found.group(2)}' if found else 'the others'
            why = reason.group(1) if reason else _first_line(exc)
            raise UserError(f'rank {rank}: could not connect to {tried} ({why}) within '
                            f'--dist_timeout {seconds}s; {where}') from None


def backend_of(cfg) -> str:
    """--dist-backend, else nccl on CUDA and gloo on the CPU."""
    use_cuda = torch.cuda.is_available() and cfg.run.device != 'cpu'
    return cfg.dist.dist_backend or ('nccl' if use_cuda else 'gloo')


def run_rank(worker, rank: int, local_rank: int, world_size: int, init_method: str, cfg,
             nproc: int, notes):
    """Join the process group as `rank` and run worker(cfg, runtime, notes), with this
    process's share of the node's -j workers."""
    timeout = cfg.dist.dist_timeout
    backend = backend_of(cfg)
    if torch.cuda.is_available() and cfg.run.device != 'cpu':
        torch.cuda.set_device(local_rank)
        device = torch.device('cuda', local_rank)
    else:
        device = torch.device('cpu')
        if 'OMP_NUM_THREADS' not in os.environ:   # torchrun sets it; else share the cores
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // nproc))
    join_group(backend, init_method, world_size, rank, datetime.timedelta(seconds=timeout))
    workers = max(0, (cfg.data.workers + nproc - 1) // nproc)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, workers=workers))
    try:
        result = worker(cfg, Runtime(device=device, rank=rank, world_size=world_size), notes)
        # Leave together: a gloo process that exits while a peer still talks to it can abort
        # it ("terminate called without an active exception"), seen under load. The barrier
        # honours the group's timeout; the deadline bounds the teardown too.
        with deadline(timeout + 10, lambda: lost_message(rank, timeout, 'no answer at the end '
                                                                         'of the run')):
            dist.barrier()
            dist.destroy_process_group()
    except BaseException as exc:
        if isinstance(exc, RuntimeError) and lost_other_processes(exc):
            # The group's threads may still be busy with the lost peers, and tearing it down
            # (also at exit, with the DDP model) joins them while holding the GIL that one of
            # them waits for: a hang seen after a link went down. So say why, and end here.
            end_now(lost_message(rank, timeout, _first_line(exc)))
        try:   # after a failure the group may be broken: do not wait on the others
            dist.destroy_process_group()
        except Exception:
            pass
        raise
    return result


def lost_message(rank: int, timeout: int, what: str) -> str:
    """The line of a rank whose peers are gone; `what`: the error that showed it."""
    what = what.split('. ')[0]               # gloo adds advice (and an emoji) after the cause
    return (f'rank {rank}: lost the other processes ({what}); another rank died or stopped '
            f'answering within --dist_timeout {timeout}s: see its output')


def lost_other_processes(exc: RuntimeError) -> bool:
    """Whether an error means another rank is gone (a collective failed or timed out)."""
    if isinstance(exc, dist.DistError):
        return True
    return any(s in str(exc) for s in ('Connection', 'connection', 'Gloo', 'gloo', 'NCCL',
                                       'Timed out', 'timed out', 'timeout', 'peer',
                                       'pair closure'))


def launch(worker, cfg, notes, global_batch: bool = True):
    """Start this node's processes in whichever way they were asked for and run
    worker(cfg, runtime, notes) in each (`cfg`: a utils.config.Config), each talking through
    the interface that reaches the master (`choose_interface`). Returns the worker's result
    where it ran in this process (torchrun, SLURM, one process per node), else None."""
    import torch.multiprocessing as mp
    dist_cfg = cfg.dist
    if dist_cfg.sync_bn and not torch.cuda.is_available():
        notes.append('--sync-bn is ignored on the CPU (SyncBatchNorm needs CUDA)')
    env = launch_from_env()
    if env is not None:                      # torchrun or SLURM: this process is one rank
        rank, local_rank, world_size = env
        check_batch(cfg.optim.batch_size, world_size, global_batch)
        init = 'env://' if 'MASTER_ADDR' in os.environ else dist_cfg.dist_url
        local_size = int(os.environ.get('LOCAL_WORLD_SIZE', os.environ.get(
            'SLURM_NTASKS_PER_NODE', '1')).split('(')[0])
        tell_network(choose_interface(backend_of(cfg), init, nodes_from_env(world_size,
                                                                            local_size)),
                     rank, local_rank, notes)
        return run_rank(worker, rank, local_rank, world_size, init, cfg, local_size, notes)
    nodes = max(dist_cfg.world_size, 1)
    node_rank = max(dist_cfg.rank, 0)
    if node_rank >= nodes:
        raise SystemExit(f'error: --rank {dist_cfg.rank} must be below --world-size {nodes}')
    if dist_cfg.multiprocessing_distributed:
        nproc = dist_cfg.nproc_per_node or torch.cuda.device_count()
        if nproc < 1:
            raise SystemExit('error: no GPU found; on the CPU give --nproc_per_node N')
    else:
        nproc = 1
    world_size = nodes * nproc
    check_batch(cfg.optim.batch_size, world_size, global_batch)
    if node_rank == 0 and world_size > 1:
        check_port_free(dist_cfg.dist_url)
    if world_size > 1:                       # before spawning: the processes inherit it
        tell_network(choose_interface(backend_of(cfg), dist_cfg.dist_url, nodes),
                     node_rank * nproc, 0, notes)
    if nproc > 1:
        # torch logs "Terminating process N via signal SIGTERM" after a rank's error line:
        # the rank has said what went wrong, so that line would only bury it.
        logging.getLogger('torch.multiprocessing.spawn').setLevel(logging.ERROR)
        try:
            mp.spawn(_spawned, nprocs=nproc, args=(worker, cfg, nproc, node_rank, world_size,
                                                    dist_cfg.dist_url, notes))
        except (mp.ProcessExitedException, mp.ProcessRaisedException) as exc:
            # A rank ends through run_main, which has printed its one line (or a bug's
            # traceback) before exiting with 1, or said how to resume after a Ctrl-C (130).
            if getattr(exc, 'exit_code', None) in (1, 130):
                raise SystemExit(exc.exit_code) from None
            raise SystemExit(f'error: {_first_line(exc)} (its error is printed above); the '
                             f'other processes of this node were stopped') from None
        except KeyboardInterrupt:            # the processes report it themselves (rank 0)
            raise SystemExit(130) from None
        return None
    return run_rank(worker, node_rank, 0, world_size, dist_cfg.dist_url, cfg, 1, notes)


def tell_network(line: str | None, rank: int, local_rank: int, notes: list) -> None:
    """Say once a node which interface it talks through: rank 0 in its log (a note), the
    first process of every other node on its console (those have no log)."""
    if line is None:
        return
    if rank == 0:
        notes.append(line)
    elif local_rank == 0:
        print(line, flush=True)


def check_batch(batch_size: int, world_size: int, global_batch: bool) -> None:
    if global_batch and batch_size % world_size:
        raise SystemExit(f'error: -b {batch_size} is the global batch and must divide '
                         f'evenly among the {world_size} processes')
