"""Checkpoints of the original study's code load into i3d, s3d and inception_v1 and give its logits.

Each test writes a state_dict in the original's layout (IBM/action-recognition-pytorch,
``models/threed_models/{i3d,s3d}.py``, ``models/twod_models/{inception_v1,temporal_modeling}.py``:
key names and shapes written out here from that code, random values and BatchNorm statistics),
loads it with ``models.load_pretrained`` and compares the model's logits with an independent
forward pass below, in plain ``torch.nn.functional`` ops that follow the original's forward and
read the original-layout dict. The original code itself is not imported.

Inputs are chosen so that the original's pools differ from torchvision's: 38x38 frames give a
19x19 stem output, which a padded floor-mode 3x3 stride-2 pool takes to 10x10 and an unpadded
ceil-mode one to 9x9 (likewise 22x22 -> 11 -> 6 or 5).
"""

import pytest
import torch

from conftest import model_config
from models.config import ModelConfig
import torch.nn.functional as F

import models.inception as inception
from models import load_pretrained
from models.weights import ORIGINAL_LAYOUTS

EPS = 1e-3  # BatchNorm eps of the original's BasicConv3d, STConv3d and BasicConv2d

# The Inception blocks as the original constructs them: (in, 1x1, 3x3 red, 3x3, 5x5 red, 5x5, pool proj).
BLOCKS = [('inception3a', (192, 64, 96, 128, 16, 32, 32)), ('inception3b', (256, 128, 128, 192, 32, 96, 64)),
          ('pool3', None),
          ('inception4a', (480, 192, 96, 208, 16, 48, 64)), ('inception4b', (512, 160, 112, 224, 24, 64, 64)),
          ('inception4c', (512, 128, 128, 256, 24, 64, 64)), ('inception4d', (512, 112, 144, 288, 32, 64, 64)),
          ('inception4e', (528, 256, 160, 320, 32, 128, 128)),
          ('pool4', None),
          ('inception5a', (832, 256, 160, 320, 32, 128, 128)), ('inception5b', (832, 384, 192, 384, 48, 128, 128))]

# The original's pools (kernel, stride, padding, ceil_mode); 's' is the temporal stride (1 or 2).
# 3D (i3d.py / s3d.py forward): F.max_pool3d / F.avg_pool3d, floor mode, on every pool.
POOLS_3D = {
    'pool1': ((1, 3, 3), (1, 2, 2), (0, 1, 1), False),
    'pool2': ((3, 3, 3), ('s', 2, 2), (1, 1, 1), False),
    'pool3': ((3, 3, 3), ('s', 2, 2), (1, 1, 1), False),
    'pool4': ((3, 3, 3), ('s', 2, 2), (1, 1, 1), False),      # i3d
    'pool4_s3d': ((2, 2, 2), ('s', 2, 2), (0, 0, 0), False),  # s3d: kernel_size=2, no padding
}
# 2D (inception_v1.py): spatial nn.MaxPool2d(ceil_mode=True), then TemporalPooling (common.py).
POOLS_2D = {'pool1': (3, 2, 0, True), 'pool2': (3, 2, 0, True), 'pool3': (3, 2, 0, True), 'pool4': (2, 2, 0, True)}
TIME_POOL_2D = ((3, 1, 1), (2, 1, 1), (1, 0, 0), False)

pytestmark = pytest.mark.usefixtures('one_thread')   # see conftest.one_thread


# ----------------------------------------------------------------------------- original-layout state_dicts

