"""The toolkit's synthetic action-recognition dataset: folders of JPEG frames + lists.

The generator as a library (the engine generates the dataset on a first run with it);
tools/make_synthetic_dataset.py is its command line.

Like Something-Something, most classes need temporal reasoning: they come in time-reversed pairs
(moving left/right, up/down, growing/shrinking, rotating clockwise/counter-clockwise,
appearing/disappearing). The second class of a pair is the first one's generation played
backwards, drawn from the same parameter distribution, so a model that ignores frame order
(TSN --without_t_stride) cannot tell them apart. Two more classes are decided by appearance
alone (a static star or cross; no other object takes those shapes).

Each video: a random textured background, 1-3 static distractor shapes, and the main object
(random shape, colour, size, speed, position). The rotating classes turn a wheel of four
quarters in four fixed colours instead: with a known colour order, every point of the wheel
changes colour in the order of the turn, so its direction is visible all over the wheel,
where a turning plain shape shows it only along its outline and its networks trained from
scratch stayed at chance (README, the study).
Everything is drawn from a numpy Generator seeded by (seed, split, label, index), so the output
is byte-identical for the same arguments whatever the number of worker processes.

Layout written under <root> (list lines are "videos/<id> 1 <frames> <label>"):

    categories.txt  train.txt  val.txt  test.txt  README.txt  videos/<id>/00001.jpg ...
    .synthetic (written first: marks the folder as ours)  .complete (written last)

With modality 'flow' it writes the exact optical flow of the same videos instead (grey x/y
pairs <k>_x.jpg, <k>_y.jpg between frames k and k+1): the moving, growing and rotating classes
differ in their flow; appearing, disappearing and the static shapes have none.

    generate(root, seed=0, ...)          write the dataset (refuses a folder it did not write)
    ensure_synthetic_dataset(root, ...)  generate unless a complete one is there
    dataset_modality(root)               'rgb' / 'flow' for a folder it wrote, else None
    render_video(label, rng, ...)        one video's frames and metadata, in memory
"""
import colorsys
import concurrent.futures
import json
import multiprocessing
import os
import shutil

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

# ----------------------------------------------------------------------------- classes

# name -> (motion, played backwards). A reversed class is its partner's generation reversed.
_CLASS_SPEC = {
    'moving_left': ('slide_x', True),
    'moving_right': ('slide_x', False),
    'moving_up': ('slide_y', True),
    'moving_down': ('slide_y', False),          # image y grows downwards
    'growing': ('grow', False),
    'shrinking': ('grow', True),
    'rotating_clockwise': ('rotate', False),    # angle grows from +x towards +y: clockwise
    'rotating_counterclockwise': ('rotate', True),
    'appearing': ('appear', False),
    'disappearing': ('appear', True),
    'static_star': ('static_star', False),
    'static_cross': ('static_cross', False),
}
CLASS_NAMES = list(_CLASS_SPEC)

SPLITS = ('train', 'val', 'test')
JPEG_QUALITY = 90
MARKER = '.synthetic'          # written first: says the folder is ours even if killed
# The version of what the generator draws: raised when the same options give other videos
# (2: rotations of 200-300 degrees and a larger orientation dot; 3: the rotating classes turn a
# four-colour wheel, and no object carries a dot), so that a dataset written by an older version
# is regenerated instead of silently giving other numbers.
GENERATOR_VERSION = 3
COMPLETE = '.complete'         # written last: the dataset is whole
_OUR_FILES = ('train.txt', 'val.txt', 'test.txt', 'categories.txt', 'README.txt')

# ----------------------------------------------------------------------------- shapes


def _regular(n: int, phase: float = 0.0) -> np.ndarray:
    a = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(a), np.sin(a)], 1)


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return _regular(2 * points) * radii[:, None]


def _cross(half_width: float = 0.33) -> np.ndarray:
    w = half_width
    return np.array([(1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w),
                     (-w, -w), (-w, -1), (w, -1), (w, -w)], dtype=float)


