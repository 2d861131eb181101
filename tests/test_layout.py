"""The project's structure: imports point one way (entrypoints -> engine -> models/utils; tools
use utils, never the reverse), no module imports itself back through others, and every family
registers what the rest of the toolkit derives from it."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ('models', 'utils', 'tools')
ENTRYPOINTS = ('opts', 'train', 'train_dist', 'test')


def project_modules() -> dict[str, str]:
    """{dotted name: path} of every module of the project outside tests/."""
    found = {name: os.path.join(ROOT, f'{name}.py') for name in ENTRYPOINTS}
    for package in PACKAGES:
        for file in sorted(os.listdir(os.path.join(ROOT, package))):
            if file.endswith('.py'):
                name = package if file == '__init__.py' else f'{package}.{file[:-3]}'
                found[name] = os.path.join(ROOT, package, file)
    return found


MODULES = project_modules()


def imports_of(name: str) -> set[str]:
    """The project modules `name` imports, at the top or inside functions."""
    tree = ast.parse(open(MODULES[name], encoding='utf-8').read())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            targets = [node.module] + [f'{node.module}.{a.name}' for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in MODULES and t != name}
    return out


GRAPH = {name: imports_of(name) for name in MODULES}


@pytest.mark.parametrize('lower', ['models', 'utils'])
def test_lower_layers_import_no_tool_and_no_entrypoint(lower):
    for name, targets in GRAPH.items():
        if name == lower or name.startswith(lower + '.'):
            upward = {t for t in targets if t in ENTRYPOINTS or t.startswith('tools')}
            assert not upward, f'{name} imports {sorted(upward)}'


def test_models_use_only_leaf_utilities():
    """The networks need no engine, data or config of the rest: only the error type and the
    clip-length rule."""
    allowed = {'utils.errors', 'utils.sampling'}
    for name, targets in GRAPH.items():
        if name.startswith('models'):
            used = {t for t in targets if t.startswith('utils')}
            assert used <= allowed, f'{name} imports {sorted(used - allowed)}'


def test_no_import_cycles():
    """No module reaches itself through the modules it imports (a package's __init__ counts as
    importing what it imports)."""
    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for t in GRAPH[todo.pop()]:
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        return seen
    cycles = [name for name in GRAPH if name in reach(name) and '.' in name]
    assert not cycles, f'import cycles through {cycles}'


def test_every_family_registers_what_the_rest_derives():
    import opts
    from models import FAMILIES, ModelConfig
    assert set(FAMILIES) == {'resnet', 'inception_v1', 'i3d_resnet', 's3d_resnet', 'i3d', 's3d',
                             'r3d', 'mc3', 'r2plus1d'}
    fields = set(ModelConfig.family_option_defaults())
    for fam in FAMILIES.values():
        assert fam.dims in (2, 3) and fam.imagenet in ('resnet', 'inception')
        assert set(fam.options) <= fields and set(fam.ignored) <= fields - set(fam.options)
        assert fam.is_2d == ('temporal_module_name' in fam.options), fam.name
    choices = next(a.choices for a in opts.arg_parser()._actions if a.dest == 'backbone_net')
    assert sorted(choices) == sorted(FAMILIES)


def test_option_defaults_are_the_configs():
    """opts.py takes its defaults from the typed configs: one place for each."""
    import dataclasses
    from opts import arg_parser
    from utils.config import Config
    args = arg_parser().parse_args([])
    args.num_classes = 3
    cfg = Config.from_args(args)
    derived = {'mean', 'std', 'num_classes', 'storage'}   # resolved by Config.from_args
    for part in (cfg.data, cfg.optim, cfg.eval, cfg.run, cfg.dist):
        for f in dataclasses.fields(part):
            if (f.name in vars(args) and f.name not in derived
                    and f.default is not dataclasses.MISSING):
                assert getattr(part, f.name) == (tuple(vars(args)[f.name])
                                                 if isinstance(f.default, tuple)
                                                 else vars(args)[f.name]) == f.default, f.name
