"""The ResNet families: exact sizes, shapes, weight formats, inflation, gradients.

Sizes are computed on the meta device (no memory, no compute) and compared with the published
numbers of ../shared/reference/paper_models.md and of torchvision.
"""
import json
import os

import pytest
import torch

from conftest import model_config
from models.config import ModelConfig
import torch.nn.functional as F

from models import MODELS, build_model, count_conv_macs, count_params, load_imagenet, load_pretrained
from models.temporal import TAM, TemporalShift
from models.weights import inflate_state_dict

DATA = os.path.join(os.path.dirname(__file__), 'data')


def make_args(**kw) -> ModelConfig:
    base = dict(backbone_net='resnet', depth=50, num_classes=174, groups=8, dropout=0.5,
                without_t_stride=False, pooling_method='max', dw_t_conv=False,
                temporal_module_name='TSN', blending_frames=3, blending_method='sum',
                no_dw_conv=False, shift_div=8)
    base.update(kw)
    return model_config(**base)


def build(**kw):
    return build_model(make_args(**kw))[0]


def size_on_meta(frames: int, size: int, **kw) -> tuple[int, int]:
    with torch.device('meta'):
        model = build(groups=frames, **kw)
    return count_params(model), count_conv_macs(model, frames, size)


# ----------------------------------------------------------------------------- published sizes

PAPER = [  # backbone, depth, temporal module, without_t_stride, params, conv MACs (174 classes, 8x224)
    ('i3d_resnet', 50, 'TSN', False, 46_517_870, 29_460_135_936),
    ('i3d_resnet', 50, 'TSN', True, 46_517_870, 64_180_322_304),
    ('s3d_resnet', 50, 'TSN', False, 27_663_342, 19_672_203_264),
    ('resnet', 50, 'TSN', False, 23_864_558, 14_135_984_128),
    ('resnet', 50, 'TAM', False, 23_903_918, 14_213_054_464),
]


@pytest.mark.parametrize('backbone,depth,tm,nots,params,macs', PAPER)
def test_paper_sizes(backbone, depth, tm, nots, params, macs):
    assert size_on_meta(8, 224, backbone_net=backbone, depth=depth, temporal_module_name=tm,
                        without_t_stride=nots) == (params, macs)


@pytest.mark.parametrize('backbone,params,macs', [
    ('r3d', 33_371_472, 40_696_348_672), ('mc3', 11_695_440, 43_342_430_208),
    ('r2plus1d', 31_505_325, 40_518_876_160)])
def test_torchvision_video_sizes(backbone, params, macs):
    assert size_on_meta(16, 112, backbone_net=backbone, depth=18, num_classes=400) == (params, macs)


# torchvision's ImageNet ResNets (1000 classes): params, and GFLOPs (its MACs, fc included) as published.
IMAGENET_RESNETS = {18: (11_689_512, 1.81), 34: (21_797_672, 3.66), 50: (25_557_032, 4.09),
                    101: (44_549_160, 7.80), 152: (60_192_808, 11.51)}


@pytest.mark.parametrize('depth', sorted(IMAGENET_RESNETS))
def test_2d_resnet_is_torchvision_resnet_on_one_frame(depth):
    params, gmacs = IMAGENET_RESNETS[depth]
    p, m = size_on_meta(1, 224, depth=depth, num_classes=1000, without_t_stride=True)
    fc_macs = 512 * (4 if depth >= 50 else 1) * 1000
    assert p == params
    assert round((m + fc_macs) / 1e9, 2) == gmacs


def conv3x3_params(depth: int) -> int:
    """Weights of the 3x3 convs in the residual blocks of a 2D ResNet (what 3D variants extend)."""
    counts = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}[depth]
    total = 0
    for i, (planes, n) in enumerate(zip([64, 128, 256, 512], counts)):
        if depth < 50:  # two 3x3 convs a block; the first of the layer's first block takes the previous width
            inplanes = 64 if i == 0 else planes // 2
            total += 9 * (inplanes * planes + planes * planes) + 9 * 2 * planes * planes * (n - 1)
        else:
            total += 9 * planes * planes * n
    return total


