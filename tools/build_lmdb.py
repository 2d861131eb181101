#!/usr/bin/env python3
"""Pack folders of frames into one LMDB database per split, one record per video.

For each split, the videos of the split's list (`<root>/<split>.txt`; --dataset's list names
and separator, e.g. `mini_train.txt` or `;`; or --list) are read from `<root>/<video path>/`
and written to `<out>/<split>.lmdb` under the key `<video path>` (as written in the list, any
characters: utils/storage.lmdb_key). A record holds every image file of the video's folder
(names and JPEG bytes, unchanged: no re-encoding) serialised with pyarrow in a versioned format
(utils/storage.py: encode_video_record), so reading a clip costs one lookup.

- resumable: videos whose key is already present are skipped (use --overwrite to rewrite);
  records are committed every --commit_every videos, so a killed run loses little;
- the map size grows as needed (it starts at --map_size_gb, doubles when full);
- verifies what it wrote: after each commit, every new record is read back and compared
  byte for byte (and, with --verify_decode, each frame is decoded);
- a video whose folder is missing or empty, or whose listed frames are not all present, is
  not written; it is reported in <out>/<split>.lmdb.errors.txt (`path<TAB>reason` lines) and
  the run goes on;
- a damaged database (cut short: a failed copy, a full disk) is refused with one line saying
  to delete and rebuild it, before anything reads it.

Usage:
    python3 tools/build_lmdb.py --root data/synthetic --split train val test -j 4
    # then train with:  python3 train.py --datadir data/synthetic --use_lmdb ...
"""
import argparse
import concurrent.futures
import json
import os
import shlex
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tqdm import tqdm  # noqa: E402

from utils.dataset_config import get_dataset_config, list_name  # noqa: E402
from utils.errors import UserError, disk_full, run_main  # noqa: E402
from utils.list_file import format_note, labels_required, write_report  # noqa: E402
from utils.list_file import read_list as _read_list  # noqa: E402
from utils.storage import (IMAGE_EXTENSIONS, LMDB_VERSION, META_KEY,  # noqa: E402
                           check_lmdb_file, decode_image, decode_video_record,
                           encode_video_record, frame_names, lmdb_key, lmdb_path, open_lmdb,
                           verify_lmdb)

GIB = 1 << 30


def read_list(list_file: str, sep: str = ' ', labelled: bool | None = None,
              root: str | None = None) -> list:
    """[(path, start, end)] of a list file (utils/list_file.py; labels ignored); with `root`,
    a path that leaves it is an error naming the line."""
    return [(r.path, r.start, r.end) for r in _read_list(list_file, sep, labelled=labelled,
                                                         root=root)]


def pack_video(task):
    """Read one video folder -> (key, value bytes or None, error message or None)."""
    root, path, start, end, image_tmpl = task
    folder = os.path.join(root, path)
    try:
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    except OSError as exc:
        return path, None, f'cannot list {folder}: {exc.strerror or exc}'
    if not names:
        return path, None, f'{folder}: no image files'
    if image_tmpl:
        present = set(names)
        absent = [name for n in range(start, end + 1) for name in frame_names(image_tmpl, n)
                  if name not in present]
        if absent:
            return path, None, (f'{folder}: {len(absent)} listed frames missing '
                                f'(first: {absent[0]})')
    blobs = []
    for n in names:
        try:
            with open(os.path.join(folder, n), 'rb') as f:
                blobs.append(f.read())
        except OSError as exc:
            return path, None, f'cannot read {os.path.join(folder, n)}: {exc.strerror or exc}'
    return path, encode_video_record(names, blobs), None


def _put_batch(env, batch: list, db_path: str = '') -> None:
    """Write [(key bytes, value)] in one transaction, growing the map when it is full. A
    commit that fails on a full disk is one line saying so (LMDB reports it as ENOSPC, or on
    some file systems as an I/O error: the free space decides); the records committed before
    stay, so the same command resumes."""
    import lmdb
    while True:
        try:
            with env.begin(write=True) as txn:
                for k, v in batch:
                    txn.put(k, v)
            return
        except lmdb.MapFullError:
            size = env.info()['map_size']
            env.set_mapsize(size * 2)
        except lmdb.Error as exc:
            need = sum(len(v) for _, v in batch) + (16 << 20)
            if 'No space left' in str(exc) or shutil.disk_usage(db_path or '.').free < need:
                raise disk_full(db_path, 'the records written before are kept; free some space '
                                         'and run the same command again: it resumes') from None
            raise UserError(f'{db_path}: cannot write the database ({exc}); check the disk, '
                            f'or delete the database and build it again') from None


