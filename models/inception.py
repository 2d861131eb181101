"""Inception-v1 (GoogLeNet with BatchNorm) families for video: ``i3d``, ``s3d`` and ``inception_v1``.

All three share one trunk, :class:`InceptionV1`, parametrised by the conv unit that builds every
conv-BN-ReLU: a 2D unit (``inception_v1``, applied to every frame), an inflated 3D unit (``i3d``) or
a separable 3D unit (``s3d``: spatial 1xkxk, then temporal kx1x1). Module names follow torchvision's
GoogLeNet (``conv1.conv``, ``inception3a.branch2.1.bn``, ``fc``, ...) so ImageNet weights load by
name; the temporal half of a separable unit is called ``conv_t`` / ``bn_t`` and starts from scratch.
``inception_v1`` takes TSN (no temporal module), TAM or TSM (``models.temporal``) after conv1, conv2,
conv3 and every Inception block, named ``tam1`` .. ``tam5b`` like the TAM release.

Time is never strided by a conv (conv1 keeps every frame: I3D's 7x7x7 stem and S3D's plain 3x7x7
stem both have temporal stride 1). With t-stride (the default) it is halved instead at the three
pools before inception3a, inception4a and inception5a, by a :class:`~models.blocks.TemporalPool`
(kernel 3, stride 2, padding 1; max or avg from ``--pooling_method``) after the spatial max pool of
that stage, for all three families alike; ``--without_t_stride`` leaves time untouched. Splitting a
pool into space then time is exactly the joint 3x3x3 max pool for max pooling, and keeps ImageNet's
spatial max pooling when time is averaged. The spatial pools (ceil mode, like torchvision) and the
convs reproduce the reference costs: for 174 classes, 8 frames of 224x224, t-stride:

=====================  ===========  ================
family                 params       conv MACs
=====================  ===========  ================
i3d                    12,465,614   21,411,353,600
s3d                     8,081,678   12,264,670,208
inception_v1-TSN        5,778,254    6,521,725,952
=====================  ===========  ================
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch
import torch.nn as nn

from models.blocks import (Conv3d, TemporalPool, average_over_time, frames_to_batch, init_weights,
                           pooled_frames)
from models.registry import register, time_suffix
from models.temporal import make_temporal_module, temporal_arch_suffix

# (in, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5" (a 3x3 conv, as in torchvision), pool proj) per block.
INCEPTION_CFG = {
    'inception3a': (192, 64, 96, 128, 16, 32, 32),
    'inception3b': (256, 128, 128, 192, 32, 96, 64),
    'inception4a': (480, 192, 96, 208, 16, 48, 64),
    'inception4b': (512, 160, 112, 224, 24, 64, 64),
    'inception4c': (512, 128, 128, 256, 24, 64, 64),
    'inception4d': (512, 112, 144, 288, 32, 64, 64),
    'inception4e': (528, 256, 160, 320, 32, 128, 128),
    'inception5a': (832, 256, 160, 320, 32, 128, 128),
    'inception5b': (832, 384, 192, 384, 48, 128, 128),
}
BN_EPS = 1e-3  # GoogLeNet's BatchNorm epsilon (torchvision uses it too), kept for its weights


def _triple(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v, v)


class ConvUnit(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU, 2D or 3D (3D: int sizes mean k x k x k)."""

    def __init__(self, cin: int, cout: int, kernel=1, stride=1, padding=0, dims: int = 2):
        super().__init__()
        conv, bn = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (Conv3d, nn.BatchNorm3d)
        self.conv = conv(cin, cout, kernel, stride, padding, bias=False)
        self.bn = bn(cout, eps=BN_EPS)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class SeparableUnit(nn.Module):
    """S3D unit: 1xkxk conv-BN-ReLU, then kx1x1 conv (with bias) -BN-ReLU, both ``cout`` wide.

    Kernels without temporal extent (1x1x1) need no split and stay a plain :class:`ConvUnit`
    (see :func:`separable_unit`). ``depthwise`` makes the temporal conv channel-wise.
    """

    def __init__(self, cin: int, cout: int, kernel=3, stride=1, padding=0, depthwise: bool = False):
        super().__init__()
        (kt, kh, kw), (st, sh, sw), (pt, ph, pw) = _triple(kernel), _triple(stride), _triple(padding)
        # Same names as a 2D unit for the spatial half, so the ImageNet kernel loads into it.
        self.conv = Conv3d(cin, cout, (1, kh, kw), (1, sh, sw), (0, ph, pw), bias=False)
        self.bn = nn.BatchNorm3d(cout, eps=BN_EPS)
        self.conv_t = Conv3d(cout, cout, (kt, 1, 1), (st, 1, 1), (pt, 0, 0), bias=True,
                                groups=cout if depthwise else 1)
        self.bn_t = nn.BatchNorm3d(cout, eps=BN_EPS)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.conv(x)))
        return self.relu(self.bn_t(self.conv_t(x)))


