"""Loading weights: this project's checkpoints, the original study's release, torchvision's video
ResNets, and ImageNet 2D weights (inflated into 3D models).

The format of a file is recognised from its keys, so one ``--pretrained PATH`` accepts them all.
"""
from __future__ import annotations

import glob
import os
import re
from typing import Callable

import torch
import torch.nn as nn

from models.checkpoint_file import load_file
from utils.errors import UserError

# torchvision's ImageNet files, looked up in the torch hub cache by these name patterns.
IMAGENET_FILES = {
    'resnet': 'resnet{depth}-*.pth',
    'inception': 'googlenet-*.pth',
}
IMAGENET_URLS = {
    'resnet18': 'https://download.pytorch.org/models/resnet18-f37072fd.pth',
    'resnet34': 'https://download.pytorch.org/models/resnet34-b627a593.pth',
    'resnet50': 'https://download.pytorch.org/models/resnet50-0676ba61.pth',
    'resnet101': 'https://download.pytorch.org/models/resnet101-63fe2227.pth',
    'resnet152': 'https://download.pytorch.org/models/resnet152-394f9c45.pth',
    'inception': 'https://download.pytorch.org/models/googlenet-1378be20.pth',
}
CLASSIFIER_KEYS = ('fc.weight', 'fc.bias')

# Converters from the original study's key layouts to this project's, added by the family
# modules with @original_layout: each takes (state_dict, model) and returns the state_dict
# renamed to the model's keys, or None when the file is not in its family's original layout.
ORIGINAL_LAYOUTS: list[Callable] = []


def original_layout(convert: Callable) -> Callable:
    """Register a converter of an original-code layout (see ORIGINAL_LAYOUTS)."""
    ORIGINAL_LAYOUTS.append(convert)
    return convert


