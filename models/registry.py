"""The model registry: every family registers one builder under its --backbone_net name."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from models.blocks import set_input_channels

# name -> builder(args) -> (model, arch name). Filled by the @register decorators of the family modules.
MODELS: dict[str, Callable] = {}


def register(name: str):
    """Register a family builder under its ``--backbone_net`` name (once per family)."""
    def add(builder: Callable) -> Callable:
        if name in MODELS:
            raise ValueError(f'model family {name!r} registered twice')
        MODELS[name] = builder
        return builder
    return add


def build_model(args) -> tuple[nn.Module, str]:
    """Build the network that ``args`` describe; returns it and its arch name (used for log folders).

    ``args`` needs the options of ``opts.py`` (``backbone_net``, ``depth``, ``groups`` = frames per
    clip, ``num_classes``, ``dropout``, ``without_t_stride``, ``pooling_method``, ...) and may
    set ``input_channels`` (3 unless given).
    """
    if args.backbone_net not in MODELS:
        raise SystemExit(f'error: unknown --backbone_net {args.backbone_net!r}; '
                         f'choose from {", ".join(sorted(MODELS))}')
    model, arch = MODELS[args.backbone_net](args)
    channels = getattr(args, 'input_channels', 3)
    if channels != 3:            # flow: 2 x --flow_length channels; every family, one place
        set_input_channels(model, channels)
    return model, arch


def time_suffix(args) -> str:
    """Arch-name suffix for the time options, so runs with different settings get different folders."""
    suffix = '-nots' if args.without_t_stride else ''
    if not args.without_t_stride and args.pooling_method == 'avg':
        suffix += '-avgpool'
    return suffix
