"""Training options reach what trains: the optimizer and scheduler built from the options, field
by field; --clip_gradient with and without a gradient scaler (CPU GradScaler); the training order
across epochs (the sampler told each epoch, distributed or not); --sync-bn's SyncBatchNorm
conversion, with the CUDA device check stubbed so it runs on the CPU."""
import collections
import copy

import pytest
import torch
import torch.nn.functional as F

from conftest import make_config
from utils import engine
from utils.engine import Runtime, make_loader, make_optimizer, make_scheduler, train_step

pytestmark = pytest.mark.usefixtures('one_thread')


def tiny_model(classes: int = 4) -> torch.nn.Module:
    """A linear classifier of (B, 3, 2, 2, 2) clips."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 2 * 2 * 2, classes))


# ----------------------------------------------------------------------------- optimizer

@pytest.mark.parametrize('nesterov', [True, False])
def test_optimizer_takes_every_option(nesterov):
    argv = ['--lr', '0.05', '--momentum', '0.8', '--weight-decay', '3e-4']
    cfg = make_config(*argv, *(['--nesterov'] if nesterov else []))
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay, cfg.optim.nesterov) == \
        (0.05, 0.8, 3e-4, nesterov)
    model = tiny_model()
    optimizer = make_optimizer(model, cfg.optim)
    assert type(optimizer) is torch.optim.SGD and len(optimizer.param_groups) == 1
    group = optimizer.param_groups[0]
    assert group['params'] == list(model.parameters())
    assert (group['lr'], group['momentum'], group['weight_decay'], group['nesterov'],
            group['dampening']) == (0.05, 0.8, 3e-4, nesterov, 0)


def test_nesterov_steps_as_its_formula():
    """Two steps of SGD with --nesterov on a parameter with a constant gradient g (no weight
    decay): buffer b1 = g, b2 = m g + g; step k moves by lr (g + m b_k)."""
    cfg = make_config('--lr', '0.1', '--momentum', '0.5', '--weight-decay', '0', '--nesterov')
    p = torch.nn.Parameter(torch.zeros(1))
    optimizer = make_optimizer(torch.nn.ParameterList([p]), cfg.optim)
    for _ in range(2):
        optimizer.zero_grad()
        (2.0 * p).sum().backward()                      # g = 2
        optimizer.step()
    b1, b2 = 2.0, 0.5 * 2.0 + 2.0
    assert p.item() == pytest.approx(-0.1 * (2 + 0.5 * b1) - 0.1 * (2 + 0.5 * b2))


# ----------------------------------------------------------------------------- scheduler

def test_scheduler_fields_are_the_options():
    def scheduler(*argv):
        cfg = make_config('--lr', '0.1', *argv)
        return make_scheduler(make_optimizer(tiny_model(), cfg.optim), cfg.optim)

    s = scheduler('--lr_scheduler', 'step', '--lr_steps', '7')
    assert type(s) is torch.optim.lr_scheduler.StepLR and (s.step_size, s.gamma) == (7, 0.1)
    s = scheduler('--lr_scheduler', 'multisteps', '--lr_steps', '3', '8', '12')
    assert type(s) is torch.optim.lr_scheduler.MultiStepLR
    assert (s.milestones, s.gamma) == (collections.Counter([3, 8, 12]), 0.1)
    s = scheduler('--lr_scheduler', 'cosine', '--epochs', '9')
    assert type(s) is torch.optim.lr_scheduler.CosineAnnealingLR and (s.T_max, s.eta_min) == (9, 0)
    s = scheduler('--lr_scheduler', 'plateau')
    assert type(s) is torch.optim.lr_scheduler.ReduceLROnPlateau
    assert (s.mode, s.factor, s.patience, s.threshold, s.threshold_mode, s.cooldown,
            s.min_lrs) == ('min', 0.1, 10, 1e-4, 'rel', 0, [0])


# ----------------------------------------------------------------------------- one step

CLIPS = torch.randint(0, 256, (4, 3, 2, 2, 2), generator=torch.Generator().manual_seed(1),
                      dtype=torch.uint8)
LABELS = torch.tensor([0, 1, 2, 3])


def raw_gradient(model, cfg) -> list[torch.Tensor]:
    """The gradients of train_step's loss, computed here without the engine."""
    model = copy.deepcopy(model)
    x = engine.normalize(CLIPS, cfg.data.mean, cfg.data.std)
    F.cross_entropy(model(x), LABELS).backward()
    return [p.grad.clone() for p in model.parameters()]


def step_of(model, cfg, scaler) -> list[torch.Tensor]:
    """How train_step moves each parameter (plain SGD at --lr 1: minus the gradient used)."""
    model = copy.deepcopy(model)
    before = [p.detach().clone() for p in model.parameters()]
    train_step(model, CLIPS, LABELS, make_optimizer(model, cfg.optim), scaler, cfg)
    return [p.detach() - b for p, b in zip(model.parameters(), before)]


SGD1 = ('--lr', '1', '--momentum', '0', '--weight-decay', '0')


def test_clip_gradient_bounds_the_step_to_its_norm():
    model = tiny_model()
    plain = make_config(*SGD1)
    grads = raw_gradient(model, plain)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    clip = float(norm) / 4                             # well below the gradient's norm
    for step, g in zip(step_of(model, plain, None), grads):
        torch.testing.assert_close(step, -g)
    clipped = make_config(*SGD1, '--clip_gradient', str(clip))
    for step, g in zip(step_of(model, clipped, None), grads):
        torch.testing.assert_close(step, -g * clip / (float(norm) + 1e-6))


