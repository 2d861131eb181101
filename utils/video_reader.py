"""Clips read straight from video files with PyAV (`--storage video`, or `--video_backend pyav`): no frame extraction.

Frame k (1-based, as in the list files) is the k-th frame that decoding the first video stream
yields, the frame tools/extract_frames.py writes as `{k:05d}.jpg`; with the same `short_side`
the clips equal the extracted frames up to JPEG round-off.

How a clip is found without decoding the whole video: demuxing the file (reading packets, no
decoding; ~1% of the decoding time) gives every frame's pts and which frames are keyframes, so
frame k is the k-th smallest pts. For a wanted frame past a keyframe that is far enough ahead,
the reader seeks to that keyframe and decodes forward, numbering each decoded frame by looking
up its pts. This holds only where one packet is one frame (FRAME_PER_PACKET_CODECS, checked by
the tests), so it is checked all along: the first decoded frame must have the smallest pts,
and after a seek the frames must come out on the index, at or before the wanted frame and then
one after another. Any failed check (no pts, an unknown pts, a jump, a seek that lands after
the wanted frame, the end reached after a seek) discards the attempt and decodes sequentially
from the start, counting; other codecs always decode sequentially. So a clip is always the
exact frames, and seeking only changes the speed. (Converting pts to numbers with the frame
rate instead would need no demuxing but gives wrong frames after a pts gap that no decoded
frame shows, in mkv and avi files, which say nothing of such gaps in their headers.)
"""
import bisect
import os

import numpy as np
from PIL import Image

from utils.errors import FrameReadError, VideoMissingError
from utils.pixel_limit import MAX_PIXELS, check_pixels

VIDEO_EXTENSIONS = ('.mp4', '.webm', '.mkv', '.avi', '.mov', '.m4v', '.mpg', '.mpeg', '.flv',
                    '.3gp', '.ogv', '.wmv')

# Codecs whose packets each decode to one frame, in pts order (h264, mpeg4 and vp9 checked by
# tests/test_video_reader.py; not e.g. vp8, whose alt-ref packets decode to no frame).
FRAME_PER_PACKET_CODECS = ('h264', 'mpeg4', 'vp9')
# Seek only when it skips more than this many frames: a seek and decoder flush cost about one
# frame's decoding (measured on 300-frame 256x340 libx264 videos, GOP 12, 30 and 250).
MIN_SEEK_GAP = 4


def resized_size(w: int, h: int, short_side: int) -> tuple:
    """(w, h) with the shorter side scaled to `short_side` (0: unchanged), aspect kept."""
    if not short_side or min(w, h) == short_side:
        return w, h
    if w <= h:
        return short_side, max(1, round(h * short_side / w))
    return max(1, round(w * short_side / h)), short_side


# The PIL operation that puts a decoded picture upright, for each (transposed, rows flipped,
# columns flipped) of display_orientation: e.g. transposed then columns flipped is a quarter
# turn clockwise.
_UPRIGHT = {(False, False, True): Image.Transpose.FLIP_LEFT_RIGHT,
            (False, True, False): Image.Transpose.FLIP_TOP_BOTTOM,
            (False, True, True): Image.Transpose.ROTATE_180,
            (True, False, False): Image.Transpose.TRANSPOSE,
            (True, False, True): Image.Transpose.ROTATE_270,
            (True, True, False): Image.Transpose.ROTATE_90,
            (True, True, True): Image.Transpose.TRANSVERSE}


def display_orientation(frame) -> tuple[bool, bool, bool]:
    """(transposed, rows flipped, columns flipped): how the display matrix of a decoded PyAV
    frame maps its picture to the screen; (False, False, False) without one, or for a matrix
    that is not a right-angle turn or mirroring (kept as decoded).

    FFmpeg's matrix [a b u; c d v; x y w] (16.16 fixed point, the mp4 `tkhd` layout) maps a
    pixel (column p, row q) to (a p + c q, b p + d q), up to a shift. A phone's portrait video
    has a = d = 0, b = 1, c = -1 (FFmpeg's rotation -90): the picture transposed, its columns
    reversed, i.e. turned a quarter clockwise."""
    matrix = None
    try:
        # A container of its own, not frame.side_data: that one is cached on the frame and
        # refers back to it, a reference cycle that keeps every decoded picture alive until the
        # garbage collector runs (and a forked process that runs it can hang in FFmpeg).
        from av.sidedata.sidedata import SideDataContainer
        entry = SideDataContainer(frame).get('DISPLAYMATRIX')
        if entry is not None:
            matrix = np.frombuffer(bytes(memoryview(entry)), dtype='<i4', count=9)
    except (ImportError, TypeError, ValueError, KeyError):
        matrix = None
    if matrix is None:                        # an older PyAV: the rotation alone, if any
        turns = round(getattr(frame, 'rotation', 0) or 0) // 90 % 4
        return {0: (False, False, False), 1: (True, True, False),     # counter-clockwise
                2: (False, True, True), 3: (True, False, True)}[turns]
    a, b, c, d = (int(matrix[k]) for k in (0, 1, 3, 4))
    if b == c == 0 and a and d:
        return False, d < 0, a < 0
    if a == d == 0 and b and c:
        return True, b < 0, c < 0
    return False, False, False