@pytest.mark.parametrize('depth', [18, 34, 50, 101, 152])
def test_3d_resnet_params_follow_from_2d(depth):
    """3x3 -> 3x3x3 triples those convs and the 7x7 stem; separable adds a 3x1x1 conv and its BN."""
    p2d, _ = size_on_meta(8, 224, depth=depth)
    stem = 3 * 64 * 49
    extra_3d = 2 * conv3x3_params(depth) + 2 * stem
    assert size_on_meta(8, 224, backbone_net='i3d_resnet', depth=depth)[0] == p2d + extra_3d
    with torch.device('meta'):
        s3d = build(backbone_net='s3d_resnet', depth=depth)
    temporal = sum(m.weight.numel() + 2 * m.weight.shape[0]           # 3x1x1 conv + the BN before it
                   for m in s3d.modules() if isinstance(m, torch.nn.Conv3d) and m.kernel_size == (3, 1, 1))
    assert count_params(s3d) == p2d + 2 * stem + temporal


def test_macs_scale_with_frames_without_t_stride():
    _, m8 = size_on_meta(8, 224, backbone_net='i3d_resnet', depth=18, without_t_stride=True)
    _, m16 = size_on_meta(16, 224, backbone_net='i3d_resnet', depth=18, without_t_stride=True)
    assert m16 == 2 * m8


def test_tam_params_are_blending_frames_times_channels():
    p_tsn, _ = size_on_meta(8, 224, depth=50)
    for bf in (3, 5):
        p, _ = size_on_meta(8, 224, depth=50, temporal_module_name='TAM', blending_frames=bf)
        assert p - p_tsn == bf * 13_120        # 13,120 = summed input channels of the 16 blocks
    p, _ = size_on_meta(8, 224, depth=50, temporal_module_name='TSM')
    assert p == p_tsn                          # the shift has no parameters


# ----------------------------------------------------------------------------- shapes and gradients

FAMILIES = [dict(backbone_net='resnet'), dict(backbone_net='resnet', temporal_module_name='TAM'),
            dict(backbone_net='resnet', temporal_module_name='TSM'), dict(backbone_net='i3d_resnet'),
            dict(backbone_net='s3d_resnet'), dict(backbone_net='r3d'), dict(backbone_net='mc3'),
            dict(backbone_net='r2plus1d')]


@pytest.mark.parametrize('family', FAMILIES, ids=lambda f: '-'.join(f.values()))
@pytest.mark.parametrize('frames', [8, 16])
@pytest.mark.parametrize('nots', [False, True])
def test_output_shape(family, frames, nots):
    model = build(depth=18, num_classes=5, groups=frames, without_t_stride=nots, **family).eval()
    for batch in (1, 2):
        with torch.no_grad():
            assert model(torch.randn(batch, 3, frames, 32, 32)).shape == (batch, 5)


@pytest.mark.parametrize('family', FAMILIES + [dict(backbone_net='r2plus1d', depth=50)],
                         ids=lambda f: '-'.join(map(str, f.values())))
def test_every_parameter_gets_a_gradient(family):
    family = {'depth': 18, **family}
    # 16 frames leave 2 for layer 4 of the 2D models, so TAM's neighbour weights get gradients too
    model = build(num_classes=4, groups=16, dropout=0.0, **family)
    loss = F.cross_entropy(model(torch.randn(2, 3, 16, 32, 32)), torch.tensor([0, 3]))
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad


@pytest.mark.parametrize('pooling_method', ['max', 'avg'])
def test_tsn_sees_frame_order_only_through_the_original_time_pools(pooling_method):
    """TSN without time pooling is a function of the set of frames: a clip played backwards
    gets the same logits. The original's time pools (kernel 3, stride 2, padding 1 after layers
    1-3) are not symmetric in time, so with them the reversed clip scores differently (the
    README's study: TSN tells 86% of the time-reversed pairs apart)."""
    torch.manual_seed(0)
    clip = torch.randn(2, 3, 8, 32, 32)
    blind = build(depth=18, num_classes=5, groups=8, without_t_stride=True).eval()
    pooled = build(depth=18, num_classes=5, groups=8, pooling_method=pooling_method).eval()
    with torch.no_grad():
        assert torch.allclose(blind(clip), blind(clip.flip(2)), atol=1e-5)
        assert not torch.allclose(pooled(clip), pooled(clip.flip(2)), atol=1e-3)


