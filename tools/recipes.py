#!/usr/bin/env python3
"""The original study's model zoo as commands of this toolkit, with its published numbers.

The study (IBM/action-recognition-pytorch) published 8 trained models (its README, "Models and
Results") and benchmark_mini.md: 576 rows of models trained on its mini datasets, each named by
its recipe. This tool turns every one into the commands that train (train_dist.py) and
evaluate (test.py) it here, and checks the published parameter counts and FLOPs against the
models those commands build:

    python3 tools/recipes.py --list                      # every name, one a line
    python3 tools/recipes.py NAME [--gpus 4] [--datadir DIR] [--logdir DIR] [-j 16] [--weights DIR]
    python3 tools/recipes.py --check [NAME ...]          # params and FLOPs against the table
    python3 tools/recipes.py --write_zoo docs/model_zoo.md

The numbers are facts carried over from the original: tools/recipes_benchmark_mini.csv holds
benchmark_mini.md row for row (name, top-1, top-5, FLOPs, params, epochs as published, plus
`flops_counted_with`, see below) and tools/recipes_released.csv the released models (name,
dataset, top-1, the options of the original's test command for them). docs/model_zoo.md is
generated from the same two files (--write_zoo; a test keeps the two equal).

A benchmark name reads, for example,
mini_st2stv2-TAM-b3-sum-resnet-50-tp-max-f32-multisteps-syncbn-bs36-e35: dataset, TAM with 3
blending frames summed (none: TSN or a 3D model), backbone and depth, `tp` or `ts` (temporal
pooling/stride, the default; without it --without_t_stride) with its pooling method (max when
not named, the original's default), frames, schedule, SyncBatchNorm, global batch, epochs; a
trailing `*` marks a run stopped before its epochs (the Epochs column says where). Everything
the name does not say is the original code's default (its opts.py): lr 0.01, --lr_steps 15 30
45 for multisteps, momentum 0.9, weight decay 5e-4, dropout 0.5, uniform sampling of one frame
per segment, 224x224 crops, augmentor v1 (tests check that this toolkit's defaults are those
values). The table's rule: 8-frame models start from ImageNet, more frames from the
fewer-frame model; here from the run with half the frames.

FLOPs are the paper's: conv multiply-accumulates of one clip at 224x224, the classifier left
out (models.complexity.count_conv_macs on the meta device). 14 rows (i3d without temporal
pooling at 8 and 16 frames, and at 32 frames on mini_st2stv2) give the figure of an I3D whose
pool before inception5a is S3D's (2x2x2, no padding: T-1 frames into inception5a/5b), most
likely an earlier version of the original's: the code it released names its I3D i3d_v2, keeps
T frames there (as this toolkit) and still comments "(F/8)-1" after that pool; it counts
232,967,168 MACs more. Those rows say so in `flops_counted_with` (earlier_i3d), and --check
counts them on that network and requires both that it gives the published figure and that
this toolkit's i3d does not.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import os
import re
import shlex
import sys
from contextlib import contextmanager
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from utils.errors import UserError, run_main  # noqa: E402

BENCHMARK_CSV = os.path.join(ROOT, 'tools', 'recipes_benchmark_mini.csv')
RELEASED_CSV = os.path.join(ROOT, 'tools', 'recipes_released.csv')
SOURCE = 'https://github.com/IBM/action-recognition-pytorch'
RELEASE_URL = f'{SOURCE}/releases/download/weights-v0.1/'

# The original code's defaults for what a benchmark name leaves out (its opts.py).
LR, LR_STEPS = '0.01', ('15', '30', '45')
FIRST_FRAMES = 8                     # these start from ImageNet, the others from half the frames
DATASETS = {'mini_st2stv2': 'Mini-Something-Something-V2', 'mini_kinetics400': 'Mini-Kinetics-400',
            'mini_moments': 'Mini-Moments'}
BACKBONES = {'inception-v1': 'inception_v1', 'resnet': 'resnet', 's3d-resnet': 's3d_resnet',
             'i3d-resnet': 'i3d_resnet', 's3d': 's3d', 'i3d': 'i3d'}
NAME = re.compile(
    r'(?P<dataset>mini_st2stv2|mini_kinetics400|mini_moments)-'
    r'(?:TAM-b(?P<blending_frames>\d+)-(?P<blending_method>sum|max)-)?'
    r'(?P<backbone>inception-v1|resnet|s3d-resnet|i3d-resnet|s3d|i3d)(?:-(?P<depth>\d+))?'
    r'(?:-(?P<tpool>tp|ts)(?:-(?P<pooling>max|avg))?)?'
    r'-f(?P<frames>\d+)-(?P<schedule>cosine|multisteps)(?P<syncbn>-syncbn)?'
    r'-bs(?P<batch>\d+)-e(?P<epochs>\d+)\*?$')
EARLIER_I3D = 'earlier_i3d'          # the flops_counted_with value, see the module docstring


# ----------------------------------------------------------------------------- the tables

@dataclass(frozen=True)
class Recipe:
    """What a benchmark name says: the options of one trained configuration."""
    dataset: str
    backbone_net: str
    depth: int | None
    temporal_module: str | None      # TSN or TAM for the 2D families, None for the 3D ones
    blending_frames: int | None
    blending_method: str | None
    t_stride: bool
    pooling: str
    frames: int
    schedule: str
    sync_bn: bool
    batch: int
    epochs: int


@dataclass(frozen=True)
class Row:
    """One row of benchmark_mini.md, as published."""
    name: str                        # without the trailing '*' of a stopped run
    published_name: str
    top1: str                        # as written there
    top5: str
    flops: int
    params: int
    epochs_run: int
    flops_counted_with: str          # '' or EARLIER_I3D
    recipe: Recipe


@dataclass(frozen=True)
class Released:
    """One released model of the original's README, with its test options."""
    name: str
    dataset: str
    top1: str
    options: tuple[str, ...]

    @property
    def file(self) -> str:
        return f'{self.name}.pth.tar'


