"""The engine's rules that decide a checkpoint's numbers: how views are fused, the default
input statistics, and each --lr_scheduler's learning rate per epoch (and --warmup_epochs per
step), against the original study's code (IBM/action-recognition-pytorch test.py, models/*,
train.py); and how a run ends (utils.errors.run_main, the log, a full disk, where synthetic
data may be generated)."""
import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import make_config
from utils.engine import (Runtime, evaluate, fuse_views, fused_loss, make_scheduler,
                          warmup_factor)
from utils.run_log import RunLog
from utils.transforms import normalize


def parse(*argv):
    return make_config(*argv)


def input_stats(cfg):
    """The per-channel mean and std a configuration normalises with, as lists."""
    return list(cfg.data.mean), list(cfg.data.std)


# ----------------------------------------------------------------------------- view fusion

# Two videos, three views each. On video 0 the rules disagree: the original's (the mean of the
# logits, test.py eval_a_batch) picks class 1 (mean logits [2, 7/3]); the mean of the
# probabilities picks class 0 (two views give it 0.953, the third gives class 1 0.999).
LOGITS = torch.tensor([[[3.0, 0.0], [3.0, 0.0], [0.0, 7.0]],
                       [[1.0, 3.0], [2.0, 1.0], [0.0, 0.0]]])


def test_logit_fusion_is_the_mean_of_the_logits():
    torch.testing.assert_close(fuse_views(LOGITS), torch.tensor([[2.0, 7 / 3], [1.0, 4 / 3]]))
    assert fuse_views(LOGITS).argmax(1).tolist() == [1, 1]


def test_softmax_fusion_is_the_mean_of_the_probabilities():
    p = fuse_views(LOGITS, 'softmax')
    s3 = 1 / (1 + math.exp(-3))                     # softmax([3, 0])[0]
    s7 = 1 / (1 + math.exp(-7))                     # softmax([0, 7])[1]
    torch.testing.assert_close(p[0], torch.tensor([(2 * s3 + 1 - s7) / 3,
                                                   (2 * (1 - s3) + s7) / 3]))
    assert p.argmax(1).tolist() == [0, 1]
    torch.testing.assert_close(p.sum(1), torch.ones(2))
    with pytest.raises(ValueError, match='unknown view fusion'):
        fuse_views(LOGITS, 'max')


def test_one_view_loss_is_the_cross_entropy_under_both_rules():
    z, y = torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([2])
    expected = F.cross_entropy(z, y, reduction='sum')
    for rule in ('logits', 'softmax'):
        torch.testing.assert_close(fused_loss(fuse_views(z[:, None], rule), y, rule), expected)


class ViewLogits(torch.nn.Module):
    """A model whose logits are the first pixel of its (normalised) input's first two channels,
    so each view of a batch carries the logits the test chose."""

    def forward(self, x):                           # (N, C, T, H, W)
        return x[:, :2, 0, 0, 0].clone()


def views_batch():
    # Raw uint8 values that normalise (mean 0, std 1/255) to LOGITS exactly.
    clip = torch.zeros(2, 3, 3, 1, 1, 1, dtype=torch.uint8)
    clip[:, :, :2, 0, 0, 0] = LOGITS.to(torch.uint8)
    return [dict(clip=clip, label=torch.tensor([0, 1]), index=torch.tensor([0, 1]),
                 bad=torch.tensor([0, 0]))]


@pytest.mark.parametrize('rule', ['logits', 'softmax'])
def test_evaluate_fuses_views_by_the_rule_and_scores_what_it_fused(rule):
    argv = ['--mean', '0', '--std', str(1 / 255), '-b', '4']   # views split in 4 + 2
    args = parse(*argv, *(['--view_fusion', rule] if rule != 'logits' else []))
    assert args.eval.view_fusion == rule            # logits is the default
    assert torch.equal(normalize(views_batch()[0]['clip'].flatten(0, 1), *input_stats(args)
                                 )[:, :2, 0, 0, 0].view(2, 3, 2), LOGITS)
    result = evaluate(ViewLogits(), views_batch(), args, Runtime(torch.device('cpu')),
                      RunLog(None, enabled=False), keep_scores=True)
    fused = fuse_views(LOGITS, rule)
    np.testing.assert_allclose(result['scores'], fused.numpy(), rtol=1e-6)
    labels = torch.tensor([0, 1])
    expected_loss = fused_loss(fused, labels, rule).item() / 2
    assert result['loss'] == pytest.approx(expected_loss, rel=1e-6)
    # video 0 (label 0) is right only when probabilities are averaged
    assert result['top1'] == (100.0 if rule == 'softmax' else 50.0)
    assert result['count'] == 2


