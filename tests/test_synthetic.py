"""utils/synthetic.py (and its command line tools/make_synthetic_dataset.py): layout,
determinism, time-reversed pairs, killed runs."""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import PY  # (a fast python: tests/forkserver.py)
from PIL import Image

import utils.synthetic as synthetic
from utils.synthetic import (CLASS_NAMES, SPLITS, ensure_synthetic_dataset, generate,
                             render_video, video_rng)

TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tools',
                    'make_synthetic_dataset.py')
TINY = dict(videos_per_class=2, val_per_class=1, height=32, width=40, min_frames=8,
            max_frames=10, progress=False)
PAIRS = [('moving_right', 'moving_left'), ('moving_down', 'moving_up'),
         ('growing', 'shrinking'), ('rotating_clockwise', 'rotating_counterclockwise'),
         ('appearing', 'disappearing')]


def read_list(root, split):
    with open(os.path.join(root, f'{split}.txt')) as f:
        return [line.split() for line in f if line.strip()]


def tree(root):
    """Every file under root (relative path -> bytes)."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, 'rb') as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('syn') / 'data')
    return root, generate(root, seed=0, **TINY)


def test_layout_and_lists(tiny):
    root, summary = tiny
    with open(os.path.join(root, 'categories.txt')) as f:
        assert f.read().splitlines() == CLASS_NAMES
    assert summary['num_classes'] == len(CLASS_NAMES) == 12
    expected = dict(train=2 * 12, val=12, test=12)
    seen = set()
    for split in SPLITS:
        rows = read_list(root, split)
        assert len(rows) == expected[split] == summary['videos'][split]
        labels = [int(label) for *_, label in rows]
        assert sorted(labels) == sorted(list(range(12)) * (expected[split] // 12))
        for path, start, end, _ in rows:
            assert path.startswith('videos/') and path not in seen
            seen.add(path)
            assert start == '1' and 8 <= int(end) <= 10
            frames = sorted(os.listdir(os.path.join(root, path)))
            assert frames == [f'{k:05d}.jpg' for k in range(1, int(end) + 1)]
    assert sorted(os.listdir(os.path.join(root, 'videos'))) == sorted(p[7:] for p in seen)
    with Image.open(os.path.join(root, 'videos', '000000', '00001.jpg')) as img:
        assert img.format == 'JPEG' and img.mode == 'RGB' and img.size == (40, 32)
    assert os.path.isfile(os.path.join(root, '.complete'))
    with open(os.path.join(root, 'README.txt')) as f:
        assert '--seed 0' in f.read()


def test_disk_frames_are_render_video(tiny):
    """A listed video is render_video() of its (seed, split, label, index), JPEG-encoded."""
    root, _ = tiny
    for k, (path, _, end, label) in enumerate(read_list(root, 'val')[:4]):
        frames, meta = render_video(int(label), video_rng(0, 'val', int(label), k // 12),
                                    32, 40, min_frames=8, max_frames=10)
        assert meta['n_frames'] == int(end) == len(frames)
        for i, frame in enumerate(frames, 1):
            encoded = io.BytesIO()
            Image.fromarray(frame).save(encoded, 'JPEG', quality=synthetic.JPEG_QUALITY)
            with open(os.path.join(root, path, f'{i:05d}.jpg'), 'rb') as f:
                assert f.read() == encoded.getvalue()


def test_deterministic_and_seeded(tmp_path):
    opts = dict(TINY, classes=4)
    a = generate(str(tmp_path / 'a'), seed=3, **opts)
    generate(str(tmp_path / 'b'), seed=3, workers=2, **opts)      # workers change nothing
    generate(str(tmp_path / 'c'), seed=4, **opts)
    ta, tb, tc = (tree(str(tmp_path / n)) for n in 'abc')
    assert a['num_classes'] == 4 and ta['categories.txt'] == b''.join(
        n.encode() + b'\n' for n in CLASS_NAMES[:4])
    assert ta == tb
    frames = [k for k in ta if k.endswith('.jpg')]
    assert frames and any(ta[k] != tc.get(k) for k in frames)


@pytest.mark.parametrize('forward, backward', PAIRS)
def test_pairs_are_exact_time_reversals(forward, backward):
    """Same generator state: the partner's video is the same frames in reverse order."""
    for seed in range(3):
        fa, _ = render_video(forward, seed, 32, 40, n_frames=9)
        fb, _ = render_video(backward, seed, 32, 40, n_frames=9)
        assert np.array_equal(fa[::-1], fb)
        assert not np.array_equal(fa, fb)


