"""One generic ResNet for every ResNet family of the toolkit.

The families differ only in the convolution that fills a 3x3 slot of a residual block, in the
stem, and in how time is reduced:

| --backbone_net | 3x3 slot                          | stem                 | time                       |
|----------------|-----------------------------------|----------------------|----------------------------|
| resnet         | 2D 3x3 on every frame             | 7x7, max pool        | TemporalPool after 1, 2, 3 |
| i3d_resnet     | 3x3x3                             | 3x7x7, 1x3x3 max pool| layers 2-4                 |
| s3d_resnet     | 1x3x3 -> BN -> ReLU -> 3x1x1      | 3x7x7, 1x3x3 max pool| layers 2-4                 |
| r3d            | 3x3x3                             | 3x7x7, no pool       | layers 2-4                 |
| mc3            | 3x3x3 in layer 1, 1x3x3 above      | 3x7x7, no pool       | layer 2 (MC3 = 3D bottom)  |
| r2plus1d       | 1x3x3 -> BN -> ReLU -> 3x1x1, M   | (2+1)D 7x7 / 3       | layers 2-4                 |

2D networks fold time into the batch, ``(B*T, C, H, W)``; the temporal modules (TAM, TSM) sit
on the residual branch before the first conv of each block. The study's families (resnet,
i3d_resnet, s3d_resnet) end as its code does: space averaged, dropout and the classifier applied
to every remaining frame, the per-frame logits averaged; torchvision's pool time too before them.
Module names follow the 2D torchvision ResNet and the original study's code (``conv1``, ``bn1``,
``layerX.Y.convN``/``bnN``, ``downsample``, ``tam``, ``fc``), so the original's resnet and
i3d_resnet weights load by name; its s3d_resnet names the temporal half of a factored conv
``convN_t``/``bnN_t``, renamed on loading by :func:`from_original_s3d_resnet`.
"""
from __future__ import annotations

import re
from functools import partial
from typing import Callable

import torch
import torch.nn as nn

from models.blocks import Conv3d, TemporalPool, frames_to_batch, init_weights, pooled_frames
from models.config import ModelConfig
from models.registry import register
from models.temporal import make_temporal_module, temporal_arch_suffix
from models.weights import original_layout

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

class ResidualBlock(nn.Module):
    """A block's frame: the temporal module (TAM/TSM, 2D models) on its input, its `residual`
    path, the shortcut (`downsample` where the shape changes), ReLU of the sum. A block
    registers its convs first, then `add_shortcut` (the order of modules is that of the weight
    initialisation's random draws, and of the state_dict's keys)."""

    def add_shortcut(self, downsample: nn.Module | None, temporal: nn.Module | None) -> None:
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.tam = temporal

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = x if self.tam is None else self.tam(x)
        return self.relu(self.residual(out) + identity)


class BasicBlock(ResidualBlock):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, conv: Callable, stride: int = 1, t_stride: int = 1,
                 mid: int | None = None, downsample: nn.Module | None = None,
                 temporal: nn.Module | None = None, dims: int = 3):
        super().__init__()
        bn = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
        # torchvision's R(2+1)D uses one middle width for both convs of a block.
        self.conv1, self.bn1 = conv(inplanes, planes, stride, t_stride, mid), bn(planes)
        self.conv2, self.bn2 = conv(planes, planes, 1, 1, mid), bn(planes)
        self.add_shortcut(downsample, temporal)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))