# ----------------------------------------------------------------------------- mean and std

IMAGENET_RGB_MEAN = [0.485, 0.456, 0.406]           # red, green, blue
IMAGENET_RGB_STD = [0.229, 0.224, 0.225]


@pytest.mark.parametrize('backbone', ['resnet', 'i3d_resnet', 's3d_resnet', 'r3d', 'mc3',
                                      'r2plus1d'])
def test_resnet_families_default_to_imagenet_in_rgb_order(backbone):
    # the original's resnet.py, i3d_resnet.py, s3d_resnet.py mean()/std()
    assert input_stats(parse('--backbone_net', backbone)) == (IMAGENET_RGB_MEAN,
                                                              IMAGENET_RGB_STD)
    mean, std = input_stats(parse('--backbone_net', backbone, '--modality', 'flow'))
    assert mean == [0.5] * 10
    assert std == pytest.approx([0.226] * 10, abs=1e-15)      # np.mean of ImageNet's stds


@pytest.mark.parametrize('backbone', ['inception_v1', 'i3d', 's3d'])
def test_inception_families_default_to_one_half(backbone):
    # the original's inception_v1.py, i3d.py, s3d.py: 0.5 for rgb and flow
    assert input_stats(parse('--backbone_net', backbone)) == ([0.5] * 3, [0.5] * 3)
    assert input_stats(parse('--backbone_net', backbone, '--modality', 'flow',
                             '--flow_length', '2')) == ([0.5] * 4, [0.5] * 4)


def test_red_normalises_as_red():
    """A pure red pixel normalised with the rgb defaults: the red channel is far above zero,
    blue far below; BGR-ordered statistics would give other values."""
    red = torch.zeros(1, 3, 1, 1, 1, dtype=torch.uint8)
    red[:, 0] = 255
    x = normalize(red, *input_stats(parse('--backbone_net', 'resnet'))).flatten().tolist()
    assert x == pytest.approx([(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225], rel=1e-6)


def test_given_mean_and_std_override_and_broadcast():
    args = parse('--backbone_net', 's3d', '--mean', '0.1', '0.2', '0.3', '--std', '0.25')
    assert input_stats(args) == ([0.1, 0.2, 0.3], [0.25] * 3)


# ----------------------------------------------------------------------------- schedulers

def lrs_as_fit_steps(args, losses=None) -> list:
    """The learning rate of each epoch, read and stepped as utils.engine.fit does: the lr in
    force during an epoch, then one step after its validation (plateau: on its loss)."""
    optim = args.optim
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=optim.lr, momentum=0.9)
    scheduler = make_scheduler(optimizer, optim)
    out = []
    for epoch in range(optim.epochs):
        out.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        if optim.lr_scheduler == 'plateau':
            scheduler.step(losses[epoch])
        else:
            scheduler.step()
    return out


