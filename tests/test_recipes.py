"""tools/recipes.py: the original study's model zoo as commands of this toolkit.

The zoo's own table (tools/recipes_*.csv) is the source: its rows' parameter counts and FLOPs
against the models the printed train commands build (meta device), every printed command
through this toolkit's parsers, one recipe per family trained one step and evaluated on tiny
frame data, and the released models' test commands on files written in the layout of the
original's release at 32 frames. Commands are shrunk only where a user trying them would:
the data, -b, --input_size, -j, and --epochs 1 so that training is one step; the ImageNet
weights the 8-frame recipes start from are a local file (--imagenet_weights), as offline.
"""
import dataclasses
import json
import os
import shlex
import socket

import pytest
import torch

from conftest import ROOT, write_video
from opts import parse_config
from tools import recipes
from tools.recipes import EARLIER_I3D, Where, Zoo

pytestmark = pytest.mark.usefixtures('one_thread')   # see conftest.one_thread

# The original code's defaults (its opts.py) for what a benchmark name leaves out: the commands
# omit them, so this toolkit's defaults must be these.
ORIGINAL_DEFAULTS = dict(momentum=0.9, weight_decay=5e-4, nesterov=False, clip_gradient=None,
                         dropout=0.5, frames_per_group=1, dense_sampling=False,
                         random_sampling=False, input_size=224, augmentor_ver='v1',
                         modality='rgb', blending_frames=3, blending_method='sum')


@pytest.fixture(scope='module')
def zoo():
    return Zoo()


def parsers():
    from test import test_parser
    from train_dist import dist_parser
    return {'train_dist.py': (dist_parser(), 'train_dist'), 'test.py': (test_parser(), 'test')}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- the table

def test_the_table_is_the_published_one(zoo):
    """576 rows, 192 a dataset, in published order: 288 configurations listed twice, the
    second half with the first's numbers and `ts` for `tp`."""
    rows = zoo.rows
    assert len(rows) == 576
    for dataset in recipes.DATASETS:
        assert sum(r.recipe.dataset == dataset for r in rows) == 192
    first, second = rows[:288], rows[288:]
    for a, b in zip(first, second):
        assert (a.top1, a.top5, a.flops, a.params, a.epochs_run) == \
               (b.top1, b.top5, b.flops, b.params, b.epochs_run)
        assert b.published_name == a.published_name.replace('-tp', '-ts')
        assert a.recipe == b.recipe
    assert sum(a.name != b.name for a, b in zip(first, second)) == 144
    assert len(zoo.recipes) == 432
    assert len({recipes.config_key(r) for r in zoo.recipes.values()}) == 288
    assert len(zoo.released) == 8 and len(zoo.names()) == 440
    # rows the table names directly, as published
    row = next(r for r in rows if r.published_name ==
               'mini_kinetics400-i3d-resnet-50-f64-multisteps-syncbn-bs36-e45*')
    assert (row.top1, row.flops, row.params, row.epochs_run, row.recipe.epochs) == \
           ('77.6965', 513_442_578_432, 46_571_144, 41, 45)
    assert [(m.name, m.top1) for m in zoo.released] == [
        ('K400-I3D-ResNet-50-f32', '76.61'), ('K400-TAM-ResNet-50-f32', '76.18'),
        ('K400-I3D-ResNet-101-f32', '77.80'), ('K400-TAM-ResNet-101-f32', '77.61'),
        ('SSV2-I3D-ResNet-50-f32', '62.84'), ('SSV2-TAM-ResNet-50-f32', '63.83'),
        ('SSV2-I3D-ResNet-101-f32', '64.29'), ('SSV2-TAM-ResNet-101-f32', '65.32')]


def test_names_spell_their_options():
    r = recipes.parse_name(
        'mini_st2stv2-TAM-b3-sum-resnet-50-tp-max-f32-multisteps-syncbn-bs36-e35')
    assert (r.dataset, r.backbone_net, r.depth, r.temporal_module, r.blending_frames,
            r.blending_method, r.t_stride, r.pooling, r.frames, r.schedule, r.sync_bn, r.batch,
            r.epochs) == ('mini_st2stv2', 'resnet', 50, 'TAM', 3, 'sum', True, 'max', 32,
                          'multisteps', True, 36, 35)
    r = recipes.parse_name('mini_moments-i3d-f8-cosine-bs60-e75')
    assert (r.backbone_net, r.depth, r.temporal_module, r.t_stride, r.sync_bn) == \
           ('i3d', None, None, False, False)
    # tp and ts, with or without the default max, are one configuration
    assert recipes.parse_name('mini_moments-s3d-ts-f8-cosine-bs72-e75') == \
           recipes.parse_name('mini_moments-s3d-tp-max-f8-cosine-bs72-e75')
    for bad in ('mini_st2stv2-i3d-50-f8-cosine-bs72-e75', 'mini_st2stv2-resnet-f8-cosine-bs72-e75',
                'mini_st2stv2-TAM-b3-sum-i3d-f8-cosine-bs72-e75', 'st2stv2-i3d-f8-cosine-bs72-e75'):
        with pytest.raises(ValueError):
            recipes.parse_name(bad)