def _quarter(k: int) -> np.ndarray:
    """Quarter k of the unit disc: the centre and the arc from k*90 to (k+1)*90 degrees."""
    a = np.deg2rad(np.linspace(90 * k, 90 * (k + 1), 11))
    return np.concatenate([[(0.0, 0.0)], np.stack([np.cos(a), np.sin(a)], 1)])


# Unit shapes (circumradius 1), a vertex or arm along +x.
_SHAPES = {
    'circle': _regular(40),
    'square': _regular(4),
    'triangle': _regular(3),
    'pentagon': _regular(5),
    'hexagon': _regular(6),
    'star': _star(),
    'cross': _cross(),
}
# The rotating classes' wheel: quarter k (clockwise on screen from the angle) in colour k.
_WHEEL_COLOURS = ((225, 35, 35), (245, 215, 30), (35, 175, 60), (40, 90, 235))
_WHEEL_QUARTERS = [_quarter(k) for k in range(4)]
# Star and cross are kept for the appearance classes, so shape alone decides those.
_COMMON_SHAPES = ('circle', 'square', 'triangle', 'pentagon', 'hexagon')
_SUPERSAMPLE = 4               # antialiasing: shapes are drawn at 4x and box-filtered
_OUTLINE = (25, 25, 25)        # a dark outline keeps objects visible on any background
_GRAIN = 3.0                   # static pixel noise of the background (std); costs JPEG bytes


def _random_colour(rng, saturation=(0.6, 1.0), value=(0.75, 1.0)) -> tuple:
    """A random hue; the default is saturated and bright, to stand out from backgrounds."""
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*saturation), rng.uniform(*value))
    return (int(r * 255), int(g * 255), int(b * 255))


def _composite(canvas: np.ndarray, shape: str, cx: float, cy: float, r: float, angle: float,
               fill: tuple, alpha: float = 1.0, outline: bool = True) -> None:
    """Draw one antialiased, outlined shape onto the float canvas (H, W, 3). The 'wheel' is
    a circle filled with its four coloured quarters (`fill` is not used)."""
    h, w = canvas.shape[:2]
    x0, y0 = max(int(np.floor(cx - r)) - 1, 0), max(int(np.floor(cy - r)) - 1, 0)
    x1, y1 = min(int(np.ceil(cx + r)) + 2, w), min(int(np.ceil(cy + r)) + 2, h)
    if alpha <= 0 or x1 <= x0 or y1 <= y0 or r <= 0:
        return
    ss = _SUPERSAMPLE
    c, s = np.cos(angle), np.sin(angle)

    def points(unit_shape, radius):
        x, y = unit_shape.T                                 # rotated by `angle`, scaled, placed
        p = (np.stack([x * c - y * s, x * s + y * c], 1) * radius + (cx - x0, cy - y0)) * ss
        return [tuple(q) for q in p]

    wheel = shape == 'wheel'
    unit = _SHAPES['circle' if wheel else shape]
    parts = zip(_WHEEL_QUARTERS, _WHEEL_COLOURS) if wheel else [(unit, fill)]

    # Transparent pixels are (0,0,0,0), so the box filter yields premultiplied colour.
    patch = Image.new('RGBA', ((x1 - x0) * ss, (y1 - y0) * ss), (0, 0, 0, 0))
    draw = ImageDraw.Draw(patch)
    border = max(0.8, 0.12 * r) if outline else 0.0
    if outline:
        draw.polygon(points(unit, r), fill=_OUTLINE + (255,))
    if r > border:
        for part, colour in parts:
            draw.polygon(points(part, r - border), fill=tuple(colour) + (255,))
    p = np.asarray(patch.reduce(ss), dtype=np.float32)
    cover = p[..., 3:] * (alpha / 255.0)
    region = canvas[y0:y1, x0:x1]
    region *= 1.0 - cover
    region += p[..., :3] * alpha