@pytest.mark.parametrize('clip', [None, '0.05'])
def test_a_grad_scaler_gives_the_same_step(clip):
    """With a GradScaler (its loss scale 2^12), --clip_gradient must act on the unscaled
    gradients: the step equals the one without a scaler."""
    model = tiny_model()
    cfg = make_config(*SGD1, *(['--clip_gradient', clip] if clip else []))
    expected = step_of(model, cfg, None)
    scaler = torch.amp.GradScaler('cpu', init_scale=2.0 ** 12)
    for got, want in zip(step_of(model, cfg, scaler), expected):
        torch.testing.assert_close(got, want)
    assert scaler.get_scale() == 2.0 ** 12             # no inf/NaN: the step was taken


# ----------------------------------------------------------------------------- data order

def test_distributed_sampler_order_changes_with_the_epoch():
    """make_loader's training sampler under distribution: each epoch a new order (the one
    torch's DistributedSampler gives for that epoch), the ranks' shares disjoint and complete."""
    dataset = list(range(12))
    cfg = make_config('-j', '0')
    orders = {}
    for rank in (0, 1):
        loader = make_loader(dataset, cfg.data, Runtime(torch.device('cpu'), rank, 2), train=True,
                             batch_size=3)
        for epoch in (0, 1, 2):
            loader.sampler.set_epoch(epoch)
            orders[rank, epoch] = list(loader.sampler)
            reference = torch.utils.data.DistributedSampler(dataset, 2, rank, shuffle=True,
                                                            drop_last=True)
            reference.set_epoch(epoch)
            assert orders[rank, epoch] == list(reference)
    for epoch in (0, 1, 2):
        assert sorted(orders[0, epoch] + orders[1, epoch]) == dataset
    assert len({tuple(orders[0, e]) for e in (0, 1, 2)}) == 3


def test_fit_tells_the_sampler_each_epoch_and_reshuffles(frame_dataset, tmp_path, monkeypatch):
    """A 2-epoch run: the training sampler is told epochs 0 and 1 (a DistributedSampler's order
    depends on nothing else), and the single-process order differs between the epochs."""
    told, orders = [], []
    set_epoch, iterate = engine.SkipFirst.set_epoch, engine.SkipFirst.__iter__

    def spy_set_epoch(self, epoch):
        told.append(epoch)
        set_epoch(self, epoch)

    def spy_iter(self):
        order = list(iterate(self))
        orders.append(order)
        return iter(order)

    monkeypatch.setattr(engine.SkipFirst, 'set_epoch', spy_set_epoch)
    monkeypatch.setattr(engine.SkipFirst, '__iter__', spy_iter)
    cfg = make_config('--dataset', 'synthetic', '--datadir', frame_dataset, '--backbone_net',
                      'resnet', '-d', '18', '--temporal_module_name', 'TSN', '--groups', '1',
                      '--input_size', '32', '-b', '2', '-j', '0', '--epochs', '2',
                      '--no_imagenet_pretrained', '--lr', '1e-6', '--logdir', str(tmp_path))
    engine.fit(cfg, Runtime(torch.device('cpu')))
    assert told == [0, 1]
    assert len(orders) == 2 and sorted(orders[0]) == sorted(orders[1]) == list(range(6))
    assert orders[0] != orders[1]


# ----------------------------------------------------------------------------- --sync-bn

class FakeDDP(torch.nn.Module):
    """Stands for DistributedDataParallel (which needs a process group): keeps what it wraps."""

    def __init__(self, module, device_ids=None):
        super().__init__()
        self.module, self.device_ids = module, device_ids


def bn_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv3d(3, 4, 1), torch.nn.BatchNorm3d(4), torch.nn.ReLU(),
                               torch.nn.Conv3d(4, 4, 1), torch.nn.BatchNorm3d(4))


@pytest.mark.parametrize('device,sync_bn,synced', [('cuda', True, 2), ('cuda', False, 0),
                                                    ('cpu', True, 0)])
def test_sync_bn_converts_every_batchnorm_on_cuda(device, sync_bn, synced, monkeypatch):
    """wrap_model in a 2-process run: with --sync-bn on CUDA every BatchNorm becomes a
    SyncBatchNorm before DDP wraps the model; not without it, nor on the CPU (SyncBatchNorm
    needs CUDA). The device move and DDP are stubbed: no GPU or process group here."""
    monkeypatch.setattr(torch.nn.Module, 'to', lambda self, *a, **k: self)
    monkeypatch.setattr(torch.nn.parallel, 'DistributedDataParallel', FakeDDP)
    cfg = make_config(*(['--sync-bn'] if sync_bn else []), entrypoint='train_dist')
    assert cfg.dist.sync_bn == sync_bn
    runtime = Runtime(torch.device(device, 0) if device == 'cuda' else torch.device('cpu'),
                      rank=0, world_size=2)
    wrapped = engine.wrap_model(bn_model(), cfg, runtime)
    assert isinstance(wrapped, FakeDDP)
    assert wrapped.device_ids == ([0] if device == 'cuda' else None)
    layers = [m for m in wrapped.module.modules()
              if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(layers) == 2
    assert sum(isinstance(m, torch.nn.SyncBatchNorm) for m in layers) == synced