def test_step_schedule():
    args = parse('--lr_scheduler', 'step', '--lr_steps', '15', '--epochs', '50', '--lr', '0.01')
    expected = [0.01 * 0.1 ** (e // 15) for e in range(50)]
    assert lrs_as_fit_steps(args) == pytest.approx(expected, rel=1e-9)


def test_multisteps_schedule():
    args = parse('--lr_scheduler', 'multisteps', '--lr_steps', '15', '30', '45', '--epochs',
                 '50', '--lr', '0.1')
    expected = [0.1 * 0.1 ** sum(e >= m for m in (15, 30, 45)) for e in range(50)]
    assert lrs_as_fit_steps(args) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize('epochs', [50, 7])
def test_cosine_schedule_reaches_zero_after_epochs(epochs):
    # the original: CosineAnnealingLR(T_max=epochs, eta_min=0)
    args = parse('--lr_scheduler', 'cosine', '--epochs', str(epochs), '--lr', '0.02')
    expected = [0.02 * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs)]
    assert lrs_as_fit_steps(args) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def plateau_reference(lr: float, losses: list) -> list:
    """torch's ReduceLROnPlateau defaults, as the original's train.py used them: x0.1 once the
    loss has failed for more than 10 epochs to beat the best by a relative 1e-4."""
    best, bad, out = math.inf, 0, []
    for loss in losses:
        out.append(lr)
        if loss < best * (1 - 1e-4):
            best, bad = loss, 0
        else:
            bad += 1
        if bad > 10:
            lr, bad = lr * 0.1, 0
    return out


def test_plateau_schedule():
    # improves for 5 epochs, then stalls (one gain below the 1e-4 threshold), then improves
    losses = [2.0, 1.8, 1.6, 1.5, 1.4] + [1.4, 1.39995] + [1.45] * 20 + [1.0] + [1.2] * 22
    args = parse('--lr_scheduler', 'plateau', '--epochs', str(len(losses)), '--lr', '0.01')
    got = lrs_as_fit_steps(args, losses)
    expected = plateau_reference(0.01, losses)
    assert got == pytest.approx(expected, rel=1e-9)
    assert len(set(expected)) == 4                   # three decays happen within the run


# ----------------------------------------------------------------------------- how a run ends

def ends(fn, capsys, **kw):
    """(exit status, stderr lines) of run_main(fn, **kw)."""
    from utils.errors import run_main
    with pytest.raises(SystemExit) as e:
        run_main(fn, **kw)
    return e.value.code, capsys.readouterr().err.strip().splitlines()


def raiser(exc):
    def fn():
        raise exc
    return fn


def test_run_main_user_errors_are_one_line(capsys):
    from utils.errors import UserError
    assert ends(raiser(UserError('x is wrong, --x; do y')), capsys) == (
        1, ['error: x is wrong, --x; do y'])
    assert ends(raiser(SystemExit('error: old style')), capsys) == (1, ['error: old style'])
    assert ends(raiser(SystemExit(3)), capsys) == (3, [])
    from utils.errors import run_main
    assert run_main(lambda: 5) is None                     # a normal return ends nothing


def test_run_main_ctrl_c_says_what_to_resume(capsys, monkeypatch):
    import utils.errors as errors
    monkeypatch.setattr(errors, '_resume_hint', None)
    assert ends(raiser(KeyboardInterrupt()), capsys) == (
        130, ['interrupted before the first checkpoint was written; nothing to resume'])
    errors.set_resume_checkpoint('logs/run/checkpoint.pth.tar')
    assert ends(raiser(KeyboardInterrupt()), capsys) == (
        130, ['interrupted; resume with --resume logs/run/checkpoint.pth.tar'])
    assert ends(raiser(KeyboardInterrupt()), capsys, trains=False) == (130, ['interrupted'])


def test_run_main_sigterm_ends_as_an_interrupt(capsys, monkeypatch):
    import signal
    import utils.errors as errors
    monkeypatch.setattr(errors, '_resume_hint', 'logs/run/checkpoint.pth.tar')
    monkeypatch.setattr(errors, '_terminated', False)

    def sigterm():
        errors._on_sigterm(signal.SIGTERM, None)
    assert ends(sigterm, capsys) == (
        143, ['terminated (SIGTERM); resume with --resume logs/run/checkpoint.pth.tar'])
    # a loader worker killed by the same signal may raise first: still the interrupt, no bug
    assert ends(raiser(RuntimeError('DataLoader worker (pid 7) is killed by signal')), capsys,
                trains=False) == (143, ['terminated (SIGTERM)'])


def test_run_main_full_disk_and_bugs(capsys):
    import errno
    full = OSError(errno.ENOSPC, 'No space left on device', 'logs/x/scores.npy')
    code, err = ends(raiser(full), capsys)
    assert code == 1 and err == ['error: the disk is full writing logs/x/scores.npy; free some '
                                 'space or choose another --logdir']
    code, err = ends(raiser(ValueError('oops')), capsys)
    assert code == 1 and err[0] == 'Traceback (most recent call last):'
    assert 'ValueError: oops' in err and err[-1] == (
        'error: unexpected ValueError (a bug; please report it with the traceback above)')
    code, err = ends(raiser(PermissionError(13, 'Permission denied')), capsys)
    assert code == 1 and err[-1].startswith('error: unexpected PermissionError (a bug')


def test_the_ending_error_and_the_warnings_reach_log_txt(tmp_path, capsys):
    import logging
    from utils.errors import UserError
    log = RunLog(str(tmp_path / 'run'), tensorboard=False)

    def fails():
        logging.getLogger('utils.video_dataset').warning('replacing unreadable training '
                                                         'video: videos/v3/00001.jpg: bad')
        raise UserError('it went wrong, --x; fix it')
    code, err = ends(fails, capsys)
    text = open(tmp_path / 'run' / 'log.txt').read().splitlines()
    assert code == 1 and err[-1] == 'error: it went wrong, --x; fix it'
    assert 'warning: replacing unreadable training video: videos/v3/00001.jpg: bad' in err
    assert text[-2].endswith('warning: replacing unreadable training video: '
                             'videos/v3/00001.jpg: bad')
    assert text[-1].endswith('error: it went wrong, --x; fix it')
    log.close()
    logging.getLogger('utils.video_dataset').warning('after close')   # not in the closed log
    assert 'after close' not in open(tmp_path / 'run' / 'log.txt').read()


def test_a_run_folder_that_cannot_be_created_names_the_option(tmp_path):
    (tmp_path / 'file').write_text('x')
    with pytest.raises(SystemExit, match=r'cannot create the run folder .*file/run \(.*file is '
                                         r'a file, not a folder\), --logdir'):
        RunLog(str(tmp_path / 'file' / 'run'))


def test_synthetic_data_is_generated_only_where_asked_for(tmp_path, monkeypatch):
    import os
    from utils import synthetic
    from utils.engine import may_generate_synthetic, prepare_data
    assert may_generate_synthetic(parse().data)                      # the default datadir
    assert may_generate_synthetic(parse('--datadir', './data/synthetic_flow').data)
    assert not may_generate_synthetic(parse('--datadir', 'data/mnie').data)
    assert may_generate_synthetic(parse('--datadir', 'data/mnie', '--make_synthetic').data)
    made = []
    monkeypatch.setattr(synthetic, 'ensure_synthetic_dataset', lambda root, **kw: made.append(
        synthetic.generate(root, seed=0, videos_per_class=1, val_per_class=1, height=16,
                           width=16, min_frames=8, max_frames=8, classes=2, progress=False)))
    target = str(tmp_path / 'elsewhere')
    with pytest.raises(SystemExit, match='does not exist; check the path, or pass '
                                         '--make_synthetic'):
        prepare_data(parse('--datadir', target))
    assert not made and not os.path.exists(target)
    cfg = prepare_data(parse('--datadir', target, '--make_synthetic'))
    assert len(made) == 1 and cfg.model.num_classes == cfg.data.num_classes == 2


# ----------------------------------------------------------------------------- warm-up

def test_warmup_factor_rises_linearly_then_stays_at_one():
    optim = parse('--warmup_epochs', '1.5').optim
    # 4 batches an epoch: 6 warm-up steps, step s at (s + 1) / 6.
    got = [warmup_factor(optim, e, i, 4) for e in range(3) for i in range(4)]
    assert got == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1, 1, 1, 1, 1, 1, 1])
    assert warmup_factor(parse().optim, 0, 0, 4) == 1.0           # off by default


