"""Storages: where the frames of a video come from.

Every storage implements the `Storage` protocol: `read(video_path, frame_numbers) -> uint8
array (N, H, W, 3)`, `missing(video_paths)` (the listed videos it does not have, found
without decoding) and `describe()` (one line naming it, for messages). `read` raises
VideoMissingError for a video that is not there at all and FrameReadError for one that is
there but cannot be read, each naming the file. Frame storages (`FrameStorage`) also have
`read_files(video_path, names, gray)` for other file names (the x/y images of optical flow):

- FolderStorage (kind 'folders'): `<root>/<video_path>/00001.jpg ...` (the default layout);
- LMDBStorage (kind 'lmdb'): one LMDB database per split written by tools/build_lmdb.py,
  `<datadir>/<split>.lmdb` (lmdb_path), one record per video holding the JPEG bytes of all its
  frames (a clip costs one key lookup);
- utils.video_reader.VideoStorage (kind 'video'): the video files themselves, decoded with
  PyAV (no read_files: there are no frame files).

`open_storage(kind, root, split, ...)` makes the storage of a kind, and `check_found` checks
a list's videos against it before training starts (with `missing_hint(kind, root, split)` as
the advice when none is there).

Both LMDBStorage and FolderStorage decode JPEG bytes with `decode_images`, so they return
identical arrays for the same frame numbers. Every image's size is read from its header and
checked against a pixel limit (`max_pixels`, --max_pixels) before anything is allocated, so a
crafted file that declares a huge image (a decompression bomb) is an unreadable frame, never
an exhausted memory.
"""
import io
import logging
import os
import string
import typing

import numpy as np
from PIL import Image

from utils.errors import FrameReadError, UserError, VideoMissingError  # noqa: F401 (re-exported)
from utils.pixel_limit import MAX_PIXELS, TooLargeError, check_pixels  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

try:
    import simplejpeg
except ImportError:          # optional: PIL decodes the same pixels, slower
    simplejpeg = None


def frame_names(image_tmpl: str, number: int) -> list[str]:
    """The file names of frame `number`: one for an rgb template ('{:05d}.jpg'), the x and y
    images for a flow template with a direction field ('{:05d}_{}.jpg')."""
    fields = [f for _, f, _, _ in string.Formatter().parse(image_tmpl) if f is not None]
    if len(fields) == 2:
        return [image_tmpl.format(number, d) for d in 'xy']
    return [image_tmpl.format(number)]


class NoVideosFoundError(FileNotFoundError):
    """None of a list's videos is in the storage: a wrong --datadir, list or storage option
    (check_found). A FileNotFoundError, so the entrypoints report it as one line."""


@typing.runtime_checkable
class Storage(typing.Protocol):
    """Where the frames of the videos of a list come from (FolderStorage, LMDBStorage,
    utils.video_reader.VideoStorage; open_storage makes one). Frame storages, which hold
    image files, also have read_files: see FrameStorage."""

    def read(self, video_path: str, frame_numbers) -> np.ndarray:
        """Frames `frame_numbers` (1-based, as in the list files; any order, repeats
        allowed) of a video as uint8 (N, H, W, 3); VideoMissingError if the video is not in
        the storage, FrameReadError if it is there but cannot be read (both name the file)."""
        ...

    def missing(self, video_paths) -> list[str]:
        """The paths of `video_paths` (list paths) that are not in the storage, in order:
        cheap checks (a stat, a key lookup), no decoding."""
        ...

    def describe(self) -> str:
        """One line naming the storage for messages, e.g. 'frame folders under data/x'."""
        ...


@typing.runtime_checkable
class FrameStorage(Storage, typing.Protocol):
    """A Storage of image files (folders, LMDB): also reads files by name, which optical
    flow needs (the x and y images of a frame: frame_names)."""

    def read_files(self, video_path: str, names: list, gray: bool = False) -> np.ndarray:
        """The named image files of a video, stacked: uint8 (N, H, W, 3), or (N, H, W, 1)
        with `gray`; errors as read's."""
        ...