class Writer:
    """Builds a state_dict key by key with seeded random values."""

    def __init__(self, seed: int):
        self.g = torch.Generator().manual_seed(seed)
        self.sd: dict[str, torch.Tensor] = {}

    def rand(self, *shape) -> torch.Tensor:
        return torch.rand(shape, generator=self.g)

    def conv(self, key: str, shape: tuple, bias: bool = False) -> None:
        fan_in = torch.Size(shape[1:]).numel()
        self.sd[key + '.weight'] = torch.randn(shape, generator=self.g) * (2.0 / fan_in) ** 0.5
        if bias:
            self.sd[key + '.bias'] = torch.randn(shape[0], generator=self.g) * 0.1

    def bn(self, key: str, c: int) -> None:
        # Variances from 1e-3 to 2, so that BatchNorm's eps (1e-3 vs 1e-5) matters for some
        # channels; the scale follows sqrt(var) so that activations stay of order one.
        var = torch.exp(torch.empty(c).uniform_(-6.9, 0.7, generator=self.g))
        self.sd[key + '.weight'] = (self.rand(c) + 0.5) * var.sqrt()
        self.sd[key + '.bias'] = torch.randn(c, generator=self.g) * 0.1
        self.sd[key + '.running_mean'] = torch.randn(c, generator=self.g) * 0.1
        self.sd[key + '.running_var'] = var
        self.sd[key + '.num_batches_tracked'] = torch.tensor(100)


def write_unit(w: Writer, key: str, cin: int, cout: int, kernel: tuple, separable: bool = False,
               dw: bool = False) -> None:
    """One conv unit: BasicConv2d/3d (a conv of ``kernel`` and its BN) or, ``separable``, STConv3d."""
    if separable:
        k = kernel[-1]
        w.conv(key + '.conv', (cout, cin, 1, k, k))
        w.bn(key + '.bn', cout)
        w.conv(key + '.conv_t', (cout, 1 if dw else cout, k, 1, 1), bias=True)
        w.bn(key + '.bn_t', cout)
    else:
        w.conv(key + '.conv', (cout, cin) + kernel)
        w.bn(key + '.bn', cout)


def original_state_dict(family: str, classes: int, seed: int, tam: dict | None = None) -> dict:
    """A random state_dict with the original's keys and shapes for i3d, s3d, s3d-dw or inception_v1.

    ``tam``: for inception_v1 with TAM, its options (blending_frames, no_dw_conv).
    """
    w = Writer(seed)
    dims = 2 if family == 'inception_v1' else 3
    one, three = (1,) * dims, (3,) * dims
    stem = {'inception_v1': (7, 7), 'i3d': (7, 7, 7)}.get(family, (3, 7, 7))
    st = dict(separable=family.startswith('s3d'), dw=family == 's3d-dw')   # for conv3 and the blocks' 3x3

    def tam_keys(name: str, c: int) -> None:
        if tam is None:
            return
        bf, depthwise = tam.get('blending_frames', 3), not tam.get('no_dw_conv', False)
        names = ['prev_se', 'next_se', 'curr_se'] if bf == 3 else [f'blending_layers.{i}' for i in range(bf)]
        for n in names:
            shape = (c, 1, 1, 1) if depthwise else (c, c, 1, 1)
            scale = 0.4 if depthwise else 0.4 / c ** 0.5     # keeps the blended sums of order one
            w.sd[f'{name}.{n}.fc1.weight'] = (w.rand(*shape) + 0.25) * scale

    write_unit(w, 'conv1', 3, 64, stem)
    tam_keys('tam1', 64)
    write_unit(w, 'conv2', 64, 64, one)
    tam_keys('tam2', 64)
    write_unit(w, 'conv3', 64, 192, three, **st)
    tam_keys('tam3', 192)
    for name, cfg in BLOCKS:
        if cfg is None:
            continue
        cin, c1, c3r, c3, c5r, c5, pp = cfg
        write_unit(w, f'{name}.branch1', cin, c1, one)
        write_unit(w, f'{name}.branch2.0', cin, c3r, one)
        write_unit(w, f'{name}.branch2.1', c3r, c3, three, **st)
        write_unit(w, f'{name}.branch3.0', cin, c5r, one)
        write_unit(w, f'{name}.branch3.1', c5r, c5, three, **st)
        write_unit(w, f'{name}.branch4.1', cin, pp, one)
        tam_keys('tam' + name[len('inception'):], c1 + c3 + c5 + pp)
    w.sd['fc.weight'] = torch.randn(classes, 1024, generator=w.g) * 0.05
    w.sd['fc.bias'] = torch.randn(classes, generator=w.g) * 0.1
    return w.sd


