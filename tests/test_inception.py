"""The Inception-v1 families (i3d, s3d, inception_v1): paper costs, shapes, gradients, options."""

import pytest
import torch

from conftest import model_config
from models.config import ModelConfig
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

import models.inception as inception
from models.registry import FAMILIES, MODELS, build_model

pytestmark = pytest.mark.usefixtures('one_thread')   # see conftest.one_thread


BUILDERS = {'i3d': inception.build_i3d, 's3d': inception.build_s3d, 'inception_v1': inception.build_inception_v1}


def make_args(**kw) -> ModelConfig:
    args = dict(num_classes=174, groups=8, dropout=0.5, without_t_stride=False, pooling_method='max',
                dw_t_conv=False, temporal_module_name='TSN', blending_frames=3, blending_method='sum',
                no_dw_conv=False, depth=50, shift_div=8)
    args.update(kw)
    return model_config(**args)


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_cost(family: str, **kw) -> tuple[int, int, str]:
    """(params, conv MACs of one 8x224x224 clip, arch name), built and run on the meta device."""
    with torch.device('meta'):
        model, name = build_model(make_args(backbone_net=family, **kw))
        x = torch.empty(1, 3, kw.get('groups', 8), 224, 224)
        with FlopCounterMode(display=False) as mode, torch.no_grad():
            model(x)
    counts = mode.get_flop_counts()['Global']
    return params(model), sum(n for op, n in counts.items() if 'convolution' in str(op)) // 2, name


# Published costs (t-stride) and, without t-stride, what the original code gives (its models
# counted with count_conv_macs on the meta device): s3d's last pool leaves 7 of 8 frames there.
@pytest.mark.parametrize('family, n_params, macs, macs_nots, name', [
    ('i3d', 12_465_614, 21_411_353_600, 33_806_581_760, 'i3d'),
    ('s3d', 8_081_678, 12_264_670_208, 19_778_626_560, 's3d'),
    ('inception_v1', 5_778_254, 6_521_725_952, 11_978_817_536, 'inception_v1-TSN'),
])
def test_paper_costs(family, n_params, macs, macs_nots, name):
    assert meta_cost(family) == (n_params, macs, name)
    # Without temporal stride only the cost grows; the weights are the same.
    assert meta_cost(family, without_t_stride=True) == (n_params, macs_nots, name + '-nots')


def test_registered_and_names():
    assert all(MODELS[name] is builder for name, builder in BUILDERS.items())
    assert {name: (f.dims, f.imagenet) for name, f in FAMILIES.items() if name in BUILDERS} == {
        'i3d': (3, 'inception'), 's3d': (3, 'inception'), 'inception_v1': (2, 'inception')}
    assert meta_cost('i3d', pooling_method='avg', groups=16)[2] == 'i3d-avgpool'
    assert meta_cost('inception_v1', temporal_module_name='TAM')[2] == 'inception_v1-TAM-b3-sum'


def test_trunk_params_and_torchvision_names():
    with torch.device('meta'):
        model, _ = inception.build_inception_v1(make_args())
    assert params(model) - params(model.fc) == 5_599_904
    keys = set(model.state_dict())
    for key in ('conv1.conv.weight', 'conv1.bn.running_var', 'conv2.conv.weight', 'conv3.bn.weight',
                'inception3a.branch1.conv.weight', 'inception3a.branch2.0.conv.weight',
                'inception3a.branch2.1.conv.weight', 'inception3b.branch3.0.bn.bias',
                'inception4e.branch3.1.conv.weight', 'inception5b.branch4.1.conv.weight', 'fc.weight'):
        assert key in keys
    # The 3D families share the names (s3d's spatial half too) so 2D kernels inflate into them.
    with torch.device('meta'):
        s3d, _ = inception.build_s3d(make_args())
    s3d_keys = set(s3d.state_dict())
    assert {k for k in keys if 'num_batches' not in k} <= s3d_keys
    assert s3d.inception3a.branch2[1].conv.weight.shape == (128, 96, 1, 3, 3)
    assert s3d.inception3a.branch2[1].conv_t.bias is not None