def parse_name(name: str) -> Recipe:
    """The recipe a benchmark name spells (see the module docstring); ValueError otherwise."""
    m = NAME.match(name)
    if m is None:
        raise ValueError(f'{name!r} is not a benchmark recipe name')
    from models import family
    g = m.groupdict()
    backbone = BACKBONES[g['backbone']]
    fam = family(backbone)
    if (g['depth'] is None) == fam.reads('depth'):
        raise ValueError(f'{name!r}: {g["backbone"]} takes {"no" if g["depth"] else "a"} depth')
    two_d = fam.is_2d
    if g['blending_frames'] and not two_d:
        raise ValueError(f'{name!r}: TAM is a module of the 2D families')
    return Recipe(
        dataset=g['dataset'], backbone_net=backbone,
        depth=int(g['depth']) if g['depth'] else None,
        temporal_module=('TAM' if g['blending_frames'] else 'TSN') if two_d else None,
        blending_frames=int(g['blending_frames']) if g['blending_frames'] else None,
        blending_method=g['blending_method'], t_stride=g['tpool'] is not None,
        pooling=g['pooling'] or 'max', frames=int(g['frames']), schedule=g['schedule'],
        sync_bn=bool(g['syncbn']), batch=int(g['batch']), epochs=int(g['epochs']))


def read_benchmark(path: str = BENCHMARK_CSV) -> list[Row]:
    """Every row of the benchmark table, in the published order."""
    rows = []
    with open(path, newline='', encoding='utf-8') as f:
        for line, r in enumerate(csv.DictReader(f), start=2):
            name = r['name'].rstrip('*')
            try:
                recipe = parse_name(r['name'])
            except ValueError as exc:
                raise UserError(f'{exc}, {path} line {line}') from None
            rows.append(Row(name, r['name'], r['top1'], r['top5'], int(r['flops']),
                            int(r['params']), int(r['epochs']), r['flops_counted_with'], recipe))
    return rows


def read_released(path: str = RELEASED_CSV) -> list[Released]:
    """The released models, in the README's order."""
    with open(path, newline='', encoding='utf-8') as f:
        return [Released(r['name'], r['dataset'], r['top1'], tuple(r['options'].split()))
                for r in csv.DictReader(f)]


@dataclass(frozen=True)
class Where:
    """What the printed commands take from the user: data, logs, GPUs, loader workers, and
    the folder of the released files. A datadir of None is data/<dataset>."""
    datadir: str | None = None
    logdir: str = 'logs'
    gpus: int = 4                    # divides every batch of the table (36, 48, 60, 72)
    workers: int = 16
    weights: str = 'weights'

    def data(self, dataset: str) -> str:
        return self.datadir or os.path.join('data', dataset)


