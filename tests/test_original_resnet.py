"""Checkpoints of the original study's code (IBM/action-recognition-pytorch) for the ResNet families.

Each test writes a state_dict in the ORIGINAL's layout (key names and shapes as its
models/twod_models/resnet.py, temporal_modeling.py, threed_models/i3d_resnet.py and s3d_resnet.py
define them, written out here independently of models/), with seeded random weights and BatchNorm
statistics, loads it with ``models.load_pretrained`` and compares the logits with a functional
forward pass written here from the original's forward methods (F.conv2d, F.conv3d, F.batch_norm,
F.max_pool*, explicit temporal windows). Inputs are small but chosen so that pooling choices
matter: 24x24 frames give a 12x12 stem output, where a floor and a ceil-mode 3x3/2 pool differ
(6 vs 7), and 8 frames, where a floor and a ceil temporal pool differ (4 vs 5).
"""
import math

import pytest
import torch

from conftest import model_config
from models.config import ModelConfig
import torch.nn.functional as F

from models import build_model, load_pretrained
from models.resnet import from_original_s3d_resnet

DEPTHS = {18: ('basic', [2, 2, 2, 2]), 50: ('bottleneck', [3, 4, 6, 3])}
CLASSES = 7
SIZE = 24          # see the module docstring

pytestmark = pytest.mark.usefixtures('one_thread')   # see conftest.one_thread


def make_args(**kw) -> ModelConfig:
    base = dict(backbone_net='resnet', depth=18, num_classes=CLASSES, groups=8, dropout=0.5,
                without_t_stride=False, pooling_method='max', dw_t_conv=False,
                temporal_module_name='TSN', blending_frames=3, blending_method='sum',
                no_dw_conv=False, shift_div=8)
    base.update(kw)
    return model_config(**base)


# ----------------------------------------------------------------------------- the original's layout

def original_shapes(cfg: ModelConfig) -> dict[str, tuple]:
    """Key -> shape of the original model's state_dict for these options."""
    kind, counts = DEPTHS[cfg.depth]
    exp = 1 if kind == 'basic' else 4
    two_d, s3d = cfg.backbone_net == 'resnet', cfg.backbone_net == 's3d_resnet'
    shapes = {}

    def k(*dims):         # a kernel: 2D models drop the time extent
        return dims[1:] if two_d else dims

    def bn(p, c):
        shapes.update({f'{p}.weight': (c,), f'{p}.bias': (c,), f'{p}.running_mean': (c,),
                       f'{p}.running_var': (c,), f'{p}.num_batches_tracked': ()})

    def conv3x3(p, n, cin, cout):   # the 3x3 slot: 2D, 3x3x3, or the original's convN + convN_t pair
        if s3d:
            shapes[f'{p}.conv{n}.weight'] = (cout, cin, 1, 3, 3); bn(f'{p}.bn{n}', cout)   # noqa: E702
            shapes[f'{p}.conv{n}_t.weight'] = (cout, 1 if cfg.dw_t_conv else cout, 3, 1, 1)
            bn(f'{p}.bn{n}_t', cout)
        else:
            shapes[f'{p}.conv{n}.weight'] = (cout, cin) + k(3, 3, 3); bn(f'{p}.bn{n}', cout)  # noqa: E702

    shapes['conv1.weight'] = (64, 3) + k(3, 7, 7); bn('bn1', 64)                          # noqa: E702
    inplanes = 64
    for i, (planes, n) in enumerate(zip([64, 128, 256, 512], counts)):
        for j in range(n):
            p = f'layer{i + 1}.{j}'
            if kind == 'basic':
                conv3x3(p, 1, inplanes, planes)
                conv3x3(p, 2, planes, planes)
            else:
                shapes[f'{p}.conv1.weight'] = (planes, inplanes) + k(1, 1, 1)
                bn(f'{p}.bn1', planes)
                conv3x3(p, 2, planes, planes)
                shapes[f'{p}.conv3.weight'] = (planes * 4, planes) + k(1, 1, 1)
                bn(f'{p}.bn3', planes * 4)
            if two_d and cfg.temporal_module_name == 'TAM':   # on the block's input channels
                names = (['prev_se', 'next_se', 'curr_se'] if cfg.blending_frames == 3
                         else [f'blending_layers.{b}' for b in range(cfg.blending_frames)])
                for name in names:
                    shapes[f'{p}.tam.{name}.fc1.weight'] = (inplanes, inplanes if cfg.no_dw_conv else 1, 1, 1)
            if j == 0 and (i > 0 or inplanes != planes * exp):
                shapes[f'{p}.downsample.0.weight'] = (planes * exp, inplanes) + k(1, 1, 1)
                bn(f'{p}.downsample.1', planes * exp)
            inplanes = planes * exp
    shapes['fc.weight'], shapes['fc.bias'] = (CLASSES, 512 * exp), (CLASSES,)
    return shapes