def test_zoo_page_is_generated_from_the_table(zoo):
    with open(os.path.join(ROOT, 'docs', 'model_zoo.md'), encoding='utf-8') as f:
        page = f.read()
    assert page == recipes.zoo_page(zoo), \
        'docs/model_zoo.md is stale: python3 tools/recipes.py --write_zoo docs/model_zoo.md'
    assert 'not re-measured here' in page
    for row in zoo.rows:                 # every name and its published numbers
        assert f'`{row.published_name}` | {row.top1} | {row.top5} | {row.flops:,}' in page \
            or f'`{row.name}`' in page
    for m in zoo.released:
        assert f'| {m.name} |' in page and f'top-1 {m.top1}' in page


# ----------------------------------------------------------------------------- commands

def test_every_command_parses_and_says_what_the_name_says(zoo, tmp_path):
    """Each printed command (split as a shell splits it) through train_dist.py's and test.py's
    parsers and validation, the files they name present: its options are the recipe's, the
    omitted ones are the original's defaults, and none is ignored by the model."""
    where = Where(datadir=str(tmp_path / 'data'), logdir=str(tmp_path / 'logs'), gpus=4,
                  workers=2, weights=str(tmp_path / 'weights'))
    parse = parsers()
    seen_runs = {}
    for name, recipe in zoo.recipes.items():
        commands = [zoo.train_command(recipe, where), zoo.test_command(recipe, where)]
        for argv in commands:
            printed = shlex.split(recipes.shell(argv))
            assert printed == ['python3'] + argv
            if '--pretrained' in argv:       # validation wants the files a command names
                os.makedirs(os.path.dirname(pretrained_of(argv)), exist_ok=True)
                open(pretrained_of(argv), 'a').close()
            parser, entry = parse[argv[0]]
            cfg, notes, _ = parse_config(parser, argv[1:], entry)
            assert not [n for n in notes if 'ignored' in n or 'was not given' in n], (name, notes)
            data, model, optim = cfg.data, cfg.model, cfg.optim
            assert (data.dataset, data.clip_length, model.backbone_net) == \
                   (recipe.dataset, recipe.frames, recipe.backbone_net)
            assert model.without_t_stride == (not recipe.t_stride)
            assert model.temporal_module_name == (recipe.temporal_module or 'TSN')
            if recipe.depth:
                assert model.depth == recipe.depth
            values = {**dataclasses.asdict(data), **dataclasses.asdict(model),
                      **dataclasses.asdict(optim)}
            assert {k: values[k] for k in ORIGINAL_DEFAULTS} == ORIGINAL_DEFAULTS, name
            assert cfg.data.datadir == where.data(recipe.dataset)
            if argv[0] != 'test.py':         # (test.py writes beside the checkpoint)
                assert cfg.run.logdir == where.logdir
        train, test = commands
        cfg, _, _ = parse_config(parse['train_dist.py'][0], train[1:], 'train_dist')
        optim = cfg.optim
        assert (optim.batch_size, optim.epochs, optim.lr, optim.lr_scheduler, cfg.dist.sync_bn) == \
               (recipe.batch, recipe.epochs, 0.01, recipe.schedule, recipe.sync_bn)
        assert optim.lr_steps == (15, 30, 45)
        assert cfg.dist.multiprocessing_distributed and cfg.dist.nproc_per_node == 4
        previous = zoo.previous(recipe)
        if recipe.frames == 8:
            assert previous is None and cfg.run.pretrained is None and cfg.run.imagenet_pretrained
        else:   # the fewer-frame run's best checkpoint, where its own test command reads it
            assert previous.frames * 2 == recipe.frames and recipes.model_key(previous) == \
                recipes.model_key(dataclasses.replace(recipe, frames=previous.frames))
            assert cfg.run.pretrained == pretrained_of(zoo.test_command(previous, where))
        run = os.path.dirname(pretrained_of(test))
        assert seen_runs.setdefault(run, recipes.config_key(recipe)) == recipes.config_key(recipe)
    assert len(seen_runs) == 288     # one run folder a configuration


