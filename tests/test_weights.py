"""Weights in and out (models/weights.py and the tools that read weight files): every
combination of wrapper prefixes (DataParallel/DDP's `module.`, torch.compile's `_orig_mod.`,
stacked in either order) and container, and safetensors round trips through every entry point
that reads them, options and class names included."""
import json

import pytest
import torch
from safetensors.torch import save_file

from conftest import make_config
from models.checkpoint_file import CheckpointError, load_file
from models.weights import load_pretrained, read_state_dict
from tools import predict
from tools.export_weights import export, model_options
from utils.checkpoint import resume, save_checkpoint, unwrap
from utils.engine import build

pytestmark = pytest.mark.usefixtures('one_thread')


class Small(torch.nn.Module):
    """A tiny model with this project's classifier names (fc.weight, fc.bias)."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.conv1 = torch.nn.Conv3d(3, 4, 1)
        self.bn1 = torch.nn.BatchNorm3d(4)
        self.module_list = torch.nn.ModuleList([torch.nn.Linear(4, 4)])   # 'module' inside a name
        self.fc = torch.nn.Linear(4, classes)

    def forward(self, x):
        x = self.bn1(self.conv1(x)).mean(dim=(2, 3, 4))
        return self.fc(self.module_list[0](x))


def small(seed: int) -> Small:
    torch.manual_seed(seed)
    model = Small()
    model.bn1.running_mean.uniform_()                # buffers that differ between seeds too
    return model


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# ----------------------------------------------------------------------------- wrapper prefixes

PREFIXES = ['', 'module.', '_orig_mod.', 'module._orig_mod.', '_orig_mod.module.',
            'module.module.', 'module._orig_mod.module.']


@pytest.mark.parametrize('container', ['bare', 'state_dict', 'model', 'safetensors'])
@pytest.mark.parametrize('prefix', PREFIXES)
def test_every_wrapper_prefix_is_removed(prefix, container, tmp_path):
    source = small(1)
    state = {prefix + k: v for k, v in source.state_dict().items()}
    path = str(tmp_path / ('w.safetensors' if container == 'safetensors' else 'w.pth'))
    if container == 'safetensors':
        save_file(state, path)
    else:
        torch.save(state if container == 'bare' else {container: state, 'epoch': 2}, path)
    got = read_state_dict(path)
    assert set(got) == set(source.state_dict())     # module_list.0.* keeps its name
    target = small(2)
    assert 'loaded' in load_pretrained(target, path)
    assert_same_weights(target, source)


def real_wrappings(model):
    """The model inside the wrappers a run may save it from: DataParallel (DDP's prefix too),
    torch.compile, and both stacked either way."""
    return {'DataParallel': torch.nn.DataParallel(model),
            'compile': torch.compile(model),
            'DataParallel(compile)': torch.nn.DataParallel(torch.compile(model)),
            'compile(DataParallel)': torch.compile(torch.nn.DataParallel(model))}


def test_state_dicts_of_real_wrappers_load(tmp_path):
    source = small(1)
    for name, wrapped in real_wrappings(source).items():
        path = str(tmp_path / f'{name}.pth')
        torch.save({'state_dict': wrapped.state_dict()}, path)
        assert unwrap(wrapped) is source, name
        target = small(2)
        load_pretrained(target, path)
        assert_same_weights(target, source)


def test_checkpoints_of_wrapped_models_resume_into_wrapped_models(tmp_path):
    source = small(1)
    for name, wrapped in real_wrappings(source).items():
        folder = tmp_path / name
        optimizer = torch.optim.SGD(wrapped.parameters(), lr=0.1)
        path = save_checkpoint(str(folder), epoch=2, arch='small', model=wrapped,
                               optimizer=optimizer, scheduler=None, scaler=None, best_top1=5.0,
                               is_best=False, options={})
        saved = torch.load(path, weights_only=True)['state_dict']
        assert set(saved) == set(source.state_dict()), name        # bare keys in the file
        target = small(2)
        again = real_wrappings(target)[name]
        resumed = resume(path, again, torch.optim.SGD(again.parameters(), lr=0.1), None, None)
        assert resumed.epoch == 2
        assert_same_weights(target, source)


# ----------------------------------------------------------------------------- safetensors

TINY = ('--backbone_net', 'resnet', '-d', '18', '--groups', '2', '--input_size', '32',
        '--temporal_module_name', 'TSN', '--dataset', 'synthetic', '--dropout', '0.3')
CLASSES = ['left', 'right', 'up']


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """A training checkpoint of a 3-class model with non-default options, and its safetensors
    export."""
    folder = tmp_path_factory.mktemp('weights')
    cfg = make_config(*TINY, num_classes=len(CLASSES))
    model, arch = build(cfg)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    ckpt = save_checkpoint(str(folder), epoch=3, arch=arch, model=model, optimizer=optimizer,
                           scheduler=None, scaler=None, best_top1=42.5, is_best=False,
                           options=cfg.options, classes=CLASSES)
    out = str(folder / 'model.safetensors')
    export(ckpt, out, [])
    return dict(cfg=cfg, arch=arch, model=model, ckpt=ckpt, out=out, folder=folder)


def test_load_file_gives_the_safetensors_metadata(exported):
    content = load_file(exported['out'])
    assert set(content) >= {'state_dict', 'args', 'arch', 'epoch', 'best_top1', 'classes'}
    assert (content['arch'], content['epoch'], content['best_top1'], content['classes']) == \
        (exported['arch'], 3, 42.5, CLASSES)
    options = exported['cfg'].options
    for key in ('backbone_net', 'depth', 'groups', 'input_size', 'temporal_module_name',
                'dataset', 'dropout', 'num_classes'):
        assert content['args'][key] == options[key], key


def test_model_options_come_from_the_safetensors_file(exported):
    cfg = model_options(load_file(exported['out']), [], None)
    assert cfg.model == exported['cfg'].model
    assert (cfg.data.input_size, cfg.data.dataset) == (32, 'synthetic')
    # the command line still overrides a stored option
    assert model_options(load_file(exported['out']), ['--dropout', '0.1'], None).model.dropout \
        == 0.1


def test_safetensors_reexport_keeps_weights_and_metadata(exported):
    again = str(exported['folder'] / 'again.safetensors')
    export(exported['out'], again, [])                 # no options given: all from the file
    first, second = load_file(exported['out']), load_file(again)
    for key in ('args', 'arch', 'epoch', 'best_top1', 'classes'):
        assert second[key] == first[key], key
    assert second['state_dict'].keys() == first['state_dict'].keys()
    for k, v in first['state_dict'].items():
        assert torch.equal(second['state_dict'][k], v), k


def test_predict_reads_options_and_class_names_from_safetensors(exported):
    model, cfg, names, _ = predict.load_model(exported['out'], [], False, None)
    assert cfg.model == exported['cfg'].model and names == CLASSES
    assert_same_weights(model, exported['model'])


def test_pretrained_and_resume_on_safetensors(exported):
    fresh, _ = build(exported['cfg'])
    assert 'loaded' in load_pretrained(fresh, exported['out'], new_classifier=False)
    assert_same_weights(fresh, exported['model'])
    with pytest.raises(CheckpointError, match='not a training checkpoint.*--pretrained'):
        resume(exported['out'], fresh, torch.optim.SGD(fresh.parameters(), lr=0.1), None, None)


def test_safetensors_metadata_is_json(exported):
    """What other readers see: every metadata value is a JSON text (safetensors stores strings)."""
    from safetensors import safe_open
    with safe_open(exported['out'], framework='pt') as f:
        meta = f.metadata()
    assert json.loads(meta['classes']) == CLASSES and json.loads(meta['epoch']) == 3