# ----------------------------------------------------------------------------- one video


def _background(rng, h: int, w: int) -> np.ndarray:
    """Smooth noise, a gradient or stripes in muted random colours, plus static grain.

    Muted (random tints of one grey level) so that the saturated main object stays salient.
    """
    grey = rng.uniform(80, 175)
    c1, c2 = grey + rng.uniform(-45, 45, (2, 3))
    kind = rng.integers(3)
    if kind == 0:                                          # smooth noise: upsampled random grid
        gh, gw = rng.integers(2, 6, size=2)
        grid = (grey + rng.uniform(-45, 45, (gh, gw, 3))).astype(np.uint8)
        bg = np.asarray(Image.fromarray(grid).resize((w, h), Image.BICUBIC), np.float32)
    else:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        theta = rng.uniform(0, np.pi)
        proj = xx * np.cos(theta) + yy * np.sin(theta)
        if kind == 1:                                      # linear gradient
            t = (proj - proj.min()) / max(np.ptp(proj), 1e-6)
        else:                                              # sinusoidal stripes
            period = rng.uniform(0.1, 0.4) * max(h, w)
            t = 0.5 + 0.5 * np.sin(2 * np.pi * proj / period + rng.uniform(0, 2 * np.pi))
        bg = c1 + t[..., None] * (c2 - c1)
    bg = bg + rng.normal(0, _GRAIN, (h, w, 1))
    return np.clip(bg, 0, 255).astype(np.float32)


def _timeline(rng, motion: str, h: int, w: int, n: int) -> dict:
    """The main object's shape and its per-frame centre, radius, angle and opacity."""
    s = min(h, w)
    t = np.linspace(0.0, 1.0, n)
    shape = ('star' if motion == 'static_star' else 'cross' if motion == 'static_cross'
             else _COMMON_SHAPES[rng.integers(len(_COMMON_SHAPES))])
    r = rng.uniform(0.15, 0.22) * s
    angle0 = rng.uniform(0, 2 * np.pi)
    cx = np.full(n, rng.uniform(r, w - r))
    cy = np.full(n, rng.uniform(r, h - r))
    radius, angle, alpha = np.full(n, r), np.full(n, angle0), np.ones(n)
    if motion in ('slide_x', 'slide_y'):
        # Travel 45% of the frame or more at constant speed, with a small sideways drift.
        along, across = (w, h) if motion == 'slide_x' else (h, w)
        dist = rng.uniform(0.45 * along, max(along - 2 * r, 0.45 * along))
        start = rng.uniform(r, max(along - r - dist, r))
        pos = start + dist * t
        side = rng.uniform(r, across - r) + rng.uniform(-0.05, 0.05) * s * t
        cx, cy = (pos, side) if motion == 'slide_x' else (side, pos)
    elif motion == 'grow':
        # At least 2.4x larger by the end, geometric so the growth looks steady.
        r0, r1 = rng.uniform(0.06, 0.09) * s, rng.uniform(0.22, 0.28) * s
        radius = r0 * (r1 / r0) ** t
        cx = np.full(n, rng.uniform(r1, w - r1))
        cy = np.full(n, rng.uniform(r1, h - r1))
    elif motion == 'rotate':
        # The wheel turns 200-300 degrees: 25-38 between 8 uniformly sampled frames, under half
        # a quarter, so each point steps at most one colour on, and the turn stays under 360
        # degrees, so its direction is clear.
        shape = 'wheel'
        radius = np.full(n, rng.uniform(0.17, 0.24) * s)
        cx = np.full(n, rng.uniform(radius[0], w - radius[0]))
        cy = np.full(n, rng.uniform(radius[0], h - radius[0]))
        angle = angle0 + np.deg2rad(rng.uniform(200, 300)) * t
    elif motion == 'appear':
        # Fade in over 15-35% of the video, or pop in, around the middle of the video.
        mid = rng.uniform(0.35, 0.65)
        if rng.random() < 0.5:
            span = rng.uniform(0.15, 0.35)
            alpha = np.clip((t - (mid - span / 2)) / span, 0.0, 1.0)
        else:
            alpha = (t >= mid).astype(float)
    return dict(shape=shape, center=np.stack([cx, cy], 1), radius=radius, angle=angle,
                alpha=alpha)


