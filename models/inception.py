"""Inception-v1 (GoogLeNet with BatchNorm) families for video: ``i3d``, ``s3d`` and ``inception_v1``.

All three share one trunk, :class:`InceptionV1`, parametrised by the conv unit that builds every
conv-BN-ReLU (a 2D unit for ``inception_v1``, applied to every frame; an inflated 3D unit for
``i3d``; a separable 3D unit for ``s3d``: spatial 1xkxk, then temporal kx1x1) and by the four
pools between its stages. Every unit, pool and the head compute what the original study's code
(IBM/action-recognition-pytorch, ``models/threed_models/{i3d,s3d}.py``,
``models/twod_models/inception_v1.py``) computes, so its checkpoints load and give its logits:

* Conv units: conv without bias, BatchNorm with eps 1e-3 (momentum 0.1), ReLU. The temporal kx1x1
  conv of an s3d unit has a bias. Stems: i3d 7x7x7, s3d 3x7x7, inception_v1 7x7, all with spatial
  stride 2 and temporal stride 1.
* 3D pools (``i3d``, ``s3d``): one joint window each, floor mode, zero/-inf padding; all four use
  ``--pooling_method`` (max, or an average that counts the padding, as ``F.avg_pool3d``):
  pool1 1x3x3 stride 1x2x2 padding 0x1x1; pool2, pool3 3x3x3 stride (s,2,2) padding 1, with s = 2
  with t-stride and 1 with ``--without_t_stride`` (so time is still max/avg filtered over 3
  frames, only not subsampled); pool4 as pool2 for i3d, but 2x2x2 stride (s,2,2) without padding
  for s3d, so s3d without t-stride leaves T-1 frames to inception5a/5b.
* 2D pools (``inception_v1``): torchvision's spatial max pools (3x3 stride 2, the last 2x2, no
  padding, ceil mode); with t-stride pool2-pool4 are followed by a pool of time (kernel 3, stride
  2, padding 1, max or average counting the padding); ``--without_t_stride`` has no pool of time.
* Inception blocks: 1x1 | 1x1->3x3 | 1x1->3x3 | 3x3(x3) max pool stride 1 padding 1 ->1x1.
* Head: spatial average per frame, dropout, the classifier on every frame, logits averaged over
  the frames left.

Module names are the original's, which are torchvision GoogLeNet's (``conv1.conv``,
``inception3a.branch2.1.bn``, ``fc``; s3d's temporal half ``conv_t`` / ``bn_t``; TAMs ``tam1`` ..
``tam5b`` after conv1, conv2, conv3 and every Inception block), so ImageNet weights inflate by name
and original checkpoints need no renaming (:func:`check_original_inception` only checks that a file
is of the model's variant). TSM (``--temporal_module_name TSM``) is this project's addition; the
original offers TSN and TAM for this family.

Costs for 174 classes, 8 frames of 224x224 (conv MACs of one clip, as the original code gives):

=====================  ===========  ================  =================
family                 params       MACs, t-stride    MACs, no t-stride
=====================  ===========  ================  =================
i3d                    12,465,614   21,411,353,600    33,806,581,760
s3d                     8,081,678   12,264,670,208    19,778,626,560
inception_v1-TSN        5,778,254    6,521,725,952    11,978,817,536
=====================  ===========  ================  =================
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.blocks import Conv3d, TemporalPool, frames_to_batch, init_weights, pooled_frames
from models.config import ModelConfig
from models.registry import register
from models.temporal import TAM, make_temporal_module, temporal_arch_suffix
from models.weights import original_layout

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
# The pool before each of these blocks (pool1 follows conv1).
POOL_BEFORE = {'inception3a': 2, 'inception4a': 3, 'inception5a': 4}
BN_EPS = 1e-3  # GoogLeNet's BatchNorm epsilon, used by the original and torchvision


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


class Pool3d(nn.Module):
    """A max or average pool of (B, C, T, H, W), floor mode, as ``F.max_pool3d`` / ``F.avg_pool3d``.

    The average counts the zero padding (``count_include_pad``, the default of the original's
    pools). It pads by hand because ``avg_pool3d`` refuses inputs shorter than the kernel even
    when padded (an 8-frame clip meets a 3-frame window on 2 frames); where the original runs,
    the values are the same, and on shorter inputs this continues the same rule.
    """

    def __init__(self, kernel, stride, padding, method: str = 'max'):
        super().__init__()
        if method not in ('max', 'avg'):
            raise ValueError(f'pooling method must be max or avg, not {method!r}')
        self.kernel, self.stride, self.padding = _triple(kernel), _triple(stride), _triple(padding)
        self.method = method

    def frames_after(self, frames: int) -> int:
        """Frames left by this pool from ``frames``."""
        return (frames + 2 * self.padding[0] - self.kernel[0]) // self.stride[0] + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.method == 'max':
            return F.max_pool3d(x, self.kernel, self.stride, self.padding)
        pt, ph, pw = self.padding
        return F.avg_pool3d(F.pad(x, (pw, pw, ph, ph, pt, pt)), self.kernel, self.stride)

    def extra_repr(self) -> str:
        return f'{self.method}, kernel={self.kernel}, stride={self.stride}, padding={self.padding}'


# A pool factory: (pool index 1..4, frames in) -> (pool module, frames out).
PoolFactory = Callable[[int, int], tuple[nn.Module, int]]


def pools_3d(t_stride: bool, method: str, last_kernel: int) -> PoolFactory:
    """The original I3D (``last_kernel`` 3) / S3D (``last_kernel`` 2) pools, see the module docstring."""
    s = 2 if t_stride else 1

    def make(index: int, frames: int) -> tuple[nn.Module, int]:
        if index == 1:
            pool = Pool3d((1, 3, 3), (1, 2, 2), (0, 1, 1), method)
        elif index == 4 and last_kernel == 2:
            pool = Pool3d(2, (s, 2, 2), 0, method)
        else:
            pool = Pool3d(3, (s, 2, 2), 1, method)
        return pool, pool.frames_after(frames)
    return make


def pools_2d(t_stride: bool, method: str) -> PoolFactory:
    """torchvision GoogLeNet's spatial max pools; with t-stride pool2-4 then pool time."""
    def make(index: int, frames: int) -> tuple[nn.Module, int]:
        spatial = nn.MaxPool2d(2 if index == 4 else 3, 2, ceil_mode=True)
        if index == 1 or not t_stride:
            return spatial, frames
        # kernel 3, stride 2, padding 1; the average counts the padding, as the original's
        return nn.Sequential(spatial, TemporalPool(frames, method)), pooled_frames(frames)
    return make