class Bottleneck(ResidualBlock):
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
        self.add_shortcut(downsample, temporal)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


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
        stage_frames: for 2D networks, the clip length in which each of layers 1-4 takes its
            frames (what its temporal modules reshape by); the frames it sees when not given.
        frame_logits: classify every remaining frame and average the logits (the study's code),
            rather than classify the clip's average feature (torchvision's).
        mid_width: middle width of factored convs from (block inplanes, planes), or None.
        temporal: builds a block's temporal module from (channels, frames), or None.
    """

    def __init__(self, depth: int, num_classes: int, convs: list[Callable], stem: nn.Module,
                 stem_bn: nn.Module, stem_pool: nn.Module | None, frames: int, dims: int,
                 t_strides: list[int], time_pools: list[nn.Module | None] | None = None,
                 stage_frames: list[int] | None = None, frame_logits: bool = True,
                 mid_width: Callable | None = None, temporal: Callable | None = None,
                 dropout: float = 0.5):
        super().__init__()
        if depth not in DEPTHS:
            raise SystemExit(f'error: ResNet depth must be one of {sorted(DEPTHS)}, not {depth}')
        kind, counts = DEPTHS[depth]
        block = BasicBlock if kind == 'basic' else Bottleneck
        self.dims, self.frames, self.frame_logits = dims, frames, frame_logits
        self.conv1, self.bn1, self.relu = stem, stem_bn, nn.ReLU(inplace=True)
        self.maxpool = stem_pool
        t = frames
        self.inplanes = 64
        for i, (planes, n) in enumerate(zip([64, 128, 256, 512], counts)):
            stride, t_stride = (1, 1) if i == 0 else (2, t_strides[i - 1])
            clip = stage_frames[i] if stage_frames else t
            layer = self._make_layer(block, planes, n, convs[i], stride, t_stride, clip, mid_width, temporal)
            setattr(self, f'layer{i + 1}', layer)
            if t_stride != 1:
                t = pooled_frames(t)
            pool = time_pools[i] if time_pools and i < 3 else None
            if pool is not None:                   # pooled in clips of pool.frames
                t = t // pool.frames * pooled_frames(pool.frames)
            setattr(self, f'tpool{i + 1}', pool)
        self.frames_out = t                        # frames per video left for the classifier
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
            self.inplanes = out
        return nn.Sequential(*blocks)

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
        x = self.features(x)
        # (batch, frames, channels), contiguous as the original's, so that a seeded dropout
        # draws the original's mask: space averaged, every remaining frame kept
        if self.dims == 2:
            x = x.mean(dim=(2, 3)).view(batch, -1, x.shape[1])
        else:
            x = x.mean(dim=(3, 4)).transpose(1, 2).contiguous()
        if not self.frame_logits:
            x = x.mean(dim=1, keepdim=True)
        # as the original (threed_models/i3d_resnet.py:194-206, twod_models/resnet.py:209-220):
        # dropout (a mask per frame) and the classifier on every frame, then the logits' mean
        return self.fc(self.dropout(x)).mean(dim=1)


def original_2d_stage_frames(frames: int, temporal: bool) -> list[int]:
    """Clip lengths of layers 1-4 of the original 2D ResNet with temporal pooling.

    The original (twod_models/resnet.py:142-152) halves its frame count with a floor after each
    of layers 1-3, while its pools (kernel 3, stride 2, padding 1) leave ceil(T / 2) frames; its
    pools and TAMs reshape the frames in clips of the halved count. Both agree for 8 or 16
    frames; for 12, layer 4 sees 2 frames per video but in clips of one (its TAMs blend nothing).
    This follows the original, and refuses the frame counts for which those clips would not
    divide a video's frames (the original would mix the videos of a batch, or fail).
    """
    clips, seen = [frames], frames                 # clip length of each layer, frames per video
    for _ in range(3):
        if seen % clips[-1]:
            break
        seen = seen // clips[-1] * pooled_frames(clips[-1])
        clips.append(max(clips[-1] // 2, 1))       # max: the original fails on a length of 0
    else:
        if not temporal or seen % clips[-1] == 0:
            return clips
    raise SystemExit(f'error: --backbone_net resnet with temporal pooling cannot take --groups {frames}: '
                     f'the original code would mix the frames of different videos in a clip '
                     f'(use a multiple of 8, or --without_t_stride)')


def stem_pool3d() -> nn.Module:
    """The 3D stem's spatial max pool: 1x3x3, stride 1x2x2, padding 0x1x1, floor mode.

    As the original (threed_models/i3d_resnet.py:122, s3d_resnet.py:156) it does not pool time,
    and it is a max pool whatever ``--pooling_method`` says: the original's 3D ResNets never read
    that option.
    """
    return nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))


# ----------------------------------------------------------------------------- the families

STEM_POOL_NOTE = ('its stem pool is a max pool, as in the original code, and it pools time by '
                  'strided convs')
NO_POOL_NOTE = 'it has no pooling layer'

def _depth(cfg: ModelConfig) -> int:
    if cfg.depth not in DEPTHS:
        raise SystemExit(f'error: --backbone_net {cfg.backbone_net} needs -d/--depth in '
                         f'{sorted(DEPTHS)}, not {cfg.depth}')
    return cfg.depth


@register('resnet', dims=2, imagenet='resnet',
          options=('depth', 'without_t_stride', 'pooling_method', 'temporal_module_name'))
def build_resnet(cfg: ModelConfig) -> tuple[nn.Module, str]:
    """2D ResNet on every frame with TSN (none), TAM or TSM; time max/avg-pooled after layers 1-3."""
    depth, t = _depth(cfg), cfg.frames
    temporal = None
    if cfg.temporal_module_name != 'TSN':
        def temporal(channels: int, frames: int) -> nn.Module:
            return make_temporal_module(cfg.temporal_module_name, channels, frames, cfg)
    pools = clips = None
    if not cfg.without_t_stride:
        clips = original_2d_stage_frames(t, temporal is not None)
        pools = [TemporalPool(c, cfg.pooling_method) for c in clips[:3]]
    model = ResNet(depth, cfg.num_classes, [conv2d] * 4,
                   nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                   nn.MaxPool2d(3, 2, 1), t, dims=2, t_strides=[1, 1, 1], time_pools=pools,
                   stage_frames=clips, temporal=temporal, dropout=cfg.dropout)
    return model, f'resnet{depth}-{temporal_arch_suffix(cfg)}'


def _resnet3d(cfg: ModelConfig, convs, stem, stem_bn, stem_pool, mid_width=None, t_strides=None,
              frame_logits=True):
    t_stride = 1 if cfg.without_t_stride else 2
    return ResNet(_depth(cfg), cfg.num_classes, convs, stem, stem_bn, stem_pool, cfg.frames, dims=3,
                  t_strides=t_strides or [t_stride] * 3, frame_logits=frame_logits,
                  mid_width=mid_width, dropout=cfg.dropout)


def _stem_3x7x7() -> nn.Module:
    return Conv3d(3, 64, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False)


@register('i3d_resnet', dims=3, imagenet='resnet', options=('depth', 'without_t_stride'),
          ignored={'pooling_method': STEM_POOL_NOTE})
def build_i3d_resnet(cfg: ModelConfig) -> tuple[nn.Module, str]:
    """The study's ResNet3D: 3x3x3 convs; with t-stride time is halved by layers 2-4 as space is."""
    model = _resnet3d(cfg, [conv3d] * 4, _stem_3x7x7(), nn.BatchNorm3d(64), stem_pool3d())
    return model, f'i3d_resnet{cfg.depth}'


