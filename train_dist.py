#!/usr/bin/env python3
"""Distributed training: DistributedDataParallel, one process per GPU (or per CPU slot).

Only process start-up lives here; the training is utils/engine.fit, as in train.py.
Launch styles (the README has copy-paste commands):
  1. one node: --multiprocessing-distributed spawns one process per GPU (--nproc_per_node N
     on the CPU);
  2. several nodes, the original way: the same command on each node with
     --world-size NODES --rank NODE_RANK --dist-url tcp://HOST:PORT;
  3. torchrun (RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT in the environment);
  4. SLURM srun (SLURM_PROCID / SLURM_LOCALID / SLURM_NTASKS), --dist-url naming the master.
-b is the global batch size, split evenly across all processes; -j is the number of loader
workers per node, split across its processes.
"""
import datetime
import os
import socket
from urllib.parse import urlparse

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from opts import arg_parser, validate_args
from utils.engine import Runtime, fit


def dist_parser():
    p = arg_parser()
    g = p.add_argument_group('process start-up (train_dist.py)')
    g.add_argument('--nproc_per_node', default=None, type=int,
                   help='processes per node with --multiprocessing-distributed '
                        '(default: the number of GPUs; required on the CPU)')
    g.add_argument('--dist_timeout', default=300, type=int,
                   help='seconds a process waits for the others (start-up and every '
                        'collective) before stopping with an error')
    return p


def launch_from_env():
    """(rank, local_rank, world_size) set by torchrun or SLURM, or None."""
    env = os.environ
    if 'RANK' in env and 'WORLD_SIZE' in env:
        return int(env['RANK']), int(env.get('LOCAL_RANK', 0)), int(env['WORLD_SIZE'])
    if 'SLURM_PROCID' in env and 'SLURM_NTASKS' in env and int(env['SLURM_NTASKS']) > 1:
        return int(env['SLURM_PROCID']), int(env.get('SLURM_LOCALID', 0)), int(env['SLURM_NTASKS'])
    return None


def check_port_free(url: str) -> None:
    """On the master, a tcp:// port already in use fails with a clear message up front."""
    parsed = urlparse(url)
    if parsed.scheme != 'tcp':
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((parsed.hostname, parsed.port))
        except OSError as exc:
            raise SystemExit(f'error: cannot listen on {url} ({exc.strerror}); pick a free port '
                             f'with --dist-url tcp://HOST:PORT') from None


def spawned(local_rank: int, args, nproc: int, node_rank: int, world_size: int,
            init_method: str, notes) -> None:
    """Entry of a process started by mp.spawn: its global rank follows from the node's."""
    run_rank(node_rank * nproc + local_rank, local_rank, world_size, init_method, args, nproc,
             notes)


def run_rank(rank: int, local_rank: int, world_size: int, init_method: str, args, nproc: int,
             notes) -> None:
    """Join the process group as `rank` and train."""
    use_cuda = torch.cuda.is_available() and args.device != 'cpu'
    backend = args.dist_backend or ('nccl' if use_cuda else 'gloo')
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device('cuda', local_rank)
    else:
        device = torch.device('cpu')
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // nproc))
    dist.init_process_group(backend, init_method=init_method, world_size=world_size, rank=rank,
                            timeout=datetime.timedelta(seconds=args.dist_timeout))
    try:
        args.workers = max(0, (args.workers + nproc - 1) // nproc)
        fit(args, Runtime(device=device, rank=rank, world_size=world_size), notes)
    finally:
        dist.destroy_process_group()


def main(argv=None) -> None:
    args = dist_parser().parse_args(argv)
    notes = validate_args(args, 'train_dist')
    if args.sync_bn and not torch.cuda.is_available():
        notes.append('--sync-bn is ignored on the CPU (SyncBatchNorm needs CUDA)')
    env = launch_from_env()
    if env is not None:                      # torchrun or SLURM: this process is one rank
        rank, local_rank, world_size = env
        init = 'env://' if 'MASTER_ADDR' in os.environ else args.dist_url
        local_size = int(os.environ.get('LOCAL_WORLD_SIZE', os.environ.get(
            'SLURM_NTASKS_PER_NODE', '1')).split('(')[0])
        run_rank(rank, local_rank, world_size, init, args, local_size, notes)
        return
    nodes = max(args.world_size, 1)
    node_rank = max(args.rank, 0)
    if args.multiprocessing_distributed:
        nproc = args.nproc_per_node or torch.cuda.device_count()
        if nproc < 1:
            raise SystemExit('error: no GPU found; on the CPU give --nproc_per_node N')
    else:
        nproc = 1
    world_size = nodes * nproc
    if node_rank == 0:
        check_port_free(args.dist_url)
    if nproc > 1:
        mp.spawn(spawned, nprocs=nproc, args=(args, nproc, node_rank, world_size,
                                              args.dist_url, notes))
    else:
        run_rank(node_rank, 0, world_size, args.dist_url, args, 1, notes)


if __name__ == '__main__':
    main()