def _plan(label: int, rng, h: int, w: int, n: int) -> dict:
    """Everything one video needs, in time order (reversed classes already reversed)."""
    motion, backwards = _CLASS_SPEC[CLASS_NAMES[label]]
    canvas = _background(rng, h, w)
    s = min(h, w)
    for _ in range(rng.integers(1, 4)):
        # Static distractors: smaller, paler, no outline, so clutter, not signal.
        shape = _COMMON_SHAPES[rng.integers(len(_COMMON_SHAPES))]
        r = rng.uniform(0.06, 0.11) * s
        colour = _random_colour(rng, saturation=(0.2, 0.5), value=(0.45, 0.9))
        _composite(canvas, shape, rng.uniform(0, w), rng.uniform(0, h), r,
                   rng.uniform(0, 2 * np.pi), colour, outline=False)
    fill = _random_colour(rng)
    plan = _timeline(rng, motion, h, w, n)
    if backwards:
        plan = {k: v[::-1].copy() if isinstance(v, np.ndarray) else v for k, v in plan.items()}
    plan.update(label=label, name=CLASS_NAMES[label], n_frames=n, fill=fill, background=canvas)
    return plan


def _frames(plan: dict):
    """Yield the video's frames, uint8 (H, W, 3), in order."""
    for k in range(plan['n_frames']):
        canvas = plan['background'].copy()
        _composite(canvas, plan['shape'], *plan['center'][k], plan['radius'][k],
                   plan['angle'][k], plan['fill'], plan['alpha'][k])
        yield np.rint(canvas).astype(np.uint8)


# Flow images store 128 + displacement * 127.5 / FLOW_BOUND (pixels a frame), clipped to 0..255.
FLOW_BOUND = 20.0


def _flow_frames(plan: dict):
    """Yield the exact optical flow from each frame to the next (n - 1 fields) as grey uint8
    (x, y) images (H, W): the main object moves as a whole (translation, rotation about its
    centre, scaling); the background and distractors do not move."""
    h, w = plan['background'].shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5          # pixel centres
    # No point of the object moves further than its centre, plus its rim's turn and growth.
    fastest = (np.hypot(*np.diff(plan['center'], axis=0).T).max()
               + plan['radius'].max() * np.abs(np.diff(plan['angle'])).max()
               + np.abs(np.diff(plan['radius'])).max())
    if fastest > FLOW_BOUND:
        raise ValueError(f'the flow of this video reaches {fastest:.1f} px a frame, more than '
                         f'the {FLOW_BOUND:.0f} px flow images hold: use more frames')
    silhouette = 'circle' if plan['shape'] == 'wheel' else plan['shape']
    for k in range(plan['n_frames'] - 1):
        cover = np.zeros((h, w, 3), np.float32)                    # where the object is
        _composite(cover, silhouette, *plan['center'][k], plan['radius'][k],
                   plan['angle'][k], (255, 255, 255), 1.0, outline=False)
        cover = cover[..., 0] / 255.0
        (cx0, cy0), (cx1, cy1) = plan['center'][k], plan['center'][k + 1]
        scale = plan['radius'][k + 1] / plan['radius'][k]
        turn = plan['angle'][k + 1] - plan['angle'][k]
        px, py = xx - cx0, yy - cy0                                # relative to the centre
        c, s = np.cos(turn), np.sin(turn)
        dx = cx1 + scale * (c * px - s * py) - xx
        dy = cy1 + scale * (s * px + c * py) - yy
        yield tuple(np.clip(np.rint(d * cover * 127.5 / FLOW_BOUND + 127.5), 0, 255
                            ).astype(np.uint8) for d in (dx, dy))


