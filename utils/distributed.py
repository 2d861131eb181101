"""Distributed helpers: process start-up shared by train_dist.py and test.py, samplers that
count every video exactly once, and exact reductions and gathers."""
import dataclasses
import datetime
import logging
import os
import socket
from urllib.parse import urlparse

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler, Sampler

from utils.runtime import Runtime


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


# ----------------------------------------------------------------------------- start-up

def add_launch_options(parser):
    """Options of the processes' start-up, shared by train_dist.py and test.py."""
    g = parser.add_argument_group('process start-up (train_dist.py, distributed test.py)')
    g.add_argument('--nproc_per_node', default=None, type=int,
                   help='processes per node with --multiprocessing-distributed '
                        '(default: the number of GPUs; required on the CPU)')
    g.add_argument('--dist_timeout', default=300, type=int,
                   help='seconds a process waits for the others (start-up and every '
                        'collective) before stopping with an error')
    return parser


def launch_from_env():
    """(rank, local_rank, world_size) set by torchrun or SLURM, or None."""
    env = os.environ
    if 'RANK' in env and 'WORLD_SIZE' in env:
        return int(env['RANK']), int(env.get('LOCAL_RANK', 0)), int(env['WORLD_SIZE'])
    if 'SLURM_PROCID' in env and 'SLURM_NTASKS' in env and int(env['SLURM_NTASKS']) > 1:
        return int(env['SLURM_PROCID']), int(env.get('SLURM_LOCALID', 0)), int(env['SLURM_NTASKS'])
    return None


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
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _spawned(local_rank: int, worker, cfg, nproc: int, node_rank: int, world_size: int,
             init_method: str, notes) -> None:
    """Entry of a process started by mp.spawn: its global rank follows from the node's. It ends
    as the error policy says (utils.errors.run_main: one line, or a bug's traceback); on a
    Ctrl-C only rank 0 says how to resume."""
    from utils.errors import run_main
    rank = node_rank * nproc + local_rank
    run_main(run_rank, worker, rank, local_rank, world_size, init_method, cfg, nproc, notes,
             report_interrupt=rank == 0)


def join_group(backend: str, init_method: str, world_size: int, rank: int,
               timeout: datetime.timedelta) -> None:
    """init_process_group, with each restart of a torchrun job in its own key space.

    torchrun's workers share its agent's store (TORCHELASTIC_USE_AGENT_STORE), which keeps
    across a restart the keys the dead processes wrote, their gloo/NCCL addresses among them
    (torch 2.13): the restarted ranks read those and fail to connect ('Connection refused').
    A prefix per restart (TORCHELASTIC_RESTART_COUNT) keeps the rounds apart."""
    # Before the group exists: torch.distributed.nn binds group.WORLD into its functions'
    # defaults when first imported, and DDP imports it (via torch._dynamo). Imported later it
    # would keep this group alive past destroy_process_group, so its gloo threads and sockets
    # (rank 0: the TCPStore server) would end at interpreter exit, each rank on its own
    # instead of together after the barrier: the abort at exit seen under load.
    import torch.distributed.nn  # noqa: F401
    env = os.environ
    if init_method == 'env://' and env.get('TORCHELASTIC_USE_AGENT_STORE') == 'True':
        store = dist.TCPStore(env['MASTER_ADDR'], int(env['MASTER_PORT']), world_size,
                              is_master=False, timeout=timeout)
        store = dist.PrefixStore(f'restart{env.get("TORCHELASTIC_RESTART_COUNT", "0")}', store)
        dist.init_process_group(backend, store=store, world_size=world_size, rank=rank,
                                timeout=timeout)
        return
    dist.init_process_group(backend, init_method=init_method, world_size=world_size, rank=rank,
                            timeout=timeout)


def run_rank(worker, rank: int, local_rank: int, world_size: int, init_method: str, cfg,
             nproc: int, notes):
    """Join the process group as `rank` and run worker(cfg, runtime, notes), with this
    process's share of the node's -j workers."""
    timeout = cfg.dist.dist_timeout
    use_cuda = torch.cuda.is_available() and cfg.run.device != 'cpu'
    backend = cfg.dist.dist_backend or ('nccl' if use_cuda else 'gloo')
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device('cuda', local_rank)
    else:
        device = torch.device('cpu')
        if 'OMP_NUM_THREADS' not in os.environ:   # torchrun sets it; else share the cores
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // nproc))
    try:
        join_group(backend, init_method, world_size, rank, datetime.timedelta(seconds=timeout))
    except (RuntimeError, ValueError) as exc:         # DistError is a RuntimeError
        raise SystemExit(f'error: rank {rank}: could not form the group of {world_size} '
                         f'processes at {init_method} within --dist_timeout '
                         f'{timeout}s ({_first_line(exc)}); check that every rank '
                         f'was started with the same --world-size and --dist-url') from None
    workers = max(0, (cfg.data.workers + nproc - 1) // nproc)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, workers=workers))
    try:
        result = worker(cfg, Runtime(device=device, rank=rank, world_size=world_size), notes)
    except BaseException as exc:
        try:   # after a failure the group may be broken: do not wait on the others
            dist.destroy_process_group()
        except Exception:
            pass
        if isinstance(exc, RuntimeError) and lost_other_processes(exc):
            raise SystemExit(f'error: rank {rank}: lost the other processes ({_first_line(exc)}); '
                             f'another rank died or stopped answering within --dist_timeout '
                             f'{timeout}s: see its output') from None
        raise
    # Leave together: a gloo process that exits while a peer still talks to it can abort it
    # ("terminate called without an active exception"), seen under load.
    dist.barrier()
    dist.destroy_process_group()
    return result


def lost_other_processes(exc: RuntimeError) -> bool:
    """Whether an error means another rank is gone (a collective failed or timed out)."""
    if isinstance(exc, dist.DistError):
        return True
    return any(s in str(exc) for s in ('Connection', 'connection', 'Gloo', 'gloo', 'NCCL',
                                       'Timed out', 'timed out', 'peer'))


def launch(worker, cfg, notes, global_batch: bool = True):
    """Start this node's processes in whichever way they were asked for and run
    worker(cfg, runtime, notes) in each (`cfg`: a utils.config.Config). Returns the worker's result where it ran in this
    process (torchrun, SLURM, one process per node), else None."""
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


def check_batch(batch_size: int, world_size: int, global_batch: bool) -> None:
    if global_batch and batch_size % world_size:
        raise SystemExit(f'error: -b {batch_size} is the global batch and must divide '
                         f'evenly among the {world_size} processes')