# ----------------------------------------------------------------------------- the independent forward

def bn(x, sd, key):
    return F.batch_norm(x, sd[key + '.running_mean'], sd[key + '.running_var'], sd[key + '.weight'],
                        sd[key + '.bias'], training=False, eps=EPS)


def basic(x, sd, key, stride=1, padding=0):
    conv = F.conv2d if x.dim() == 4 else F.conv3d
    return F.relu(bn(conv(x, sd[key + '.conv.weight'], None, stride, padding), sd, key + '.bn'))


def st_conv(x, sd, key):
    """STConv3d: 1x3x3 conv, BN, ReLU, 3x1x1 conv with bias (depthwise when its kernel has one input), BN, ReLU."""
    x = F.relu(bn(F.conv3d(x, sd[key + '.conv.weight'], None, 1, (0, 1, 1)), sd, key + '.bn'))
    wt = sd[key + '.conv_t.weight']
    groups = wt.shape[0] if wt.shape[1] == 1 else 1
    return F.relu(bn(F.conv3d(x, wt, sd[key + '.conv_t.bias'], 1, (1, 0, 0), groups=groups), sd, key + '.bn_t'))


def box_average(x, kernel, stride, padding):
    """F.avg_pool3d with count_include_pad (the original's), as a per-channel conv with a box kernel.

    Written as a conv so that it also runs where avg_pool3d refuses a window longer than the
    (padded) input; see test_box_average_is_avg_pool3d."""
    c = x.shape[1]
    box = x.new_full((c, 1) + tuple(kernel), 1.0 / torch.Size(kernel).numel())
    return F.conv3d(x, box, None, stride, padding, groups=c)


def pool3d(x, spec, method, t_stride):
    kernel, stride, padding, ceil = spec
    stride = tuple(t_stride if s == 's' else s for s in stride)
    if method == 'max':
        return F.max_pool3d(x, kernel, stride, padding, ceil_mode=ceil)
    assert not ceil
    return box_average(x, kernel, stride, padding)


def tam(x, sd, key, frames, method):
    """TAM (temporal_modeling.py): a 1x1 conv per offset d; frame t sums (or maxes) offset d's conv
    of frame t+d (zero outside the clip), then ReLU."""
    names = [n for n in ('prev_se', 'curr_se', 'next_se') if f'{key}.{n}.fc1.weight' in sd]
    if not names:
        names = sorted({k.split('.')[2] for k in sd if k.startswith(key + '.blending_layers.')}, key=int)
        names = [f'blending_layers.{n}' for n in names]
    half = len(names) // 2
    bt, c, h, w = x.shape
    shifted = []
    for i, n in enumerate(names):
        weight = sd[f'{key}.{n}.fc1.weight']
        y = F.conv2d(x, weight, groups=c if weight.shape[1] == 1 else 1).view(-1, frames, c, h, w)
        d = i - half
        frames_list = [y[:, t + d] if 0 <= t + d < frames else torch.zeros_like(y[:, 0]) for t in range(frames)]
        shifted.append(torch.stack(frames_list, 1))
    out = torch.stack(shifted)
    out = out.sum(0) if method == 'sum' else out.max(0).values
    return F.relu(out).view(bt, c, h, w)


def block(x, sd, name, three):
    """An Inception block; ``three`` is the 3x3 unit (basic with padding 1, or st_conv)."""
    dims = x.dim() - 2
    pool = F.max_pool2d if dims == 2 else F.max_pool3d
    b1 = basic(x, sd, f'{name}.branch1')
    b2 = three(basic(x, sd, f'{name}.branch2.0'), sd, f'{name}.branch2.1')
    b3 = three(basic(x, sd, f'{name}.branch3.0'), sd, f'{name}.branch3.1')
    b4 = basic(pool(x, 3, 1, 1, ceil_mode=True), sd, f'{name}.branch4.1')
    return torch.cat([b1, b2, b3, b4], 1)