class Zoo:
    """The benchmark rows and released models, looked up by name, with the commands that
    train and evaluate each."""

    def __init__(self, rows: list[Row] | None = None, released: list[Released] | None = None):
        self.rows = read_benchmark() if rows is None else rows
        self.released = read_released() if released is None else released
        self.recipes: dict[str, Recipe] = {}
        for row in self.rows:
            if self.recipes.setdefault(row.name, row.recipe) != row.recipe:
                raise UserError(f'{row.name} is listed twice with different recipes')
        # One model may be published under two names (the table's `tp` and `ts`), but it has
        # one recipe: its run folder is the model's (utils.engine.run_name).
        self.by_model: dict[tuple, Recipe] = {}
        for name, recipe in self.recipes.items():
            first = self.by_model.setdefault(model_key(recipe), recipe)
            if config_key(first) != config_key(recipe):
                raise UserError(f'{name}: the table trains this model with two recipes')
        self._arch: dict = {}

    def names(self) -> list[str]:
        """Every name once: the released models, then the benchmark in the published order."""
        return [r.name for r in self.released] + list(self.recipes)

    def lookup(self, name: str) -> Recipe | Released:
        name = name.rstrip('*')
        for r in self.released:
            if r.name == name:
                return r
        if name in self.recipes:
            return self.recipes[name]
        raise UserError(f'no recipe or released model is named {name!r}; '
                        f'python3 tools/recipes.py --list prints every name')

    def aliases(self, recipe: Recipe) -> list[str]:
        """The names the table gives this configuration."""
        key = model_key(recipe)
        return [n for n, r in self.recipes.items() if model_key(r) == key]

    def previous(self, recipe: Recipe) -> Recipe | None:
        """The run this one starts from: None (ImageNet) at 8 frames, else the table's run of
        the same model and dataset with half the frames."""
        if recipe.frames <= FIRST_FRAMES:
            return None
        key = model_key(dataclasses.replace(recipe, frames=recipe.frames // 2))
        if key not in self.by_model:
            raise UserError(f'the table has no {recipe.frames // 2}-frame run of this model to '
                            f'start {recipe.frames} frames from ({recipe})')
        return self.by_model[key]

    # ------------------------------------------------------------------------- commands

    def train_command(self, recipe: Recipe, where: Where) -> list[str]:
        """train_dist.py and its arguments for this recipe on `where.gpus` GPUs of one node."""
        if recipe.batch % where.gpus:
            raise UserError(f'-b {recipe.batch} of this recipe is the global batch and does not '
                            f'divide among --gpus {where.gpus}; give a GPU count that divides it')
        argv = ['train_dist.py', '--multiprocessing-distributed', '--nproc_per_node',
                str(where.gpus), '--dataset', recipe.dataset, '--datadir',
                where.data(recipe.dataset)] + model_options(recipe)
        argv += ['-b', str(recipe.batch), '--lr', LR, '--lr_scheduler', recipe.schedule]
        if recipe.schedule == 'multisteps':
            argv += ['--lr_steps', *LR_STEPS]
        argv += ['--epochs', str(recipe.epochs)] + (['--sync-bn'] if recipe.sync_bn else [])
        previous = self.previous(recipe)
        if previous is not None:
            argv += ['--pretrained', self.checkpoint(previous, where)]
        return argv + ['-j', str(where.workers), '--logdir', where.logdir]

    def test_command(self, recipe: Recipe, where: Where) -> list[str]:
        """test.py evaluating the recipe's best checkpoint on the validation list, one centre
        crop of one clip (what the original's training validated with)."""
        return (['test.py', '--dataset', recipe.dataset, '--datadir', where.data(recipe.dataset)]
                + model_options(recipe)
                + ['--pretrained', self.checkpoint(recipe, where), '--eval_split', 'val',
                   '--num_clips', '1', '--num_crops', '1', '-j', str(where.workers)])

    def released_command(self, model: Released, where: Where) -> list[str]:
        """test.py evaluating a released file as the original's README does."""
        return (['test.py', '--dataset', model.dataset, '--datadir', where.data(model.dataset)]
                + list(model.options)
                + ['--eval_split', 'val', '-j', str(where.workers),
                   '--pretrained', os.path.join(where.weights, model.file)])

    def checkpoint(self, recipe: Recipe, where: Where) -> str:
        """Where train_dist.py writes the recipe's best checkpoint: <logdir>/<run name>/."""
        from utils.engine import run_name
        cfg = recipe_config(recipe, where)
        return os.path.join(where.logdir, run_name(cfg, self.arch(cfg.model)),
                            'model_best.pth.tar')

    def arch(self, model_cfg) -> str:
        """The arch name the model's builder gives, built once per model options on the meta
        device (a builder names the options, never the class or frame count)."""
        key = dataclasses.replace(model_cfg, num_classes=1, frames=FIRST_FRAMES)
        if key not in self._arch:
            self._arch[key] = build_on_meta(model_cfg)[1]
        return self._arch[key]


def model_key(recipe: Recipe) -> tuple:
    """What makes one trained model: the dataset and the model and clip options."""
    return recipe.dataset, tuple(model_options(recipe))


def config_key(recipe: Recipe) -> tuple:
    """What makes one configuration: the model and how it is trained."""
    return model_key(recipe) + (recipe.schedule, recipe.sync_bn, recipe.batch, recipe.epochs)


def model_options(recipe: Recipe) -> list[str]:
    """The model and clip options of a recipe, only those its family reads (so no command
    gives an option that is ignored)."""
    from models import family
    fam = family(recipe.backbone_net)
    argv = ['--backbone_net', recipe.backbone_net]
    if recipe.depth is not None:
        argv += ['-d', str(recipe.depth)]
    if recipe.temporal_module is not None:
        argv += ['--temporal_module_name', recipe.temporal_module]
    if recipe.temporal_module == 'TAM':
        argv += ['--blending_frames', str(recipe.blending_frames), '--blending_method',
                 recipe.blending_method]
    argv += ['--groups', str(recipe.frames)]
    if not recipe.t_stride:
        argv.append('--without_t_stride')
    elif fam.reads('pooling_method'):
        argv += ['--pooling_method', recipe.pooling]
    return argv


def shell(argv: list[str]) -> str:
    """A command line to print: python3 and the quoted arguments."""
    return 'python3 ' + shlex.join(argv)


# ----------------------------------------------------------------------------- models

@functools.lru_cache(maxsize=None)
def command_parser(script: str) -> argparse.ArgumentParser:
    """The parser of train_dist.py or test.py (made once: they are large)."""
    if script == 'train_dist.py':
        from train_dist import dist_parser
        return dist_parser()
    from test import test_parser
    return test_parser()


def parse_command(argv: list[str]):
    """The Config the project's own parser makes of a printed command (train_dist.py's or
    test.py's), without looking for the files it names; with the dataset's classes."""
    from utils.config import Config
    from utils.engine import num_classes_of
    cfg = Config.from_args(command_parser(argv[0]).parse_args(argv[1:]))
    return cfg.with_classes(num_classes_of(cfg.data))


@functools.lru_cache(maxsize=None)
def recipe_config(recipe: Recipe, where: Where = Where()):
    """The Config of the recipe's evaluation command (model and clip as in training)."""
    return parse_command(['test.py', '--dataset', recipe.dataset, '--datadir',
                          where.data(recipe.dataset), '--pretrained', 'none']
                         + model_options(recipe))


@contextmanager
def meta_device():
    """Build on the meta device, and without drawing initial weights: meta tensors hold no
    values to draw, and torch's normal_ on them (a Python reference implementation) would
    take most of the time of a build."""
    import torch
    import torch.nn as nn
    saved = nn.init.kaiming_normal_, nn.init.normal_
    nn.init.kaiming_normal_ = nn.init.normal_ = lambda tensor, *args, **kwargs: tensor
    try:
        with torch.device('meta'):
            yield
    finally:
        nn.init.kaiming_normal_, nn.init.normal_ = saved


def build_on_meta(model_cfg, earlier_i3d: bool = False):
    """The network of a models.config.ModelConfig on the meta device (no memory, no compute):
    (model, arch). `earlier_i3d`: with the pool before inception5a as S3D's (2x2x2, no
    padding), the original's I3D before the code it released."""
    from models import build_model
    from models.inception import pools_3d
    with meta_device():
        model, arch = build_model(model_cfg)
        if earlier_i3d:
            if model_cfg.backbone_net != 'i3d':
                raise ValueError(f'the earlier I3D is an i3d, not {model_cfg.backbone_net}')
            model.pool4, _ = pools_3d(not model_cfg.without_t_stride, model_cfg.pooling_method,
                                      last_kernel=2)(4, model_cfg.frames)
    return model, arch


class Sizes:
    """Params and conv MACs (of one clip of `size` px) of models on the meta device, each model
    built once, its MACs counted once whatever its class count (they leave the classifier out)."""

    def __init__(self):
        self.params: dict = {}
        self.macs: dict = {}

    def of(self, model_cfg, size: int, earlier_i3d: bool = False) -> tuple[int, int]:
        from models import count_conv_macs, count_params
        key = (model_cfg, earlier_i3d)
        macs_key = (dataclasses.replace(model_cfg, num_classes=1), size, earlier_i3d)
        if key not in self.params or macs_key not in self.macs:
            model, _ = build_on_meta(model_cfg, earlier_i3d)
            self.params[key] = count_params(model)
            if macs_key not in self.macs:
                self.macs[macs_key] = count_conv_macs(model, model_cfg.frames, size,
                                                      model_cfg.input_channels)
        return self.params[key], self.macs[macs_key]


@dataclass(frozen=True)
class Checked:
    """One row against the model its train command builds."""
    row: Row
    params: int
    flops: int                       # this toolkit's model
    earlier_flops: int | None        # the earlier I3D's, for the rows counted on it

    @property
    def ok(self) -> bool:
        if self.params != self.row.params:
            return False
        if self.row.flops_counted_with == EARLIER_I3D:
            return self.earlier_flops == self.row.flops != self.flops
        return self.flops == self.row.flops and not self.row.flops_counted_with

    def line(self) -> str:
        r = self.row
        parts = [] if self.params == r.params else [
            f'params {self.params:,} here, {r.params:,} published']
        if r.flops_counted_with == EARLIER_I3D and self.earlier_flops is None:
            parts.append(f'marked {EARLIER_I3D} but not an i3d')
        elif r.flops_counted_with == EARLIER_I3D:
            same = '=' if self.earlier_flops == r.flops else '!='
            parts.append(f'FLOPs {r.flops:,} published {same} the earlier I3D\'s '
                         f'{self.earlier_flops:,}; this toolkit\'s i3d (the released code\'s) '
                         f'{self.flops:,}, {self.flops - r.flops:+,}')
        elif r.flops_counted_with:
            parts.append(f'unknown flops_counted_with {r.flops_counted_with!r}')
        elif self.flops != r.flops:
            parts.append(f'FLOPs {self.flops:,} here, {r.flops:,} published')
        status = 'ok  ' if self.ok else 'FAIL'
        return f'{status} {r.published_name}: ' + ('; '.join(parts) or 'params and FLOPs equal')


def check(rows: list[Row], zoo: Zoo, sizes: Sizes | None = None, progress=None) -> list[Checked]:
    """Params and FLOPs of the model each row's train command builds (parsed with
    train_dist.py's parser, at the command's frames and input size), against the published."""
    sizes = sizes or Sizes()
    out = []
    for i, row in enumerate(rows):
        cfg = parse_command(zoo.train_command(row.recipe, Where(gpus=1)))
        params, flops = sizes.of(cfg.model, cfg.data.input_size)
        earlier = None
        if row.flops_counted_with == EARLIER_I3D and cfg.model.backbone_net == 'i3d':
            earlier = sizes.of(cfg.model, cfg.data.input_size, earlier_i3d=True)[1]
        out.append(Checked(row, params, flops, earlier))
        if progress is not None:
            progress(i + 1, len(rows))
    return out


# ----------------------------------------------------------------------------- the zoo page

def zoo_page(zoo: Zoo) -> str:
    """docs/model_zoo.md: the released models and every benchmark row with its commands."""
    where = Where()
    lines = [
        '# Model zoo: the original study\'s released models and mini-dataset benchmark',
        '',
        '<!-- Generated by `python3 tools/recipes.py --write_zoo docs/model_zoo.md` from',
        'tools/recipes_benchmark_mini.csv and tools/recipes_released.csv: edit those, not this',
        'page (tests/test_recipes.py fails when the two disagree). -->',
        '',
        '**Every accuracy on this page is the original study\'s published number** '
        f'([IBM/action-recognition-pytorch]({SOURCE}): its README\'s "Models and Results" and '
        'its `benchmark_mini.md`), **not re-measured here**: this toolkit was developed without a '
        'GPU and without these datasets. What is checked here is what can be without them '
        '(`tests/test_recipes.py`): every parameter count and FLOPs figure against the model the '
        'command builds (`python3 tools/recipes.py --check`), that every command parses and '
        'validates with this toolkit\'s own parsers, that one recipe of each family trains a '
        'step and evaluates on tiny synthetic frames, and that the released models\' commands '
        'load files in the layout of the original\'s release at 32 frames and evaluate them.',
        '',
        '`python3 tools/recipes.py NAME` prints the commands of one model with your paths '
        '(`--datadir`, `--logdir`, `--gpus`, `-j`, `--weights`); the commands below use '
        f'`--datadir data/<dataset>`, `--logdir {where.logdir}`, {where.gpus} GPUs and '
        f'`-j {where.workers}`.',
        '',
        '## Released models',
        '',
        'Trained with 32 frames and no temporal pooling (`--without_t_stride`), evaluated as the '
        'original\'s README does: the shorter side scaled to 256 and 256x256 crops '
        '(`--input_size 256 --disable_scaleup`); Kinetics-400 with 32 frames two apart '
        '(`--dense_sampling --frames_per_group 2`), 10 clips x 3 crops; Something-Something-V2 '
        'with one frame per segment, 2 clips x 3 crops; the validation list (the original\'s '
        '`-e`), `-b 6` views a forward pass. The views of a video are fused by averaging their '
        f'logits, as the original\'s test.py. Download the files into `{where.weights}/`.',
        '',
        '| model | dataset | top-1 (published) | file |',
        '|---|---|---|---|',
    ]
    names = {'kinetics400': 'Kinetics-400', 'st2stv2': 'Something-Something-V2'}
    for m in zoo.released:
        lines.append(f'| {m.name} | {names.get(m.dataset, m.dataset)} | {m.top1} | '
                     f'[{m.file}]({RELEASE_URL}{m.file}) |')
    lines += ['', '```bash']
    for m in zoo.released:
        lines += [f'# {m.name}: top-1 {m.top1} (published)', shell(zoo.released_command(m, where))]
    lines += ['```', '', *RECIPE_NOTES]
    first = {}
    for row in zoo.rows:
        first.setdefault(model_key(row.recipe), row)    # the table lists each twice
    for dataset, title in DATASETS.items():
        rows = [r for r in first.values() if r.recipe.dataset == dataset]
        classes = recipe_config(rows[0].recipe).model.num_classes
        lines += ['', f'## {title} (`--dataset {dataset}`, {classes} classes)']
        groups: dict[str, list[Row]] = {}
        for row in rows:
            groups.setdefault(model_title(row.recipe), []).append(row)
        for title_, group in groups.items():
            lines += ['', f'### {title_}', '',
                      '| recipe | top-1 | top-5 | FLOPs | params | epochs | starts from |',
                      '|---|---|---|---|---|---|---|']
            for row in group:
                prev = zoo.previous(row.recipe)
                flops = f'{row.flops:,}' + (' (†)' if row.flops_counted_with else '')
                epochs = (str(row.epochs_run) if row.epochs_run == row.recipe.epochs else
                          f'{row.epochs_run} of {row.recipe.epochs} (`*`)')
                lines.append(f'| `{row.published_name}` | {row.top1} | {row.top5} | {flops} | '
                             f'{row.params:,} | {epochs} | '
                             f'{"ImageNet" if prev is None else f"f{prev.frames}"} |')
            others = [n for r in group for n in zoo.aliases(r.recipe) if n != r.name]
            if others:
                lines += ['', 'Also published as ' + ', '.join(f'`{n}`' for n in others)
                          + ' (the same rows).']
            lines += ['', '```bash']
            for row in group:
                lines += [f'# {row.name}', shell(zoo.train_command(row.recipe, where)),
                          shell(zoo.test_command(row.recipe, where))]
            lines.append('```')
    return '\n'.join(lines) + '\n'


RECIPE_NOTES = [
    '## The mini-dataset benchmark',
    '',
    'The original\'s `benchmark_mini.md` lists 576 rows: 192 for each mini dataset. They are '
    '288 trained configurations, each listed twice: the second half of the file repeats the '
    'first with the same numbers, 144 names spelling temporal pooling `ts` instead of `tp` '
    'and the other 144 names unchanged. Each configuration appears once below, with its '
    'second name beneath its table; `tools/recipes.py` knows both names.',
    '',
    'A name is the recipe: dataset, `TAM-b3-sum` (TAM with 3 blending frames, summed; no such '
    'part: TSN, or a 3D model), backbone and depth, `tp`/`ts` (temporal pooling, max unless '
    'named: the default here too; no `tp`/`ts`: `--without_t_stride`), `f<frames>`, the schedule '
    '(`cosine` over the epochs, or `multisteps`), `syncbn` (SyncBatchNorm), `bs<global batch>`, '
    '`e<epochs>`. The commands give these explicitly; the rest is the original code\'s default '
    '(its `opts.py`), which this toolkit shares, so the commands leave it out: `--lr 0.01` '
    '(written out), `--lr_steps 15 30 45` for `multisteps` (written out; the table does not say '
    'which steps the study used, so these are the default\'s), momentum 0.9, weight decay '
    '5e-4, dropout 0.5, uniform sampling of one frame per segment, 224x224 crops, augmentor '
    'v1. As the table says, 8-frame models start from ImageNet (from the torch hub cache, or '
    '`--imagenet_weights FILE`) and more frames from a fewer-frame model; which one it does not '
    'say: here the run with half the frames (16 from 8, 32 from 16, 64 from 32), whose best '
    'checkpoint its train command writes where the next one reads it.',
    '',
    '`-b` is the global batch (split among the GPUs, as the original\'s DistributedDataParallel '
    'split it), so the GPU count must divide it: 4 (the default of `tools/recipes.py`) divides '
    'every batch of the table; 8 does not divide 36 or 60. A `*` after a published name marks a '
    'run stopped before its epochs (the epochs column says where); the command trains the '
    'recipe\'s epochs. The test command evaluates the best checkpoint on the validation list '
    'with one centre crop of one clip, what the original\'s training validated with; the '
    'table does not say which views its top-1 used.',
    '',
    '**FLOPs** are the paper\'s: conv multiply-accumulates of one clip at 224x224, the '
    'classifier left out. `python3 tools/recipes.py --check` builds the model of every train '
    'command on the meta device and compares its parameter count and FLOPs with the table: all '
    '576 rows give the published parameter count, and 562 the published FLOPs exactly. The 14 '
    'marked (†), I3D without temporal pooling at 8 and 16 frames (every dataset) and at 32 '
    'frames (Mini-Something-Something-V2), give exactly the figure of an I3D whose pool before '
    'inception5a is S3D\'s (2x2x2, no padding), which leaves T-1 frames to inception5a/5b: '
    '232,967,168 MACs (one frame of inception5a/5b at 7x7) fewer than the I3D of the code the '
    'study released, which this toolkit builds and which gives the other I3D rows\' figures '
    '(64 frames, and 32 frames on the other two datasets). Most likely they were counted on an '
    'earlier version of the original\'s I3D: the released code names its network `i3d_v2` and '
    'still comments `(F/8)-1` after that pool. The check requires both: the published figure '
    'from that network, and another from this toolkit\'s.',
]


def model_title(recipe: Recipe) -> str:
    """A heading for the recipes of one model, e.g. 'TAM-ResNet-50 (`--backbone_net resnet`)'."""
    net = {'inception_v1': 'Inception-v1', 'resnet': f'ResNet-{recipe.depth}', 's3d': 'S3D',
           'i3d': 'I3D', 's3d_resnet': f'S3D-ResNet-{recipe.depth}',
           'i3d_resnet': f'I3D-ResNet-{recipe.depth}'}[recipe.backbone_net]
    if recipe.temporal_module:
        net = f'{recipe.temporal_module}-{net}'
    return f'{net} (`--backbone_net {recipe.backbone_net}`)'


# ----------------------------------------------------------------------------- command line

def parser() -> argparse.ArgumentParser:
    from opts import OptionParser            # its mistakes are one line, as every entrypoint's
    p = OptionParser(
        description='The original study\'s released models and mini-dataset benchmark: the '
                    'commands that train and evaluate each here, with its published numbers.')
    p.add_argument('names', nargs='*', metavar='NAME',
                   help='a benchmark recipe or released model (see --list): print its commands')
    p.add_argument('--list', action='store_true', help='print every name, one a line')
    p.add_argument('--check', action='store_true',
                   help='compare the params and FLOPs of the models the commands build with the '
                        'published ones (every row, or the NAMEs)')
    p.add_argument('--write_zoo', metavar='FILE', help='write the zoo page (docs/model_zoo.md)')
    p.add_argument('--datadir', default=None, help='dataset folder (default: data/<dataset>)')
    p.add_argument('--logdir', default=Where.logdir, help='log folder of the runs')
    p.add_argument('--gpus', default=Where.gpus, type=int,
                   help='GPUs of the training node (must divide the recipe\'s batch)')
    p.add_argument('-j', '--workers', default=Where.workers, type=int,
                   help='data loading workers per node')
    p.add_argument('--weights', default=Where.weights,
                   help='folder of the downloaded released files')
    return p


def print_commands(zoo: Zoo, name: str, where: Where) -> None:
    """The commands of one name, with its published numbers as comments."""
    item = zoo.lookup(name)
    if isinstance(item, Released):
        print(f'# {item.name} ({item.dataset}): top-1 {item.top1} published by the original '
              f'study, not re-measured here; file {RELEASE_URL}{item.file}')
        print(shell(zoo.released_command(item, where)))
        return
    train, test = zoo.train_command(item, where), zoo.test_command(item, where)
    row = next(r for r in zoo.rows if r.recipe == item)
    others = [n for n in zoo.aliases(item) if n != row.name]
    prev = zoo.previous(item)
    print(f'# {row.name}' + (f' (also published as {", ".join(others)})' if others else ''))
    epochs = (f'{row.epochs_run} epochs' if row.epochs_run == item.epochs else
              f'stopped after {row.epochs_run} of its {item.epochs} epochs')
    print(f'# published by the original study, not re-measured here: top-1 {row.top1}, top-5 '
          f'{row.top5}, FLOPs {row.flops:,}, params {row.params:,}, {epochs}')
    print(f'# train ({where.gpus} GPUs, -b {item.batch} in all; starts from '
          + ('ImageNet)' if prev is None else f'the {prev.frames}-frame run\'s best checkpoint)'))
    print(shell(train))
    print('# evaluate')
    print(shell(test))


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.gpus < 1 or args.workers < 0:
        raise UserError('--gpus must be at least 1 and -j at least 0')
    zoo = Zoo()
    where = Where(args.datadir, args.logdir, args.gpus, args.workers, args.weights)
    if args.list:
        print('\n'.join(zoo.names()))
    if args.write_zoo:
        with open(args.write_zoo, 'w', encoding='utf-8') as f:
            f.write(zoo_page(zoo))
        print(f'wrote {args.write_zoo}')
    if args.check:
        names = {n.rstrip('*') for n in args.names}
        for n in names:
            if isinstance(zoo.lookup(n), Released):
                raise UserError(f'{n} is a released model: the original publishes no size of '
                                f'it to check; --check takes benchmark names')
        rows = [r for r in zoo.rows if not names or r.name in names]
        print(f'checking {len(rows)} rows: params and FLOPs (conv MACs of one 224x224 clip, '
              f'classifier excluded) of the model each train command builds, on the meta device')
        results = check(rows, zoo, progress=lambda i, n: print(f'  {i}/{n}', file=sys.stderr)
                        if i % 48 == 0 or i == n else None)
        for c in results:
            if not c.ok or c.row.flops_counted_with:
                print(c.line())
        bad = [c for c in results if not c.ok]
        ours = sum(c.flops == c.row.flops and not c.row.flops_counted_with for c in results)
        earlier = sum(c.earlier_flops == c.row.flops != c.flops for c in results)
        print(f'{len(results) - len(bad)} of {len(results)} rows as published: params equal in '
              f'{sum(c.params == c.row.params for c in results)}, FLOPs equal to this '
              f'toolkit\'s model in {ours} and to the earlier I3D (see above) in {earlier}')
        if bad:
            raise UserError(f'{len(bad)} rows differ from the published table (FAIL above)')
    elif args.names:
        for i, name in enumerate(args.names):
            if i:
                print()
            print_commands(zoo, name, where)
    elif not (args.list or args.write_zoo):
        parser().print_usage()
        raise UserError('give NAME, --list, --check or --write_zoo')
    return 0


if __name__ == '__main__':
    run_main(main, trains=False)
