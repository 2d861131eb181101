#!/usr/bin/env python3
"""Check list files against the stored frames (folders or LMDB) before a long run.

Finds: videos missing from storage, empty folders, listed frames that are absent (the frame
count disagrees with the list), unreadable or truncated JPEGs, and (LMDB) records that do not
decode. Prints a summary and writes the bad entries, one list line each followed by a tab and
the reason, to --bad (default <split>.bad.txt next to the list): give it to train.py/test.py
as --exclude_list, write a cleaned list (`--write_clean`), or fix the data.

Usage:
    python3 tools/check_dataset.py --root data/synthetic --split train val -j 4
    python3 tools/check_dataset.py --root data/synthetic --split train --use_lmdb
"""
import argparse
import collections
import concurrent.futures
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tqdm import tqdm  # noqa: E402

from utils.storage import (FrameReadError, LMDBStorage, check_lmdb_path,  # noqa: E402
                           decode_image, frame_names)

KINDS = ('missing video', 'empty folder', 'missing frames', 'unreadable frame')


def _full_decode(blob_or_path, name):
    """Decode, forcing the whole image to load (catches truncated files)."""
    arr = decode_image(blob_or_path, name)
    if arr.size == 0:
        raise FrameReadError(f'{name}: empty image')
    return arr


def check_entry(task):
    """(line, kind or None, reason) for one list line."""
    line, root, db, tmpl, sep, decode = task
    parts = line.split(sep)
    path, start, end = parts[0], int(parts[1]), int(parts[2])
    names = [name for n in range(start, end + 1) for name in frame_names(tmpl, n)]
    if db:
        storage = _storage(db, tmpl)
        try:
            record = storage.get_record(path)
        except FrameReadError as exc:
            kind = 'missing video' if 'key missing' in str(exc) else 'unreadable frame'
            return line, kind, str(exc)
        if not record:
            return line, 'empty folder', f'{db}[{path}]: record holds no frames'
        absent = [n for n in names if n not in record]
        if absent:
            return line, 'missing frames', (f'{db}[{path}]: {len(absent)} of {len(names)} listed '
                                            f'frames absent (first: {absent[0]})')
        sources = [(record[n], f'{db}[{path}/{n}]') for n in names] if decode else []
    else:
        folder = os.path.join(root, path)
        if not os.path.isdir(folder):
            return line, 'missing video', f'{folder}: no such folder'
        present = set(os.listdir(folder))
        if not any(n.lower().endswith(('.jpg', '.jpeg', '.png')) for n in present):
            return line, 'empty folder', f'{folder}: no frames'
        absent = [n for n in names if n not in present]
        if absent:
            return line, 'missing frames', (f'{folder}: {len(absent)} of {len(names)} listed '
                                            f'frames absent (first: {absent[0]}); '
                                            f'the list says {start}..{end}')
        sources = [(os.path.join(folder, n), os.path.join(folder, n)) for n in names] \
            if decode else []
    for src, name in sources:
        try:
            _full_decode(src, name)
        except FrameReadError as exc:
            return line, 'unreadable frame', str(exc)
    return line, None, ''


_STORAGES = {}


def _storage(db, tmpl):
    if db not in _STORAGES:
        _STORAGES[db] = LMDBStorage(db, tmpl)
    return _STORAGES[db]


def check_split(list_file: str, root: str, db: str | None = None, tmpl: str = '{:05d}.jpg',
                sep: str = ' ', workers: int = 1, decode: bool = True, bad_file: str | None = None,
                quiet: bool = False) -> dict:
    """Check one list; write the bad lines to bad_file; return {kind: count, 'videos': n}."""
    if not os.path.isfile(list_file):
        raise SystemExit(f'error: list file not found: {list_file}')
    if db:
        try:
            check_lmdb_path(db)
        except FileNotFoundError as exc:
            raise SystemExit(f'error: {exc}') from None
    with open(list_file) as f:
        lines = [line.strip() for line in f if line.strip()]
    tasks = [(line, root, db, tmpl, sep, decode) for line in lines]
    counts = collections.Counter()
    bad = []
    pool = concurrent.futures.ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        results = pool.map(check_entry, tasks, chunksize=16) if pool else map(check_entry, tasks)
        for line, kind, reason in tqdm(results, total=len(tasks), desc=os.path.basename(list_file),
                                       unit='video', disable=quiet):
            if kind:
                counts[kind] += 1
                bad.append((line, kind, reason))
    finally:
        if pool:
            pool.shutdown()
    bad_file = bad_file or os.path.splitext(list_file)[0] + '.bad.txt'
    with open(bad_file, 'w') as f:
        for line, kind, reason in bad:
            f.write(f'{line}\t{kind}: {reason}\n')
    stats = {k: counts.get(k, 0) for k in KINDS}
    stats.update(videos=len(lines), bad=len(bad), bad_file=bad_file, bad_entries=bad)
    return stats


def arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description='Check list files against frame folders or LMDB databases.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--root', required=True, help='dataset root (--datadir)')
    p.add_argument('--split', nargs='+', default=['train', 'val'], help='lists <root>/<split>.txt')
    p.add_argument('--list', default=None, help='check this list file (single --split)')
    p.add_argument('--use_lmdb', action='store_true',
                   help='check <root>/<split>.lmdb (or --lmdb) instead of the folders')
    p.add_argument('--lmdb', default=None, help='the LMDB database (single --split)')
    p.add_argument('--image_tmpl', default='{:05d}.jpg',
                   help="frame file names; optical flow: '{:05d}_{}.jpg' (x and y images)")
    p.add_argument('--sep', default=' ', help='list field separator')
    p.add_argument('--no_decode', action='store_true',
                   help='only check presence and counts, do not decode the JPEGs (fast)')
    p.add_argument('-j', '--workers', type=int, default=1, help='parallel processes')
    p.add_argument('--bad', default=None, help='bad-entries file (default <list>.bad.txt)')
    p.add_argument('--write_clean', action='store_true',
                   help='also write <list>.clean.txt without the bad entries')
    p.add_argument('-q', '--quiet', action='store_true', help='no progress bar')
    return p


def main(argv=None) -> int:
    a = arg_parser().parse_args(argv)
    if (a.list or a.lmdb or a.bad) and len(a.split) != 1:
        raise SystemExit('error: --list/--lmdb/--bad take a single --split')
    total_bad = 0
    for split in a.split:
        list_file = a.list or os.path.join(a.root, f'{split}.txt')
        db = (a.lmdb or os.path.join(a.root, f'{split}.lmdb')) if (a.use_lmdb or a.lmdb) else None
        s = check_split(list_file, a.root, db, a.image_tmpl, a.sep, a.workers, not a.no_decode,
                        a.bad, a.quiet)
        where = db or a.root
        summary = ', '.join(f'{s[k]} {k}' for k in KINDS)
        print(f'{split}: {s["videos"]} videos checked against {where}: {s["bad"]} bad ({summary})')
        for line, kind, reason in s['bad_entries'][:10]:
            print(f'  {kind}: {reason}')
        if s['bad']:
            print(f'  bad entries written to {s["bad_file"]}')
            if a.write_clean:
                bad_paths = {line.split(a.sep)[0] for line, _, _ in s['bad_entries']}
                clean = os.path.splitext(list_file)[0] + '.clean.txt'
                with open(list_file) as f, open(clean, 'w') as g:
                    g.writelines(line for line in f
                                 if line.strip() and line.split(a.sep)[0] not in bad_paths)
                print(f'  list without them: {clean}')
        total_bad += s['bad']
    return 1 if total_bad else 0


if __name__ == '__main__':
    sys.exit(main())
