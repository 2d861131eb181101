#!/usr/bin/env python3
"""Write a checkpoint's weights as a ``.safetensors`` file, which cannot run code when loaded.

Reads any file that ``--pretrained`` reads (this project's checkpoints, the original study's
release, torchvision's video ResNets, safetensors), maps it onto this project's model and writes
that model's state_dict with the options in the file's metadata (``args``, ``arch``, and the
``epoch``/``best_top1``/``classes`` of a training checkpoint). ``test.py --pretrained
OUT.safetensors`` then needs no other file, and tools/predict.py names the classes. The model
options come from the checkpoint when it holds them (this project's checkpoints do) and from
the command line otherwise, which also overrides them:

    python3 tools/export_weights.py logs/RUN/model_best.pth.tar model.safetensors
    python3 tools/export_weights.py i3d_resnet50_release.pth.tar i3d.safetensors \\
        --backbone_net i3d_resnet -d 50 --groups 8 --dataset st2stv2

A file that needs full unpickling is refused unless ``--trust_checkpoint`` is given (that runs
the code it holds; converting once lets every later load be safe).
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from safetensors.torch import save  # noqa: E402

from models import load_pretrained  # noqa: E402
from models.checkpoint_file import load_file  # noqa: E402
from opts import (FOLLOWED_OPTIONS, MAX_CLASSES, SHAPING_OPTIONS, arg_parser,  # noqa: E402
                  checkpoint_conflicts, parse_config, stored_classes, stored_options,
                  with_checkpoint_options)
from utils.config import Config  # noqa: E402
from utils.files import atomic_write  # noqa: E402
from utils.dataset_config import DATASET_CONFIG  # noqa: E402
from utils.errors import UserError  # noqa: E402


def model_options(content, argv: list[str], num_classes: int | None,
                  source: str = 'the checkpoint') -> Config:
    """The options of the model to build: the checkpoint's stored ones (checked as a command
    line's: opts.with_checkpoint_options), overridden by ``argv`` where that does not change
    the model the weights make (opts.checkpoint_conflicts)."""
    parser = arg_parser()
    stored = stored_options(content)
    taken = with_checkpoint_options(parser, stored, source) if stored else {}
    cfg, _, args = parse_config(parser, argv, 'test', from_checkpoint=tuple(taken))
    checkpoint_conflicts(args, taken, source)
    if num_classes is not None and not 1 <= num_classes <= MAX_CLASSES:
        raise UserError(f'--num_classes {num_classes} is not a number of classes (1 to '
                        f'{MAX_CLASSES:,})')
    classes = (num_classes or stored_classes(stored, source)
               or DATASET_CONFIG[cfg.data.dataset]['num_classes'])
    if classes is None:
        raise UserError(f'cannot tell the number of classes of the model ({source} holds no '
                        f'options and --dataset {cfg.data.dataset} has none); give '
                        f'--num_classes N')
    return cfg.with_classes(classes)


def export(checkpoint: str, out: str, argv: list[str], num_classes: int | None = None,
           trust: bool = False) -> str:
    """Export ``checkpoint`` to ``out`` (safetensors); returns a one-line report."""
    from utils.engine import build     # the engine's model builder: clip length, flow channels
    content = load_file(checkpoint, trust)
    cfg = model_options(content, argv, num_classes, checkpoint)
    model, arch = build(cfg)
    report = load_pretrained(model, checkpoint, trust=trust, new_classifier=False)
    # The file's own options stay (the training recipe: lr, epochs, ...), with the model's as
    # built here (the command line may have given those the file lacked).
    model_keys = (*SHAPING_OPTIONS, *FOLLOWED_OPTIONS, 'num_classes')
    options = {**stored_options(content),
               **{k: v for k, v in cfg.options.items() if k in model_keys}}
    meta = {'arch': arch, 'args': json.dumps(options, default=str),
            'source': os.path.basename(checkpoint)}
    if isinstance(content, dict):
        for key in ('epoch', 'best_top1', 'classes'):
            if key in content:
                value = content[key]
                meta[key] = json.dumps(value.item() if hasattr(value, 'item') else value)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic_write(out, save(state, metadata=meta),   # whole or not at all, as checkpoints
                 'free some space or write it elsewhere')
    return (f'wrote {out}: {len(state)} tensors of {arch} ({cfg.model.num_classes} classes, '
            f'{os.path.getsize(out) / 2**20:.1f} MiB); {report}')


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog='Any other option '
                                'is a model option of test.py (e.g. --backbone_net, -d, --groups, '
                                '--dataset) and overrides the one stored in the checkpoint.')
    p.add_argument('checkpoint', help='weights file to read (.pth, .pth.tar, .safetensors)')
    p.add_argument('out', help='the .safetensors file to write')
    p.add_argument('--num_classes', type=int, default=None,
                   help='classes of the model (default: the checkpoint\'s options or --dataset)')
    p.add_argument('--trust_checkpoint', action='store_true',
                   help='read a file that needs full unpickling: RUNS CODE stored in it')
    args, rest = p.parse_known_args(argv)
    if not args.out.endswith('.safetensors'):
        p.error(f'the output name should end in .safetensors: {args.out}')
    print(export(args.checkpoint, args.out, rest, args.num_classes, args.trust_checkpoint))
    return 0


if __name__ == '__main__':
    sys.exit(main())