def decode_image(source, name: str, gray: bool = False, max_pixels: int = MAX_PIXELS
                 ) -> np.ndarray:
    """Decode an image file path or bytes to uint8 (H, W, 3), or (H, W, 1) with `gray`;
    FrameReadError naming `name` if it cannot be read.

    JPEGs go through simplejpeg when it is installed: the same libjpeg-turbo decode as PIL
    (identical pixels, tested) without PIL's image object and its copies. CMYK JPEGs, grey
    from colour JPEGs and other formats go through PIL.
    """
    return decode_images([source], [name], gray, name, max_pixels)[0]


def decode_images(sources: list, names: list, gray: bool = False, where: str = '',
                  max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode images (paths or bytes) of one size into one uint8 array (N, H, W, 3 or 1), each
    JPEG straight into its slot (no per-frame arrays to allocate and stack). FrameReadError
    naming the file that cannot be read (TooLargeError: over `max_pixels`), or `where` if the
    sizes differ."""
    if not sources:
        raise ValueError('decode_images needs at least one image')
    out = None
    for i, (source, name) in enumerate(zip(sources, names)):
        try:
            if isinstance(source, str):
                with open(source, 'rb') as f:
                    source = f.read()
            shape, fast = _jpeg_shape(source, gray)
            if shape is not None:
                check_pixels(shape[1], shape[0], max_pixels, name)
            else:
                frame = _decode_with_pil(source, gray, max_pixels, name)
                shape = frame.shape
            if out is None:
                out = np.empty((len(sources), *shape), np.uint8)
            if out.shape[1:] != shape:
                raise FrameReadError(f'{where or name}: frames of different sizes '
                                     f'{tuple(out.shape[1:])} and {shape} ({name})')
            if fast:
                simplejpeg.decode_jpeg(source, colorspace='GRAY' if gray else 'RGB',
                                       buffer=out[i])
            else:
                out[i] = frame
        except FrameReadError:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder failure on a file is that file's
            raise FrameReadError(f'{name}: {type(exc).__name__}: {exc}' if not isinstance(
                exc, (OSError, ValueError, SyntaxError)) else f'{name}: {exc}') from exc
    return out


def _jpeg_shape(data: bytes, gray: bool) -> tuple:
    """((H, W, C), True) for a JPEG simplejpeg decodes exactly as PIL does, else (None, False)."""
    if simplejpeg is None or not simplejpeg.is_jpeg(data):
        return None, False
    h, w, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    # Grey from a colour JPEG: simplejpeg gives the luma plane, PIL converts RGB.
    if colorspace == 'Gray' or (not gray and colorspace in ('YCbCr', 'RGB')):
        return (h, w, 1 if gray else 3), True
    return None, False


def _decode_with_pil(data: bytes, gray: bool, max_pixels: int, name: str) -> np.ndarray:
    """Decode with PIL, after checking the size its header gives (PIL's own bomb limit is
    replaced by `max_pixels`: opening reads the header only, decoding happens in convert)."""
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        img = Image.open(io.BytesIO(data))
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    with img:
        check_pixels(img.width, img.height, max_pixels, name)
        mode = 'L' if gray else 'RGB'
        array = np.asarray(img if img.mode == mode else img.convert(mode))
        return array[..., None] if gray else array


class FolderStorage:
    """Frames stored as `<root>/<video_path>/<image_tmpl.format(frame_number)>`."""

    def __init__(self, root: str, image_tmpl: str = '{:05d}.jpg', max_pixels: int = MAX_PIXELS):
        self.root = root
        self.image_tmpl = image_tmpl
        self.max_pixels = max_pixels

    def frame_path(self, video_path: str, number: int) -> str:
        return os.path.join(self.root, video_path, self.image_tmpl.format(number))

    def read(self, video_path: str, frame_numbers) -> np.ndarray:
        return self.read_files(video_path, [self.image_tmpl.format(int(n)) for n in frame_numbers])

    def read_files(self, video_path: str, names: list, gray: bool = False) -> np.ndarray:
        """The named image files of a video, stacked: (N, H, W, 3), or (N, H, W, 1) grey;
        VideoMissingError if the video's folder does not exist."""
        folder = os.path.join(self.root, video_path)
        paths = [os.path.join(folder, name) for name in names]
        try:
            return decode_images(paths, paths, gray, folder, self.max_pixels)
        except FrameReadError as exc:
            if not os.path.isdir(folder):         # checked only when a read fails
                raise VideoMissingError(str(exc)) from exc.__cause__
            raise

    def missing(self, video_paths) -> list[str]:
        """The video paths that have no folder (one stat each; the frames are not looked at:
        tools/check_dataset.py does that)."""
        return [v for v in video_paths if not os.path.isdir(os.path.join(self.root, v))]

    def describe(self) -> str:
        return f'frame folders under {self.root}'


# ----------------------------------------------------------------------------- LMDB

# One LMDB value = one video: an Arrow IPC stream holding one record batch with columns
# `name` (string: the frame's file name, e.g. 00001.jpg), `data` (binary: the file's bytes) and,
# from version 2, `crc32` (uint32: zlib.crc32 of `data`, checked on every read, so a flipped bit
# in the database is an unreadable frame rather than other pixels), and schema metadata
# {format: LMDB_FORMAT, version: LMDB_VERSION}. Version 1 records (no checksums) still read.
# Keys are the videos' relative paths as written in the list files (lmdb_key: UTF-8, any
# characters; a digest past 511 bytes). The key META_KEY holds JSON metadata.
LMDB_FORMAT = b'video-frames'
LMDB_VERSION = 2
LMDB_VERSIONS_READ = (1, 2)
META_KEY = b'__meta__'
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')


def encode_video_record(names: list, blobs: list) -> bytes:
    """Serialise a video's frame files (names and bytes) to one LMDB value."""
    import zlib

    import pyarrow as pa
    schema = pa.schema([('name', pa.string()), ('data', pa.binary()), ('crc32', pa.uint32())],
                       metadata={b'format': LMDB_FORMAT, b'version': str(LMDB_VERSION).encode()})
    batch = pa.record_batch([pa.array(names, pa.string()), pa.array(blobs, pa.binary()),
                             pa.array([zlib.crc32(b) for b in blobs], pa.uint32())],
                            schema=schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def decode_video_record(value, wanted=None) -> dict:
    """The inverse of encode_video_record: {frame file name: bytes} (only the names in
    `wanted` when given: a clip needs a few frames of a long video); ValueError if malformed.

    A record is untrusted bytes: its Arrow structure is validated in full (offsets, lengths,
    UTF-8) before any value is touched, since Arrow trusts the offsets it is given (a record
    whose offsets point past its data would crash the process), and each returned frame's
    checksum is compared (version 2)."""
    import zlib

    import pyarrow as pa
    try:
        table = pa.ipc.open_stream(pa.py_buffer(value)).read_all()
        meta = table.schema.metadata or {}
        if meta.get(b'format') != LMDB_FORMAT:
            raise ValueError('not a video record (no format field)')
        try:
            version = int(meta.get(b'version', b'0'))
        except ValueError:
            version = -1
        if version not in LMDB_VERSIONS_READ:
            raise ValueError(f'record format version {meta.get(b"version")!r}; this code reads '
                             f'versions {", ".join(map(str, LMDB_VERSIONS_READ))} (rebuild with '
                             f'tools/build_lmdb.py)')
        expected = [('name', pa.string()), ('data', pa.binary())] + (
            [('crc32', pa.uint32())] if version >= 2 else [])
        found = [(f.name, f.type) for f in table.schema]
        if found != expected:
            raise ValueError(f'not a version {version} video record (columns {found})')
        table.validate(full=True)
    except (pa.ArrowException, OSError) as exc:     # (pyarrow raises some as plain OSError)
        raise ValueError(f'not a video record, or a damaged one ({type(exc).__name__}: '
                         f'{exc})') from None
    names = table.column('name').to_pylist()
    data = table.column('data')
    crcs = table.column('crc32').to_pylist() if version >= 2 else None
    position = {n: i for i, n in enumerate(names)}
    out = {}
    for n in (names if wanted is None else [n for n in wanted if n in position]):
        i = position[n]
        blob = data[i].as_py()
        if crcs is not None and zlib.crc32(blob) != crcs[i]:
            raise ValueError(f'frame {n}: checksum mismatch (the database is damaged: a bit '
                             f'flipped on disk or in a copy)')
        out[n] = blob
    return out


def lmdb_key(video_path: str) -> bytes:
    """The key of a video's record: its list path in UTF-8 (bytes that are not UTF-8 kept as
    they were on disk), or, past LMDB's 511-byte key limit, a digest of it."""
    key = video_path.encode('utf-8', 'surrogateescape')
    if len(key) > 511:
        import hashlib
        key = b'\0sha256:' + hashlib.sha256(key).hexdigest().encode()
    return key


def open_lmdb(path: str, readonly: bool = True, **kwargs):
    import lmdb
    if readonly:
        return lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False,
                         max_readers=2048, subdir=True, **kwargs)
    return lmdb.open(path, subdir=True, meminit=False, **kwargs)


def check_lmdb_path(path: str) -> None:
    """Raise FileNotFoundError naming `path` unless it is an LMDB directory."""
    if not os.path.isfile(os.path.join(path, 'data.mdb')):
        raise FileNotFoundError(
            f'LMDB database not found: {path} (expected a directory holding data.mdb, as '
            f'written by tools/build_lmdb.py --out <datadir> for this split)')


class DamagedDatabaseError(UserError):
    """An LMDB database whose file is shorter than its header says, or that does not read."""


def _meta_page_size(data_file: str) -> int | None:
    """The page size recorded in an LMDB file's first meta page, or None if the file does not
    start with one. (Opening a file shorter than its two meta pages is a SIGBUS in LMDB, so
    this is checked with plain reads first.)"""
    import struct
    with open(data_file, 'rb') as f:
        head = f.read(44)
    if len(head) < 44:
        return None
    magic, = struct.unpack_from('<I', head, 16)       # after the 16-byte page header
    psize, = struct.unpack_from('<I', head, 40)       # mm_dbs[FREE_DBI].md_pad = page size
    return psize if magic == 0xBEEFC0DE and psize >= 512 else None


def check_lmdb_file(path: str, rebuild: str = '') -> None:
    """DamagedDatabaseError unless `path`'s data.mdb holds its two meta pages: call before
    py-lmdb opens the file."""
    data = os.path.join(path, 'data.mdb')
    size = os.path.getsize(data)
    psize = _meta_page_size(data)
    if psize is None or size < 2 * psize:
        raise DamagedDatabaseError(f'{path}: damaged LMDB database (data.mdb is {size} bytes, '
                                   f'not an LMDB file or cut short); '
                                   f'{_rebuild_hint(path, rebuild)}')


def verify_lmdb(env, path: str, rebuild: str = '') -> None:
    """DamagedDatabaseError if an open database is shorter than its header says (a copy cut
    short, a disk that filled while building: reading there is a SIGBUS) or its first and last
    records do not read."""
    import lmdb
    data = os.path.join(path, 'data.mdb')
    size = os.path.getsize(data)
    try:
        need = (env.info()['last_pgno'] + 1) * env.stat()['psize']
        if size < need:
            raise DamagedDatabaseError(
                f'{path}: damaged LMDB database (data.mdb is {size} bytes, its header says '
                f'{need}: a copy cut short or a disk that filled while building); '
                f'{_rebuild_hint(path, rebuild)}')
        with env.begin(buffers=True) as txn:
            cursor = txn.cursor()
            for move in (cursor.first, cursor.last):
                if move():
                    bytes(cursor.value()[:1])
    except lmdb.Error as exc:
        raise _damaged(path, exc, rebuild) from None


def _damaged(path: str, exc: Exception, rebuild: str) -> DamagedDatabaseError:
    """The one-line error of a database that LMDB itself cannot read (`exc`)."""
    return DamagedDatabaseError(f'{path}: damaged LMDB database ({type(exc).__name__}: '
                                f'{" ".join(str(exc).split())}); {_rebuild_hint(path, rebuild)}')


def _rebuild_hint(path: str, rebuild: str) -> str:
    """`rebuild` is the build command; by default the one of --use_lmdb's layout,
    <datadir>/<split>.lmdb."""
    import shlex
    if not rebuild:
        root, name = os.path.split(os.path.normpath(path))
        rebuild = ' '.join(shlex.quote(a) for a in ['python3', 'tools/build_lmdb.py', '--root',
                                                    root or '.', '--split',
                                                    name.removesuffix('.lmdb')])
    return f'rebuild it: rm -r {shlex.quote(path)} && {rebuild}'


_OPEN_ENVS = {}   # (realpath, pid) -> lmdb.Environment


class LMDBStorage:
    """Frames of each video stored as one record of an LMDB database (tools/build_lmdb.py).

    The database is opened lazily, read-only and without locks, in the process that first
    reads (each DataLoader worker opens its own handle), so the object pickles to workers and
    many processes can share one database.
    """

    def __init__(self, path: str, image_tmpl: str = '{:05d}.jpg', rebuild: str = '',
                 max_pixels: int = MAX_PIXELS):
        """Opens and checks the database here (the main process, before workers start):
        FileNotFoundError if absent, DamagedDatabaseError (one line saying how to rebuild it,
        `rebuild` being the build command) if cut short or unreadable."""
        import lmdb
        check_lmdb_path(path)
        self.path = path
        self.image_tmpl = image_tmpl
        self.max_pixels = max_pixels
        self.rebuild = rebuild
        self._env = None
        self._pid = None
        check_lmdb_file(path, rebuild)
        try:
            verify_lmdb(self._open(), path, rebuild)
        except lmdb.Error as exc:           # a damaged header: opening already fails
            self.close()
            raise _damaged(path, exc, rebuild) from None
        except DamagedDatabaseError:
            self.close()
            raise

    def __getstate__(self):
        state = dict(self.__dict__)
        state['_env'] = None
        state['_pid'] = None
        return state

    def _open(self):
        # py-lmdb allows one handle per database and process: share it between the storages
        # of a process; a forked worker (new pid) opens its own.
        if self._env is None or self._pid != os.getpid():
            key = (os.path.realpath(self.path), os.getpid())
            if key not in _OPEN_ENVS:
                # A handle inherited from the parent (it read before forking its workers) must
                # not be used here, and py-lmdb refuses a second one until it is closed.
                for inherited in [k for k in _OPEN_ENVS if k[0] == key[0]]:
                    _OPEN_ENVS.pop(inherited).close()
                _OPEN_ENVS[key] = open_lmdb(self.path)
            self._env, self._pid = _OPEN_ENVS[key], os.getpid()
        return self._env

    def close(self) -> None:
        """Close this process's handle of the database (shared by its storages)."""
        env = _OPEN_ENVS.pop((os.path.realpath(self.path), os.getpid()), None)
        if env is not None:
            env.close()
        self._env = None
        self._pid = None

    def get_record(self, video_path: str, wanted=None) -> dict:
        """{frame file name: bytes} of a video (only `wanted` names if given);
        VideoMissingError if the key is missing, FrameReadError if the record is malformed."""
        import lmdb
        try:
            with self._open().begin(buffers=False) as txn:
                value = txn.get(lmdb_key(video_path))
        except lmdb.Error as exc:
            raise FrameReadError(f'{self.path}[{video_path}]: cannot read the database: '
                                 f'{type(exc).__name__}: {exc}') from exc
        if value is None:
            raise VideoMissingError(f'{self.path}: no record for video {video_path!r} '
                                    f'(key missing from the LMDB database)')
        try:
            return decode_video_record(value, wanted)
        except ValueError as exc:
            raise FrameReadError(f'{self.path}[{video_path}]: {exc}') from exc

    def missing(self, video_paths) -> list[str]:
        """The video paths that have no record (cheap: key lookups only); DamagedDatabaseError
        if the database's pages do not read."""
        import lmdb
        try:
            with self._open().begin(buffers=True) as txn:
                cur = txn.cursor()
                return [v for v in video_paths if not cur.set_key(lmdb_key(v))]
        except lmdb.Error as exc:
            raise _damaged(self.path, exc, self.rebuild) from None

    def describe(self) -> str:
        return f'LMDB database {self.path}'

    def read(self, video_path: str, frame_numbers) -> np.ndarray:
        return self.read_files(video_path, [self.image_tmpl.format(int(n)) for n in frame_numbers])

    def read_files(self, video_path: str, names: list, gray: bool = False) -> np.ndarray:
        """The named frame files of a video's record, stacked as FolderStorage.read_files."""
        record = self.get_record(video_path, set(names))
        wheres = [f'{self.path}[{video_path}/{name}]' for name in names]
        for name, where in zip(names, wheres):
            if name not in record:
                raise FrameReadError(f'{where}: frame not in the record')
        return decode_images([record[n] for n in names], wheres, gray,
                             f'{self.path}[{video_path}]', self.max_pixels)


# ----------------------------------------------------------------------------- one factory

STORAGE_KINDS = ('folders', 'lmdb', 'video')


def lmdb_path(datadir: str, split: str) -> str:
    """Where the LMDB storage looks for the database of a split: `<datadir>/<split>.lmdb`
    (where tools/build_lmdb.py writes it by default)."""
    return os.path.join(datadir, f'{split}.lmdb')


def open_storage(kind: str, root: str, split: str, image_tmpl: str = '{:05d}.jpg',
                 short_side: int = 0, max_pixels: int = MAX_PIXELS) -> Storage:
    """The storage of `kind` (STORAGE_KINDS) for a split's videos under `root` (--datadir):
    'folders': FolderStorage(root, image_tmpl); 'lmdb': LMDBStorage of lmdb_path(root, split)
    (opened and checked here: FileNotFoundError if absent, DamagedDatabaseError if cut short);
    'video': utils.video_reader.VideoStorage(root, short_side). ValueError for another kind.
    `short_side` is for 'video' only, `image_tmpl` for the frame storages; `max_pixels` is the
    largest frame any of them decodes (a bigger one is an unreadable frame: TooLargeError)."""
    if kind == 'folders':
        return FolderStorage(root, image_tmpl, max_pixels)
    if kind == 'lmdb':
        return LMDBStorage(lmdb_path(root, split), image_tmpl, max_pixels=max_pixels)
    if kind == 'video':
        from utils.video_reader import VideoStorage      # it imports this module
        return VideoStorage(root, short_side, max_pixels)
    raise ValueError(f'unknown storage {kind!r}; known: {", ".join(STORAGE_KINDS)}')


def missing_hint(kind: str, root: str, split: str) -> str:
    """What to do when none of the videos of a split's list is in the storage of `kind`
    (the end of check_found's message)."""
    if kind == 'lmdb':
        return f'build it with: python3 tools/build_lmdb.py --root {root} --split {split}'
    if kind == 'video':
        return ('--storage video needs list files of video paths (python3 '
                'tools/annotations.py ... --from_videos)')
    return (f'check --datadir: {root} should hold one folder of frames per video of the '
            f'{split} list, at the path the list gives (extract them with '
            f'tools/extract_frames.py; a list of video files needs --storage video)')


def check_found(storage: Storage, split: str, paths: list[str], hint: str) -> None:
    """Check a list's videos against `storage` before training starts (Storage.missing: no
    decoding). None of them there is an error, NoVideosFoundError naming the storage and
    ending with `hint` (missing_hint: a wrong path or option); some missing is a warning
    (those videos count as unreadable). A handle opened for the check is closed again
    (LMDB: each DataLoader worker then opens its own)."""
    if not paths:
        return
    try:
        missing = storage.missing(paths)
    finally:
        close = getattr(storage, 'close', None)
        if close is not None:
            close()
    if len(missing) == len(paths):
        raise NoVideosFoundError(f'{storage.describe()}: none of the {len(paths)} videos of the '
                                 f'{split} list is there (first: {paths[0]!r}); {hint}')
    if missing:
        log.warning('%s: %d of %d videos of the %s list are missing (first: %r); they will be '
                    'treated as unreadable', storage.describe(), len(missing), len(paths),
                    split, missing[0])
