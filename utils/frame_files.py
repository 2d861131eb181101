"""The frame files of a video folder: which numbers a name template finds there, and which
template the folder's own files follow.

Extraction (tools/extract_frames.py) writes `00001.jpg 00002.jpg ...`, the datasets'
`{:05d}.jpg` numbered from 1, but frames written by other tools often start at 0 (ffmpeg's
`-start_number 0`, many scripts) or are PNG. The tools read a folder's numbering from its files
(`frame_span`, `guess_template`: the first image file's name), so that a list says which frames
are there, and a run whose template finds nothing says what is there (`describe`).
"""
import os
import re

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
# A numbered image name: anything, the frame number, then the extension (00001.png,
# img_0001.jpg, frame7.jpeg).
_NUMBERED = re.compile(r'(.*?)(\d+)(\.[A-Za-z]+)\Z')


def image_files(names) -> list[str]:
    """The image file names among `names` (a folder's listing), sorted."""
    return sorted(n for n in names if n.lower().endswith(IMAGE_EXTENSIONS))


def frame_span(names, tmpl: str) -> tuple[int, int] | None:
    """(first, last) of the consecutive frames that `tmpl` names among `names`: from 0 when
    the folder has a frame 0 (extraction never writes one), else from 1; None when it has
    neither."""
    names = set(names)
    for first in (0, 1):
        if tmpl.format(first) in names:
            last = first
            while tmpl.format(last + 1) in names:
                last += 1
            return first, last
    return None


def guess_template(names) -> str | None:
    """The name template of a folder's frames, read from its first image file's name
    (`00000.png` -> `{:05d}.png`, `img_0001.jpg` -> `img_{:04d}.jpg`, `frame1.jpg` ->
    `frame{:d}.jpg`), or None when it holds no numbered image file."""
    images = image_files(names)
    match = _NUMBERED.match(images[0]) if images else None
    if match is None:
        return None
    prefix, digits, ext = match.groups()
    prefix = prefix.replace('{', '{{').replace('}', '}}')
    width = f'0{len(digits)}' if digits.startswith('0') and len(digits) > 1 else ''
    return f'{prefix}{{:{width}d}}{ext}'


def describe(folder: str, names=None, shown: int = 2) -> str:
    """What a folder holds, for a message: 'holds 10 images, 00000.png .. 00009.png', 'holds
    no image file (3 other files, e.g. a.txt)', 'is empty' or 'does not exist'."""
    if names is None:
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return 'does not exist'
        except OSError as exc:
            return f'cannot be listed ({exc.strerror})'
    images = image_files(names)
    if images:
        span = images[0] if len(images) == 1 else f'{images[0]} .. {images[-1]}'
        return f'holds {len(images)} image{"s" if len(images) > 1 else ""}, {span}'
    others = sorted(names)
    if others:
        return (f'holds no image file ({len(others)} other file{"s" if len(others) > 1 else ""}'
                f', e.g. {", ".join(others[:shown])})')
    return 'is empty'