def pretrained_of(argv: list[str]) -> str:
    """The --pretrained file of a command."""
    return argv[argv.index('--pretrained') + 1]


def test_released_commands_are_the_originals_template(zoo, tmp_path):
    where = Where(datadir=str(tmp_path), logdir=str(tmp_path / 'logs'), weights=str(tmp_path))
    parser, entry = parsers()['test.py']
    for m in zoo.released:
        argv = zoo.released_command(m, where)
        open(pretrained_of(argv), 'a').close()
        cfg, notes, _ = parse_config(parser, argv[1:], entry)
        assert not [n for n in notes if 'ignored' in n or 'was not given' in n], notes
        data, model, views = cfg.data, cfg.model, cfg.eval
        kinetics = m.dataset == 'kinetics400'
        assert (data.clip_length, model.without_t_stride, data.input_size, data.disable_scaleup,
                data.dense_sampling, data.frames_per_group, views.num_clips, views.num_crops,
                views.eval_split, views.view_fusion, cfg.optim.batch_size) == \
               (32, True, 256, True, kinetics, 2 if kinetics else 1, 10 if kinetics else 2, 3,
                'val', 'logits', 6)
        depth = 101 if '101' in m.name else 50
        expected = ('i3d_resnet', 'TSN') if 'I3D' in m.name else ('resnet', 'TAM')
        assert (model.backbone_net, model.depth) == (expected[0], depth)
        if expected[0] == 'resnet':
            assert (model.temporal_module_name, model.blending_frames) == ('TAM', 3)
        assert (m.dataset, os.path.basename(cfg.run.pretrained)) == \
               ('kinetics400' if m.name.startswith('K400') else 'st2stv2', m.name + '.pth.tar')


def test_readme_evaluates_the_released_models_as_the_zoo(zoo):
    """The README's and the models page's commands for released files give test.py the zoo's
    options."""
    lines = []
    for page in ('README.md', 'docs/models.md'):
        with open(os.path.join(ROOT, page), encoding='utf-8') as f:
            lines += [line for line in f if line.startswith('python3 test.py')
                      and '-f32.pth' in line]
    assert len(lines) == 3

    def what(cfg):     # all but where the data and the logs are
        return (cfg.model, dataclasses.replace(cfg.data, datadir='', workers=0), cfg.eval,
                cfg.optim.batch_size)
    for line in lines:
        argv = shlex.split(line)[1:]
        name = os.path.basename(pretrained_of(argv))[:-len('.pth.tar')]
        assert what(recipes.parse_command(argv)) == what(
            recipes.parse_command(zoo.released_command(zoo.lookup(name), Where())))


def test_tool_prints_commands_and_refuses_in_one_line(capsys, tmp_path):
    name = 'mini_st2stv2-TAM-b3-sum-resnet-50-tp-max-f32-multisteps-syncbn-bs36-e35'
    recipes.main([name, '--gpus', '6', '--datadir', '/d', '--logdir', str(tmp_path), '-j', '3'])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f'# {name} (also published as {name.replace("-tp", "-ts")})'
    assert 'top-1 63.042' in out[1] and '56,852,217,856' in out[1]
    train = shlex.split(out[3])
    assert train[:5] == ['python3', 'train_dist.py', '--multiprocessing-distributed',
                         '--nproc_per_node', '6']
    assert '--sync-bn' in train and train[train.index('--datadir') + 1] == '/d'
    assert pretrained_of(train).startswith(str(tmp_path)) and '-f16/' in pretrained_of(train)
    assert shlex.split(out[5])[1] == 'test.py'
    recipes.main(['--list'])
    listed = capsys.readouterr().out.split()
    assert len(listed) == 440 and listed[0] == 'K400-I3D-ResNet-50-f32'
    for argv, message in [([name, '--gpus', '8'], '-b 36 of this recipe is the global batch'),
                          (['mini_st2stv2-i3d-f7-cosine-bs72-e75'], 'no recipe or released model'),
                          (['--check', 'K400-I3D-ResNet-50-f32'], 'is a released model')]:
        with pytest.raises(SystemExit) as err:
            recipes.main(argv)
        assert str(err.value).startswith('error: ') and message in str(err.value)
        assert '\n' not in str(err.value)


# ----------------------------------------------------------------------------- sizes

