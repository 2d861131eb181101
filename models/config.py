"""What builds a network: the model's options, typed and frozen.

The defaults here are the command line's (opts.py reads them from this class), so a default is
written once. `ModelConfig.from_namespace` accepts the namespace of `opts.arg_parser()` (and the
hand-made namespaces of older scripts), so `models.build_model(args)` keeps working.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    """A family (`backbone_net`) and the options that shape its weights.

    `frames` is the time dimension of the clips the network takes (the clip length), which the
    command line derives from --groups (segments) and the sampling options.
    """
    num_classes: int
    backbone_net: str = 'resnet'
    depth: int = 18
    frames: int = 8
    input_channels: int = 3
    dropout: float = 0.5
    without_t_stride: bool = False
    pooling_method: str = 'max'
    dw_t_conv: bool = False
    temporal_module_name: str = 'TSN'
    blending_frames: int = 3
    blending_method: str = 'sum'
    no_dw_conv: bool = False
    shift_div: int = 8

    @classmethod
    def from_namespace(cls, args, num_classes: int | None = None) -> 'ModelConfig':
        """The model an options namespace describes. `frames` is the clip length of its
        sampling options (--groups x --frames_per_group for uniform sampling, --groups for
        dense), `input_channels` 2 x --flow_length for flow; an explicit `input_channels`
        attribute wins, and a missing --temporal_module_name (None) is TSN. `num_classes`
        is the namespace's unless given."""
        from utils.sampling import frames_per_clip
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
                  if getattr(args, f.name, None) is not None}
        values['frames'] = frames_per_clip(args.groups, getattr(args, 'frames_per_group', 1),
                                           getattr(args, 'dense_sampling', False))
        if getattr(args, 'input_channels', None) is None and getattr(args, 'modality',
                                                                      'rgb') == 'flow':
            values['input_channels'] = 2 * args.flow_length
        if num_classes is not None:
            values['num_classes'] = num_classes
        if 'num_classes' not in values:
            raise ValueError('the options give no number of classes: set args.num_classes '
                             '(opts.arg_parser does not parse it; the engine counts the '
                             'dataset\'s classes)')
        return cls(**values)

    @classmethod
    def family_option_defaults(cls) -> dict:
        """{field: default} of the options a family may or may not read (all but the family's
        name and the derived fields)."""
        return {f.name: f.default for f in dataclasses.fields(cls)
                if f.name not in ('backbone_net', 'num_classes', 'frames', 'input_channels')}