@pytest.mark.parametrize('family', BUILDERS)
@pytest.mark.parametrize('frames, batch, nots', [(8, 1, False), (8, 2, True), (16, 2, False), (16, 1, True)])
def test_output_shape(family, frames, batch, nots):
    torch.manual_seed(0)
    model, _ = BUILDERS[family](make_args(num_classes=5, groups=frames, without_t_stride=nots))
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(batch, 3, frames, 64, 64))
    assert out.shape == (batch, 5) and torch.isfinite(out).all()


# TAM/TSM without t-stride: a stage left with one frame has no neighbours to give their weights a gradient.
# s3d with t-stride needs 8 frames: its last pool's 2-frame window would find 1 of 4 (as in the original).
@pytest.mark.parametrize('family, kw', [('i3d', {}), ('s3d', {'dw_t_conv': True, 'groups': 8}), ('inception_v1', {}),
                                        ('inception_v1', {'pooling_method': 'avg', 'groups': 16}),
                                        ('inception_v1', {'temporal_module_name': 'TAM', 'without_t_stride': True}),
                                        ('inception_v1', {'temporal_module_name': 'TSM', 'without_t_stride': True})])
def test_training_step_reaches_every_parameter(family, kw):
    torch.manual_seed(0)
    kw = {'groups': 4, **kw}
    model, _ = BUILDERS[family](make_args(num_classes=3, **kw))
    model.train()
    out = model(torch.randn(2, 3, kw['groups'], 48, 48))
    nn.functional.cross_entropy(out, torch.tensor([0, 2])).backward()
    # s3d's temporal conv biases (the original has them) feed a training-mode BatchNorm, whose batch
    # mean removes them: their gradient is zero but for round-off, so they are not asked for.
    missing = [n for n, p in model.named_parameters() if (p.grad is None or not p.grad.abs().sum() > 0)
               and not n.endswith('conv_t.bias')]
    assert not missing


@pytest.mark.parametrize('family', BUILDERS)
def test_avg_pooling_8_frames(family):
    model, _ = BUILDERS[family](make_args(num_classes=3, pooling_method='avg'))
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 8, 32, 32)).shape == (1, 3)


def test_s3d_depthwise_temporal_convs():
    p, m, _ = meta_cost('s3d')
    p_dw, m_dw, _ = meta_cost('s3d', dw_t_conv=True)
    assert p_dw < p and m_dw < m
    model, _ = inception.build_s3d(make_args(dw_t_conv=True))
    temporal = [mod for mod in model.modules() if isinstance(mod, inception.SeparableUnit)]
    assert len(temporal) == 1 + 2 * 9  # conv3 and two per Inception block; the 3x7x7 stem is plain
    assert all(u.conv_t.groups == u.conv_t.in_channels == u.conv_t.out_channels for u in temporal)


def test_time_is_halved_three_times():
    for family in BUILDERS:
        model, _ = BUILDERS[family](make_args(groups=16))
        assert model.frames_out == 2
        # Without t-stride time is kept, except by s3d's last pool (2-frame window, stride 1).
        model, _ = BUILDERS[family](make_args(groups=16, without_t_stride=True))
        assert model.frames_out == (15 if family == 's3d' else 16)


def test_too_few_frames_is_a_one_line_error():
    with pytest.raises(SystemExit, match='^error: 4 frames are too few'):
        inception.build_s3d(make_args(groups=4))


def test_tam_starts_random():
    """TAM's weights start Kaiming-normal like every conv (fan out = channels for its depthwise
    1x1 convs), so a TAM net differs from TSN from the first step."""
    torch.manual_seed(0)
    tam, _ = inception.build_inception_v1(make_args(num_classes=4, groups=4, temporal_module_name='TAM'))
    w = torch.cat([p.detach().flatten() / (2.0 / p.shape[0]) ** 0.5
                   for n, p in tam.named_parameters() if '_se.fc1' in n])
    assert w.numel() > 10000 and abs(w.std().item() - 1) < 0.05 and abs(w.mean().item()) < 0.05
