"""Loading user files never runs code: models/checkpoint_file.py, its callers and the entrypoints.

A crafted checkpoint whose unpickling creates a marker file stands for a malicious download: no
entrypoint may create the marker, each must end in one ``error:`` line naming the file. The same
file loads with --trust_checkpoint: that is the user's explicit choice to run its code.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT
from conftest import PY  # noqa: E402  (a fast python: tests/forkserver.py)
from models import build_model, load_imagenet, load_pretrained
from models.checkpoint_file import SAFE_GLOBALS, load_file
from conftest import make_config
from opts import arg_parser
from utils.checkpoint import resume, save_checkpoint

TINY = ['--backbone_net', 'resnet', '-d', '18', '--groups', '2', '--input_size', '32']


class RunsCode:
    """Unpickling this object creates ``marker`` (it calls pathlib.Path.touch)."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def tiny_model(num_classes=2):
    args = arg_parser().parse_args(TINY + ['--temporal_module_name', 'TSN'])
    args.num_classes = num_classes
    return build_model(args)[0]


@pytest.fixture
def crafted(tmp_path):
    """A checkpoint of real weights with one code-running object beside them; and its marker."""
    marker = tmp_path / 'code ran'
    path = tmp_path / 'downloaded.pth.tar'
    torch.save({'state_dict': tiny_model().state_dict(), 'epoch': 3, 'payload': RunsCode(marker)},
               path)
    return str(path), marker


def assert_one_error_line(proc, path):
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert 'Traceback' not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error:') and path in last, proc.stderr


def run(args, cwd):
    return subprocess.run([PY] + args, cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, 'PYTHONPATH': ROOT})


def test_python_functions_refuse_code_and_trust_loads_it(crafted):
    path, marker = crafted
    model = tiny_model()
    for load in (lambda: load_file(path), lambda: load_pretrained(model, path),
                 lambda: load_imagenet(model, 'resnet', 18, path)):
        with pytest.raises(SystemExit, match='error: .*downloaded.pth.tar needs .*--trust_checkpoint'):
            load()
        assert not marker.exists()
    # The user's explicit choice: the file's code runs (here it only creates the marker).
    assert 'loaded' in load_pretrained(model, path, trust=True)
    assert marker.exists()


@pytest.mark.parametrize('entry', ['train --pretrained', 'train --resume', 'test --pretrained',
                                   'train_dist --pretrained', 'export'])
def test_entrypoints_refuse_a_file_that_runs_code(entry, crafted, frame_dataset, tmp_path):
    path, marker = crafted
    script, *option = entry.split()
    data = ['--dataset', 'synthetic', '--datadir', frame_dataset, '-j', '0', '-b', '2',
            '--epochs', '1', '--no_imagenet_pretrained', '--logdir', str(tmp_path / 'logs')]
    if script == 'export':
        cmd = ['tools/export_weights.py', path, str(tmp_path / 'out.safetensors')] + TINY
    elif script == 'train_dist':   # one process, no spawn: the load fails before any collective
        cmd = ['train_dist.py', '--world-size', '1', '--rank', '0',
               '--dist-url', 'tcp://127.0.0.1:29871'] + TINY + data + option + [path]
    else:
        cmd = [f'{script}.py'] + TINY + data + option + [path]
    proc = run(cmd, ROOT)
    assert_one_error_line(proc, path)
    assert not marker.exists()
    assert not (tmp_path / 'out.safetensors').exists()


def test_export_of_a_trusted_file_is_safe_to_load_afterwards(crafted, tmp_path):
    path, marker = crafted
    out = str(tmp_path / 'converted.safetensors')
    proc = run(['tools/export_weights.py', '--trust_checkpoint', path, out, '--num_classes', '2']
               + TINY, ROOT)
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()              # the user chose to run it, once
    marker.unlink()
    assert 'loaded' in load_pretrained(tiny_model(), out)
    assert not marker.exists()


def test_damaged_files_are_one_line_errors(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save(tiny_model().state_dict(), good)
    data = good.read_bytes()
    cases = {'empty.pth': b'', 'half.pth': data[:len(data) // 2], 'text.pth': b'hello\n',
             'noise.pth': bytes(range(256)) * 8}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(SystemExit) as e:
            load_file(str(tmp_path / name))
        assert str(e.value).startswith('error: ') and name in str(e.value)
        assert '\n' not in str(e.value)
    with pytest.raises(SystemExit, match='not found'):
        load_file(str(tmp_path / 'absent.pth'))


def training_checkpoint(tmp_path, scheduler_kind='cosine'):
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = {'cosine': torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 5),
                 'multisteps': torch.optim.lr_scheduler.MultiStepLR(optimizer, [2, 4]),
                 'plateau': torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)}[scheduler_kind]
    torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 2, 32, 32)),
                                      torch.tensor([0, 1])).backward()
    optimizer.step()                    # momentum buffers in the optimizer's state
    options = make_config(*TINY, num_classes=2).options
    return save_checkpoint(str(tmp_path), epoch=1, arch='resnet18', model=model,
                           optimizer=optimizer, scheduler=scheduler, scaler=None, best_top1=12.5,
                           is_best=False, options=options), model, optimizer, scheduler


