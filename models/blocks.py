"""Building blocks shared by the families: temporal pooling between stages and shape helpers."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def pooled_frames(frames: int, kernel: int = 3, stride: int = 2, padding: int = 1) -> int:
    """Frames left after a temporal pooling (or strided temporal conv) of this size."""
    return (frames + 2 * padding - kernel) // stride + 1


class TemporalPool(nn.Module):
    """Pool time (kernel 3, stride 2, padding 1) of per-frame features, max or average.

    2D models keep frames in the batch dimension, ``(B*T, C, H, W)``, in clips of ``frames``;
    3D models pass ``(B, C, T, H, W)``. As the original's ``TemporalPooling`` (nn.MaxPool3d /
    nn.AvgPool3d over time, floor mode): max pooling pads with -inf; average pooling counts the
    zero padding (``count_include_pad``, nn.AvgPool3d's default), so a border window of frames
    {pad, a, b} gives (a + b) / 3.
    """

    def __init__(self, frames: int, method: str = 'max', kernel: int = 3, stride: int = 2, padding: int = 1,
                 count_include_pad: bool = True):
        super().__init__()
        if method not in ('max', 'avg'):
            raise ValueError(f'pooling method must be max or avg, not {method!r}')
        self.frames, self.method = frames, method
        self.kernel, self.stride, self.padding = kernel, stride, padding
        self.count_include_pad = count_include_pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames_in_batch = x.dim() == 4
        if frames_in_batch:
            bt, c, h, w = x.shape
            x = x.view(bt // self.frames, self.frames, c, h, w).transpose(1, 2)   # (B, C, T, H, W)
        k, s, p = (self.kernel, 1, 1), (self.stride, 1, 1), (self.padding, 0, 0)
        if self.method == 'max':
            x = F.max_pool3d(x, k, s, p)
        else:
            # avg_pool3d rejects clips shorter than the kernel even when padded (torch 2.13: 2
            # frames, kernel 3): pad by hand, then pool without padding, which is the same sums.
            t = x.shape[2]
            pad = (0, 0, 0, 0, self.padding, self.padding)
            x = F.avg_pool3d(F.pad(x, pad), k, s)
            if not self.count_include_pad:   # divide by the real frames of each window instead
                x = x / F.avg_pool3d(F.pad(x.new_ones(1, 1, t, 1, 1), pad), k, s)
        if frames_in_batch:
            x = x.transpose(1, 2).reshape(-1, c, h, w)
        return x

    def extra_repr(self) -> str:
        return (f'frames={self.frames}, method={self.method}, kernel={self.kernel}, stride={self.stride}'
                + ('' if self.method == 'max' or self.count_include_pad else ', count_include_pad=False'))


def frames_to_batch(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B*T, C, H, W), for 2D networks applied to every frame."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


def init_conv(conv: nn.Module) -> None:
    """Kaiming-normal weights (fan out, ReLU), zero bias: every conv's start."""
    nn.init.kaiming_normal_(conv.weight, mode='fan_out', nonlinearity='relu')
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal convs, unit BatchNorm, small normal classifier (the usual ResNet start).
    TAM's per-channel weights are convs too and start random, as in the original release: a TAM
    started as the identity (neighbour frames weighted 0) learnt frame order far more slowly."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            init_conv(m)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def set_input_channels(model: nn.Module, channels: int) -> nn.Module:
    """Replace the network's first conv (the stem) by one taking `channels` input channels,
    same kernel, stride and padding, Kaiming-initialised like every conv (init_conv)."""
    # named_modules() is depth-first in registration order: the stem's conv comes first.
    name, old = next(((n, m) for n, m in model.named_modules()
                      if isinstance(m, (nn.Conv2d, nn.Conv3d))), (None, None))
    if old is None:
        raise ValueError(f'{type(model).__name__} has no conv layer')
    conv = type(old)(channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                     old.dilation, old.groups, bias=old.bias is not None,
                     device=old.weight.device)
    if conv.weight.device.type != 'meta':
        init_conv(conv)
    parent, _, attr = name.rpartition('.')
    setattr(model.get_submodule(parent), attr, conv)
    return model


class Conv3d(nn.Conv3d):
    """nn.Conv3d that leaves CPU bf16 autocast for the clips oneDNN gets wrong.

    In torch 2.13 the CPU bf16 weight gradient of a 3D conv is wrong (errors of 1e35, NaN) or the
    process aborts ("double free or corruption") when the input has fewer frames than the kernel
    but more than one: a 3x1x1 conv on 2 frames, I3D's 7x7x7 conv1 on 4. Those calls run in
    float32 (a few small late-stage convs); everything else keeps bf16. Same parameters and keys
    as nn.Conv3d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[2]
        if (1 < frames < self.kernel_size[0] and x.device.type == 'cpu'
                and torch.is_autocast_enabled('cpu')):
            with torch.autocast('cpu', enabled=False):
                return super().forward(x.float())
        return super().forward(x)