def reference_forward(family, sd, x, t_stride=True, method='max', blending_method='sum'):
    """The original's forward for (B, 3, T, H, W) clips, from the original-layout ``sd``."""
    s = 2 if t_stride else 1
    if family == 'inception_v1':
        return reference_2d(sd, x, t_stride, method, blending_method)
    padded3 = lambda y, sd, key: basic(y, sd, key, 1, 1)   # noqa: E731
    three = st_conv if family.startswith('s3d') else padded3
    stem_pad = (3, 3, 3) if family == 'i3d' else (1, 3, 3)
    x = basic(x, sd, 'conv1', (1, 2, 2), stem_pad)
    x = pool3d(x, POOLS_3D['pool1'], method, s)
    x = basic(x, sd, 'conv2')
    x = three(x, sd, 'conv3')
    x = pool3d(x, POOLS_3D['pool2'], method, s)
    for name, cfg in BLOCKS:
        if cfg is None:
            spec = POOLS_3D['pool4_s3d'] if name == 'pool4' and family.startswith('s3d') else POOLS_3D[name]
            x = pool3d(x, spec, method, s)
        else:
            x = block(x, sd, name, three)
    # adaptive_avg_pool3d to (T, 1, 1), dropout + fc on every frame, mean over frames
    per_frame = F.adaptive_avg_pool3d(x, (x.shape[2], 1, 1)).flatten(2).transpose(1, 2)
    return F.linear(per_frame, sd['fc.weight'], sd['fc.bias']).mean(1)


def reference_2d(sd, x, t_stride, method, blending_method):
    """inception_v1.py's GoogLeNet: frames in the batch, TAM after conv1..3 and every block."""
    b, c, frames, h, w = x.shape
    x = x.transpose(1, 2).reshape(b * frames, c, h, w)

    def after(y, key):
        has_tam = any(k.startswith(key + '.') for k in sd)
        return tam(y, sd, key, frames, blending_method) if has_tam else y

    def pool(y, name):
        nonlocal frames
        k, st, p, ceil = POOLS_2D[name]
        y = F.max_pool2d(y, k, st, p, ceil_mode=ceil)
        if t_stride and name != 'pool1':       # TemporalPooling after pools 2-4
            bt, ch, hh, ww = y.shape
            y5 = y.view(-1, frames, ch, hh, ww).transpose(1, 2)
            y5 = pool3d(y5, TIME_POOL_2D, method, 2)
            frames = y5.shape[2]
            y = y5.transpose(1, 2).reshape(-1, ch, hh, ww)
        return y

    padded3 = lambda y, sd, key: basic(y, sd, key, 1, 1)   # noqa: E731
    x = after(basic(x, sd, 'conv1', 2, 3), 'tam1')
    x = pool(x, 'pool1')
    x = after(basic(x, sd, 'conv2'), 'tam2')
    x = after(basic(x, sd, 'conv3', 1, 1), 'tam3')
    x = pool(x, 'pool2')
    for name, cfg in BLOCKS:
        x = pool(x, name) if cfg is None else after(block(x, sd, name, padded3), 'tam' + name[9:])
    logits = F.linear(F.adaptive_avg_pool2d(x, 1).flatten(1), sd['fc.weight'], sd['fc.bias'])
    return logits.view(b, -1, logits.shape[-1]).mean(1)


# ----------------------------------------------------------------------------- the tests

def make_args(family, frames, nots, method, classes, **kw) -> ModelConfig:
    args = dict(num_classes=classes, groups=frames, dropout=0.5, without_t_stride=nots, pooling_method=method,
                dw_t_conv=family == 's3d-dw', temporal_module_name='TSN', blending_frames=3,
                blending_method='sum', no_dw_conv=False, depth=50, shift_div=8)
    args.update(kw)
    return model_config(**args)


def build(family, frames, nots, method, classes, **kw):
    builder = {'i3d': inception.build_i3d, 's3d': inception.build_s3d, 's3d-dw': inception.build_s3d,
               'inception_v1': inception.build_inception_v1}[family]
    model, _ = builder(make_args(family, frames, nots, method, classes, **kw))
    return model.eval()


