"""Where a process runs: its device and, under distribution, its place in the group.

A leaf module, so that the engine and utils/distributed.py can both use it without importing
each other."""
from dataclasses import dataclass

import torch


@dataclass
class Runtime:
    """The device of this process and its rank among world_size processes."""
    device: torch.device
    rank: int = 0
    world_size: int = 1
    data_parallel: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


# The restarts of a torchrun job as its ranks agreed on them (utils.distributed.join_group);
# None where no torchrun group was joined in this process.
_torchrun_restarts: int | None = None


def set_torchrun_restarts(count: int) -> None:
    """Record the restart number that every rank of this torchrun job agreed on. It, not this
    process's TORCHELASTIC_RESTART_COUNT, says whether the job was restarted: under the c10d
    rendezvous an agent restarts healthy workers (when another node's failed) without counting
    a restart, so that the nodes' counts differ."""
    global _torchrun_restarts
    _torchrun_restarts = count


def job_restart() -> tuple[int, str] | None:
    """(restart number, by whom) when this process belongs to a job that its launcher started
    again after a failure or preemption: torchrun --max-restarts (as the ranks agreed,
    set_torchrun_restarts; else TORCHELASTIC_RESTART_COUNT) or SLURM's requeue
    (SLURM_RESTART_COUNT); None for a first start."""
    import os
    if _torchrun_restarts:
        return _torchrun_restarts, 'torchrun'
    sources = (('TORCHELASTIC_RESTART_COUNT', 'torchrun'), ('SLURM_RESTART_COUNT', 'SLURM'))
    for var, who in sources[_torchrun_restarts is not None:]:
        count = os.environ.get(var, '0')
        if count.isdigit() and int(count) > 0:
            return int(count), who
    return None
