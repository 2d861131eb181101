"""One generic ResNet for every ResNet family of the toolkit.

The families differ only in the convolution that fills a 3x3 slot of a residual block, in the
stem, and in how time is reduced:

| --backbone_net | 3x3 slot                          | stem                 | time                       |
|----------------|-----------------------------------|----------------------|----------------------------|
| resnet         | 2D 3x3 on every frame             | 7x7, max pool        | TemporalPool after 1, 2, 3 |
| i3d_resnet     | 3x3x3                             | 3x7x7, 3x3 pool      | layers 2-4                 |
| s3d_resnet     | 1x3x3 -> BN -> ReLU -> 3x1x1      | 3x7x7, 3x3 pool      | layers 2-4                 |
| r3d            | 3x3x3                             | 3x7x7, no pool       | layers 2-4                 |
| mc3            | 3x3x3 in layer 1, 1x3x3 above      | 3x7x7, no pool       | layer 2 (MC3 = 3D bottom)  |
| r2plus1d       | 1x3x3 -> BN -> ReLU -> 3x1x1, M   | (2+1)D 7x7 / 3       | layers 2-4                 |

2D networks fold time into the batch, ``(B*T, C, H, W)``, and average the per-frame logits; the
temporal modules (TAM, TSM) sit on the residual branch before the first conv of each block.
Module names follow the 2D torchvision ResNet and the original study's release (``conv1``,
``bn1``, ``layerX.Y.convN``/``bnN``, ``downsample``, ``tam``, ``fc``), so their weights load by name.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch
import torch.nn as nn

from models.blocks import Conv3d, TemporalPool, average_over_time, frames_to_batch, init_weights, pooled_frames
from models.registry import register, time_suffix
from models.temporal import make_temporal_module, temporal_arch_suffix

DEPTHS = {18: ('basic', [2, 2, 2, 2]), 34: ('basic', [3, 4, 6, 3]), 50: ('bottleneck', [3, 4, 6, 3]),
          101: ('bottleneck', [3, 4, 23, 3]), 152: ('bottleneck', [3, 8, 36, 3])}


# ----------------------------------------------------------------------------- convs of a 3x3 slot
# Each conv maker: (in, out, spatial stride, temporal stride, mid channels) -> module.

def conv2d(cin: int, cout: int, stride: int, t_stride: int = 1, mid: int | None = None) -> nn.Module:
    """3x3 on every frame (time is reduced outside the block)."""
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


def conv3d(cin: int, cout: int, stride: int, t_stride: int = 1, mid: int | None = None) -> nn.Module:
    """Full 3x3x3."""
    return Conv3d(cin, cout, 3, (t_stride, stride, stride), 1, bias=False)


def conv3d_no_temporal(cin: int, cout: int, stride: int, t_stride: int = 1, mid: int | None = None) -> nn.Module:
    """1x3x3 on 5D tensors (MC3's upper layers): no temporal extent, no temporal stride."""
    return Conv3d(cin, cout, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)


def conv_factored(cin: int, cout: int, stride: int, t_stride: int = 1, mid: int | None = None,
                  depthwise: bool = False) -> nn.Module:
    """1x3x3 -> BN -> ReLU -> 3x1x1: separable (S3D, mid = out) or (2+1)D (R(2+1)D, mid given).

    ``depthwise`` (``--dw_t_conv``, separable only) makes the 3x1x1 conv per channel.
    """
    mid = cout if mid is None else mid
    groups = mid if depthwise and mid == cout else 1
    return nn.Sequential(Conv3d(cin, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
                         nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
                         Conv3d(mid, cout, (3, 1, 1), (t_stride, 1, 1), (1, 0, 0), bias=False, groups=groups))


def r2plus1d_mid(cin: int, cout: int) -> int:
    """R(2+1)D's middle width: the (2+1)D pair has the parameters of the 3x3x3 conv it replaces."""
    return (3 * 3 * 3 * cin * cout) // (3 * 3 * cin + 3 * cout)


# ----------------------------------------------------------------------------- residual blocks

class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, conv: Callable, stride: int = 1, t_stride: int = 1,
                 mid: int | None = None, downsample: nn.Module | None = None,
                 temporal: nn.Module | None = None, dims: int = 3):
        super().__init__()
        bn = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
        # torchvision's R(2+1)D uses one middle width for both convs of a block.
        self.conv1, self.bn1 = conv(inplanes, planes, stride, t_stride, mid), bn(planes)
        self.conv2, self.bn2 = conv(planes, planes, 1, 1, mid), bn(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.tam = temporal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = x if self.tam is None else self.tam(x)
        out = self.relu(self.bn1(self.conv1(out)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, conv: Callable, stride: int = 1, t_stride: int = 1,
                 mid: int | None = None, downsample: nn.Module | None = None,
                 temporal: nn.Module | None = None, dims: int = 3):
        super().__init__()
        conv1x1 = nn.Conv2d if dims == 2 else Conv3d
        bn = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
        self.conv1, self.bn1 = conv1x1(inplanes, planes, 1, bias=False), bn(planes)
        self.conv2, self.bn2 = conv(planes, planes, stride, t_stride, mid), bn(planes)
        self.conv3, self.bn3 = conv1x1(planes, planes * 4, 1, bias=False), bn(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.tam = temporal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = x if self.tam is None else self.tam(x)
        out = self.relu(self.bn1(self.conv1(out)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


# ----------------------------------------------------------------------------- the network

class ResNet(nn.Module):
    """A ResNet whose 3x3 slots, stem and time handling are given (see the module docstring).

    Args:
        depth: 18, 34, 50, 101 or 152.
        convs: the conv maker of each of the 4 layers.
        stem, stem_bn: ``conv1`` and ``bn1`` of the network (64 output channels).
        stem_pool: the pooling after the stem (or None).
        frames: input frames T.
        dims: 2 for networks on every frame, 3 for 3D networks.
        t_strides: temporal stride of the first block of layers 2-4 (1 for 2D networks).
        time_pools: for 2D networks, the TemporalPool after layers 1, 2, 3, or None.
        mid_width: middle width of factored convs from (block inplanes, planes), or None.
        temporal: builds a block's temporal module from (channels, frames), or None.
    """

    def __init__(self, depth: int, num_classes: int, convs: list[Callable], stem: nn.Module,
                 stem_bn: nn.Module, stem_pool: nn.Module | None, frames: int, dims: int,
                 t_strides: list[int], time_pools: list[nn.Module | None] | None = None,
                 mid_width: Callable | None = None, temporal: Callable | None = None,
                 dropout: float = 0.5):
        super().__init__()
        if depth not in DEPTHS:
            raise SystemExit(f'error: ResNet depth must be one of {sorted(DEPTHS)}, not {depth}')
        kind, counts = DEPTHS[depth]
        block = BasicBlock if kind == 'basic' else Bottleneck
        self.dims, self.frames = dims, frames
        self.conv1, self.bn1, self.relu = stem, stem_bn, nn.ReLU(inplace=True)
        self.maxpool = stem_pool
        t = frames
        self.inplanes = 64
        for i, (planes, n) in enumerate(zip([64, 128, 256, 512], counts)):
            stride, t_stride = (1, 1) if i == 0 else (2, t_strides[i - 1])
            layer, t = self._make_layer(block, planes, n, convs[i], stride, t_stride, t, mid_width, temporal)
            setattr(self, f'layer{i + 1}', layer)
            pool = time_pools[i] if time_pools and i < 3 else None
            if pool is not None:
                t = pooled_frames(t)
            setattr(self, f'tpool{i + 1}', pool)
        self.frames_out = t
        self.avgpool = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        init_weights(self)

    def _make_layer(self, block, planes, n, conv, stride, t_stride, frames, mid_width, temporal):
        out = planes * block.expansion
        downsample = None
        if stride != 1 or t_stride != 1 or self.inplanes != out:
            if self.dims == 2:
                downsample = nn.Sequential(nn.Conv2d(self.inplanes, out, 1, stride, bias=False),
                                           nn.BatchNorm2d(out))
            else:
                downsample = nn.Sequential(
                    Conv3d(self.inplanes, out, 1, (t_stride, stride, stride), bias=False),
                    nn.BatchNorm3d(out))
        blocks = []
        for j in range(n):
            mid = mid_width(self.inplanes, planes) if mid_width else None
            tm = temporal(self.inplanes, frames) if temporal else None
            blocks.append(block(self.inplanes, planes, conv, stride if j == 0 else 1,
                                t_stride if j == 0 else 1, mid, downsample if j == 0 else None, tm, self.dims))
            if j == 0 and t_stride != 1:
                frames = pooled_frames(frames)
            self.inplanes = out
        return nn.Sequential(*blocks), frames

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.dims == 2:
            x = frames_to_batch(x)
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for i in range(1, 5):
            x = getattr(self, f'layer{i}')(x)
            pool = getattr(self, f'tpool{i}')
            if pool is not None:
                x = pool(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        x = self.avgpool(self.features(x)).flatten(1)
        x = self.fc(self.dropout(x))
        return average_over_time(x, batch) if self.dims == 2 else x


def stem_pool3d(method: str) -> nn.Module:
    """The 3D stem's 3x3 spatial pool, stride 2 (max, or average with ``--pooling_method avg``).

    It does not pool time: the study's published MACs (29.46 G for I3D-ResNet-50 at 8x224) count
    8 frames through layer 1, time being halved only by the first blocks of layers 2-4.
    """
    if method == 'avg':
        return nn.AvgPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1), count_include_pad=False)
    return nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))


# ----------------------------------------------------------------------------- the families

def _depth(args) -> int:
    if args.depth not in DEPTHS:
        raise SystemExit(f'error: --backbone_net {args.backbone_net} needs -d/--depth in '
                         f'{sorted(DEPTHS)}, not {args.depth}')
    return args.depth


@register('resnet')
def build_resnet(args) -> tuple[nn.Module, str]:
    """2D ResNet on every frame with TSN (none), TAM or TSM; time max/avg-pooled after layers 1-3."""
    depth, t = _depth(args), args.groups
    pools = None
    if not args.without_t_stride:
        pools, frames = [], t
        for _ in range(3):
            pools.append(TemporalPool(frames, args.pooling_method))
            frames = pooled_frames(frames)
    temporal = None
    if args.temporal_module_name != 'TSN':
        def temporal(channels: int, frames: int) -> nn.Module:
            return make_temporal_module(args.temporal_module_name, channels, frames, args)
    model = ResNet(depth, args.num_classes, [conv2d] * 4,
                   nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                   nn.MaxPool2d(3, 2, 1), t, dims=2, t_strides=[1, 1, 1], time_pools=pools,
                   temporal=temporal, dropout=args.dropout)
    return model, f'resnet{depth}-{temporal_arch_suffix(args)}' + time_suffix(args)


def _resnet3d(args, convs, stem, stem_bn, stem_pool, mid_width=None, t_strides=None):
    t_stride = 1 if args.without_t_stride else 2
    return ResNet(_depth(args), args.num_classes, convs, stem, stem_bn, stem_pool, args.groups, dims=3,
                  t_strides=t_strides or [t_stride] * 3, mid_width=mid_width, dropout=args.dropout)


def _stem_3x7x7() -> nn.Module:
    return Conv3d(3, 64, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False)


@register('i3d_resnet')
def build_i3d_resnet(args) -> tuple[nn.Module, str]:
    """The study's ResNet3D: 3x3x3 convs; with t-stride time is halved by layers 2-4 as space is."""
    model = _resnet3d(args, [conv3d] * 4, _stem_3x7x7(), nn.BatchNorm3d(64),
                      stem_pool3d(args.pooling_method))
    return model, f'i3d_resnet{args.depth}' + time_suffix(args)


@register('s3d_resnet')
def build_s3d_resnet(args) -> tuple[nn.Module, str]:
    """The study's separable ResNet3D: each 3x3x3 conv split into 1x3x3 -> BN -> ReLU -> 3x1x1."""
    conv = partial(conv_factored, depthwise=getattr(args, 'dw_t_conv', False))
    model = _resnet3d(args, [conv] * 4, _stem_3x7x7(), nn.BatchNorm3d(64), stem_pool3d(args.pooling_method))
    dw = '-dw' if getattr(args, 'dw_t_conv', False) else ''
    return model, f's3d_resnet{args.depth}{dw}' + time_suffix(args)


@register('r3d')
def build_r3d(args) -> tuple[nn.Module, str]:
    """ResNet3D of Tran et al. (torchvision's r3d_18): 3x3x3 convs, no stem pool."""
    model = _resnet3d(args, [conv3d] * 4, _stem_3x7x7(), nn.BatchNorm3d(64), None)
    return model, f'r3d{args.depth}' + ('-nots' if args.without_t_stride else '')


@register('mc3')
def build_mc3(args) -> tuple[nn.Module, str]:
    """MC3 of Tran et al. (torchvision's mc3_18): 3D convs in layer 1, 1x3x3 convs above.

    Time is never reduced by layers 2-4 (their convs are 2D), so ``--without_t_stride`` changes nothing.
    """
    model = _resnet3d(args, [conv3d] + [conv3d_no_temporal] * 3, _stem_3x7x7(), nn.BatchNorm3d(64), None,
                      t_strides=[1, 1, 1])
    return model, f'mc3{args.depth}'


@register('r2plus1d')
def build_r2plus1d(args) -> tuple[nn.Module, str]:
    """R(2+1)D of Tran et al. (torchvision's r2plus1d_18): every 3x3x3 conv factored into a
    1x3x3 conv to M channels, BN, ReLU and a 3x1x1 conv, M chosen to keep the parameter count."""
    stem = nn.Sequential(Conv3d(3, 45, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
                         nn.BatchNorm3d(45), nn.ReLU(inplace=True),
                         Conv3d(45, 64, (3, 1, 1), 1, (1, 0, 0), bias=False))
    model = _resnet3d(args, [conv_factored] * 4, stem, nn.BatchNorm3d(64), None, mid_width=r2plus1d_mid)
    return model, f'r2plus1d{args.depth}' + ('-nots' if args.without_t_stride else '')
