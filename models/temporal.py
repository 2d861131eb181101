"""Temporal modules for 2D networks that see the frames of a clip in the batch dimension.

Both act on per-frame features ``(B*T, C, H, W)`` and know ``T`` (``frames``) from construction,
since the 2D network fixes how many frames each stage sees.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class ChannelScale(nn.Module):
    """A 1x1 conv without bias: per-channel (depthwise) by default, full with ``depthwise=False``.

    Named ``fc1`` inside so the original release's keys (``tam.prev_se.fc1.weight``) load directly.
    """

    def __init__(self, channels: int, depthwise: bool = True):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels, 1, bias=False, groups=channels if depthwise else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc1(x)


def shift_frames(x: torch.Tensor, offset: int) -> torch.Tensor:
    """``out[:, t] = x[:, t - offset]`` along dim 1 of a (B, T, ...) tensor, zeros where t - offset is outside."""
    if offset == 0:
        return x
    out = torch.zeros_like(x)
    if offset > 0:
        out[:, offset:] = x[:, :-offset]
    else:
        out[:, :offset] = x[:, -offset:]
    return out


class TAM(nn.Module):
    """Temporal Aggregation Module (Fan et al., NeurIPS 2019, "More is less").

    Each frame becomes ReLU(sum or max over offsets d of w_d * frame[t + d]), where w_d are
    per-channel weights (a depthwise 1x1 conv without bias, a full one with ``depthwise=False``)
    and d runs over i - n//2 for i = 0..n-1, n = ``blending_frames``: -1, 0, 1 for 3; -2..1 for
    an even 4, as the original's temporal_modeling.py. Frames outside the clip count as zero. With
    3 blending frames the weights are named prev/curr/next as in the original release, otherwise
    ``blending_layers.i``.
    """

    def __init__(self, channels: int, frames: int, blending_frames: int = 3,
                 blending_method: str = 'sum', depthwise: bool = True):
        super().__init__()
        if blending_frames < 1:
            raise ValueError(f'--blending_frames must be positive, not {blending_frames}')
        if blending_method not in ('sum', 'max'):
            raise ValueError(f'--blending_method must be sum or max, not {blending_method!r}')
        self.frames, self.blending_frames, self.blending_method = frames, blending_frames, blending_method
        self.offsets = [i - blending_frames // 2 for i in range(blending_frames)]
        if blending_frames == 3:
            # registration order of the release: prev, next, curr
            self.prev_se = ChannelScale(channels, depthwise)
            self.next_se = ChannelScale(channels, depthwise)
            self.curr_se = ChannelScale(channels, depthwise)
        else:
            self.blending_layers = nn.ModuleList(ChannelScale(channels, depthwise) for _ in self.offsets)
        self.relu = nn.ReLU(inplace=True)

    def weights_for_offsets(self) -> list[nn.Module]:
        if self.blending_frames == 3:
            return [self.prev_se, self.curr_se, self.next_se]
        return list(self.blending_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bt, c, h, w = x.shape
        # A neighbour at offset d is frame t + d: weight frame t, then move it by -d.
        parts = [shift_frames(layer(x).view(bt // self.frames, self.frames, c, h, w), -d)
                 for d, layer in zip(self.offsets, self.weights_for_offsets())]
        stacked = torch.stack(parts)
        out = stacked.sum(0) if self.blending_method == 'sum' else stacked.max(0).values
        return self.relu(out.view(bt, c, h, w))

    def extra_repr(self) -> str:
        return f'frames={self.frames}, blending_frames={self.blending_frames}, method={self.blending_method}'


class TemporalShift(nn.Module):
    """Temporal Shift Module (Lin et al., ICCV 2019): 1/shift_div of the channels take the next
    frame's values, another 1/shift_div the previous frame's, the rest stay. No parameters."""

    def __init__(self, channels: int, frames: int, shift_div: int = 8):
        super().__init__()
        if shift_div < 2:
            raise ValueError(f'--shift_div must be at least 2, not {shift_div}')
        self.frames, self.fold = frames, channels // shift_div
        self.shift_div = shift_div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bt, c, h, w = x.shape
        x = x.view(bt // self.frames, self.frames, c, h, w)
        f = self.fold
        out = torch.cat([shift_frames(x[:, :, :f], -1),          # from the next frame
                         shift_frames(x[:, :, f:2 * f], 1),       # from the previous frame
                         x[:, :, 2 * f:]], dim=2)
        return out.view(bt, c, h, w)

    def extra_repr(self) -> str:
        return f'frames={self.frames}, shift_div={self.shift_div}'


# The ModelConfig options each temporal module reads (the others are ignored, with a note).
TEMPORAL_OPTIONS = {'TSN': (), 'TAM': ('blending_frames', 'blending_method', 'no_dw_conv'),
                    'TSM': ('shift_div',)}


def make_temporal_module(name: str, channels: int, frames: int, cfg) -> nn.Module | None:
    """The temporal module ``--temporal_module_name`` names for a block input of this size
    (`cfg`: a models.config.ModelConfig)."""
    if name == 'TSN':
        return None
    if name == 'TAM':
        return TAM(channels, frames, cfg.blending_frames, cfg.blending_method,
                   depthwise=not cfg.no_dw_conv)
    if name == 'TSM':
        return TemporalShift(channels, frames, cfg.shift_div)
    raise SystemExit(f'error: unknown --temporal_module_name {name!r} (TSN, TAM or TSM)')


def temporal_arch_suffix(cfg) -> str:
    """``TSN``, ``TAM-b3-sum`` or ``TSM-s8``: the temporal part of a 2D model's arch name."""
    name = cfg.temporal_module_name
    if name == 'TAM':
        return f'TAM-b{cfg.blending_frames}-{cfg.blending_method}' + ('-nodw' if cfg.no_dw_conv else '')
    if name == 'TSM':
        return f'TSM-s{cfg.shift_div}'
    return name
