"""Model size as the paper counts it: parameters and conv multiply-accumulates (MACs) of one clip."""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    """All parameters (buffers such as BatchNorm statistics are not counted)."""
    return sum(p.numel() for p in model.parameters())


def count_conv_macs(model: nn.Module, frames: int, size: int, channels: int = 3) -> int:
    """Conv MACs of one clip (batch 1) of ``frames`` x ``size`` x ``size``, the classifier excluded.

    Counted with ``FlopCounterMode`` under ``aten.convolution`` (2 FLOPs per MAC) on a copy of the
    model on the meta device, so nothing is computed and large models cost no memory.
    """
    meta = copy.deepcopy(model).to('meta') if _device_of(model) != 'meta' else model
    meta.eval()
    x = torch.empty(1, channels, frames, size, size, device='meta')
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(x)
    counts = counter.get_flop_counts()['Global']
    return sum(n for op, n in counts.items() if 'convolution' in str(op)) // 2


def _device_of(model: nn.Module) -> str:
    p = next(model.parameters(), None)
    return 'cpu' if p is None else p.device.type