def _label_index(label) -> int:
    if isinstance(label, str):
        return CLASS_NAMES.index(label)
    if not 0 <= int(label) < len(CLASS_NAMES):
        raise ValueError(f'label {label} out of range 0..{len(CLASS_NAMES) - 1}')
    return int(label)


def video_rng(seed: int, split: str, label: int, index: int) -> np.random.Generator:
    """The generator of video `index` of class `label` in `split` (independent of workers)."""
    return np.random.default_rng([seed, SPLITS.index(split), label, index])


def render_video(label, rng, height: int = 128, width: int = 160, n_frames: int | None = None,
                 min_frames: int = 24, max_frames: int = 48) -> tuple[np.ndarray, dict]:
    """Frames (T, H, W, 3) uint8 of one video of `label` (index or name) and its metadata.

    `rng` is a numpy Generator or an int seed. Without n_frames the length is drawn in
    [min_frames, max_frames] first, as generate() does, so render_video(label,
    video_rng(seed, split, label, index), ...) is that video of the dataset. Metadata: name,
    label, shape, n_frames, per-frame center (T, 2) as (x, y), radius, angle (radians,
    clockwise on screen), alpha, and the static background with its distractors (H, W, 3).
    """
    label = _label_index(label)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if n_frames is None:
        n_frames = int(rng.integers(min_frames, max_frames + 1))
    plan = _plan(label, rng, height, width, n_frames)
    frames = np.stack(list(_frames(plan)))
    meta = dict(plan, background=np.rint(plan['background']).astype(np.uint8))
    return frames, meta


def _write_video(task: tuple) -> int:
    """Worker: render one video into <root>/videos/<id>/ and return its frame count (flow:
    the n - 1 flow fields between its n frames, as <k>_x.jpg and <k>_y.jpg)."""
    root, seed, split, label, index, video_id, h, w, min_frames, max_frames, modality = task
    rng = video_rng(seed, split, label, index)
    n = int(rng.integers(min_frames, max_frames + 1))
    folder = os.path.join(root, 'videos', video_id)
    os.makedirs(folder, exist_ok=True)
    plan = _plan(label, rng, h, w, n)
    if modality == 'flow':
        for k, pair in enumerate(_flow_frames(plan), 1):
            for d, image in zip('xy', pair):
                Image.fromarray(image).save(os.path.join(folder, f'{k:05d}_{d}.jpg'),
                                            quality=JPEG_QUALITY)
        return n - 1
    for k, frame in enumerate(_frames(plan), 1):
        Image.fromarray(frame).save(os.path.join(folder, f'{k:05d}.jpg'), quality=JPEG_QUALITY)
    return n


# ----------------------------------------------------------------------------- the dataset


def _prepare_root(root: str) -> None:
    """Make `root` ready: new, empty, or ours (then our files are removed, nothing else)."""
    if os.path.exists(root) and not os.path.isdir(root):
        raise NotADirectoryError(f'{root} exists and is not a folder')
    if os.path.isdir(root) and os.listdir(root):
        ours = os.path.exists(os.path.join(root, COMPLETE)) or \
            os.path.exists(os.path.join(root, MARKER))
        if not ours:
            raise FileExistsError(
                f'{root} is not empty and was not written by make_synthetic_dataset.py (no '
                f'{COMPLETE} or {MARKER}); refusing to write into it: choose a new or empty folder')
        # .complete goes first, so a regeneration killed from here on is seen as unfinished.
        for name in (COMPLETE,) + _OUR_FILES + tuple(f + '.tmp' for f in _OUR_FILES):
            path = os.path.join(root, name)
            if os.path.isfile(path):
                os.remove(path)
        shutil.rmtree(os.path.join(root, 'videos'), ignore_errors=True)
    os.makedirs(root, exist_ok=True)