def test_warmup_scales_each_step_and_leaves_the_schedule_alone(tmp_path, monkeypatch):
    """The lr a step sees is the cosine schedule's lr of its epoch times the warm-up factor;
    the optimizer holds the schedule's own lr between steps (what checkpoints store)."""
    import train as train_entry
    from conftest import tiny_synthetic
    from utils import engine
    data = tiny_synthetic(str(tmp_path / 'data'))                 # 8 training videos
    seen, real = [], engine.train_step

    def spy(model, clips, labels, optimizer, scaler, cfg):
        seen.append(optimizer.param_groups[0]['lr'])
        return real(model, clips, labels, optimizer, scaler, cfg)

    monkeypatch.setattr(engine, 'train_step', spy)
    run = train_entry.main(['--dataset', 'synthetic', '--datadir', data, '--groups', '2',
                            '--input_size', '16', '-b', '4', '-j', '0', '--epochs', '3',
                            '--lr', '0.1', '--warmup_epochs', '1.5', '--no_imagenet_pretrained',
                            '--logdir', str(tmp_path / 'logs')])
    cosine = [0.1 * (1 + math.cos(math.pi * e / 3)) / 2 for e in range(3)]
    expected = [cosine[e] * min(1.0, (2 * e + i + 1) / 3) for e in range(3) for i in range(2)]
    assert seen == pytest.approx(expected, rel=1e-9)
    lrs = [json.loads(line)['lr'] for line in open(os.path.join(run['folder'], 'metrics.jsonl'))]
    assert lrs == pytest.approx(cosine, rel=1e-9)


