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