def test_unknown_family_and_depth_are_clear_errors():
    with pytest.raises(SystemExit, match='unknown --backbone_net'):
        build(backbone_net='resnext')
    with pytest.raises(SystemExit, match='depth'):
        build(depth=20)


# ----------------------------------------------------------------------------- temporal modules

def test_tam_blends_neighbouring_frames():
    tam = TAM(channels=2, frames=3)
    w = {name: torch.randn(2) for name in ('prev', 'curr', 'next')}
    for name, v in w.items():
        getattr(tam, f'{name}_se').fc1.weight.data = v.view(2, 1, 1, 1)
    x = torch.randn(2 * 3, 2, 4, 4)                 # 2 clips of 3 frames
    frames = x.view(2, 3, 2, 4, 4)
    c = lambda name: w[name].view(1, 2, 1, 1)       # noqa: E731
    expected = torch.empty_like(frames)
    for t in range(3):
        s = c('curr') * frames[:, t]
        if t > 0:
            s = s + c('prev') * frames[:, t - 1]
        if t < 2:
            s = s + c('next') * frames[:, t + 1]
        expected[:, t] = s.clamp(min=0)
    torch.testing.assert_close(tam(x), expected.view_as(x))


def test_tam_starts_random_as_the_original():
    """Every TAM weight starts Kaiming-normal (fan out = channels, ReLU gain) as the original's
    resnet initialises all its convs, neighbours included: not as the identity, which leaves the
    neighbour frames weighted 0 and made frame order slow to learn."""
    torch.manual_seed(0)
    model = build(depth=18, temporal_module_name='TAM')
    scaled = []
    for tam in (m for m in model.modules() if isinstance(m, TAM)):
        for layer in tam.weights_for_offsets():
            w = layer.fc1.weight.detach().flatten()
            scaled.append(w / (2.0 / w.numel()) ** 0.5)      # depthwise: fan out = channels
    z = torch.cat(scaled)                                    # 4416 draws of N(0, 1)
    assert z.numel() == 3 * (3 * 64 + 2 * 128 + 2 * 256 + 512)   # a TAM on each block's input
    assert abs(z.mean().item()) < 0.05 and abs(z.std().item() - 1) < 0.05, (z.mean(), z.std())


def test_tsm_shifts_one_eighth_each_way():
    tsm = TemporalShift(channels=16, frames=4, shift_div=8)
    x = torch.randn(4, 16, 1, 1)                    # one clip, value per frame and channel
    out = tsm(x)
    torch.testing.assert_close(out[:3, :2], x[1:, :2])        # channels 0-1: from the next frame
    assert (out[3, :2] == 0).all()
    torch.testing.assert_close(out[1:, 2:4], x[:3, 2:4])      # channels 2-3: from the previous frame
    assert (out[0, 2:4] == 0).all()
    torch.testing.assert_close(out[:, 4:], x[:, 4:])


# ----------------------------------------------------------------------------- checkpoint formats

def test_model_keys_match_the_original_release():
    for name, kw in [('i3d_resnet50', dict(backbone_net='i3d_resnet')),
                     ('tam_resnet50', dict(backbone_net='resnet', temporal_module_name='TAM'))]:
        with open(os.path.join(DATA, f'release_{name}_keys.json')) as f:
            release = json.load(f)
        with torch.device('meta'):
            model = build(depth=50, num_classes=release['num_classes'], **kw)
        ours = {k: list(v.shape) for k, v in model.state_dict().items()}
        assert ours == {k: shape for k, shape in release['state_dict']}


@pytest.mark.parametrize('prefix', ['', 'module.'])
def test_release_checkpoint_loads_and_computes_the_same(tmp_path, prefix):
    torch.manual_seed(0)
    source = build(depth=18, num_classes=7, groups=4, temporal_module_name='TAM').eval()
    for p in source.parameters():                   # non-trivial TAM weights too
        p.data.normal_(0, 0.1)
    path = tmp_path / 'release.pth.tar'
    torch.save({'epoch': 50, 'arch': 'resnet18-TAM', 'best_top1': 40.0,
                'state_dict': {prefix + k: v for k, v in source.state_dict().items()}}, path)
    target = build(depth=18, num_classes=7, groups=4, temporal_module_name='TAM').eval()
    assert 'format' in load_pretrained(target, str(path))
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x))