def read_state_dict(path: str, trust: bool = False) -> dict[str, torch.Tensor]:
    """The weights in a checkpoint file, whatever wraps them, with wrapper prefixes removed.

    Accepts a bare state_dict or a dict holding it under ``state_dict`` or ``model``, as a
    PyTorch or a safetensors file (read by ``checkpoint_file.load_file``, which refuses files
    that would run code unless ``trust``); removes the ``module.`` prefix of DataParallel/DDP and
    ``_orig_mod.`` of torch.compile.
    """
    ckpt = load_file(path, trust)
    state = ckpt
    if isinstance(ckpt, dict):
        for key in ('state_dict', 'model'):
            if isinstance(ckpt.get(key), dict):
                state = ckpt[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SystemExit(f'error: {path} holds no state_dict (expected a dict of tensors, '
                         f'or a checkpoint with a "state_dict" entry)')
    return {re.sub(r'^(module\.|_orig_mod\.)+', '', k): v for k, v in state.items()}


def from_torchvision_video(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename torchvision's r3d/mc3/r2plus1d keys to this project's (``stem.0`` -> ``conv1``, ...).

    torchvision wraps each conv with its BatchNorm: ``layerX.Y.convN.0`` is the conv (itself a
    Sequential for R(2+1)D) and ``layerX.Y.convN.1`` its BN, here ``convN`` and ``bnN``.
    """
    r2plus1d_stem = 'stem.3.weight' in state
    stem = ({'stem.0.': 'conv1.0.', 'stem.1.': 'conv1.1.', 'stem.3.': 'conv1.3.', 'stem.4.': 'bn1.'}
            if r2plus1d_stem else {'stem.0.': 'conv1.', 'stem.1.': 'bn1.'})
    out = {}
    for key, value in state.items():
        for old, new in stem.items():
            if key.startswith(old):
                key = new + key[len(old):]
        key = re.sub(r'^(layer\d\.\d+)\.conv(\d)\.([01])\.',
                     lambda m: f'{m[1]}.{"conv" if m[3] == "0" else "bn"}{m[2]}.', key)
        out[key] = value
    return out


def detect_format(state: dict[str, torch.Tensor]) -> str:
    if any(k.startswith('stem.') for k in state):
        return 'torchvision video ResNet'
    return 'this project / original release'


def cross_modality(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """An RGB conv kernel (out, 3, ...) for a conv of other input channels (flow): the kernel
    averaged over its 3 channels, in every channel (TSN's cross-modality initialisation); None
    when ``source`` is not such a kernel for ``target``."""
    if (source.dim() in (4, 5) and target.dim() in (4, 5) and source.shape[1] == 3
            and target.shape[1] != 3 and source.shape[0] == target.shape[0]):
        return source.mean(dim=1, keepdim=True).expand(-1, target.shape[1], *source.shape[2:])
    return None


def load_pretrained(model: nn.Module, path: str, adapt_rgb_stem: bool = False,
                    trust: bool = False, new_classifier: bool = True) -> str:
    """Load the weights of ``path`` into ``model`` and return a one-paragraph report.

    Every key and shape must fit, except the classifier: when its number of classes differs the
    backbone is loaded and the classifier keeps its fresh initialisation (said in the report;
    with ``new_classifier=False``, for evaluation and export, it is an error instead); and, with ``adapt_rgb_stem`` (to start training a flow model), an RGB stem, which takes the
    cross-modality kernel (said too). A key or shape that does not fit is an error that lists
    them (so evaluation never runs an RGB model on flow). ``trust``: see ``read_state_dict``.
    """
    state = read_state_dict(path, trust)
    fmt = detect_format(state)
    if fmt.startswith('torchvision'):
        state = from_torchvision_video(state)
    else:
        for convert in ORIGINAL_LAYOUTS:
            renamed = convert(state, model)
            if renamed is not None:
                state, fmt = renamed, 'original study code'
                break
    own = model.state_dict()
    adapted = []
    for k in list(state) if adapt_rgb_stem else []:
        if k in own and state[k].shape != own[k].shape:
            kernel = cross_modality(state[k], own[k])
            if kernel is not None and kernel.shape == own[k].shape:
                state[k] = kernel
                adapted.append(k)
    file_classes = state['fc.bias'].numel() if 'fc.bias' in state else None
    reinit_classifier = all(k in state and k in own and state[k].shape != own[k].shape
                            for k in CLASSIFIER_KEYS)
    if reinit_classifier:
        state = {k: v for k, v in state.items() if k not in CLASSIFIER_KEYS}
    # BatchNorm's num_batches_tracked is absent from files of old PyTorch versions and harmless to skip
    missing = [k for k in own if k not in state and not (reinit_classifier and k in CLASSIFIER_KEYS)
               and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [f'{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}'
                   for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or wrong_shape:
        counts = [f'{len(keys)} {what} (first: {keys[0]})' for keys, what in (
            (missing, 'missing in the file'), (unexpected, 'not in the model'),
            (wrong_shape, 'of another shape')) if keys]
        lines = ([f'  missing in file: {k}' for k in missing] + [f'  not in model: {k}' for k in unexpected]
                 + [f'  shape: {k}' for k in wrong_shape])
        raise UserError(f'the weights in {path} ({fmt} format) do not fit the model: '
                        f'{"; ".join(counts)}; give the model options they were trained with '
                        f'(--backbone_net, -d, --temporal_module_name, --groups, --modality, '
                        f'...); every key is listed in the log',
                        details='keys that do not fit:\n' + '\n'.join(lines))
    if reinit_classifier and not new_classifier:
        raise SystemExit(f'error: the classifier of {path} has {file_classes} classes but the model '
                         f'{own["fc.bias"].numel()}; give the --dataset (or --num_classes) the '
                         f'weights were trained for')
    model.load_state_dict(state, strict=False)   # every key was checked above
    report = f'loaded {len(state)} tensors from {path} ({fmt} format)'
    if reinit_classifier:
        report += (f'; the classifier was re-initialised: the file has {file_classes} classes, '
                   f'the model {own["fc.bias"].numel()}')
    if adapted:
        report += (f'; {", ".join(adapted)}: RGB kernel averaged over its channels for the '
                   f'{own[adapted[0]].shape[1]}-channel input (cross-modality)')
    return report


# ----------------------------------------------------------------------------- ImageNet / inflation

def inflate_state_dict(model: nn.Module, state2d: dict[str, torch.Tensor]) -> tuple[dict, list[str]]:
    """2D weights mapped onto ``model``'s keys: equal shapes copied, 2D kernels inflated to 3D.

    A k x k kernel becomes t x k x k by repeating it t times and dividing by t, so that a static
    video gives the 3D conv the 2D conv's output on the frame. The spatial conv of a factored
    1x3x3 -> 3x1x1 pair (``convN.0``) takes the 2D ``convN`` kernel. A stem that takes other
    than 3 input channels (flow) gets the RGB kernel averaged over its 3 channels, in every
    channel (TSN's cross-modality initialisation). The classifier is left out.
    Returns the mapped weights and the model keys that received nothing.
    """
    out, left = {}, []
    for key, target in model.state_dict().items():
        source = state2d.get(key)
        if source is None:
            m = re.match(r'^(.*\.conv\d)\.0\.weight$', key)
            if m and target.dim() == 5 and target.shape[2] == 1:
                source = state2d.get(m.group(1) + '.weight')
        adapted = None if source is None else cross_modality(source, target)
        if adapted is not None:
            source = adapted
        if key in CLASSIFIER_KEYS or source is None:
            left.append(key)
        elif source.shape == target.shape:
            out[key] = source.clone()
        elif source.dim() == 4 and target.dim() == 5 and source.shape == target.shape[:2] + target.shape[3:]:
            t = target.shape[2]
            out[key] = source.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
        else:
            left.append(key)
    return out, left


def find_imagenet_file(family: str, depth: int | None = None) -> str | None:
    """A torchvision ImageNet file in the torch hub cache, if one is there."""
    pattern = IMAGENET_FILES[family].format(depth=depth)
    hits = sorted(glob.glob(os.path.join(torch.hub.get_dir(), 'checkpoints', pattern)))
    return hits[0] if hits else None


def load_imagenet(model: nn.Module, family: str, depth: int | None = None, path: str | None = None,
                  trust: bool = False) -> str:
    """Initialise ``model`` from ImageNet 2D weights (``family`` 'resnet' or 'inception').

    ``path`` (``--imagenet_weights``) first, then the torch hub cache; the download URL is tried
    only when neither exists, and a failed download is an error saying how to go on without it.
    """
    path = path or find_imagenet_file(family, depth)
    if path is None:
        url = IMAGENET_URLS[f'resnet{depth}' if family == 'resnet' else family]
        path = os.path.join(torch.hub.get_dir(), 'checkpoints', os.path.basename(url))
        try:    # into the hub cache, then read like any user file (torch.hub would unpickle it)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            torch.hub.download_url_to_file(url, path, progress=True)
        except Exception as e:  # offline machines: say what to do instead
            raise SystemExit(f'error: no ImageNet weights found for {family}{depth or ""} and the '
                             f'download of {url} failed ({type(e).__name__}); pass a local file '
                             f'with --imagenet_weights PATH or train from scratch with '
                             f'--no_imagenet_pretrained') from None
    state2d, source = read_state_dict(path, trust), path
    mapped, left = inflate_state_dict(model, state2d)
    if not mapped:
        raise SystemExit(f'error: no tensor of {source} fits the model (is it a {family} file?)')
    model.load_state_dict(mapped, strict=False)
    skipped = [k for k in left if not k.endswith('num_batches_tracked')]
    return (f'initialised {len(mapped)} tensors from ImageNet weights {source}; '
            f'{len(skipped)} keep their initialisation'
            + (f' ({", ".join(skipped[:6])}{", ..." if len(skipped) > 6 else ""})' if skipped else ''))