def save(sd, path, prefix=True):
    """As the original's train.py saves: a dict with state_dict (of a DataParallel model)."""
    state = {('module.' + k if prefix else k): v for k, v in sd.items()}
    torch.save({'epoch': 5, 'arch': 'x', 'best_top1': 1.0, 'state_dict': state}, path)


def clip(frames, size, seed=0):
    return torch.randn(1, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


def assert_same_logits(out, ref):
    scale = ref.abs().max().item()
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * max(scale, 1.0))


SIZE = {8: 38, 16: 22}   # odd stem outputs (19, 11): floor/padded and ceil pools disagree in size
CASES_3D = [(family, frames, nots, method)
            for family in ('i3d', 's3d', 's3d-dw') for frames in (8, 16)
            for nots in (False, True) for method in ('max', 'avg')]


@pytest.mark.parametrize('family, frames, nots, method', CASES_3D)
def test_3d_original_checkpoint_gives_original_logits(tmp_path, family, frames, nots, method):
    classes = 174 if frames == 8 else 400      # Something-Something v2, Kinetics-400
    sd = original_state_dict(family, classes, seed=frames + 2 * nots + (method == 'avg'))
    save(sd, tmp_path / 'ckpt.pth', prefix=nots)
    model = build(family, frames, nots, method, classes)
    assert 'original' in load_pretrained(model, str(tmp_path / 'ckpt.pth'))
    x = clip(frames, SIZE[frames])
    with torch.no_grad():
        assert_same_logits(model(x), reference_forward(family, sd, x, not nots, method))


CASES_2D = [(tm, frames, nots, method, {}) for tm in ('TSN', 'TAM') for frames in (8, 16)
            for nots in (False, True) for method in ('max', 'avg')]
CASES_2D += [('TAM', 8, False, 'max', {'blending_frames': 5, 'blending_method': 'max'}),
             ('TAM', 16, True, 'avg', {'no_dw_conv': True}),
             ('TAM', 8, True, 'max', {'blending_frames': 1})]


@pytest.mark.parametrize('tm, frames, nots, method, kw', CASES_2D)
def test_2d_original_checkpoint_gives_original_logits(tmp_path, tm, frames, nots, method, kw):
    classes = 339 if frames == 8 else 174     # Moments in Time, Something-Something v2
    tam_opts = kw if tm == 'TAM' else None
    sd = original_state_dict('inception_v1', classes, seed=3 * frames + nots, tam=tam_opts)
    save(sd, tmp_path / 'ckpt.pth', prefix=not nots)
    model = build('inception_v1', frames, nots, method, classes, temporal_module_name=tm, **kw)
    load_pretrained(model, str(tmp_path / 'ckpt.pth'))
    x = clip(frames, SIZE[frames], seed=1)
    with torch.no_grad():
        ref = reference_forward('inception_v1', sd, x, not nots, method, kw.get('blending_method', 'sum'))
        assert_same_logits(model(x), ref)


def test_box_average_is_avg_pool3d():
    """The reference's average is the original's F.avg_pool3d (count_include_pad) where that runs."""
    x = torch.randn(2, 3, 5, 9, 8)
    for kernel, stride, padding in [((1, 3, 3), (1, 2, 2), (0, 1, 1)), (3, (2, 2, 2), 1), (2, (1, 2, 2), 0)]:
        k3, s3, p3 = (inception._triple(v) for v in (kernel, stride, padding))
        torch.testing.assert_close(box_average(x, k3, s3, p3), F.avg_pool3d(x, kernel, stride, padding))


def test_s3d_without_t_stride_leaves_one_frame_less():
    """The original S3D's last pool has a 2-frame window: T frames become T-1 without t-stride."""
    for frames in (8, 16):
        assert build('s3d', frames, True, 'max', 5).frames_out == frames - 1
        assert build('i3d', frames, True, 'max', 5).frames_out == frames
        assert build('s3d', frames, False, 'max', 5).frames_out == frames // 8