@register('s3d_resnet', dims=3, imagenet='resnet', options=('depth', 'without_t_stride', 'dw_t_conv'),
          ignored={'pooling_method': STEM_POOL_NOTE})
def build_s3d_resnet(cfg: ModelConfig) -> tuple[nn.Module, str]:
    """The study's separable ResNet3D: each 3x3x3 conv split into 1x3x3 -> BN -> ReLU -> 3x1x1."""
    conv = partial(conv_factored, depthwise=cfg.dw_t_conv)
    model = _resnet3d(cfg, [conv] * 4, _stem_3x7x7(), nn.BatchNorm3d(64), stem_pool3d())
    return model, f's3d_resnet{cfg.depth}' + ('-dw' if cfg.dw_t_conv else '')


@register('r3d', dims=3, imagenet='resnet', options=('depth', 'without_t_stride'),
          ignored={'pooling_method': NO_POOL_NOTE})
def build_r3d(cfg: ModelConfig) -> tuple[nn.Module, str]:
    """ResNet3D of Tran et al. (torchvision's r3d_18): 3x3x3 convs, no stem pool."""
    model = _resnet3d(cfg, [conv3d] * 4, _stem_3x7x7(), nn.BatchNorm3d(64), None, frame_logits=False)
    return model, f'r3d{cfg.depth}'


