"""The model registry: every family registers once, with what the rest of the toolkit needs.

A `Family` says how to build the network and what it is: 2D (a per-frame network, which takes a
temporal module) or 3D, which ImageNet 2D weights it starts from, and which options of
`ModelConfig` it reads. The command line's choices, its notes on ignored options, the input
statistics and ImageNet loading all derive from it, so a new family touches its own module and
its one `@register` line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch.nn as nn

from models.blocks import set_input_channels
from models.config import ModelConfig

# Options every family reads (the rest are declared per family).
COMMON_OPTIONS = ('dropout',)


@dataclass(frozen=True)
class Family:
    """One --backbone_net: its builder and what the rest of the toolkit needs to know of it.

    `build(cfg) -> (network, arch)`; the registry appends the time options to `arch` (the run
    folder's name) for the families that read them. `imagenet` names the 2D ImageNet network
    whose weights it inflates ('resnet' or 'inception'), which also sets its default input
    statistics. `options` are the ModelConfig fields it reads besides COMMON_OPTIONS; `ignored`
    says why, for an option it does not read, when the reason is worth a note.
    """
    name: str
    build: Callable[[ModelConfig], tuple[nn.Module, str]]
    dims: int
    imagenet: str
    options: tuple[str, ...]
    ignored: dict[str, str] = field(default_factory=dict)

    @property
    def is_2d(self) -> bool:
        return self.dims == 2

    def reads(self, option: str) -> bool:
        return option in self.options or option in COMMON_OPTIONS


FAMILIES: dict[str, Family] = {}
MODELS: dict[str, Callable] = {}      # name -> builder, as before (scripts and tests read it)


def register(name: str, *, dims: int, imagenet: str, options: tuple[str, ...] = (),
             ignored: dict[str, str] | None = None):
    """Register a family builder under its ``--backbone_net`` name (once per family)."""
    if dims not in (2, 3) or imagenet not in ('resnet', 'inception'):
        raise ValueError(f'family {name!r}: dims must be 2 or 3 and imagenet resnet or inception')

    def add(builder: Callable) -> Callable:
        if name in FAMILIES:
            raise ValueError(f'model family {name!r} registered twice')
        FAMILIES[name] = Family(name, builder, dims, imagenet, tuple(options), dict(ignored or {}))
        MODELS[name] = builder
        return builder
    return add


def family(name: str) -> Family:
    """The registered family of a --backbone_net name; a one-line error for an unknown one."""
    if name not in FAMILIES:
        raise SystemExit(f'error: unknown --backbone_net {name!r}; '
                         f'choose from {", ".join(sorted(FAMILIES))}')
    return FAMILIES[name]


def build_model(cfg) -> tuple[nn.Module, str]:
    """Build the network a `ModelConfig` describes (or an options namespace, converted with
    `ModelConfig.from_namespace`); returns it and its arch name (used for log folders)."""
    if not isinstance(cfg, ModelConfig):
        cfg = ModelConfig.from_namespace(cfg)
    fam = family(cfg.backbone_net)
    model, arch = fam.build(cfg)
    if cfg.input_channels != 3:      # flow: 2 x --flow_length channels; every family, one place
        set_input_channels(model, cfg.input_channels)
    return model, arch + time_suffix(cfg, fam)


def temporal_module(cfg: ModelConfig) -> str | None:
    """The temporal module of a 2D model (TSN when not given); None for a 3D model, which has
    none."""
    return cfg.temporal_module_name if family(cfg.backbone_net).is_2d else None


def time_suffix(cfg: ModelConfig, fam: Family) -> str:
    """Arch-name suffix for the time options the family reads, so that runs with different
    settings get different folders."""
    if cfg.without_t_stride:
        return '-nots' if fam.reads('without_t_stride') else ''
    return '-avgpool' if cfg.pooling_method == 'avg' and fam.reads('pooling_method') else ''