@pytest.mark.parametrize('scheduler_kind', ['cosine', 'multisteps', 'plateau'])
def test_own_checkpoints_need_nothing_but_plain_types(tmp_path, scheduler_kind):
    path, *_ = training_checkpoint(tmp_path, scheduler_kind)
    ckpt = torch.load(path, map_location='cpu', weights_only=True)    # no allowed extras at all
    assert isinstance(ckpt['args'], dict) and ckpt['epoch'] == 1


def test_resume_restores_the_rng_and_older_numpy_rng_states_still_load(tmp_path):
    np.random.seed(5)
    path, model, optimizer, scheduler = training_checkpoint(tmp_path)   # saves numpy's state
    expected = np.random.rand(3)                                        # what follows it
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    name, keys, *rest = ckpt['rng']['numpy']
    # As this project saved them before: numpy's state as an array, options as a Namespace.
    old = dict(ckpt, rng=dict(ckpt['rng'], numpy=(name, keys.numpy().astype(np.uint32), *rest)),
               args=argparse.Namespace(**ckpt['args']))
    torch.save(old, tmp_path / 'old.pth.tar')
    for f in (path, str(tmp_path / 'old.pth.tar')):
        np.random.seed(99)
        resumed = resume(f, model, optimizer, scheduler, None)
        assert (resumed.epoch, resumed.best_top1, resumed.iteration) == (1, 12.5, 0)
        np.testing.assert_array_equal(np.random.rand(3), expected)


@pytest.mark.parametrize('legacy', [False, True])
def test_original_release_layout_loads_without_trust(tmp_path, legacy):
    """The original code saves {epoch, arch, state_dict (module.), best_top1 (a tensor),
    optimizer, scheduler (MultiStepLR holds a Counter)}; old releases use the legacy format."""
    source = tiny_model()
    optimizer = torch.optim.SGD(source.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [10, 20])
    path = tmp_path / 'release.pth.tar'
    torch.save({'epoch': 50, 'arch': 'resnet18', 'best_top1': torch.tensor([47.25]),
                'state_dict': {'module.' + k: v for k, v in source.state_dict().items()},
                'optimizer': optimizer.state_dict(), 'scheduler': scheduler.state_dict()},
               path, _use_new_zipfile_serialization=not legacy)
    target = tiny_model()
    assert 'loaded' in load_pretrained(target, str(path))
    for k, v in source.state_dict().items():
        assert torch.equal(target.state_dict()[k], v), k


def test_safe_globals_are_only_data_types():
    """Every allowed type rebuilds data; none is a function that acts (os.*, subprocess, eval)."""
    names = [(g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}') for g in SAFE_GLOBALS]
    assert all(n.split('.')[0] in ('argparse', 'numpy') for n in names), names


def test_safetensors_round_trip_gives_identical_logits(tmp_path):
    path, model, *_ = training_checkpoint(tmp_path)
    out = str(tmp_path / 'w.safetensors')
    proc = run(['tools/export_weights.py', path, out], ROOT)   # options from the checkpoint
    assert proc.returncode == 0, proc.stderr
    from safetensors import safe_open
    with safe_open(out, framework='pt') as f:
        meta = f.metadata()
    assert json.loads(meta['args'])['backbone_net'] == 'resnet' and json.loads(meta['epoch']) == 1
    fresh = tiny_model()
    assert 'loaded' in load_pretrained(fresh, out)
    x = torch.randn(2, 3, 2, 32, 32)
    model.eval(), fresh.eval()
    with torch.no_grad():
        logits = model(x)
        assert torch.isfinite(logits).all() and torch.equal(logits, fresh(x))


def test_a_classifier_of_another_class_count_is_refused_by_export(tmp_path):
    path, *_ = training_checkpoint(tmp_path)       # 2 classes
    out = tmp_path / 'w.safetensors'
    proc = run(['tools/export_weights.py', path, str(out), '--num_classes', '5'], ROOT)
    assert_one_error_line(proc, path)
    assert 'has 2 classes but the model 5' in proc.stderr and not out.exists()


def test_test_py_evaluates_a_safetensors_file(tmp_path, frame_dataset):
    path, *_ = training_checkpoint(tmp_path)
    out = str(tmp_path / 'w.safetensors')
    assert run(['tools/export_weights.py', path, out], ROOT).returncode == 0
    proc = run(['test.py'] + TINY + ['--dataset', 'synthetic', '--datadir', frame_dataset, '-j',
                                     '0', '-b', '2', '--logdir', str(tmp_path / 'logs'),
                                     '--pretrained', out], ROOT)
    assert proc.returncode == 0, proc.stderr
    assert 'w.safetensors' in proc.stdout + proc.stderr


def test_test_py_refuses_a_classifier_that_does_not_fit(tmp_path, frame_dataset):
    path, *_ = training_checkpoint(tmp_path)       # 2 classes; the dataset now has 3
    with open(os.path.join(frame_dataset, 'categories.txt'), 'a') as f:
        f.write('c\n')
    proc = run(['test.py'] + TINY + ['--dataset', 'synthetic', '--datadir', frame_dataset, '-j',
                                     '0', '--logdir', str(tmp_path / 'logs'), '--pretrained', path],
               ROOT)
    assert_one_error_line(proc, path)
    assert 'has 2 classes but the model 3' in proc.stderr