def test_other_class_count_keeps_backbone_and_reinitialises_classifier(tmp_path):
    source = build(depth=18, num_classes=7, groups=4)
    path = tmp_path / 'w.pth'
    torch.save(source.state_dict(), path)
    target = build(depth=18, num_classes=3, groups=4)
    report = load_pretrained(target, str(path))
    assert 'classifier was re-initialised' in report and '7 classes' in report
    torch.testing.assert_close(target.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    # Evaluation and export (new_classifier=False) refuse it: a fresh classifier scores nothing.
    with pytest.raises(SystemExit, match=r'^error: the classifier of .*w\.pth has 7 classes but the model 3'):
        load_pretrained(build(depth=18, num_classes=3, groups=4), str(path), new_classifier=False)


def test_weights_that_do_not_fit_are_listed(tmp_path):
    path = tmp_path / 'w.pth'
    torch.save(build(depth=18, backbone_net='i3d_resnet').state_dict(), path)
    with pytest.raises(SystemExit) as err:
        load_pretrained(build(depth=18), str(path))
    assert 'do not fit' in str(err.value) and 'of another shape (first: conv1.weight' in \
        str(err.value)                           # one line; every key in the log's details
    assert 'shape: conv1.weight: file (64, 3, 3, 7, 7) vs model (64, 3, 7, 7)' in err.value.details


# torchvision's video ResNet layout, written out independently of models/: key names and shapes,
# and a functional forward pass with explicit conv ops that the loaded model must reproduce.

def tv_layout(kind: str) -> dict[str, tuple]:
    shapes = {}

    def bn(prefix, c):
        shapes.update({f'{prefix}.weight': (c,), f'{prefix}.bias': (c,), f'{prefix}.running_mean': (c,),
                       f'{prefix}.running_var': (c,), f'{prefix}.num_batches_tracked': ()})

    if kind == 'r2plus1d':
        shapes['stem.0.weight'] = (45, 3, 1, 7, 7); bn('stem.1', 45)             # noqa: E702
        shapes['stem.3.weight'] = (64, 45, 3, 1, 1); bn('stem.4', 64)            # noqa: E702
    else:
        shapes['stem.0.weight'] = (64, 3, 3, 7, 7); bn('stem.1', 64)             # noqa: E702
    inplanes = 64
    for i, planes in enumerate([64, 128, 256, 512]):
        for j in range(2):
            p = f'layer{i + 1}.{j}'
            mid = (27 * inplanes * planes) // (9 * inplanes + 3 * planes)
            for n, cin in ((1, inplanes), (2, planes)):
                if kind == 'r2plus1d':
                    shapes[f'{p}.conv{n}.0.0.weight'] = (mid, cin, 1, 3, 3); bn(f'{p}.conv{n}.0.1', mid)
                    shapes[f'{p}.conv{n}.0.3.weight'] = (planes, mid, 3, 1, 1)
                else:
                    kt = 3 if kind == 'r3d' or i == 0 else 1
                    shapes[f'{p}.conv{n}.0.weight'] = (planes, cin, kt, 3, 3)
                bn(f'{p}.conv{n}.1', planes)
            if j == 0 and i > 0:
                shapes[f'{p}.downsample.0.weight'] = (planes, inplanes, 1, 1, 1); bn(f'{p}.downsample.1', planes)
            inplanes = planes
    shapes['fc.weight'], shapes['fc.bias'] = (400, 512), (400,)
    return shapes


def tv_forward(sd: dict, kind: str, x: torch.Tensor) -> torch.Tensor:
    def bn(x, p):
        return F.batch_norm(x, sd[f'{p}.running_mean'], sd[f'{p}.running_var'], sd[f'{p}.weight'],
                            sd[f'{p}.bias'], False, 0.0, 1e-5)

    def conv(x, w, stride, padding):
        return F.conv3d(x, w, None, stride, padding)

    if kind == 'r2plus1d':
        x = F.relu(bn(conv(x, sd['stem.0.weight'], (1, 2, 2), (0, 3, 3)), 'stem.1'))
        x = F.relu(bn(conv(x, sd['stem.3.weight'], 1, (1, 0, 0)), 'stem.4'))
    else:
        x = F.relu(bn(conv(x, sd['stem.0.weight'], (1, 2, 2), (1, 3, 3)), 'stem.1'))

    def conv3x3(x, p, s, layer):
        if kind == 'r2plus1d':
            y = F.relu(bn(conv(x, sd[f'{p}.0.0.weight'], (1, s, s), (0, 1, 1)), f'{p}.0.1'))
            return conv(y, sd[f'{p}.0.3.weight'], (s, 1, 1), (1, 0, 0))
        if kind == 'r3d' or layer == 0:
            return conv(x, sd[f'{p}.0.weight'], s, 1)
        return conv(x, sd[f'{p}.0.weight'], (1, s, s), (0, 1, 1))

    for i in range(4):
        for j in range(2):
            p, s = f'layer{i + 1}.{j}', 2 if (i > 0 and j == 0) else 1
            ts = 1 if kind == 'mc3' else s
            out = F.relu(bn(conv3x3(x, f'{p}.conv1', s, i), f'{p}.conv1.1'))
            out = bn(conv3x3(out, f'{p}.conv2', 1, i), f'{p}.conv2.1')
            idn = x
            if f'{p}.downsample.0.weight' in sd:
                idn = bn(conv(x, sd[f'{p}.downsample.0.weight'], (ts, s, s), 0), f'{p}.downsample.1')
            x = F.relu(out + idn)
    x = x.mean(dim=(2, 3, 4))
    return F.linear(x, sd['fc.weight'], sd['fc.bias'])


@pytest.mark.parametrize('kind', ['r3d', 'mc3', 'r2plus1d'])
def test_torchvision_video_resnet_loads_and_computes_the_same(tmp_path, kind):
    torch.manual_seed(0)
    sd = {}
    for k, shape in tv_layout(kind).items():
        if k.endswith('num_batches_tracked'):
            sd[k] = torch.tensor(100)
        elif k.endswith('running_var'):
            sd[k] = torch.rand(shape) + 0.5
        elif 'conv' in k or 'stem' in k or 'downsample' in k:
            fan_in = torch.tensor(shape[1:]).prod().item() if len(shape) > 1 else 1
            sd[k] = torch.randn(shape) * (2.0 / fan_in) ** 0.5 if len(shape) > 1 else torch.randn(shape) * 0.1
        else:
            sd[k] = torch.randn(shape) * 0.1
    path = tmp_path / f'{kind}_18.pth'
    torch.save(sd, path)
    model = build(backbone_net=kind, depth=18, num_classes=400, groups=4).eval()
    assert 'torchvision' in load_pretrained(model, str(path))
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), tv_forward(sd, kind, x), rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- ImageNet and inflation