def _write_atomic(path: str, text: str) -> None:
    """Write via a temporary file and rename, so readers never see a half-written file."""
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def _command_line(opts: dict) -> str:
    # The folder is left out, so that a dataset's files do not depend on where it was written.
    args = ' '.join(f'--{k} {v}' for k, v in opts.items())
    return f'python3 tools/make_synthetic_dataset.py --root <this folder> {args}'


# The default dataset: sized so that the README's Quickstart (TAM-ResNet-18, 8 frames at 64 px,
# 4 epochs) trains, dataset included, in under 3 minutes on a 2-core CPU without native bf16
# and still learns time (80.83 val top-1, measured: README). tools/make_synthetic_dataset.py
# takes its defaults from here.
DEFAULTS = dict(seed=0, videos_per_class=80, val_per_class=10, height=64, width=80,
                min_frames=24, max_frames=48)


def generate(root: str, seed: int = DEFAULTS['seed'],
             videos_per_class: int = DEFAULTS['videos_per_class'],
             val_per_class: int = DEFAULTS['val_per_class'], height: int = DEFAULTS['height'],
             width: int = DEFAULTS['width'], min_frames: int = DEFAULTS['min_frames'],
             max_frames: int = DEFAULTS['max_frames'], classes: int | None = None,
             workers: int = 1, progress: bool = True, modality: str = 'rgb') -> dict:
    """Write the dataset to `root` and return a summary (classes, videos per split, path).

    modality 'flow' writes the same videos' exact optical flow instead of their frames
    (`--modality flow` of the toolkit; list lengths count flow fields, one less than frames).

    classes: keep only the first N classes. Same arguments give byte-identical files for any
    `workers`. Refuses a non-empty folder it did not write; a folder it wrote (complete or
    not) has its own files replaced and anything else left alone. Video ids run across
    train, val, test; within a split line k is class k % classes, its video k // classes.
    """
    num_classes = len(CLASS_NAMES) if classes is None else int(classes)
    if not 1 <= num_classes <= len(CLASS_NAMES):
        raise ValueError(f'classes must be 1..{len(CLASS_NAMES)}, got {classes}')
    if seed < 0:
        raise ValueError(f'seed must be >= 0, got {seed}')
    if videos_per_class < 1 or val_per_class < 1:
        raise ValueError('videos_per_class and val_per_class must be >= 1')
    if not 2 <= min_frames <= max_frames:
        raise ValueError(f'need 2 <= min_frames <= max_frames, got {min_frames}, {max_frames}')
    if min(height, width) < 16:
        raise ValueError(f'frames must be at least 16x16, got {height}x{width}')
    if modality not in ('rgb', 'flow'):
        raise ValueError(f"modality must be 'rgb' or 'flow', got {modality!r}")
    opts = dict(seed=seed, videos_per_class=videos_per_class,
                val_per_class=val_per_class, height=height, width=width,
                min_frames=min_frames, max_frames=max_frames, classes=num_classes)
    if modality == 'flow':
        opts['modality'] = 'flow'           # rgb stays implicit: old READMEs read the same

    _prepare_root(root)
    with open(os.path.join(root, MARKER), 'w') as f:
        json.dump(dict(opts, generator=GENERATOR_VERSION), f)

    # Videos are numbered across splits; within a split the classes are interleaved.
    tasks, entries = [], {s: [] for s in SPLITS}
    per_split = dict(train=videos_per_class, val=val_per_class, test=val_per_class)
    for split in SPLITS:
        for index in range(per_split[split]):
            for label in range(num_classes):
                video_id = f'{len(tasks):06d}'
                tasks.append((root, seed, split, label, index, video_id, height, width,
                              min_frames, max_frames, modality))
                entries[split].append((video_id, label))

    bar = tqdm(total=len(tasks), desc='synthetic dataset', unit='video', disable=not progress)
    lengths = []
    if workers > 1:
        # fork where there is one: spawn would re-import the caller's main script (train.py
        # and torch, or an unguarded script) in every worker. Workers use only numpy and PIL.
        method = 'fork' if 'fork' in multiprocessing.get_all_start_methods() else 'spawn'
        ctx = multiprocessing.get_context(method)
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            for n in pool.map(_write_video, tasks, chunksize=max(1, len(tasks) // (16 * workers))):
                lengths.append(n)
                bar.update()
    else:
        for task in tasks:
            lengths.append(_write_video(task))
            bar.update()
    bar.close()

    frames_of = {task[5]: n for task, n in zip(tasks, lengths)}
    names = CLASS_NAMES[:num_classes]
    _write_atomic(os.path.join(root, 'README.txt'),
                  'Synthetic action-recognition dataset (temporal classes in time-reversed '
                  'pairs),\ngenerated by tools/make_synthetic_dataset.py with:\n\n'
                  f'    {_command_line(opts)}\n\nOptions: {json.dumps(opts)}\n'
                  f'Classes ({num_classes}): {", ".join(names)}\n'
                  'Lists: "videos/<id> <first frame> <last frame> <label>", frames 1-based.\n')
    _write_atomic(os.path.join(root, 'categories.txt'), ''.join(n + '\n' for n in names))
    for split in SPLITS:                                   # the lists last, then the marker
        lines = [f'videos/{v} 1 {frames_of[v]} {label}\n' for v, label in entries[split]]
        _write_atomic(os.path.join(root, f'{split}.txt'), ''.join(lines))
    with open(os.path.join(root, COMPLETE), 'w') as f:
        f.write('ok\n')
    return dict(root=root, num_classes=num_classes, classes=names,
                videos={s: len(entries[s]) for s in SPLITS}, frames=int(sum(lengths)))


def _marker(root: str) -> dict | None:
    """The options a folder generate() wrote was made with (its marker), None otherwise."""
    try:
        with open(os.path.join(root, MARKER)) as f:
            opts = json.load(f)
    except (OSError, ValueError):
        return None
    return opts if isinstance(opts, dict) else None


def dataset_modality(root: str) -> str | None:
    """'rgb' or 'flow' for a folder generate() wrote, None otherwise."""
    opts = _marker(root)
    return None if opts is None else opts.get('modality', 'rgb')


def ensure_synthetic_dataset(root: str, **kwargs) -> dict | None:
    """Generate the dataset in `root` unless a complete one of this generator version is there
    (then return None). A complete dataset of an older version is generated again with its own
    options (its marker's), so that it holds the videos those options give today.

    kwargs go to generate(); workers defaults to the CPU count (at most 4): it is a first run's
    wait, and the files do not depend on it.
    """
    if os.path.isfile(os.path.join(root, COMPLETE)):
        opts = _marker(root) or {}
        version = opts.pop('generator', 1)
        if version == GENERATOR_VERSION or not opts:
            other = {k: v for k, v in opts.items() if k in DEFAULTS and v != DEFAULTS[k]}
            if other and set(kwargs) <= {'modality'}:     # (a call with sizes: theirs)
                print(f'note: {root} holds the synthetic dataset with other options than '
                      f'today\'s default ({", ".join(f"{k} {v}" for k, v in other.items())}): '
                      f'the README\'s numbers are for the default; delete the folder to '
                      f'generate it again', flush=True)
            return None
        print(f'{root} was written by version {version} of the synthetic generator, which draws '
              f'other videos than version {GENERATOR_VERSION}: generating it again with its '
              f'options', flush=True)
        kwargs = dict(kwargs, **opts)
    kwargs.setdefault('workers', min(4, os.cpu_count() or 1))
    print(f'Generating the synthetic dataset in {root} (one time; '
          f'tools/make_synthetic_dataset.py, seed {kwargs.get("seed", 0)})', flush=True)
    try:
        return generate(root, **kwargs)
    except FileExistsError as exc:
        raise SystemExit(f'error: {exc}') from exc
