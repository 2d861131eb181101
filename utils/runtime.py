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


def job_restart() -> tuple[int, str] | None:
    """(restart number, by whom) when this process belongs to a job that its launcher started
    again after a failure or preemption: torchrun --max-restarts (TORCHELASTIC_RESTART_COUNT)
    or SLURM's requeue (SLURM_RESTART_COUNT); None for a first start."""
    import os
    for var, who in (('TORCHELASTIC_RESTART_COUNT', 'torchrun'),
                     ('SLURM_RESTART_COUNT', 'SLURM')):
        count = os.environ.get(var, '0')
        if count.isdigit() and int(count) > 0:
            return int(count), who
    return None
