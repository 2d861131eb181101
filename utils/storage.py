"""Frame readers: where the frames of a video come from.

Every reader has one method, `read(video_path, frame_numbers) -> uint8 array (N, H, W, 3)`,
and raises FrameReadError naming the file that failed. Folders of JPEGs are implemented here;
LMDB and direct video decoding plug in with the same interface.
"""
import os

import numpy as np
from PIL import Image


class FrameReadError(RuntimeError):
    """A frame or video that cannot be read; the message names the file and the reason."""


class FolderStorage:
    """Frames stored as `<root>/<video_path>/<image_tmpl.format(frame_number)>`."""

    def __init__(self, root: str, image_tmpl: str = '{:05d}.jpg'):
        self.root = root
        self.image_tmpl = image_tmpl

    def frame_path(self, video_path: str, number: int) -> str:
        return os.path.join(self.root, video_path, self.image_tmpl.format(number))

    def read(self, video_path: str, frame_numbers) -> np.ndarray:
        frames = []
        for n in frame_numbers:
            path = self.frame_path(video_path, int(n))
            try:
                with Image.open(path) as img:
                    frames.append(np.asarray(img.convert('RGB')))
            except (OSError, ValueError, SyntaxError) as exc:
                raise FrameReadError(f'{path}: {exc}') from exc
        shapes = {f.shape for f in frames}
        if len(shapes) > 1:
            raise FrameReadError(f'{os.path.join(self.root, video_path)}: frames of different '
                                 f'sizes {sorted(shapes)}')
        return np.stack(frames)