# Mutations of the reference that the comparison must notice: pool windows shifted or in ceil mode.
MUTATIONS = [
    ('i3d', POOLS_3D, 'pool1', ((1, 3, 3), (1, 2, 2), (0, 0, 0), True)),    # torchvision's ceil mode
    ('i3d', POOLS_3D, 'pool2', ((3, 3, 3), ('s', 2, 2), (1, 0, 0), False)),
    ('s3d', POOLS_3D, 'pool4_s3d', ((3, 3, 3), ('s', 2, 2), (1, 1, 1), False)),  # i3d's last pool
    ('inception_v1', POOLS_2D, 'pool1', (3, 2, 1, False)),                  # padded floor mode
    ('inception_v1', POOLS_2D, 'pool3', (3, 2, 0, False)),                  # floor mode
]


@pytest.mark.parametrize('family, table, name, spec', MUTATIONS)
def test_a_shifted_pool_is_noticed(tmp_path, monkeypatch, family, table, name, spec):
    sd = original_state_dict(family, 10, seed=7)
    save(sd, tmp_path / 'ckpt.pth')
    model = build(family, 8, False, 'max', 10)
    load_pretrained(model, str(tmp_path / 'ckpt.pth'))
    x = clip(8, SIZE[8], seed=2)
    with torch.no_grad():
        out = model(x)
        assert_same_logits(out, reference_forward(family, sd, x))
        monkeypatch.setitem(table, name, spec)
        with pytest.raises(AssertionError):
            assert_same_logits(out, reference_forward(family, sd, x))


@pytest.mark.parametrize('family', ['i3d', 's3d', 'inception_v1'])
def test_batchnorm_eps_is_the_originals(tmp_path, monkeypatch, family):
    """With BatchNorm's default eps (1e-5) instead of the original's 1e-3 the logits differ."""
    sd = original_state_dict(family, 10, seed=11)
    save(sd, tmp_path / 'ckpt.pth')
    x = clip(8, SIZE[8], seed=3)
    ref = reference_forward(family, sd, x)
    monkeypatch.setattr(inception, 'BN_EPS', 1e-5)
    model = build(family, 8, False, 'max', 10)
    load_pretrained(model, str(tmp_path / 'ckpt.pth'))
    with torch.no_grad(), pytest.raises(AssertionError):
        assert_same_logits(model(x), ref)


@pytest.mark.parametrize('file_family, model_family, kw, found', [
    ('s3d', 'i3d', {}, 's3d'), ('i3d', 's3d', {}, 'i3d'), ('s3d-dw', 's3d', {}, 's3d-dw'),
    ('s3d', 's3d-dw', {}, 's3d'), ('inception_v1', 'inception_v1', {'temporal_module_name': 'TAM'},
                                   'inception_v1-TSN')])
def test_checkpoint_of_another_variant_is_a_one_line_error(tmp_path, file_family, model_family, kw, found):
    save(original_state_dict(file_family, 10, seed=1), tmp_path / 'ckpt.pth')
    model = build(model_family, 8, False, 'max', 10, **kw)
    with pytest.raises(SystemExit, match=f'^error: the weights are an original {found} checkpoint'):
        load_pretrained(model, str(tmp_path / 'ckpt.pth'))


def test_converter_leaves_other_families_alone():
    """The Inception check claims nothing of other families, nor their models."""
    check = inception.check_original_inception
    assert check in ORIGINAL_LAYOUTS
    resnet_like = {'conv1.weight': torch.zeros(64, 3, 7, 7), 'layer1.0.conv1.weight': torch.zeros(64, 64, 1, 1)}
    model = build('i3d', 8, False, 'max', 10)
    assert check(resnet_like, model) is None
    sd = original_state_dict('s3d', 10, seed=1)
    assert check(sd, torch.nn.Linear(2, 2)) is None      # not an Inception model: not ours to judge
    assert check(sd, build('s3d', 8, False, 'max', 10)) is None   # names already match: nothing to rename