@pytest.mark.parametrize('backbone', ['i3d_resnet'])
def test_inflated_model_on_static_video_equals_2d_model_on_the_frame(backbone):
    """Inflation: every 2D kernel repeated over time / T. On a static video, away from the temporal
    borders (zero padding), every 3D feature equals the 2D feature of the frame."""
    torch.manual_seed(0)
    net2d = build(depth=18, num_classes=10, groups=1, without_t_stride=True).double().eval()
    for m in net2d.modules():                       # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1); m.running_var.uniform_(0.5, 1.5)              # noqa: E702
            m.weight.data.uniform_(0.5, 1.5); m.bias.data.normal_(0, 0.1)                 # noqa: E702
    frames = 35                                     # > 2 x the temporal receptive field of layer 4
    net3d = build(backbone_net=backbone, depth=18, num_classes=10, groups=frames,
                  without_t_stride=True).double().eval()
    mapped, left = inflate_state_dict(net3d, net2d.state_dict())
    assert left == ['fc.weight', 'fc.bias']
    net3d.load_state_dict(mapped, strict=False)
    image = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        f2d = net2d.features(image.unsqueeze(2))    # (1, 512, h, w)
        f3d = net3d.features(image.unsqueeze(2).expand(1, 3, frames, 32, 32).contiguous())
    torch.testing.assert_close(f3d[:, :, frames // 2], f2d, rtol=1e-9, atol=1e-9)


def test_imagenet_weights_from_a_local_file(tmp_path):
    imagenet = build(depth=18, num_classes=1000, groups=1)   # torchvision's resnet18 layout
    path = tmp_path / 'resnet18-local.pth'
    torch.save(imagenet.state_dict(), path)
    model = build(backbone_net='s3d_resnet', depth=18, num_classes=5)
    report = load_imagenet(model, 'resnet', 18, str(path))
    assert 'initialised' in report
    torch.testing.assert_close(model.layer1[0].conv2[0].weight[:, :, 0], imagenet.layer1[0].conv2.weight)
    torch.testing.assert_close(model.conv1.weight.sum(2), imagenet.conv1.weight)


def test_every_registered_family_is_tested():
    tested = {f['backbone_net'] for f in FAMILIES} | {'i3d', 's3d', 'inception_v1'}
    assert set(MODELS) <= tested


def test_temporal_avg_pool_counts_the_padding():
    """As nn.AvgPool3d (count_include_pad), the original's TemporalPooling: border windows divide
    by the kernel, padding included, also for clips shorter than the kernel."""
    from models.blocks import TemporalPool
    x = torch.arange(1., 3.).view(1, 1, 2, 1, 1)          # 2 frames: 1, 2 (fewer than the kernel)
    out = TemporalPool(2, 'avg')(x)
    torch.testing.assert_close(out.flatten(), torch.tensor([1.]))      # window {pad, 1, 2} -> 3 / 3
    x = torch.arange(1., 6.).view(1, 1, 5, 1, 1)
    torch.testing.assert_close(TemporalPool(5, 'avg')(x).flatten(), torch.tensor([1., 3., 3.]))
    torch.testing.assert_close(TemporalPool(5, 'avg', count_include_pad=False)(x).flatten(),
                               torch.tensor([1.5, 3., 4.5]))
    torch.testing.assert_close(TemporalPool(5, 'max')(x).flatten(), torch.tensor([2., 4., 5.]))


def test_s3d_resnet_depthwise_temporal_convs():
    p, _ = size_on_meta(8, 224, backbone_net='s3d_resnet', depth=50)
    with torch.device('meta'):
        model, arch = build_model(make_args(backbone_net='s3d_resnet', depth=50, dw_t_conv=True))
    temporal = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d) and m.kernel_size == (3, 1, 1)]
    assert len(temporal) == 16 and all(m.groups == m.in_channels == m.out_channels for m in temporal)
    saved = sum(m.out_channels * m.in_channels * 3 - m.out_channels * 3 for m in temporal)
    assert count_params(model) == p - saved and arch == 's3d_resnet50-dw'