def test_forward_classes_move_forward():
    for seed in range(10):
        rng = lambda: np.random.default_rng(seed)
        _, m = render_video('moving_right', rng(), 128, 160, n_frames=24)
        assert m['center'][-1, 0] - m['center'][0, 0] >= 0.45 * 160 - 1e-6
        _, m = render_video('moving_down', rng(), 128, 160, n_frames=24)
        assert m['center'][-1, 1] - m['center'][0, 1] >= 0.45 * 128 - 1e-6
        _, m = render_video('growing', rng(), 128, 160, n_frames=24)
        assert np.all(np.diff(m['radius']) > 0) and m['radius'][-1] >= 2 * m['radius'][0]
        _, m = render_video('rotating_clockwise', rng(), 128, 160, n_frames=24)
        assert np.all(np.diff(m['angle']) > 0) and m['angle'][-1] - m['angle'][0] >= 2.0
        _, m = render_video('appearing', rng(), 128, 160, n_frames=24)
        assert m['alpha'][0] == 0 and m['alpha'][-1] == 1 and np.all(np.diff(m['alpha']) >= 0)
        for name in ('static_star', 'static_cross'):
            _, m = render_video(name, rng(), 128, 160, n_frames=24)
            assert np.ptp(m['center'], 0).max() == 0 and np.ptp(m['radius']) == 0


@pytest.mark.parametrize('name, axis, sign', [('moving_left', 0, -1), ('moving_right', 0, 1),
                                              ('moving_up', 1, -1), ('moving_down', 1, 1)])
def test_motion_visible_in_pixels(name, axis, sign):
    """The centroid of what differs from the static background moves the class's way."""
    for seed in range(5):
        frames, meta = render_video(name, seed, 64, 80, n_frames=12)
        diff = np.abs(frames.astype(int) - meta['background']).sum(-1) > 60
        coords = []
        for mask in diff:
            ys, xs = np.nonzero(mask)
            assert xs.size > 20                      # the object is visible in every frame
            coords.append((xs.mean(), ys.mean())[axis])
        travel = sign * (coords[-1] - coords[0]) / (80, 64)[axis]
        assert travel > 0.3 and np.all(sign * np.diff(coords) > -1)


@pytest.mark.parametrize('name, step', [('rotating_clockwise', -1),
                                        ('rotating_counterclockwise', 1)])
def test_wheel_colours_follow_the_turn(name, step):
    """Points of the turning wheel change colour in the wheel's order: backwards through its
    quarters for a clockwise turn (the angle grows), forwards for a counter-clockwise one."""
    colours = np.array(synthetic._WHEEL_COLOURS, float)
    for seed in range(5):
        frames, meta = render_video(name, seed, 64, 80, n_frames=8)
        assert meta['shape'] == 'wheel'
        cx, cy = meta['center'][0]
        r = meta['radius'][0]
        changes = 0
        for a in np.deg2rad(np.arange(0, 360, 45) + 20):
            x, y = int(cx + 0.55 * r * np.cos(a)), int(cy + 0.55 * r * np.sin(a))
            pixel = frames[:, y, x].astype(float)                          # (T, 3)
            quarter = np.linalg.norm(pixel[:, None] - colours[None], axis=2).argmin(1)
            moves = np.diff(quarter) % 4
            assert set(moves) <= {0, step % 4}, (seed, quarter)
            changes += int((moves != 0).sum())
        assert changes >= 8                    # a 200-300 degree turn: 2-3 quarters a point

def test_killed_generation_is_redone(tmp_path, capsys):
    root = str(tmp_path / 'd')
    opts = dict(TINY, classes=2)
    generate(root, **opts)
    whole = tree(root)
    # As if killed: no .complete, a list missing, a half-written video; plus a file of the user.
    os.remove(os.path.join(root, '.complete'))
    os.remove(os.path.join(root, 'test.txt'))
    os.makedirs(os.path.join(root, 'videos', '999999'))
    open(os.path.join(root, 'videos', '999999', '00001.jpg'), 'wb').close()
    with open(os.path.join(root, 'notes.txt'), 'w') as f:
        f.write('mine')
    assert ensure_synthetic_dataset(root, **opts)['num_classes'] == 2
    assert 'Generating the synthetic dataset' in capsys.readouterr().out
    again = tree(root)
    assert again.pop('notes.txt') == b'mine'
    assert again == whole


def test_ensure_is_a_no_op_when_complete(tiny, monkeypatch, capsys):
    root, _ = tiny
    before = tree(root)

    def fail(*args, **kwargs):
        raise AssertionError('generate called on a complete dataset')
    monkeypatch.setattr(synthetic, 'generate', fail)
    assert ensure_synthetic_dataset(root, **TINY) is None
    assert capsys.readouterr().out == '' and tree(root) == before


def test_a_dataset_of_an_older_generator_is_generated_again_with_its_options(tmp_path, capsys):
    root = str(tmp_path / 'old')
    opts = dict(TINY, videos_per_class=1, classes=2)
    generate(root, **opts)
    whole = tree(root)
    marker = os.path.join(root, synthetic.MARKER)
    written = json.load(open(marker))
    assert written.pop('generator') == synthetic.GENERATOR_VERSION
    json.dump(written, open(marker, 'w'))                  # as version 1 wrote it
    os.remove(os.path.join(root, 'videos', '000000', '00001.jpg'))
    # Other options asked for now: the dataset's own are kept.
    assert ensure_synthetic_dataset(root, classes=3)['num_classes'] == 2
    assert 'written by version 1' in capsys.readouterr().out
    assert tree(root) == whole
    assert ensure_synthetic_dataset(root) is None          # current now: left alone