def random_state(shapes: dict[str, tuple], seed: int) -> dict[str, torch.Tensor]:
    """Fixed random values: He-scaled convs, non-trivial BN affine and running statistics."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in shapes.items():
        leaf = key.rsplit('.', 1)[-1]
        if leaf == 'num_batches_tracked':
            sd[key] = torch.tensor(1000)
        elif leaf == 'running_var' or (leaf == 'weight' and len(shape) == 1 and not key.startswith('fc')):
            sd[key] = torch.rand(shape, generator=g) + 0.5
        elif '.tam.' in key:
            sd[key] = torch.randn(shape, generator=g) * 0.5
        elif len(shape) >= 4:
            sd[key] = torch.randn(shape, generator=g) * math.sqrt(2.0 / math.prod(shape[1:]))
        else:
            sd[key] = torch.randn(shape, generator=g) * 0.1
    return sd


# ----------------------------------------------------------------------------- the original's forward

def bn(x, sd, p):
    return F.batch_norm(x, sd[f'{p}.running_mean'], sd[f'{p}.running_var'], sd[f'{p}.weight'],
                        sd[f'{p}.bias'], False, 0.0, 1e-5)


def conv(x, w, stride=1, padding=0):
    """A conv without bias; grouped when the kernel takes fewer input channels (depthwise)."""
    op = F.conv2d if w.dim() == 4 else F.conv3d
    return op(x, w, None, stride, padding, 1, x.shape[1] // w.shape[1])


def temporal_pool(x, clip, method):
    """The original's TemporalPooling (common.py): kernel 3, stride 2, padding 1, floor mode over
    clips of ``clip`` frames; max pads with -inf, average counts the zero padding. Windows are
    taken explicitly (unfold), so short clips are defined too."""
    bt, c, h, w = x.shape
    x = x.reshape(bt // clip, clip, c, h, w)
    x = F.pad(x.movedim(1, -1), (1, 1), value=float('-inf') if method == 'max' else 0.0)
    windows = x.unfold(-1, 3, 2)                       # (B, C, H, W, out frames, 3)
    x = windows.amax(-1) if method == 'max' else windows.mean(-1)
    return x.movedim(-1, 1).reshape(-1, c, h, w)


def tam(x, sd, p, clip, cfg):
    """temporal_modeling.py TAM: w_i * frame[t + i - n//2] summed (or maxed), zero outside, ReLU."""
    n = cfg.blending_frames
    names = ['prev_se', 'curr_se', 'next_se'] if n == 3 else [f'blending_layers.{b}' for b in range(n)]
    bt, c, h, w = x.shape
    parts = []
    for i, name in enumerate(names):
        y = conv(x, sd[f'{p}.tam.{name}.fc1.weight']).reshape(bt // clip, clip, c, h, w)
        shift = i - n // 2
        moved = torch.zeros_like(y)
        for t in range(clip):
            if 0 <= t + shift < clip:
                moved[:, t] = y[:, t + shift]
        parts.append(moved)
    out = torch.stack(parts)
    out = out.sum(0) if cfg.blending_method == 'sum' else out.amax(0)
    return F.relu(out).reshape(bt, c, h, w)


def tsm(x, clip, div=8):
    """Temporal shift (Lin et al.; not in the original code): the first 1/div of the channels
    from the next frame, the next 1/div from the previous one, zero outside."""
    bt, c, h, w = x.shape
    x = x.reshape(bt // clip, clip, c, h, w)
    f = c // div
    out = x.clone()
    out[:, :, :2 * f] = 0
    out[:, :-1, :f] = x[:, 1:, :f]
    out[:, 1:, f:2 * f] = x[:, :-1, f:2 * f]
    return out.reshape(bt, c, h, w)


def reference_logits(sd, cfg, x, dropout_seed=None):
    """The original's forward for these options, from its state_dict; x is (B, C, T, H, W).

    ``dropout_seed``: apply dropout as in training (seeded), where the original does, to the
    (B, frames, features) tensor.
    """
    kind, counts = DEPTHS[cfg.depth]
    batch, frames = x.shape[0], x.shape[2]
    two_d = cfg.backbone_net == 'resnet'
    t_s = 1 if cfg.without_t_stride else 2
    if two_d:     # the original takes (B, T*C, H, W) and views it as B*T frames
        x = x.transpose(1, 2).reshape(batch * frames, 3, *x.shape[3:])
        x = F.relu(bn(conv(x, sd['conv1.weight'], 2, 3), sd, 'bn1'))
        x = F.max_pool2d(x, 3, 2, 1)
    else:
        x = F.relu(bn(conv(x, sd['conv1.weight'], (1, 2, 2), (1, 3, 3)), sd, 'bn1'))
        x = F.max_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1))     # max whatever --pooling_method

    def slot(x, p, n, s, ts):
        """The 3x3 conv of a block with its BN (and, for S3D, the temporal conv and BN)."""
        if two_d:
            return bn(conv(x, sd[f'{p}.conv{n}.weight'], s, 1), sd, f'{p}.bn{n}')
        if cfg.backbone_net == 'i3d_resnet':
            return bn(conv(x, sd[f'{p}.conv{n}.weight'], (ts, s, s), 1), sd, f'{p}.bn{n}')
        y = F.relu(bn(conv(x, sd[f'{p}.conv{n}.weight'], (1, s, s), (0, 1, 1)), sd, f'{p}.bn{n}'))
        return bn(conv(y, sd[f'{p}.conv{n}_t.weight'], (ts, 1, 1), (1, 0, 0)), sd, f'{p}.bn{n}_t')

    def one_by_one(x, p, n):
        return bn(conv(x, sd[f'{p}.conv{n}.weight']), sd, f'{p}.bn{n}')

    clip = frames     # the original's bookkeeping: halved with a floor after each 2D pool
    for i, n in enumerate(counts):
        for j in range(n):
            p = f'layer{i + 1}.{j}'
            s = 2 if i > 0 and j == 0 else 1
            ts = t_s if s == 2 else 1
            identity = x
            if two_d and cfg.temporal_module_name == 'TAM':
                x = tam(x, sd, p, clip, cfg)
            elif two_d and cfg.temporal_module_name == 'TSM':
                x = tsm(x, clip)
            if kind == 'basic':
                out = slot(F.relu(slot(x, p, 1, s, ts)), p, 2, 1, 1)
            else:
                out = F.relu(one_by_one(x, p, 1))
                out = one_by_one(F.relu(slot(out, p, 2, s, ts)), p, 3)
            if f'{p}.downsample.0.weight' in sd:
                stride = s if two_d else (ts, s, s)
                identity = bn(conv(identity, sd[f'{p}.downsample.0.weight'], stride), sd, f'{p}.downsample.1')
            x = F.relu(out + identity)
        if two_d and not cfg.without_t_stride and i < 3:
            x = temporal_pool(x, clip, cfg.pooling_method)
            clip = max(clip // 2, 1)
    # space averaged, then dropout and fc on every frame, logits averaged over frames
    if two_d:
        x = x.mean(dim=(2, 3)).reshape(batch, -1, x.shape[1])
    else:   # the original's .contiguous(): a seeded dropout mask follows the memory order
        x = x.mean(dim=(3, 4)).transpose(1, 2).contiguous()
    if dropout_seed is not None:
        torch.manual_seed(dropout_seed)
        x = F.dropout(x, cfg.dropout, training=True)
    return F.linear(x, sd['fc.weight'], sd['fc.bias']).mean(dim=1)


# ----------------------------------------------------------------------------- the cases

CASES = [
    # 2D ResNet: TSN, TAM (sum/max, 3/5/4 blending frames, depthwise or not), TSM
    dict(depth=18, groups=8),
    dict(depth=18, groups=16, pooling_method='avg'),
    dict(depth=18, groups=8, pooling_method='avg'),        # 2 frames reach the last pool
    dict(depth=18, groups=8, without_t_stride=True),
    dict(depth=50, groups=8, temporal_module_name='TAM'),
    dict(depth=50, groups=16, pooling_method='avg'),
    dict(depth=18, groups=8, temporal_module_name='TAM'),
    dict(depth=18, groups=16, temporal_module_name='TAM', pooling_method='avg', blending_method='max'),
    dict(depth=18, groups=8, temporal_module_name='TAM', without_t_stride=True, no_dw_conv=True),
    dict(depth=18, groups=8, temporal_module_name='TAM', blending_frames=5),
    dict(depth=18, groups=8, temporal_module_name='TAM', blending_frames=5, blending_method='max',
         no_dw_conv=True),
    dict(depth=18, groups=8, temporal_module_name='TAM', blending_frames=4),
    dict(depth=18, groups=12, temporal_module_name='TAM'),  # layer 4: 2 frames, clips of 1
    dict(depth=18, groups=8, temporal_module_name='TSM'),
    dict(depth=18, groups=8, temporal_module_name='TSM', without_t_stride=True),
    # I3D-ResNet and S3D-ResNet
    dict(backbone_net='i3d_resnet', depth=18, groups=8, pooling_method='avg'),   # still a max pool
    dict(backbone_net='i3d_resnet', depth=18, groups=16),
    dict(backbone_net='i3d_resnet', depth=18, groups=16, without_t_stride=True),
    dict(backbone_net='i3d_resnet', depth=50, groups=8),
    dict(backbone_net='s3d_resnet', depth=18, groups=8),
    dict(backbone_net='s3d_resnet', depth=18, groups=16, without_t_stride=True, dw_t_conv=True),
    dict(backbone_net='s3d_resnet', depth=50, groups=8),
    dict(backbone_net='s3d_resnet', depth=50, groups=8, dw_t_conv=True),
    dict(backbone_net='s3d_resnet', depth=50, groups=16, without_t_stride=True),
]


def case_id(kw: dict) -> str:
    return '-'.join(f'{v}' if k in ('backbone_net', 'temporal_module_name') else f'{k}={v}'
                    for k, v in kw.items())


def write_and_load(tmp_path, kw, seed, prefix=''):
    """The original-layout file (in the release's checkpoint dict) loaded into this project's model."""
    cfg = make_args(**kw)
    sd = random_state(original_shapes(cfg), seed)
    path = tmp_path / 'original.pth.tar'
    torch.save({'epoch': 50, 'arch': 'original', 'best_top1': 50.0,
                'state_dict': {prefix + k: v for k, v in sd.items()}}, path)
    model = build_model(cfg)[0].eval()
    report = load_pretrained(model, str(path))
    return cfg, sd, model, report


def close(a, b):
    """Equal to float32 round-off, relative to the logits' scale (random deep nets grow large)."""
    return torch.allclose(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())


@pytest.mark.parametrize('i,kw', list(enumerate(CASES)), ids=[case_id(c) for c in CASES])
def test_original_checkpoint_computes_the_originals_logits(tmp_path, i, kw):
    cfg, sd, model, report = write_and_load(tmp_path, kw, seed=i, prefix='module.' if i % 2 else '')
    assert f'loaded {len(sd)} tensors' in report
    batch = 2 if cfg.backbone_net == 'resnet' else 1    # 2 videos: frames must not mix across them
    x = torch.randn(batch, 3, cfg.frames, SIZE, SIZE, generator=torch.Generator().manual_seed(100 + i))
    with torch.no_grad():
        ours, ref = model(x), reference_logits(sd, cfg, x)
    assert ours.shape == (batch, CLASSES)
    assert close(ours, ref), (ours - ref).abs().max()


@pytest.mark.parametrize('kw', [dict(depth=18, groups=16, temporal_module_name='TAM'),
                                dict(backbone_net='s3d_resnet', depth=18, groups=8, without_t_stride=True)],
                         ids=['resnet-TAM', 's3d_resnet-nots'])
def test_dropout_acts_on_every_frame_before_the_classifier(tmp_path, kw):
    """Training-mode dropout as the original: one mask per (video, frame, feature), then fc."""
    cfg, sd, model, _ = write_and_load(tmp_path, kw, seed=1)
    model.dropout.train()                         # BN stays in eval: only dropout is random
    x = torch.randn(1, 3, cfg.frames, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.manual_seed(3)
        ours = model(x)
        ref = reference_logits(sd, cfg, x, dropout_seed=3)
        plain = reference_logits(sd, cfg, x)
    assert close(ours, ref) and not close(ours, plain)


# Mutations of this project's model that the comparison must catch: a pool's padding or ceil
# mode, the temporal average's divisor, the direction of TAM's shifts.
def _reverse_tam(model):
    for m in model.modules():
        if hasattr(m, 'offsets'):
            m.offsets = [-d for d in m.offsets]


MUTATIONS = [
    ('stem-ceil', dict(depth=18, groups=8), lambda m: setattr(m.maxpool, 'ceil_mode', True)),
    ('stem-padding', dict(depth=18, groups=8), lambda m: setattr(m.maxpool, 'padding', 0)),
    ('tpool-padding', dict(depth=18, groups=16), lambda m: setattr(m.tpool3, 'padding', 0)),
    ('tpool-divisor', dict(depth=18, groups=16, pooling_method='avg'),
     lambda m: setattr(m.tpool1, 'count_include_pad', False)),
    ('tam-direction', dict(depth=18, groups=8, temporal_module_name='TAM'), _reverse_tam),
    ('3d-stem-ceil', dict(backbone_net='i3d_resnet', depth=18, groups=8),
     lambda m: setattr(m.maxpool, 'ceil_mode', True)),
    ('3d-stem-padding', dict(backbone_net='s3d_resnet', depth=18, groups=8),
     lambda m: setattr(m.maxpool, 'padding', (0, 0, 0))),
]


@pytest.mark.parametrize('name,kw,mutate', MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_a_changed_pool_or_shift_is_caught(tmp_path, name, kw, mutate):
    cfg, sd, model, _ = write_and_load(tmp_path, kw, seed=11)
    x = torch.randn(2, 3, cfg.frames, SIZE, SIZE, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        ref = reference_logits(sd, cfg, x)
        assert close(model(x), ref)
        mutate(model)
        assert not close(model(x), ref)


def test_reference_temporal_pool_agrees_with_torch_where_torch_runs():
    """The test's explicit windows are nn.MaxPool3d / nn.AvgPool3d (the original's) on 3+ frames."""
    x = torch.randn(2 * 5, 3, 2, 2)
    for method, pool in (('max', torch.nn.MaxPool3d), ('avg', torch.nn.AvgPool3d)):
        torch_out = pool((3, 1, 1), (2, 1, 1), (1, 0, 0))(x.view(2, 5, 3, 2, 2).transpose(1, 2))
        torch.testing.assert_close(temporal_pool(x, 5, method),
                                   torch_out.transpose(1, 2).reshape(-1, 3, 2, 2))


# ----------------------------------------------------------------------------- recognising the layout

def test_s3d_converter_claims_only_original_s3d_resnet_files():
    cfg = make_args(backbone_net='s3d_resnet', depth=18)
    model = build_model(cfg)[0]
    assert from_original_s3d_resnet(model.state_dict(), model) is None                    # this project's
    i3d = make_args(backbone_net='i3d_resnet', depth=18)
    assert from_original_s3d_resnet(random_state(original_shapes(i3d), 0), model) is None  # i3d_resnet's
    inception_like = {'conv3.conv_t.weight': torch.zeros(192, 192, 3, 1, 1),
                      'inception3a.branch2.1.conv_t.weight': torch.zeros(128, 128, 3, 1, 1)}
    assert from_original_s3d_resnet(inception_like, model) is None                        # original s3d's
    renamed = from_original_s3d_resnet(random_state(original_shapes(cfg), 0), model)
    assert set(renamed) == set(model.state_dict())


@pytest.mark.parametrize('model_kw,message', [
    (dict(backbone_net='i3d_resnet'), 'not --backbone_net s3d_resnet'),
    (dict(backbone_net='s3d_resnet', dw_t_conv=True), 'without --dw_t_conv'),
])
def test_original_s3d_resnet_file_into_another_model_is_a_one_line_error(tmp_path, model_kw, message):
    path = tmp_path / 's3d.pth'
    torch.save(random_state(original_shapes(make_args(backbone_net='s3d_resnet')), 0), path)
    with pytest.raises(SystemExit) as err:
        load_pretrained(build_model(make_args(**model_kw))[0], str(path))
    assert message in str(err.value) and '\n' not in str(err.value)


def test_frame_counts_the_original_cannot_group_are_refused():
    """With 10 frames the original's clips (10, 5, 2) do not divide the 3 frames layer 3 pools."""
    with pytest.raises(SystemExit, match='--groups 10'):
        build_model(make_args(groups=10, temporal_module_name='TAM'))
    model = build_model(make_args(groups=12, temporal_module_name='TAM'))[0]
    assert model.layer4[0].tam.frames == 1 and model.frames_out == 2