def upright_image(frame, short_side: int = 0) -> Image.Image:
    """A decoded PyAV frame as an RGB PIL image turned as its display matrix says
    (display_orientation), the shorter side resized to `short_side` (0: unchanged; sizes as
    resized_size gives them for the upright picture). tools/extract_frames.py and
    VideoStorage both make their frames here, so they agree."""
    img = frame.to_image()
    transposed, flip_rows, flip_cols = display_orientation(frame)
    w, h = img.size
    if transposed:                            # resize first: fewer pixels to turn
        tw, th = resized_size(h, w, short_side)
        size = (th, tw)
    else:
        size = resized_size(w, h, short_side)
    if size != img.size:
        img = img.resize(size, Image.BILINEAR)
    op = _UPRIGHT.get((transposed, flip_rows, flip_cols))
    return img.transpose(op) if op is not None else img


class _Untrusted(Exception):
    """A decoded frame does not fit the packet index; decode sequentially instead."""


def packet_index(path: str):
    """The first video stream's frames from its packets alone (no decoding): (sorted pts of the
    frames, numbers of the keyframes, each keyframe's dts or pts), or None where packets cannot
    stand for frames (no video stream, codec not in FRAME_PER_PACKET_CODECS, a packet without
    pts or marked to discard, repeated pts). Raises what av.open raises for a bad file."""
    import av
    with av.open(path) as container:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        if stream.codec_context.name not in FRAME_PER_PACKET_CODECS:
            return None
        packets = []
        for packet in container.demux(stream):
            if not packet.size:
                continue                    # the empty packet that ends demuxing
            if packet.pts is None or packet.is_discard:
                return None
            # Demuxers seek by pts (mp4, mkv) or by decoding time (avi): a seek to a keyframe's
            # pts that lands on a later keyframe is retried at its dts, never after its pts.
            seek_ts = packet.pts if packet.dts is None else min(packet.pts, packet.dts)
            packets.append((packet.pts, packet.is_keyframe, seek_ts))
    packets.sort()
    pts = [p for p, _, _ in packets]
    if len(set(pts)) != len(pts):
        return None
    keys = [(k, ts) for k, (_, key, ts) in enumerate(packets, 1) if key]
    return pts, [k for k, _ in keys], [ts for _, ts in keys]