# Rows covering the check's paths: a 2D and a 3D family, s3d's last pool (not linear in the
# frames), and the I3D rows counted on the earlier network (see tools/recipes.py).
FEW = ['mini_st2stv2-TAM-b3-sum-resnet-50-tp-max-f8-cosine-bs72-e75',
       'mini_kinetics400-s3d-f16-multisteps-bs72-e45',
       'mini_moments-i3d-f16-multisteps-bs60-e35',
       'mini_moments-i3d-f64-multisteps-syncbn-bs36-e35']


def test_check_of_a_few_rows(zoo, capsys):
    recipes.main(['--check'] + FEW)
    out = capsys.readouterr().out
    assert '7 of 7 rows as published' in out    # 3 names are two rows each (the TAM one: tp/ts)
    assert 'to the earlier I3D (see above) in 2' in out
    assert ('ok   mini_moments-i3d-f16-multisteps-bs60-e35: FLOPs 67,380,196,352 published = '
            'the earlier I3D\'s 67,380,196,352; this toolkit\'s i3d (the released code\'s) '
            '67,613,163,520, +232,967,168') in out


def test_a_wrong_figure_or_a_wrong_mark_fails(zoo):
    rows = [r for r in zoo.rows[:288] if r.name in FEW]
    sizes = recipes.Sizes()
    assert all(c.ok for c in recipes.check(rows, zoo, sizes))
    changed = [dataclasses.replace(rows[0], params=rows[0].params + 1),
               dataclasses.replace(rows[0], flops=rows[0].flops - 1),
               dataclasses.replace(rows[0], flops_counted_with=EARLIER_I3D),    # not an i3d
               dataclasses.replace(next(r for r in rows if '-f64-' in r.name),  # i3d, but its
                                   flops_counted_with=EARLIER_I3D),             # figure is ours
               dataclasses.replace(next(r for r in rows if '-i3d-f16' in r.name),
                                   flops_counted_with='')]
    results = recipes.check(changed, zoo, sizes)
    assert not any(c.ok for c in results)
    assert all(c.line().startswith('FAIL') for c in results)


@pytest.mark.slow
def test_every_row_has_the_published_params_and_flops(zoo):
    """The whole table (about a minute: 288 models built on the meta device, the conv MACs of
    96 counted)."""
    results = recipes.check(zoo.rows, zoo)
    assert [c.line() for c in results if not c.ok] == []
    assert sorted({c.row.name for c in results if c.row.flops_counted_with}) == sorted(
        [f'mini_{d}-i3d-f{f}-{rest}' for d, f, rest in [
            ('st2stv2', 8, 'cosine-bs72-e75'), ('st2stv2', 16, 'multisteps-bs72-e35'),
            ('st2stv2', 32, 'multisteps-bs48-e35'), ('kinetics400', 8, 'cosine-bs72-e100'),
            ('kinetics400', 16, 'multisteps-bs72-e45'), ('moments', 8, 'cosine-bs60-e75'),
            ('moments', 16, 'multisteps-bs60-e35')]])


# ----------------------------------------------------------------------------- training, evaluation