class InceptionV1(nn.Module):
    """The Inception-v1 trunk with a classifier, for 2D (per frame) or 3D conv units.

    Args:
        conv1: the stem conv unit (3 -> 64 channels, spatial stride 2; never strides time).
        unit: builds every other conv unit, ``unit(cin, cout, kernel, stride=1, padding=0)``.
        dims: 2 (frames go through the network as a batch) or 3.
        frames: input frames per clip.
        pools: builds pool1 (after conv1) .. pool4 (before inception5a), see :data:`PoolFactory`.
        temporal: 2D only, builds the temporal module (TAM, TSM) that follows conv1, conv2, conv3 and
            every Inception block from ``(channels, frames)``; they are named ``tam1`` .. ``tam3``,
            ``tam3a`` .. ``tam5b`` as in the original.
    """

    def __init__(self, conv1: nn.Module, unit: Callable[..., nn.Module], dims: int, num_classes: int,
                 dropout: float, frames: int, pools: PoolFactory,
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

        def add_pool(index: int) -> None:
            nonlocal t
            pool, t = pools(index, t)
            if t < 1:
                raise SystemExit(f'error: {frames} frames are too few for this network '
                                 f'(none left after pool{index}); use more --groups')
            add(f'pool{index}', pool)

        add('conv1', conv1, 64)
        add_pool(1)
        add('conv2', unit(64, 64, 1), 64)
        add('conv3', unit(64, 192, 3, padding=1), 192)
        for name, cfg in INCEPTION_CFG.items():
            if name in POOL_BEFORE:
                add_pool(POOL_BEFORE[name])
            _, ch1, _, ch3, _, ch5, pool_proj = cfg
            add(name, Inception(*cfg, unit=unit, dims=dims), ch1 + ch3 + ch5 + pool_proj)
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
        x = self.features(x).mean((-2, -1))      # spatial average: (B*T, C) or (B, C, T)
        x = x.view(batch, -1, x.shape[-1]) if self.dims == 2 else x.transpose(1, 2)   # (B, T, C)
        # As the original: dropout and the classifier on every frame, then the mean over frames.
        return self.fc(self.dropout(x)).mean(1)


def _variant(model: nn.Module) -> str:
    """'inception_v1-TSN', 'inception_v1-TAM', 'i3d', 's3d' or 's3d-dw': what sets the keys."""
    if model.dims == 2:
        return 'inception_v1-' + ('TAM' if isinstance(getattr(model, 'tam1', None), TAM) else 'TSN')
    if isinstance(model.conv3, SeparableUnit):
        return 's3d-dw' if model.conv3.conv_t.groups > 1 else 's3d'
    return 'i3d'


def _file_variant(state: dict[str, torch.Tensor]) -> str | None:
    """The variant of an Inception-v1-family state_dict (see :func:`_variant`), None for others."""
    stem = state.get('conv1.conv.weight')
    if stem is None or 'inception3a.branch1.conv.weight' not in state or stem.dim() not in (4, 5):
        return None
    if stem.dim() == 4:
        tam = any(k.startswith(('tam1.prev_se.', 'tam1.blending_layers.')) for k in state)
        return 'inception_v1-' + ('TAM' if tam else 'TSN')
    temporal = state.get('conv3.conv_t.weight')
    if temporal is None:
        return 'i3d'
    return 's3d-dw' if temporal.shape[1] == 1 else 's3d'


@original_layout
def check_original_inception(state: dict[str, torch.Tensor], model: nn.Module) -> None:
    """Original i3d / s3d / inception_v1 state_dicts: check the family, rename nothing.

    The original's key names are this model's, so there is nothing to rename (returns None, and
    the keys and shapes are checked by ``load_pretrained``). A file of another variant of the
    family (an s3d file for an i3d model, TAM for TSN, depthwise temporal convs or not) is a
    one-line error saying which it is, rather than a list of mismatched keys.
    """
    if not isinstance(model, InceptionV1):
        return None
    found, wanted = _file_variant(state), _variant(model)
    if found is not None and found != wanted:
        raise SystemExit(f'error: the weights are an original {found} checkpoint but the model '
                         f'is {wanted}; build the model with the options the file was trained with')
    return None


@register('i3d', dims=3, imagenet='inception', options=('without_t_stride', 'pooling_method'))
def build_i3d(cfg: ModelConfig) -> tuple[nn.Module, str]:
    """I3D (Carreira & Zisserman 2017): Inception-v1 with every k x k conv inflated to k x k x k."""
    conv1 = ConvUnit(3, 64, 7, stride=(1, 2, 2), padding=3, dims=3)
    pools = pools_3d(not cfg.without_t_stride, cfg.pooling_method, last_kernel=3)
    model = InceptionV1(conv1, partial(ConvUnit, dims=3), 3, cfg.num_classes, cfg.dropout,
                        cfg.frames, pools)
    return model, 'i3d'


@register('s3d', dims=3, imagenet='inception',
          options=('without_t_stride', 'pooling_method', 'dw_t_conv'))
def build_s3d(cfg: ModelConfig) -> tuple[nn.Module, str]:
    """S3D (Xie et al. 2018): I3D with k x k x k convs split into 1 x k x k then k x 1 x 1.

    The stem is a plain 3x7x7 conv rather than a separable 7x7x7 one, and the pool before
    inception5a is 2x2x2. ``--dw_t_conv`` makes the temporal k x 1 x 1 convs depthwise.
    """
    depthwise = cfg.dw_t_conv
    conv1 = ConvUnit(3, 64, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), dims=3)
    pools = pools_3d(not cfg.without_t_stride, cfg.pooling_method, last_kernel=2)
    model = InceptionV1(conv1, partial(separable_unit, depthwise=depthwise), 3, cfg.num_classes,
                        cfg.dropout, cfg.frames, pools)
    return model, 's3d-dw' if depthwise else 's3d'


@register('inception_v1', dims=2, imagenet='inception',
          options=('without_t_stride', 'pooling_method', 'temporal_module_name'))
def build_inception_v1(cfg: ModelConfig) -> tuple[nn.Module, str]:
    """2D Inception-v1 on every frame with TSN (none), TAM or TSM after every conv and Inception block."""
    temporal = None
    if cfg.temporal_module_name != 'TSN':
        def temporal(channels: int, frames: int) -> nn.Module | None:
            return make_temporal_module(cfg.temporal_module_name, channels, frames, cfg)
    model = InceptionV1(ConvUnit(3, 64, 7, stride=2, padding=3, dims=2), partial(ConvUnit, dims=2), 2,
                        cfg.num_classes, cfg.dropout, cfg.frames,
                        pools_2d(not cfg.without_t_stride, cfg.pooling_method), temporal)
    return model, f'inception_v1-{temporal_arch_suffix(cfg)}'
