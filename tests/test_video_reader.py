"""utils/video_reader.py (clips decoded from video files) and annotations --from_videos."""
import gc
import io
import os
import pickle
import struct

import numpy as np
import pytest
from PIL import Image

from conftest import PHONE_H, PHONE_W, encode_phone_video, is_upright_phone_picture
from tools import annotations, extract_frames
from utils.storage import (FolderStorage, FrameReadError, FrameStorage, NoVideosFoundError,
                           Storage, VideoMissingError, check_found, decode_image, missing_hint,
                           open_storage)

av = pytest.importorskip('av')
from utils.video_reader import VideoStorage, packet_index  # noqa: E402


def encode_video(path, codec, frames, w, h, fps=10, gop=None, b_frames=None, pts=None):
    """A video whose frames all differ: a moving texture and a frame-numbered corner block.
    `pts` (one per frame, in units of 1/fps) can leave gaps: a variable frame rate."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # Smooth (so JPEG round-off stays small) and never the same after a shift.
    y, x = np.mgrid[0:h, 0:w]
    texture = np.stack([128 + 100 * np.sin(x / 9 + c) * np.cos(y / 11 - c) for c in range(3)], -1)
    noise = np.random.default_rng(frames).integers(0, 4, texture.shape)
    texture = (texture + noise).astype(np.uint8)
    with av.open(path, 'w') as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, 'yuv420p'
        if gop:
            s.codec_context.gop_size = gop
            if codec == 'libx264':
                s.options = {'g': str(gop), 'keyint_min': str(gop)}
        if b_frames is not None:
            s.codec_context.max_b_frames = b_frames
        for k in range(frames):
            img = np.roll(texture, 2 * k, axis=1)
            img[:8, :8] = 7 * k % 256
            frame = av.VideoFrame.from_ndarray(img, format='rgb24')
            if pts is not None:
                frame.pts = pts[k]
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)


def decode_all(path):
    """Every frame of the first video stream, sequentially: the reference."""
    with av.open(path) as c:
        return np.stack([np.asarray(f.to_image()) for f in c.decode(c.streams.video[0])])


def jpeg_round_trip(clip, quality):
    """The frames as tools/extract_frames.py stores them (PIL, `quality`), decoded as
    FolderStorage decodes them."""
    out = []
    for k, frame in enumerate(clip):
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format='JPEG', quality=quality)
        out.append(decode_image(buf.getvalue(), f'frame {k}'))
    return np.stack(out)


SHORT = {'jump/a.mp4': ('mpeg4', 12, 64, 48), 'jump/b.mkv': ('libx264', 9, 48, 80),
         'run/c.avi': ('mpeg4', 7, 32, 32), 'run/d.mp4': ('libx264', 10, 40, 30)}
# Long videos with several keyframes: x264 (B-frames by default), mpeg4 with B-frames.
LONG = {'long/x.mp4': dict(codec='libx264', gop=10), 'long/x.mkv': dict(codec='libx264', gop=16),
        'long/m.avi': dict(codec='mpeg4', gop=10, b_frames=2),
        'long/k.avi': dict(codec='mpeg4', gop=3, b_frames=2),  # keyframes adjacent in dts
        'long/m.mp4': dict(codec='mpeg4', gop=12, b_frames=0),
        'long/v.webm': dict(codec='libvpx-vp9', gop=10)}


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp('videos')
    for rel, (codec, n, w, h) in SHORT.items():
        encode_video(str(root / rel), codec, n, w, h)
    for rel, kw in LONG.items():
        encode_video(str(root / rel), frames=120, w=48, h=32, **kw)
    (root / 'run' / 'broken.mp4').write_bytes(b'\x00\x00\x00\x18ftypmp42' + os.urandom(300))
    return str(root)


@pytest.mark.parametrize('short_side', [0, 24])
def test_clips_equal_extracted_frames(videos, tmp_path, short_side):
    out = str(tmp_path / 'frames')
    extract_frames.extract_all(videos, out, short_side=short_side, quality=95,
                               videos=list(SHORT), quiet=True)
    frames, storage = FolderStorage(out), VideoStorage(videos, short_side)
    for rel, (_, n, _, _) in SHORT.items():
        stem = os.path.splitext(rel)[0]
        want = np.arange(1, n + 1)
        ref = frames.read(stem, want)
        for path in (rel, stem):                           # with and without the extension
            got = storage.read(path, want)
            assert got.dtype == np.uint8 and got.shape == ref.shape, rel
            if not short_side:                             # every frame as decoded, in order
                assert np.array_equal(got, decode_all(os.path.join(videos, rel))), rel
            # The extracted JPEGs are exactly the reader's frames saved at --quality 95 (a
            # tolerance on their difference would depend on the encoder's round-off).
            assert np.array_equal(jpeg_round_trip(got, 95), ref), rel
        # Unsorted and repeated numbers come back in the requested order.
        order = [n, 1, n, 2]
        assert np.array_equal(storage.read(rel, order),
                              storage.read(rel, want)[np.array(order) - 1])


@pytest.mark.parametrize('rel', list(LONG))
def test_seeking_equals_sequential_decoding(videos, rel):
    ref = decode_all(os.path.join(videos, rel))
    assert len(ref) == 120
    storage = VideoStorage(videos)
    for numbers in ([100, 37, 118, 37, 2, 119, 64, 64], [90, 120], [60], [120, 119, 1]):
        got = storage.read(rel, numbers)
        assert np.array_equal(got, ref[np.array(numbers) - 1]), (rel, numbers)
    assert storage.seeks > 0 and storage.fallbacks == 0    # the seek path was used, and trusted


@pytest.mark.parametrize('name,codec', [('vfr.mkv', 'libx264'), ('vfr.mp4', 'libx264'),
                                        ('vfr.avi', 'mpeg4')])
def test_variable_frame_rate_reads_exact_frames(tmp_path, name, codec):
    # A pts gap after frame 40 that no decoded frame shows when reading [75] after a seek:
    # pts -> number by the frame rate would be off by 5 frames; the packet index is not.
    pts = [k + (5 if k >= 40 else 0) for k in range(80)]
    path = str(tmp_path / name)
    encode_video(path, codec, 80, 48, 32, fps=25, gop=10, pts=pts)
    ref = decode_all(path)
    assert len(ref) == 80
    storage = VideoStorage(str(tmp_path))
    for numbers in ([75], [75, 31, 60, 29, 80], [80, 41, 40]):
        assert np.array_equal(storage.read(name, numbers), ref[np.array(numbers) - 1]), numbers
    assert storage.seeks > 0 and storage.fallbacks == 0


def test_errors_name_the_file(videos):
    storage = VideoStorage(videos)
    with pytest.raises(VideoMissingError, match='video file not found: .*jump/gone'):
        storage.read('jump/gone', [1])
    with pytest.raises(FileNotFoundError, match='gone.mp4'):
        storage.resolve('jump/gone.mp4')
    with pytest.raises(FrameReadError, match='broken.mp4') as err:
        storage.read('run/broken.mp4', [1])
    assert not isinstance(err.value, VideoMissingError)      # there, but does not decode
    with pytest.raises(FrameReadError, match=r'a\.mp4: frame 13 .* has 12 frames'):
        storage.read('jump/a', [3, 13])
    # Past the end of a long video after a seek: the count comes from sequential decoding.
    with pytest.raises(FrameReadError, match=r'x\.mp4: frame 150 .* has 120 frames'):
        storage.read('long/x.mp4', [100, 150])
    assert storage.missing(['jump/a', 'jump/gone', 'run/c.avi', 'run/c.mp4']) == \
        ['jump/gone', 'run/c.mp4']


def test_pickled_storage_reads(videos):
    storage = VideoStorage(videos, short_side=24)
    first = storage.read('run/c', [1, 7])
    clone = pickle.loads(pickle.dumps(storage))
    assert np.array_equal(clone.read('run/c', [1, 7]), first)


def test_lists_from_videos(videos, tmp_path):
    # The packet count equals the decoded count for the codecs counted from packets.
    for rel in list(SHORT) + list(LONG):
        path = os.path.join(videos, rel)
        assert packet_index(path) is not None            # counted from packets
        n, _ = annotations.count_video_frames(path)
        assert n == annotations.count_video_frames(path, 'decode')[0] == len(decode_all(path))
    n, reason = annotations.count_video_frames(os.path.join(videos, 'run', 'broken.mp4'))
    assert n == 0 and 'cannot read video' in reason
    out = str(tmp_path / 'lists')
    s = annotations.make_list('folders', None, out, 'train', videos=videos, from_videos=True,
                              workers=2)
    assert (s['written'], s['missing'], s['classes']) == (10, 1, 3)
    lines = open(os.path.join(out, 'train.txt')).read().split('\n')[:-1]
    assert sorted(lines)[:5] == ['jump/a.mp4 1 12 0', 'jump/b.mkv 1 9 0', 'long/k.avi 1 120 1',
                                 'long/m.avi 1 120 1', 'long/m.mp4 1 120 1']
    assert 'run/c.avi 1 7 2' in lines and 'run/d.mp4 1 10 2' in lines
    report = open(os.path.join(out, 'train.missing.txt')).read()
    assert 'run/broken.mp4\tcannot read video' in report
    # The CLI writes the same list; every listed last frame is readable.
    assert annotations.main(['folders', '--videos', videos, '--from_videos', '--out', out,
                             '--split', 'val', '-q']) == 0
    assert sorted(open(os.path.join(out, 'val.txt')).read().split('\n')[:-1]) == sorted(lines)
    storage = VideoStorage(videos)
    for line in lines:
        path, _, end, _ = line.split()
        assert storage.read(path, [int(end)]).shape[0] == 1


def test_other_codecs_decode_sequentially_and_audio_only_files_fail(tmp_path):
    path = str(tmp_path / 'v8.webm')                      # vp8: not counted from packets
    encode_video(path, 'libvpx', 30, 48, 32, gop=5)
    ref = decode_all(path)
    storage = VideoStorage(str(tmp_path))
    assert np.array_equal(storage.read('v8', [25, 3, 25]), ref[[24, 2, 24]])
    assert storage.seeks == 0 and packet_index(path) is None
    assert annotations.count_video_frames(path) == (len(ref), '')
    # An mkv with an audio stream only.
    with av.open(str(tmp_path / 'audio.mkv'), 'w') as c:
        s = c.add_stream('pcm_s16le', rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format='s16',
                                           layout='mono')
        frame.sample_rate = 8000
        for packet in list(s.encode(frame)) + list(s.encode()):
            c.mux(packet)
    with pytest.raises(FrameReadError, match='audio.mkv: no video stream'):
        storage.read('audio', [1])
    assert annotations.count_video_frames(str(tmp_path / 'audio.mkv')) == (0, 'no video stream')


def test_video_storage_implements_the_protocol(videos):
    storage = open_storage('video', videos, 'train', short_side=24)
    assert isinstance(storage, VideoStorage) and storage.short_side == 24
    assert isinstance(storage, Storage)
    assert not isinstance(storage, FrameStorage)          # no frame files to read by name
    assert storage.describe() == f'video files under {videos} decoded with PyAV'
    assert storage.read('run/c', [1, 7]).shape == (2, 24, 24, 3)


def test_video_missing_and_check_found(videos, tmp_path, caplog):
    import logging
    import shutil
    root = str(tmp_path / 'copy')
    os.makedirs(os.path.join(root, 'run'))
    shutil.copy(os.path.join(videos, 'run', 'c.avi'), os.path.join(root, 'run', 'c.avi'))
    shutil.copy(os.path.join(videos, 'jump', 'a.mp4'), os.path.join(root, 'a.mp4'))
    storage = VideoStorage(root)
    assert storage.read('a', [1]).shape[0] == 1                      # resolved (and cached)
    os.remove(os.path.join(root, 'a.mp4'))                           # then deleted
    with pytest.raises(VideoMissingError, match=r'a\.mp4: cannot decode: FileNotFoundError'):
        storage.read('a', [1])
    with pytest.raises(VideoMissingError, match='video file not found'):
        storage.read('a', [1])
    shutil.copy(os.path.join(videos, 'jump', 'a.mp4'), os.path.join(root, 'a.mp4'))
    assert storage.missing(['a']) == [] and storage.read('a', [1]).shape[0] == 1
    os.remove(os.path.join(root, 'a.mp4'))                           # resolved, then deleted
    assert storage.missing(['run/c', 'a', 'run/c.mp4']) == ['a', 'run/c.mp4']
    hint = missing_hint('video', root, 'train')
    assert '--from_videos' in hint
    with caplog.at_level(logging.WARNING):
        check_found(storage, 'train', ['run/c', 'a'], hint)
    assert "1 of 2 videos of the train list are missing (first: 'a')" in caplog.text
    with pytest.raises(NoVideosFoundError, match=f'video files under {root} decoded with PyAV: '
                                                 'none of the 2 videos of the val list'):
        check_found(storage, 'val', ['a', 'b'], hint)


def set_tkhd_matrix(path: str, matrix: tuple) -> None:
    """Write a display matrix into an mp4's track header (`tkhd`, version 0) by hand, as a
    phone writes it: 9 big-endian 32-bit values, a b u c d v x y w (16.16, u v w 2.30)."""
    data = bytearray(open(path, 'rb').read())
    at = data.index(b'tkhd')
    assert data[at + 4] == 0                     # version 0: 32-bit times
    offset = at + 4 + 4 + 20 + 8 + 8             # flags, times/id/duration, reserved, layer..
    data[offset:offset + 36] = struct.pack('>9i', *matrix)
    open(path, 'wb').write(bytes(data))


@pytest.mark.parametrize('how', ['pyav', 'tkhd'])
def test_phone_video_comes_out_upright(tmp_path, how):
    """A portrait phone video (landscape pictures + a quarter-turn display matrix) is upright,
    its marked top on top, in extraction and in --storage video, at the decoded size and
    resized; without the matrix the same pictures stay as stored (sideways)."""
    raw = tmp_path / 'raw'
    video = str(raw / 'dance' / 'phone.mp4')
    if how == 'pyav':
        encode_phone_video(video, 'rotated')
    else:             # a phone's own bytes: rotate 90 in QuickTime terms, shifted by the height
        encode_phone_video(video, 'sideways')
        one, minus_one = 1 << 16, -(1 << 16)
        set_tkhd_matrix(video, (0, one, 0, minus_one, 0, 0, PHONE_H << 16, 0, 1 << 30))
    encode_phone_video(str(raw / 'dance' / 'sideways.mp4'), 'sideways')
    out = str(tmp_path / 'frames')
    for short_side in (0, 24):
        s = extract_frames.extract_all(str(raw), out, short_side=short_side, quality=95,
                                       overwrite=True, quiet=True)
        assert s['ok'] == 2
        size = (PHONE_W, PHONE_H) if not short_side else (24, 36)
        with Image.open(os.path.join(out, 'dance', 'phone', '00001.jpg')) as img:
            assert img.size == size and is_upright_phone_picture(img)
        with Image.open(os.path.join(out, 'dance', 'sideways', '00001.jpg')) as img:
            assert img.size == size[::-1] and not is_upright_phone_picture(img)
        gc.disable()          # no decoded picture may outlive the read (no reference cycle)
        try:
            clip = VideoStorage(str(raw), short_side).read('dance/phone.mp4', [1, 6, 3])
            assert not [o for o in gc.get_objects() if type(o) is av.VideoFrame]
        finally:
            gc.enable()
        assert clip.shape == (3, size[1], size[0], 3)
        assert all(is_upright_phone_picture(frame) for frame in clip)
        # the clips still equal the extracted frames
        assert np.array_equal(jpeg_round_trip(clip, 95),
                              FolderStorage(out).read('dance/phone', [1, 6, 3]))