class VideoStorage:
    """Frames decoded from `<root>/<video_path>[.ext]` with PyAV: a utils.storage.Storage
    (kind 'video'; no read_files: there are no frame files). `short_side` > 0 resizes as
    tools/extract_frames.py does; 0 keeps the decoded size. No container stays open between
    reads, so the object pickles to DataLoader workers. Counters `seeks`, `fallbacks` and
    `decoded` (frames) say how reads went in this process."""

    def __init__(self, root: str, short_side: int = 0, max_pixels: int = MAX_PIXELS):
        self.root = root
        self.short_side = short_side
        self.max_pixels = max_pixels         # a larger frame is unreadable (TooLargeError)
        self.seeks = self.fallbacks = self.decoded = 0
        self._resolved = {}            # video_path -> file, per process

    def __getstate__(self):
        state = dict(self.__dict__)
        state['_resolved'] = {}
        return state

    def resolve(self, video_path: str) -> str:
        """The file of `video_path`: itself if it is a file, else the first
        `<video_path><ext>` for ext in VIDEO_EXTENSIONS; FileNotFoundError if none."""
        path = self._resolved.get(video_path)
        if path is not None:
            return path
        base = os.path.join(self.root, video_path)
        candidates = [base] + [base + e for ext in VIDEO_EXTENSIONS for e in (ext, ext.upper())]
        path = next((c for c in candidates if os.path.isfile(c)), None)
        if path is None:
            tried = '' if os.path.splitext(video_path)[1] else \
                f' (also with the extensions {" ".join(VIDEO_EXTENSIONS)})'
            raise FileNotFoundError(f'video file not found: {base}{tried}')
        self._resolved[video_path] = path
        return path

    def missing(self, video_paths) -> list[str]:
        """The video paths that have no file (existence checks only, no decoding; a file
        resolved before is checked again)."""
        out = []
        for v in video_paths:
            cached = self._resolved.get(v)
            if cached is not None and not os.path.isfile(cached):
                del self._resolved[v]
            try:
                self.resolve(v)
            except FileNotFoundError:
                out.append(v)
        return out

    def describe(self) -> str:
        return f'video files under {self.root} decoded with PyAV'

    def read(self, video_path: str, frame_numbers) -> np.ndarray:
        """Frames `frame_numbers` (1-based, any order, repeats allowed) as uint8
        (N, H, W, 3) RGB; VideoMissingError if there is no file, FrameReadError naming the
        file if it cannot be read."""
        import av
        numbers = [int(n) for n in frame_numbers]
        try:
            path = self.resolve(video_path)
        except FileNotFoundError as exc:
            raise VideoMissingError(str(exc)) from None
        if not numbers or min(numbers) < 1:
            raise FrameReadError(f'{path}: frame numbers must be 1 or more, got {numbers}')
        wanted = sorted(set(numbers))
        try:
            try:
                frames = self._decode(path, wanted, seek=True)
            except _Untrusted:
                self.fallbacks += 1
                frames = self._decode(path, wanted, seek=False)
        except (av.FFmpegError, OSError, ValueError) as exc:
            error = FrameReadError
            if isinstance(exc, FileNotFoundError) and not os.path.isfile(path):
                self._resolved.pop(video_path, None)     # removed since it was resolved
                error = VideoMissingError
            raise error(f'{path}: cannot decode: {type(exc).__name__}: {exc}') from exc
        shapes = {frames[n].shape for n in wanted}
        if len(shapes) > 1:
            raise FrameReadError(f'{path}: frames of different sizes {sorted(shapes)}')
        return np.stack([frames[n] for n in numbers])

    def _image(self, frame) -> np.ndarray:
        # The same conversion, turn and resize as tools/extract_frames.py, so clips match its
        # JPEGs.
        return np.asarray(upright_image(frame, self.short_side))

    def _decode(self, path: str, wanted: list, seek: bool) -> dict:
        """{number: frame} for the sorted, distinct `wanted` numbers. Numbers come from
        counting decoded frames (checked against the packet index) until the first seek, and
        from the packet index after it;
        with seek=False it never seeks (exact by construction). Raises _Untrusted when a
        decoded frame does not fit the index."""
        import av
        index = packet_index(path) if seek else None
        if index is not None:
            pts_list, keyframes, seek_ts = index
            number_of = {p: k for k, p in enumerate(pts_list, 1)}
        out = {}
        with av.open(path) as container:
            if not container.streams.video:
                raise FrameReadError(f'{path}: no video stream')
            stream = container.streams.video[0]
            check_pixels(stream.codec_context.width, stream.codec_context.height,
                         self.max_pixels, path)       # before a frame is allocated
            # One decoding thread: the DataLoader workers already decode videos in parallel
            # (tools/benchmark.py data --storage video, 2 cores, -j 2: 52 clips/s, 48 with
            # PyAV's default threading).
            stream.codec_context.thread_count = 1
            frames = container.decode(stream)

            def seek_to(ts):
                nonlocal frames
                container.seek(ts, stream=stream, backward=True, any_frame=False)
                frames.close()
                frames = container.decode(stream)
                self.seeks += 1

            number = 0             # number of the frame just decoded
            counting = True        # False after a seek: numbers come from the index
            sought = None          # the wanted frame of the last seek (one seek per frame)
            retry_ts = None        # where to seek if the last seek landed too late
            i = 0                  # wanted[i] is the next frame to keep
            while i < len(wanted):
                if index is not None and number > 0 and sought != wanted[i]:
                    if wanted[i] > len(pts_list):
                        raise _Untrusted        # past the end: let counting say how far
                    j = bisect.bisect_right(keyframes, wanted[i]) - 1   # last key <= wanted
                    if j >= 0 and keyframes[j] - number > MIN_SEEK_GAP:
                        seek_to(pts_list[keyframes[j] - 1])
                        counting, landed, sought = False, False, wanted[i]
                        retry_ts = seek_ts[j] if seek_ts[j] < pts_list[keyframes[j] - 1] else None
                try:
                    frame = next(frames)
                except StopIteration:
                    if counting:
                        raise FrameReadError(
                            f'{path}: frame {wanted[i]} requested but the video has {number} '
                            f'frames (decoded)') from None
                    raise _Untrusted from None
                self.decoded += 1
                if counting:
                    number += 1
                    if index is not None and (number > len(pts_list)
                                              or frame.pts != pts_list[number - 1]):
                        index = None           # frames and packets disagree: never seek
                else:
                    n = number_of.get(frame.pts)
                    if not landed and n is not None and n > wanted[i] and retry_ts is not None:
                        seek_to(retry_ts)          # landed after the keyframe: try its dts
                        retry_ts = None
                        continue
                    if n is None or (landed and n != number + 1) or (not landed and n > wanted[i]):
                        raise _Untrusted
                    number, landed = n, True
                if number == wanted[i]:
                    out[number] = self._image(frame)
                    i += 1
            frames.close()
        return out
