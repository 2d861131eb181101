"""The pixel limit of every image and video frame the toolkit decodes.

A 2 KB JPEG can declare 60000 x 60000 pixels (10 GB once decoded), and a video stream's header
any size: a decoder allocates what the header says. Every reader checks the header's size
against a limit before decoding, so a crafted or damaged file is one unreadable frame (counted
under --max_bad_ratio), never an exhausted memory.
"""
from utils.errors import FrameReadError

# The most pixels an image (a frame, a flow image) may declare by default: 8K DCI (8192 x 4320),
# more than any camera's video frame; --max_pixels raises it.
MAX_PIXELS = 8192 * 4320


class TooLargeError(FrameReadError):
    """An image or video frame whose header declares more pixels than the limit (max_pixels)."""


def check_pixels(width: int, height: int, max_pixels: int, name: str) -> None:
    """TooLargeError naming `name` if a width x height image is over `max_pixels`."""
    if width * height > max_pixels:
        raise TooLargeError(f'{name}: {width}x{height} pixels is more than the limit of '
                            f'{max_pixels} (--max_pixels; a damaged or crafted file, or a '
                            f'larger image than any video frame); raise --max_pixels to read it')
