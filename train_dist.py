#!/usr/bin/env python3
"""Distributed training: DistributedDataParallel, one process per GPU (or per CPU slot).

Only process start-up lives here (and in utils/distributed.py, shared with test.py); the
training is utils/engine.fit, as in train.py.
Launch styles (docs/distributed.md has copy-paste commands):
  1. one node: --multiprocessing-distributed spawns one process per GPU (--nproc_per_node N
     on the CPU);
  2. several nodes, the original way: the same command on each node with
     --world-size NODES --rank NODE_RANK --dist-url tcp://HOST:PORT;
  3. torchrun (RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT in the environment);
  4. SLURM srun, one task per GPU (SLURM_PROCID / SLURM_LOCALID / SLURM_NTASKS), with
     MASTER_ADDR/MASTER_PORT exported or --dist-url naming the master.
Across nodes, each node talks through the network interface that reaches the master
(GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME, unless set) and every wait ends within
--dist_timeout (utils/distributed.py; docs/distributed.md, Network).
-b is the global batch size, split evenly across all processes (an error if it does not
divide); -j is the number of loader workers per node, split across its processes.
"""
from opts import arg_parser, parse_config
from utils.distributed import add_launch_options, launch
from utils.engine import fit
from utils.errors import run_main


def dist_parser():
    p = arg_parser(distributed=True)
    p.description = ('Distributed training (DistributedDataParallel). -b/--batch-size is the '
                     'GLOBAL batch: it is split evenly across all processes of all nodes; '
                     '-j is the loader workers per node, split across its processes.')
    return add_launch_options(p)


def main(argv=None):
    cfg, notes, _ = parse_config(dist_parser(), argv, 'train_dist')
    return launch(fit, cfg, notes, global_batch=True)      # every rank runs fit


if __name__ == '__main__':
    run_main(main)
