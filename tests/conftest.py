"""Shared fixtures: tiny frame datasets written by the tests themselves."""
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: takes more than about 10 s (deselect with -m "not slow")')


# The tests' subprocesses run the entrypoints and tools as a user does; PY starts each in
# milliseconds from a server that imported torch once (tests/forkserver.py), else it is
# sys.executable. Not for commands that must start elsewhere (another network namespace) or
# whose own children a test inspects (torchrun's workers): those use sys.executable.
import forkserver  # noqa: E402

_SOCKETS = __import__('tempfile').mkdtemp(prefix='fastpython-')
PY = forkserver.start(_SOCKETS) or sys.executable


def pytest_unconfigure(config):
    forkserver.stop()
    __import__('shutil').rmtree(_SOCKETS, ignore_errors=True)


def make_config(*argv, num_classes: int | None = None, entrypoint: str = 'train'):
    """The Config a command line gives (parsed, validated, frozen, as the entrypoints do), for
    `num_classes` classes when given."""
    from opts import arg_parser, parse_config
    cfg, _, _ = parse_config(arg_parser(), [str(a) for a in argv], entrypoint)
    return cfg.with_classes(num_classes) if num_classes else cfg


def model_config(groups: int = 8, **kw):
    """A models.config.ModelConfig of `groups` frames (the keyword older tests used), the other
    fields as given or their defaults."""
    from models.config import ModelConfig
    return ModelConfig(frames=groups, **kw)


def tiny_synthetic(root: str, videos_per_class: int = 2, classes: int = 4) -> str:
    """A tiny synthetic dataset at `root` (32x40 frames, 8-10 a video, one val video a class)
    for the tests that train and evaluate end to end; returns `root`."""
    from utils.synthetic import generate
    generate(root, seed=0, videos_per_class=videos_per_class, val_per_class=1, height=32,
             width=40, min_frames=8, max_frames=10, classes=classes, progress=False)
    return root


def write_video(folder: str, frames: int, h: int = 24, w: int = 32, seed: int = 0,
                tmpl: str = '{:05d}.jpg', start: int = 1) -> None:
    """A video of `frames` JPEGs whose frame k has mean brightness growing with k."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(frames):
        img = np.full((h, w, 3), 8 * k % 256, np.uint8) + rng.integers(0, 4, (h, w, 3), np.uint8)
        Image.fromarray(img).save(os.path.join(folder, tmpl.format(start + k)), quality=95)


def write_dataset(root, write, first_length: int) -> str:
    """Six videos of 2 classes, `first_length` + i frames each, written by write(folder, n, i),
    and the same train/val/test lists of them (synthetic layout)."""
    lines = []
    for i in range(6):
        n = first_length + i
        write(str(root / 'videos' / f'v{i}'), n, i)
        lines.append(f'videos/v{i} 1 {n} {i % 2}')
    for split in ('train', 'val', 'test'):
        (root / f'{split}.txt').write_text('\n'.join(lines) + '\n')
    (root / 'categories.txt').write_text('a\nb\n')
    return str(root)


@pytest.fixture
def frame_dataset(tmp_path):
    """A datadir with lists of 6 short videos (10-15 frames) of 2 classes."""
    return write_dataset(tmp_path / 'data', lambda f, n, i: write_video(f, n, seed=i), 10)


def write_flow_video(folder: str, frames: int, h: int = 24, w: int = 32,
                     tmpl: str = '{:05d}_{}.jpg') -> None:
    """Optical-flow images of `frames` frames: grey x/y pairs whose constant values encode the
    frame number k (x = 10k, y = 10k + 5, mod 250), so tests can read the stacking order."""
    os.makedirs(folder, exist_ok=True)
    for k in range(1, frames + 1):
        for d, v in (('x', 10 * k % 250), ('y', (10 * k + 5) % 250)):
            Image.fromarray(np.full((h, w), v, np.uint8), 'L').save(
                os.path.join(folder, tmpl.format(k, d)), quality=95)


@pytest.fixture
def flow_dataset(tmp_path):
    """A datadir like frame_dataset's (9-14 frames), holding optical-flow image pairs."""
    return write_dataset(tmp_path / 'flow', lambda f, n, i: write_flow_video(f, n), 9)


def encode_moving_square(path: str, codec: str, frames: int, direction: int, seed: int,
                         h: int = 48, w: int = 64, side: int = 12) -> None:
    """A video file: a bright square crossing a dark textured frame left-to-right (+1) or
    right-to-left (-1), encoded with PyAV."""
    import av
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    top = int(rng.integers(0, h - side))
    with av.open(path, 'w') as c:
        s = c.add_stream(codec, rate=10)
        s.width, s.height, s.pix_fmt = w, h, 'yuv420p'
        for k in range(frames):
            x = int((w - side) * k / (frames - 1))
            x = x if direction > 0 else w - side - x
            img = background.copy()
            img[top:top + side, x:x + side] = 230
            for packet in s.encode(av.VideoFrame.from_ndarray(img, format='rgb24')):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)


@pytest.fixture
def one_thread():
    """Torch on one thread: tiny convs run far faster so than with idle OpenMP threads on a
    shared, oversubscribed CPU. Use with ``pytestmark = pytest.mark.usefixtures('one_thread')``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# The marked picture of a phone video: a red band along the top of an upright portrait frame.
PHONE_H, PHONE_W, PHONE_BAND = 48, 32, 8


def encode_phone_video(path: str, stored: str = 'rotated', frames: int = 6) -> None:
    """A portrait video whose upright picture (PHONE_W x PHONE_H) has a red band along its top
    and a blue body, stored as `stored`: 'rotated' as a phone stores it (landscape pictures,
    the top on the left, and a display matrix that turns them a quarter clockwise), 'sideways'
    the same pictures without the matrix, 'upright' portrait pictures. Lossless (x264 qp 0,
    4:4:4), so every way of storing it decodes to the same pixels once upright."""
    import av
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with av.open(path, 'w') as c:
        s = c.add_stream('libx264', rate=10)
        s.pix_fmt, s.options = 'yuv444p', {'qp': '0'}
        s.width, s.height = (PHONE_W, PHONE_H) if stored == 'upright' else (PHONE_H, PHONE_W)
        if stored == 'rotated':
            s.set_display_rotation(-90)          # FFmpeg's angle of a phone's portrait video
        for k in range(frames):
            up = np.zeros((PHONE_H, PHONE_W, 3), np.uint8)
            up[:, :] = (20, 40, 200 - 10 * k)
            up[:PHONE_BAND] = (230, 20, 20)
            up[PHONE_BAND:, :4] = (20, 200, 20)  # a green stripe on the left: no mirror image
            picture = up if stored == 'upright' else np.rot90(up, 1)    # top to the left
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format='rgb24')
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)


def is_upright_phone_picture(img: np.ndarray) -> bool:
    """Whether an (H, W, 3) frame of encode_phone_video (any size) has its red band on top
    and its green stripe on the left, and nowhere else."""
    img = np.asarray(img).astype(int)
    h, w = img.shape[:2]
    red = (img[..., 0] > 150) & (img[..., 1] < 100) & (img[..., 2] < 100)
    green = (img[..., 1] > 150) & (img[..., 0] < 100)
    band, stripe = h * PHONE_BAND // PHONE_H, w * 4 // PHONE_W
    return (h > w and red[:max(1, band - 1)].all() and not red[band + 1:].any()
            and green[band + 1:, :max(1, stripe - 1)].all() and not green[:, stripe + 1:].any())
