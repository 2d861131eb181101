"""Distributed helpers: samplers that count every video exactly once, and exact reductions."""
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler, Sampler


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


def all_reduce_sum(values: list[float], runtime) -> list[float]:
    """Sum a list of numbers over all processes (float64, so counts stay exact)."""
    device = runtime.device if dist.get_backend() == 'nccl' else torch.device('cpu')
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().tolist()