@register('mc3', dims=3, imagenet='resnet', options=('depth',),
          ignored={'pooling_method': NO_POOL_NOTE,
                   'without_t_stride': 'it changes nothing: its layers never reduce time'})
def build_mc3(cfg: ModelConfig) -> tuple[nn.Module, str]:
    """MC3 of Tran et al. (torchvision's mc3_18): 3D convs in layer 1, 1x3x3 convs above.

    Time is never reduced by layers 2-4 (their convs are 2D), so ``--without_t_stride`` changes nothing.
    """
    model = _resnet3d(cfg, [conv3d] + [conv3d_no_temporal] * 3, _stem_3x7x7(), nn.BatchNorm3d(64), None,
                      t_strides=[1, 1, 1], frame_logits=False)
    return model, f'mc3{cfg.depth}'


@register('r2plus1d', dims=3, imagenet='resnet', options=('depth', 'without_t_stride'),
          ignored={'pooling_method': NO_POOL_NOTE})
def build_r2plus1d(cfg: ModelConfig) -> tuple[nn.Module, str]:
    """R(2+1)D of Tran et al. (torchvision's r2plus1d_18): every 3x3x3 conv factored into a
    1x3x3 conv to M channels, BN, ReLU and a 3x1x1 conv, M chosen to keep the parameter count."""
    stem = nn.Sequential(Conv3d(3, 45, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
                         nn.BatchNorm3d(45), nn.ReLU(inplace=True),
                         Conv3d(45, 64, (3, 1, 1), 1, (1, 0, 0), bias=False))
    model = _resnet3d(cfg, [conv_factored] * 4, stem, nn.BatchNorm3d(64), None, mid_width=r2plus1d_mid,
                      frame_logits=False)
    return model, f'r2plus1d{cfg.depth}'


# ----------------------------------------------------------------------------- the original's S3D-ResNet keys

_ORIGINAL_S3D_KEY = re.compile(r'^(layer\d+\.\d+)\.(conv|bn)(\d)(_t)?\.(.+)$')


@original_layout
def from_original_s3d_resnet(state: dict[str, torch.Tensor],
                             model: nn.Module) -> dict[str, torch.Tensor] | None:
    """An original S3D-ResNet state_dict renamed to this project's keys; None for any other file.

    The original (threed_models/s3d_resnet.py:28-134) names the halves of a factored conv
    of block ``layerX.Y`` ``convN``/``bnN`` (1x3x3 conv, its BN) and ``convN_t``/``bnN_t`` (3x1x1
    conv, its BN, then the block's ReLU or residual sum). Here the same ops in the same order are
    ``convN.0``/``convN.1`` (inside :func:`conv_factored`) and ``convN.3``/``bnN`` (the block's).
    Recognised by ``layerX.Y.convN_t.weight`` keys, which no other family's files have.
    """
    factored = {f'{m[1]}.conv{m[3]}' for k in state
                if (m := _ORIGINAL_S3D_KEY.match(k)) and m[2] == 'conv' and m[4] and m[5] == 'weight'}
    if not factored:
        return None
    out = {}
    for key, value in state.items():
        m = _ORIGINAL_S3D_KEY.match(key)
        if m and f'{m[1]}.conv{m[3]}' in factored:
            block, n, temporal = m[1], m[3], bool(m[4])
            name = {('conv', False): f'conv{n}.0', ('bn', False): f'conv{n}.1',
                    ('conv', True): f'conv{n}.3', ('bn', True): f'bn{n}'}[m[2], temporal]
            key = f'{block}.{name}.{m[5]}'
        out[key] = value
    own = model.state_dict()
    probe = min(k for k in out if k.endswith('.3.weight'))   # a temporal conv of the file
    if probe not in own or own[probe].dim() != 5:
        raise SystemExit('error: the weights are an original s3d_resnet checkpoint but the model is '
                         'not --backbone_net s3d_resnet')
    file_dw, model_dw = out[probe].shape[1] == 1, own[probe].shape[1] == 1
    if file_dw != model_dw:
        raise SystemExit(f'error: the weights are an original s3d_resnet checkpoint '
                         f'{"with" if file_dw else "without"} --dw_t_conv but the model is built '
                         f'{"with" if model_dw else "without"} it')
    return out