def separable_unit(cin: int, cout: int, kernel=1, stride=1, padding=0, depthwise: bool = False) -> nn.Module:
    """The s3d conv unit: separable where the kernel has temporal extent, plain 3D otherwise."""
    if _triple(kernel)[0] > 1:
        return SeparableUnit(cin, cout, kernel, stride, padding, depthwise)
    return ConvUnit(cin, cout, kernel, stride, padding, dims=3)


class Inception(nn.Module):
    """One Inception block: 1x1 | 1x1->3x3 | 1x1->3x3 | maxpool 3 (stride 1)->1x1, concatenated."""

    def __init__(self, cin: int, ch1: int, ch3red: int, ch3: int, ch5red: int, ch5: int, pool_proj: int,
                 unit: Callable[..., nn.Module], dims: int):
        super().__init__()
        pool = nn.MaxPool2d if dims == 2 else nn.MaxPool3d
        self.branch1 = unit(cin, ch1, 1)
        self.branch2 = nn.Sequential(unit(cin, ch3red, 1), unit(ch3red, ch3, 3, padding=1))
        self.branch3 = nn.Sequential(unit(cin, ch5red, 1), unit(ch5red, ch5, 3, padding=1))
        self.branch4 = nn.Sequential(pool(3, stride=1, padding=1, ceil_mode=True), unit(cin, pool_proj, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class StagePool(nn.Module):
    """A spatial max pool (ceil mode, as torchvision) and, optionally, a TemporalPool for time."""

    def __init__(self, kernel: int, stride: int, dims: int, time_pool: TemporalPool | None = None):
        super().__init__()
        if dims == 2:
            self.spatial = nn.MaxPool2d(kernel, stride, ceil_mode=True)
        else:
            self.spatial = nn.MaxPool3d((1, kernel, kernel), (1, stride, stride), ceil_mode=True)
        self.temporal = time_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.spatial(x)
        return x if self.temporal is None else self.temporal(x)


class InceptionV1(nn.Module):
    """The Inception-v1 trunk with a classifier, for 2D (per frame) or 3D conv units.

    Args:
        conv1: the stem conv unit (3 -> 64 channels, spatial stride 2; never strides time).
        unit: builds every other conv unit, ``unit(cin, cout, kernel, stride=1, padding=0)``.
        dims: 2 (frames go through the network as a batch, logits averaged over time) or 3.
        frames: input frames per clip.
        t_stride: halve time at the pools before inception3a, 4a and 5a.
        pooling_method: ``'max'`` or ``'avg'`` for those temporal pools.
        temporal: 2D only, builds the temporal module (TAM, TSM) that follows conv1, conv2, conv3 and
            every Inception block from ``(channels, frames)``; they are named ``tam1`` .. ``tam3``,
            ``tam3a`` .. ``tam5b`` as in the TAM release.
    """

    def __init__(self, conv1: nn.Module, unit: Callable[..., nn.Module], dims: int, num_classes: int,
                 dropout: float, frames: int, t_stride: bool = True, pooling_method: str = 'max',
                 temporal: Callable[[int, int], nn.Module | None] | None = None):
        super().__init__()
        self.dims, self.frames = dims, frames
        self.order: list[str] = []  # trunk layers in forward order, temporal modules included
        t = frames

        def add(name: str, module: nn.Module, width: int | None = None) -> None:
            setattr(self, name, module)
            self.order.append(name)
            # Convs and Inception blocks (those with a width) are followed by their temporal module.
            tm = temporal(width, t) if temporal is not None and width is not None else None
            if tm is not None:
                tm_name = 'tam' + name.replace('conv', '').replace('inception', '')
                setattr(self, tm_name, tm)
                self.order.append(tm_name)

        def add_pool(name: str, kernel: int, pool_time: bool) -> None:
            nonlocal t
            time_pool = None
            if pool_time and t_stride:
                time_pool = TemporalPool(t, pooling_method)  # kernel 3, stride 2, padding 1
                t = pooled_frames(t)
            add(name, StagePool(kernel, 2, dims, time_pool))

        add('conv1', conv1, 64)
        add_pool('maxpool1', 3, pool_time=False)
        add('conv2', unit(64, 64, 1), 64)
        add('conv3', unit(64, 192, 3, padding=1), 192)
        add_pool('maxpool2', 3, pool_time=True)
        pools_before = {'inception4a': ('maxpool3', 3), 'inception5a': ('maxpool4', 2)}
        for name, cfg in INCEPTION_CFG.items():
            if name in pools_before:
                add_pool(*pools_before[name], pool_time=True)
            _, ch1, _, ch3, _, ch5, pool_proj = cfg
            add(name, Inception(*cfg, unit=unit, dims=dims), ch1 + ch3 + ch5 + pool_proj)
        self.avgpool = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        self.frames_out = t  # frames left at the end of the trunk
        init_weights(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk up to inception5b (and its temporal module)."""
        for name in self.order:
            x = getattr(self, name)(x)
        return x


    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) clips -> (B, num_classes) logits."""
        batch = x.shape[0]
        if self.dims == 2:
            x = frames_to_batch(x)
        x = self.avgpool(self.features(x)).flatten(1)
        x = self.fc(self.dropout(x))
        return average_over_time(x, batch) if self.dims == 2 else x


def _build_3d(args, conv1: nn.Module, unit: Callable[..., nn.Module]) -> InceptionV1:
    # conv1 keeps every frame; time is halved only at the three stage pools (as the 2D family), which
    # is what the reference i3d/s3d costs count (a t-strided conv1 would give 13.9 / 9.0 GMACs).
    return InceptionV1(conv1, unit, 3, args.num_classes, args.dropout, args.groups,
                       not args.without_t_stride, args.pooling_method)


@register('i3d')
def build_i3d(args) -> tuple[nn.Module, str]:
    """I3D (Carreira & Zisserman 2017): Inception-v1 with every k x k conv inflated to k x k x k."""
    conv1 = ConvUnit(3, 64, 7, stride=(1, 2, 2), padding=3, dims=3)
    return _build_3d(args, conv1, partial(ConvUnit, dims=3)), 'i3d' + time_suffix(args)


@register('s3d')
def build_s3d(args) -> tuple[nn.Module, str]:
    """S3D (Xie et al. 2018): I3D with k x k x k convs split into 1 x k x k then k x 1 x 1.

    The stem is a plain 3x7x7 conv rather than a separable 7x7x7 one. ``--dw_t_conv`` makes the
    temporal k x 1 x 1 convs depthwise.
    """
    conv1 = ConvUnit(3, 64, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), dims=3)
    unit = partial(separable_unit, depthwise=getattr(args, 'dw_t_conv', False))
    name = 's3d-dw' if getattr(args, 'dw_t_conv', False) else 's3d'
    return _build_3d(args, conv1, unit), name + time_suffix(args)


@register('inception_v1')
def build_inception_v1(args) -> tuple[nn.Module, str]:
    """2D Inception-v1 on every frame with TSN (none), TAM or TSM after every conv and Inception block."""
    temporal = None
    if args.temporal_module_name != 'TSN':
        def temporal(channels: int, frames: int) -> nn.Module | None:
            return make_temporal_module(args.temporal_module_name, channels, frames, args)
    model = InceptionV1(ConvUnit(3, 64, 7, stride=2, padding=3, dims=2), partial(ConvUnit, dims=2), 2,
                        args.num_classes, args.dropout, args.groups, not args.without_t_stride,
                        args.pooling_method, temporal)
    return model, f'inception_v1-{temporal_arch_suffix(args)}' + time_suffix(args)