def _verify_batch(env, batch: list, decode: bool) -> list:
    """Read back [(key, value)]; return [(key, reason)] of records that differ."""
    bad = []
    with env.begin() as txn:
        for k, v in batch:
            got = txn.get(k)
            if got != v:
                bad.append((k, 'record read back differs from what was written'))
                continue
            if decode:
                try:
                    for name, blob in decode_video_record(got).items():
                        decode_image(blob, name)
                except Exception as exc:  # noqa: BLE001 - reported, not raised
                    bad.append((k, f'record does not decode: {exc}'))
    return bad


def build_split(root: str, list_file: str, db_path: str, image_tmpl: str = '{:05d}.jpg',
                workers: int = 1, map_size_gb: float = 1.0, commit_every: int = 256,
                overwrite: bool = False, verify_decode: bool = False, sep: str = ' ',
                quiet: bool = False, labelled: bool | None = None, rebuild: str = '',
                allow_outside_root: bool = False) -> dict:
    """Pack the videos of one list into `db_path`; returns counts (written, skipped, failed).
    An existing database is checked first (DamagedDatabaseError naming it if cut short)."""
    items = read_list(list_file, sep, labelled, None if allow_outside_root else f'--root {root}')
    if os.path.isfile(os.path.join(db_path, 'data.mdb')):
        check_lmdb_file(db_path, rebuild)          # before py-lmdb maps a file cut short
    try:
        os.makedirs(db_path, exist_ok=True)
    except OSError as exc:                         # a file where a folder should be
        raise UserError(f'cannot create the database folder {db_path}: '
                        f'{exc.strerror or exc}; choose another --out') from None
    env = open_lmdb(db_path, readonly=False, map_size=int(map_size_gb * GIB))
    try:
        verify_lmdb(env, db_path, rebuild)
    except Exception:
        env.close()
        raise
    # Grow an existing database's map to at least the requested size.
    if env.info()['map_size'] < int(map_size_gb * GIB):
        env.set_mapsize(int(map_size_gb * GIB))
    # Deduplicate (a list may name a video twice) and skip what is present.
    seen, todo = set(), []
    with env.begin() as txn:
        for path, start, end in items:
            if path in seen:
                continue
            seen.add(path)
            if not overwrite and txn.get(lmdb_key(path)) is not None:
                continue
            todo.append((root, path, start, end, image_tmpl))
    stats = dict(listed=len(seen), skipped=len(seen) - len(todo), written=0, failed=0)
    errors = []
    err_file = db_path.rstrip('/') + '.errors.txt'
    batch, batch_bytes, batch_paths = [], 0, {}      # batch_paths: key -> list path

    def flush():
        nonlocal batch, batch_bytes, batch_paths
        if not batch:
            return
        _put_batch(env, batch, db_path)
        for k, reason in _verify_batch(env, batch, verify_decode):
            errors.append((batch_paths[k], reason))
            with env.begin(write=True) as txn:
                txn.delete(k)
            stats['written'] -= 1
            stats['failed'] += 1
        batch, batch_bytes, batch_paths = [], 0, {}

    bar = tqdm(total=len(todo), desc=os.path.basename(db_path), unit='video', disable=quiet)
    pool = (concurrent.futures.ProcessPoolExecutor(workers) if workers > 1 else None)
    try:
        results = (pool.map(pack_video, todo, chunksize=8) if pool else map(pack_video, todo))
        for path, value, err in results:
            bar.update()
            if err is not None:
                errors.append((path, err))
                stats['failed'] += 1
                continue
            batch.append((lmdb_key(path), value))
            batch_paths[batch[-1][0]] = path
            batch_bytes += len(value)
            stats['written'] += 1
            if len(batch) >= commit_every or batch_bytes > 512 << 20:
                flush()
        flush()
    finally:
        bar.close()
        if pool:
            pool.shutdown()
    meta = dict(format='video-frames', version=LMDB_VERSION, list_file=os.path.abspath(list_file),
                root=os.path.abspath(root), image_tmpl=image_tmpl, built=time.strftime('%F %T'))
    _put_batch(env, [(META_KEY, json.dumps(meta).encode())], db_path)
    with env.begin() as txn:
        stats['records'] = txn.stat()['entries'] - 1
    env.sync()
    env.close()
    if errors:
        write_report(err_file, [format_note(path, reason) for path, reason in errors])
    elif os.path.exists(err_file):
        os.remove(err_file)
    stats['errors_file'] = err_file if errors else None
    return stats


def arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description='Pack frame folders into one LMDB database per split (one record per video).',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog='Example: python3 tools/build_lmdb.py --root data/synthetic --split train val -j 4')
    p.add_argument('--root', required=True,
                   help='dataset root (--datadir): holds the list files and the frame folders')
    p.add_argument('--split', nargs='+', default=['train', 'val', 'test'],
                   help='splits to pack; the list of split S is <root>/S.txt (or --dataset\'s '
                        'list name) unless --list')
    p.add_argument('--dataset', default=None,
                   help='read the list names and field separator of this dataset '
                        '(utils/dataset_config.py: e.g. mini_train.txt, ";" for kinetics400)')
    p.add_argument('--list', default=None,
                   help='pack this list file instead (only with a single --split)')
    p.add_argument('--out', default=None,
                   help='where the databases go, as <out>/<split>.lmdb (default: --root, where '
                        '--use_lmdb looks for them)')
    p.add_argument('--image_tmpl', default='{:05d}.jpg',
                   help="frame file names; used to check that the listed frames are present "
                        "(optical flow: '{:05d}_{}.jpg', both x and y images)")
    p.add_argument('--sep', default=None,
                   help="field separator of the list files (default: --dataset's, or ' ')")
    p.add_argument('-j', '--workers', type=int, default=1, help='processes reading the folders')
    p.add_argument('--map_size_gb', type=float, default=1.0,
                   help='initial map size in GiB (grows by doubling when full)')
    p.add_argument('--commit_every', type=int, default=256, help='videos per transaction')
    p.add_argument('--overwrite', action='store_true', help='rewrite records already present')
    p.add_argument('--verify_decode', action='store_true',
                   help='also decode every frame when verifying (slower)')
    p.add_argument('--allow_outside_root', action='store_true',
                   help='pack listed videos outside --root too (absolute paths, or .. above it)')
    p.add_argument('-q', '--quiet', action='store_true', help='no progress bar')
    return p


def main(argv=None) -> int:
    args = arg_parser().parse_args(argv)
    if args.list and len(args.split) != 1:
        raise SystemExit('error: --list takes a single --split')
    out = args.out or args.root
    cfg = get_dataset_config(args.dataset) if args.dataset else {}
    sep = args.sep or cfg.get('sep', ' ')
    status = 0
    for split in args.split:
        list_file = args.list or os.path.join(args.root, list_name(cfg, split))
        if not os.path.isfile(list_file):
            if args.list or split in ('train', 'val'):
                raise SystemExit(f'error: list file not found: {list_file}')
            print(f'{split}: no list file {list_file}; skipped')
            continue
        db = lmdb_path(out, split)
        again = ' '.join(shlex.quote(a) for a in ['python3', 'tools/build_lmdb.py', '--root',
                                                  args.root, '--split', split] +
                         (['--dataset', args.dataset] if args.dataset else []))
        s = build_split(args.root, list_file, db, args.image_tmpl, args.workers,
                        args.map_size_gb, args.commit_every, args.overwrite, args.verify_decode,
                        sep, args.quiet, labels_required(split), again,
                        args.allow_outside_root)
        print(f'{split}: {db}: {s["listed"]} listed, {s["written"]} written, {s["skipped"]} '
              f'already present, {s["failed"]} failed, {s["records"]} records in the database')
        if s['errors_file']:
            print(f'{split}: failures listed in {s["errors_file"]}')
            status = 1
    return status


if __name__ == '__main__':
    run_main(lambda: sys.exit(main()), trains=False)