def test_refuses_a_folder_it_did_not_write(tmp_path):
    foreign = tmp_path / 'foreign'
    (foreign / 'videos').mkdir(parents=True)               # even with a videos/ folder
    (foreign / 'train.txt').write_text('my real dataset\n')
    with pytest.raises(FileExistsError, match='not written by'):
        generate(str(foreign), **TINY)
    with pytest.raises(SystemExit, match='error: '):
        ensure_synthetic_dataset(str(foreign), **TINY)
    assert (foreign / 'train.txt').read_text() == 'my real dataset\n'
    assert os.listdir(foreign / 'videos') == []
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert generate(str(empty), **dict(TINY, classes=1))['videos']['train'] == 2


def test_command_line_matches_generate(tmp_path):
    out = subprocess.run([PY, TOOL, '--help'], capture_output=True, text=True)
    assert out.returncode == 0 and '--videos_per_class' in out.stdout
    assert 'moving_left' in out.stdout
    root = str(tmp_path / 'cli')
    subprocess.run([PY, TOOL, '--root', root, '--seed', '5', '--videos_per_class',
                    '2', '--val_per_class', '1', '--height', '32', '--width', '40',
                    '--min_frames', '8', '--max_frames', '10', '--classes', '2', '-q'],
                   check=True, capture_output=True)
    generate(str(tmp_path / 'api'), seed=5, **dict(TINY, classes=2))
    assert tree(root) == tree(str(tmp_path / 'api'))


@pytest.mark.parametrize('name', ['moving_right', 'moving_up', 'growing', 'shrinking',
                                  'rotating_clockwise', 'rotating_counterclockwise'])
def test_flow_carries_the_object_to_its_next_position(name):
    """The flow image at the dot on the object (drawn at half the radius along its angle)
    encodes where the renderer puts the dot in the next frame: right/down are positive, and
    clockwise turns move a point right of the centre downwards."""
    _, meta = render_video(name, 3, 96, 120, n_frames=10)
    c, r, a = meta['center'], meta['radius'], meta['angle']
    dot = c + 0.5 * r[:, None] * np.stack([np.cos(a), np.sin(a)], 1)
    for k, (fx, fy) in enumerate(synthetic._flow_frames(meta)):
        col, row = np.floor(dot[k]).astype(int)           # the pixel whose centre is nearest
        decoded = (np.array([fx[row, col], fy[row, col]], float) - 127.5) \
            * synthetic.FLOW_BOUND / 127.5
        # the field at the pixel centre, not at the exact dot: off by at most the field's
        # change over half a pixel, plus 1/255 of the 40-pixel range
        np.testing.assert_allclose(decoded, dot[k + 1] - dot[k], atol=0.3)
        assert (fx == 128).mean() > 0.5 and (fy == 128).mean() > 0.5      # the background is still


def test_flow_dataset_has_the_same_videos_as_flow_pairs(tmp_path, tiny):
    root, _ = tiny
    flow = str(tmp_path / 'flow')
    generate(flow, seed=0, modality='flow', **TINY)
    rgb_lists, flow_lists = read_list(root, 'train'), read_list(flow, 'train')
    assert [(p, int(e) - 1, y) for p, _, e, y in rgb_lists] == \
        [(p, int(e), y) for p, _, e, y in flow_lists]          # one flow field less
    path, _, end, _ = flow_lists[0]
    files = sorted(os.listdir(os.path.join(flow, path)))
    assert files == sorted(f'{k:05d}_{d}.jpg' for k in range(1, int(end) + 1) for d in 'xy')
    with Image.open(os.path.join(flow, path, '00001_x.jpg')) as img:
        assert img.mode == 'L' and img.size == (40, 32)


def test_flow_faster_than_the_images_hold_is_an_error(tmp_path):
    with pytest.raises(ValueError, match='px a frame'):
        generate(str(tmp_path / 'f'), seed=0, modality='flow', videos_per_class=1,
                 val_per_class=1, height=128, width=160, min_frames=3, max_frames=3,
                 classes=2, progress=False)


def test_library_and_command_line_layers():
    """The generator is a library (utils/synthetic.py, which imports no tool and has no command
    line); tools/make_synthetic_dataset.py is its command line."""
    import tools.make_synthetic_dataset as cli
    assert cli.generate is synthetic.generate
    assert not hasattr(synthetic, 'main') and not hasattr(synthetic, 'arg_parser')
    code = ('import sys, utils.synthetic; '
            'assert not [m for m in sys.modules if m == "tools" or m.startswith("tools.")]; '
            'assert "argparse" not in vars(utils.synthetic)')
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, '-c', code], check=True, cwd=root)


def test_command_line_runs_from_any_folder_and_reports_errors(tmp_path):
    """The tool finds the toolkit from its own path (not the working directory), and a bad
    option is one error line and exit status 1."""
    out = subprocess.run([PY, TOOL, '--root', str(tmp_path / 'x'), '--classes',
                          '99', '-q'], capture_output=True, text=True, cwd=str(tmp_path))
    assert out.returncode == 1 and out.stderr == 'error: classes must be 1..12, got 99\n'
    assert not (tmp_path / 'x').exists()