def tiny_frames(root: str, dataset: str, frames: int, train: int = 2, val: int = 1) -> str:
    """A datadir in `dataset`'s layout (its list names and separator): `train` and `val`
    videos of `frames` 32x40 JPEG frames, labels 0 and 1."""
    from utils.dataset_config import DATASET_CONFIG
    cfg = DATASET_CONFIG[dataset]
    for split, count in (('train', train), ('val', val)):
        lines = []
        for i in range(count):
            folder = f'videos/{split}{i}'
            write_video(os.path.join(root, folder), frames, h=32, w=40, seed=i)
            lines.append(cfg['sep'].join([folder, '1', str(frames), str(i % 2)]))
        with open(os.path.join(root, cfg[f'{split}_list']), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return root


@pytest.fixture(scope='module')
def imagenet_files(tmp_path_factory):
    """Stand-ins for torchvision's ImageNet files, in their layout (this toolkit's 2D networks
    with 1000 classes have torchvision's key names), written once per network."""
    folder, made = tmp_path_factory.mktemp('imagenet'), {}

    def get(imagenet: str, depth: int) -> str:
        name = f'resnet{depth}' if imagenet == 'resnet' else 'googlenet'
        if name not in made:
            from models import ModelConfig, build_model
            torch.manual_seed(0)
            net = build_model(ModelConfig(num_classes=1000, backbone_net='resnet' if imagenet ==
                                          'resnet' else 'inception_v1', depth=depth, frames=1,
                                          without_t_stride=True))[0]
            made[name] = str(folder / f'{name}.pth')
            torch.save(net.state_dict(), made[name])
        return made[name]
    return get


@pytest.fixture
def tiny_runs(monkeypatch):
    """Runs of tiny models on one thread (train_dist.py's process would otherwise take every
    core, which a shared CPU makes far slower for tiny convs: see conftest.one_thread), and
    test.py without its per-class analysis: the confusion plot of 87-400 classes takes most of
    a tiny evaluation's time (13 of 19 s for 200 classes; tests/test_report.py covers it)."""
    import test as test_entry
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    monkeypatch.setattr(test_entry, 'write_class_analysis', lambda *args, **kwargs: {})


def train_and_test(zoo, recipe, data: str, logdir: str, extra=()) -> tuple[dict, dict]:
    """The recipe's printed train command (1 GPU: here one CPU process in a gloo group) and
    test command, shrunk as a user would: tiny data, -b 2, 32 px, -j 0, one epoch."""
    import test as test_entry
    import train_dist
    where = Where(datadir=data, logdir=logdir, gpus=1, workers=0)
    shrink = ['-b', '2', '--input_size', '32', '-j', '0']
    train = zoo.train_command(recipe, where)[1:] + shrink + [
        '--epochs', '1', '--dist-url', f'tcp://127.0.0.1:{free_port()}', *extra]
    trained = train_dist.main(train)
    evaluated = test_entry.main(zoo.test_command(recipe, where)[1:] + shrink)
    return trained, evaluated


# One 8-frame recipe of every family but TAM-ResNet (the next test trains its 8 and 16-frame
# recipes), the datasets mixed so that each layout is read; the cheapest two in every run.
FAMILIES = ['mini_st2stv2-i3d-tp-max-f8-cosine-bs72-e75',
            'mini_st2stv2-inception-v1-tp-f8-cosine-bs72-e75'] + [
    pytest.param(n, marks=pytest.mark.slow) for n in (
        'mini_st2stv2-resnet-18-f8-cosine-bs72-e75',
        'mini_moments-TAM-b3-sum-inception-v1-f8-cosine-bs72-e75',
        'mini_kinetics400-s3d-tp-f8-cosine-bs72-e100',
        'mini_moments-s3d-resnet-18-f8-cosine-bs72-e75',
        'mini_kinetics400-i3d-resnet-18-tp-max-f8-cosine-bs72-e100')]


@pytest.mark.parametrize('name', FAMILIES, ids=lambda n: n.split('-f8')[0])
def test_recipe_trains_a_step_and_evaluates(zoo, name, tmp_path, imagenet_files, tiny_runs):
    recipe = zoo.lookup(name)
    from models import family
    fam = family(recipe.backbone_net)
    # Kinetics keeps videos of 30 frames or more (the original's filter), as here.
    data = tiny_frames(str(tmp_path / 'data'), recipe.dataset, 30 if 'kinetics' in name else 10)
    trained, evaluated = train_and_test(
        zoo, recipe, data, str(tmp_path / 'logs'),
        ['--imagenet_weights', imagenet_files(fam.imagenet, recipe.depth or 18)])
    folder = trained['folder']
    log = open(os.path.join(folder, 'log.txt')).read()
    assert 'initialised' in log and 'from ImageNet weights' in log          # the recipe's start
    assert json.load(open(os.path.join(folder, 'run.json')))['frames'] == recipe.frames
    assert evaluated['count'] == 1 and 0 <= evaluated['top1'] <= 100
    result = json.load(open(os.path.join(folder, 'val_1clips_1crops_result.json')))
    assert result['checkpoint'] == os.path.join(folder, 'model_best.pth.tar')


def test_more_frames_start_from_the_fewer_frame_run(zoo, tmp_path, imagenet_files, tiny_runs):
    """TAM-ResNet-18's 8-frame recipe from ImageNet, then its 16-frame recipe, whose command
    reads the best checkpoint the 8-frame command wrote."""
    first = zoo.lookup('mini_st2stv2-TAM-b3-sum-resnet-18-tp-max-f8-cosine-bs72-e75')
    second = zoo.lookup('mini_st2stv2-TAM-b3-sum-resnet-18-tp-max-f16-multisteps-bs72-e35')
    assert zoo.previous(second) == first
    data = tiny_frames(str(tmp_path / 'data'), 'mini_st2stv2', 16)
    logs = str(tmp_path / 'logs')
    trained8, _ = train_and_test(zoo, first, data, logs,
                                 ['--imagenet_weights', imagenet_files('resnet', 18)])
    assert 'from ImageNet weights' in open(os.path.join(trained8['folder'], 'log.txt')).read()
    trained16, evaluated = train_and_test(zoo, second, data, logs)
    log = open(os.path.join(trained16['folder'], 'log.txt')).read()
    assert f'from {os.path.join(trained8["folder"], "model_best.pth.tar")}' in log
    assert 'ImageNet' not in log and evaluated['count'] == 1
    assert json.load(open(os.path.join(trained16['folder'], 'run.json')))['frames'] == 16


# ----------------------------------------------------------------------------- released models

def original_release(model_cfg, seed: int = 0) -> dict:
    """A state_dict in the layout of the original's release for this model (key names and
    shapes as tests/test_original_resnet.py writes them from the original's code), seeded
    random values."""
    import test_original_resnet as original
    shapes = original.original_shapes(model_cfg)
    width = shapes['fc.weight'][1]
    classes = model_cfg.num_classes
    shapes['fc.weight'], shapes['fc.bias'] = (classes, width), (classes,)
    return original.random_state(shapes, seed)


@pytest.fixture
def depth_101(monkeypatch):
    """The original's ResNet-101 blocks for the layout writer (it knows 18 and 50)."""
    import test_original_resnet as original
    monkeypatch.setitem(original.DEPTHS, 101, ('bottleneck', [3, 4, 23, 3]))


def test_the_layout_written_is_the_releases(zoo):
    """At depth 50 and 174 classes the writer gives the key names and shapes of two files of
    the original's release (tests/data/release_*_keys.json)."""
    for name, data in [('SSV2-I3D-ResNet-50-f32', 'release_i3d_resnet50_keys.json'),
                       ('SSV2-TAM-ResNet-50-f32', 'release_tam_resnet50_keys.json')]:
        model = recipes.parse_command(zoo.released_command(zoo.lookup(name), Where())).model
        with open(os.path.join(ROOT, 'tests', 'data', data)) as f:
            release = json.load(f)
        import test_original_resnet as original
        shapes = original.original_shapes(model)
        shapes['fc.weight'], shapes['fc.bias'] = (174, 2048), (174,)
        assert {k: list(v) for k, v in shapes.items()} == dict(release['state_dict'])


RELEASED = ['SSV2-TAM-ResNet-50-f32'] + [
    pytest.param(n, marks=pytest.mark.slow) for n in (
        'SSV2-I3D-ResNet-50-f32', 'SSV2-I3D-ResNet-101-f32', 'SSV2-TAM-ResNet-101-f32',
        'K400-I3D-ResNet-50-f32', 'K400-TAM-ResNet-50-f32', 'K400-I3D-ResNet-101-f32',
        'K400-TAM-ResNet-101-f32')]


@pytest.mark.parametrize('name', RELEASED)
def test_released_model_loads_at_32_frames_and_evaluates(zoo, name, tmp_path, depth_101,
                                                          tiny_runs):
    """The printed test command on a file in the original's layout (a dict with the
    state_dict under module., as its training saved it), on one tiny video, at 16 px."""
    import test as test_entry
    model = zoo.lookup(name)
    data = tiny_frames(str(tmp_path / 'data'), model.dataset, 32, train=1, val=1)
    where = Where(datadir=data, logdir=str(tmp_path / 'logs'), workers=0,
                  weights=str(tmp_path / 'weights'))
    argv = zoo.released_command(model, where)
    cfg = recipes.parse_command(argv)
    state = original_release(cfg.model)
    os.makedirs(where.weights)
    torch.save({'epoch': 1, 'arch': name, 'best_top1': float(model.top1),
                'state_dict': {'module.' + k: v for k, v in state.items()}},
               pretrained_of(argv))
    result = test_entry.main(argv[1:] + ['--input_size', '16'])
    assert result['count'] == 1 and result['bad'] == 0
    assert '-nots' in zoo.arch(cfg.model)                                # no temporal pooling
    folder = where.weights                                # test.py writes beside the checkpoint
    log = open(os.path.join(folder, 'test_log.txt')).read()
    assert f'loaded {len(state)} tensors from {pretrained_of(argv)}' in log
    views = 30 if model.dataset == 'kinetics400' else 6
    tag = f'val_{views // 3}clips_3crops'
    written = json.load(open(os.path.join(folder, f'{tag}_result.json')))
    assert (written['views'], written['count']) == (views, 1)