def test_missing_imagenet_weights_without_network_is_a_one_line_error(tmp_path, monkeypatch):
    import models.weights as weights
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))     # empty cache
    monkeypatch.setitem(weights.IMAGENET_URLS, 'resnet18', 'http://127.0.0.1:9/resnet18.pth')
    with pytest.raises(SystemExit) as err:
        load_imagenet(build(depth=18), 'resnet', 18)
    message = str(err.value)
    assert '\n' not in message and '--no_imagenet_pretrained' in message and '--imagenet_weights' in message


@pytest.mark.parametrize('kernel,frames', [((3, 1, 1), 2), ((3, 3, 3), 2), ((7, 7, 7), 4), ((3, 3, 3), 8)])
def test_conv3d_weight_gradient_under_cpu_bf16_autocast(kernel, frames):
    """torch 2.13's CPU bf16 3D conv gets the weight gradient wrong (or aborts) for inputs with
    fewer frames than the kernel; models.blocks.Conv3d must give the float32 gradient's values."""
    from models.blocks import Conv3d
    torch.manual_seed(0)
    conv = Conv3d(8, 8, kernel, 1, tuple(k // 2 for k in kernel), bias=False)
    x = torch.randn(2, 8, frames, 8, 8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = conv(x)
    y.float().sum().backward()
    amp_grad, conv.weight.grad = conv.weight.grad.clone(), None
    conv(x).sum().backward()
    err = (amp_grad - conv.weight.grad).abs().max() / conv.weight.grad.abs().max()
    assert err < 0.02


# ----------------------------------------------------------------------------- flow input

@pytest.mark.parametrize('backbone,depth', [('resnet', 50), ('i3d_resnet', 50), ('r2plus1d', 18),
                                            ('i3d', None), ('s3d', None)])
def test_flow_stem_takes_2l_channels_and_nothing_else_changes(backbone, depth):
    """--modality flow changes only the stem conv: parameters grow by (C - 3) x its kernel."""
    kw = dict(backbone_net=backbone, depth=depth, groups=8)
    with torch.device('meta'):
        rgb = build(**kw)
        flow = build_model(make_args(input_channels=10, **kw))[0]
    stem = next(m for m in flow.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)))
    assert stem.in_channels == 10
    kernel = stem.weight[0, 0].numel()
    assert count_params(flow) - count_params(rgb) == 7 * stem.out_channels * kernel
    assert count_conv_macs(flow, 8, 64, channels=10) > count_conv_macs(rgb, 8, 64)


def test_imagenet_init_of_a_flow_stem_averages_rgb_kernels(tmp_path):
    imagenet = build(depth=18, num_classes=1000, groups=1)
    path = tmp_path / 'resnet18-local.pth'
    torch.save(imagenet.state_dict(), path)
    model = build_model(make_args(backbone_net='i3d_resnet', depth=18, num_classes=5,
                                  input_channels=4))[0]
    load_imagenet(model, 'resnet', 18, str(path))
    mean = imagenet.conv1.weight.mean(dim=1)                      # (64, 7, 7)
    for c in range(4):
        torch.testing.assert_close(model.conv1.weight[:, c].sum(1), mean)
    torch.testing.assert_close(model.layer1[0].conv1.weight.sum(2), imagenet.layer1[0].conv1.weight)


@pytest.mark.parametrize('family', ['resnet-TAM', 'resnet-TSM', 'i3d_resnet', 'r2plus1d', 'i3d'])
def test_channels_last_gives_the_same_outputs_and_gradients(family):
    """--channels_last changes memory layout only (float64, so round-off stays invisible)."""
    import copy
    from utils.engine import to_channels_last
    backbone, _, tm = family.partition('-')
    torch.manual_seed(0)
    model = build(backbone_net=backbone, depth=18, num_classes=4, groups=4, dropout=0.0,
                  temporal_module_name=tm or 'TSN').double()
    fast = to_channels_last(copy.deepcopy(model))
    for p in fast.parameters():
        if p.dim() in (4, 5):
            layout = torch.channels_last if p.dim() == 4 else torch.channels_last_3d
            assert p.is_contiguous(memory_format=layout)
    stem = next(m for m in fast.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)))
    assert not stem.weight.is_contiguous()            # its 7x7 kernel really moved
    x = torch.randn(2, 3, 4, 32, 32, dtype=torch.float64)
    y, y_fast = model(x), fast(x.contiguous(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(y_fast, y, rtol=1e-9, atol=1e-9)
    y.square().sum().backward()
    y_fast.square().sum().backward()
    for (name, p), q in zip(model.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-7, atol=1e-7, msg=name)


def test_rgb_checkpoint_starts_a_flow_model_with_the_cross_modality_stem(tmp_path):
    rgb = build(depth=18, num_classes=5, groups=4)
    path = tmp_path / 'rgb.pth'
    torch.save({'state_dict': rgb.state_dict()}, path)
    flow = build_model(make_args(depth=18, num_classes=5, groups=4, input_channels=10))[0]
    with pytest.raises(SystemExit, match='conv1.weight'):          # evaluation: refused
        load_pretrained(flow, str(path))
    report = load_pretrained(flow, str(path), adapt_rgb_stem=True)  # training: adapted
    assert 'conv1.weight: RGB kernel averaged' in report and '10-channel' in report
    for c in range(10):
        torch.testing.assert_close(flow.conv1.weight[:, c], rgb.conv1.weight.mean(dim=1))
    torch.testing.assert_close(flow.layer4[1].conv2.weight, rgb.layer4[1].conv2.weight)


def test_build_model_takes_a_parsed_namespace_and_a_config_alike():
    """Users' scripts call build_model with opts' namespace (the TSN default filled in, the
    clip length and flow channels derived) or with a ModelConfig; both give the same model."""
    from opts import arg_parser
    args = arg_parser().parse_args(['--backbone_net', 'resnet', '--groups', '4',
                                    '--modality', 'flow', '--flow_length', '2'])
    with pytest.raises(ValueError, match='set args.num_classes'):
        build_model(args)
    args.num_classes = 5
    with torch.device('meta'):
        model, arch = build_model(args)
        same, same_arch = build_model(model_config(groups=4, num_classes=5, input_channels=4))
    assert arch == same_arch == 'resnet18-TSN'
    assert model.conv1.in_channels == 4
    assert [p.shape for p in model.parameters()] == [p.shape for p in same.parameters()]