# ----------------------------------------------------------------------------- --amp's type

CPU, CUDA = torch.device('cpu'), torch.device('cuda', 0)


@pytest.mark.parametrize('native', [True, False])
def test_amp_type_follows_the_cpus_bf16_support(monkeypatch, native):
    """--amp on the CPU is bf16 only where the CPU computes bf16 (emulated bf16 is slower than
    fp32); --amp_dtype bf16 forces it; CUDA is fp16 with a scaler, or bf16 without; no --amp,
    no autocast. The note says what happened where --amp is not bf16's fast path."""
    from utils import engine
    monkeypatch.setattr(engine, 'cpu_computes_bf16', lambda: native)
    plain, forced, off = (parse('--amp').run, parse('--amp', '--amp_dtype', 'bf16').run,
                          parse().run)
    assert engine.autocast_dtype(plain, CPU) == (torch.bfloat16 if native else None)
    assert engine.autocast_dtype(forced, CPU) == torch.bfloat16
    assert engine.autocast_dtype(off, CPU) is None and engine.autocast_dtype(off, CUDA) is None
    assert engine.autocast_dtype(plain, CUDA) == torch.float16
    assert engine.autocast_dtype(forced, CUDA) == torch.bfloat16
    assert engine.make_scaler(plain, CPU) is None and engine.make_scaler(forced, CUDA) is None
    with engine.autocast(plain, CPU):
        assert torch.is_autocast_enabled('cpu') == native
    assert engine.precision_note(off, CPU) is None
    assert engine.precision_note(plain, CUDA) is None
    if native:
        assert engine.precision_note(plain, CPU) is None
        assert engine.precision_note(forced, CPU) is None
    else:
        assert 'so this run is fp32' in engine.precision_note(plain, CPU)
        assert 'emulated bf16' in engine.precision_note(forced, CPU)


def test_train_log_says_when_amp_stays_fp32(monkeypatch, tmp_path):
    """A CPU without native bf16: train.py --amp trains in fp32 and its log says so."""
    import train as train_entry
    from conftest import tiny_synthetic
    from utils import engine
    monkeypatch.setattr(engine, 'cpu_computes_bf16', lambda: False)
    data = tiny_synthetic(str(tmp_path / 'syn'))
    result = train_entry.main(['--dataset', 'synthetic', '--datadir', data, '--backbone_net',
                               'resnet', '-d', '18', '--groups', '2', '--input_size', '32',
                               '-b', '2', '-j', '0', '--epochs', '1', '--amp',
                               '--no_imagenet_pretrained', '--logdir', str(tmp_path / 'logs')])
    with open(os.path.join(result['folder'], 'log.txt'), encoding='utf-8') as f:
        log = f.read()
    assert 'note: --amp: this CPU' in log and 'so this run is fp32' in log
