#!/usr/bin/env python3
"""Check list files against the stored frames (folders or LMDB) before a long run.

Finds: videos missing from storage, empty folders, listed frames that are absent (the frame
count disagrees with the list), unreadable or truncated JPEGs, and (LMDB) records that do not
decode; a list line that does not parse and a damaged LMDB database (cut short) stop it with
one line naming them. Prints a summary and writes the bad entries, one list line each
followed by a tab and the reason, to --bad (default <list>.bad.txt next to the list): give
it to train.py/test.py as --exclude_list, write a cleaned list (`--write_clean`:
<list>.clean.txt), or fix the data. Lists are read as utils/list_file.py defines (--dataset
gives the list names and separator, e.g. mini_train.txt or ';').

Usage (-j: up to the CPU cores, nproc says how many):
    python3 tools/check_dataset.py --root data/synthetic --split train val -j 2
    python3 tools/check_dataset.py --root data/synthetic --split train --use_lmdb
"""
import argparse
import collections
import concurrent.futures
import os
import shlex
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tqdm import tqdm  # noqa: E402

from utils.dataset_config import get_dataset_config, list_name  # noqa: E402
from utils.errors import run_main  # noqa: E402
from utils.frame_files import describe  # noqa: E402
from utils.list_file import (format_line, format_note, labels_required,  # noqa: E402
                             read_list, write_list, write_report)
from utils.storage import (FrameReadError, LMDBStorage, VideoMissingError,  # noqa: E402
                           check_lmdb_path, decode_image, frame_names, lmdb_path)

KINDS = ('missing video', 'empty folder', 'missing frames', 'unreadable frame')


def _full_decode(blob_or_path, name):
    """Decode, forcing the whole image to load (catches truncated files)."""
    arr = decode_image(blob_or_path, name)
    if arr.size == 0:
        raise FrameReadError(f'{name}: empty image')
    return arr


def check_entry(task):
    """(record, kind or None, reason) for one video record of a list."""
    record, root, db, tmpl, decode = task
    path, start, end = record.path, record.start, record.end
    names = [name for n in range(start, end + 1) for name in frame_names(tmpl, n)]
    if db:
        storage = _storage(db, tmpl)
        try:
            stored = storage.get_record(path)
        except VideoMissingError as exc:
            return record, 'missing video', str(exc)
        except FrameReadError as exc:
            return record, 'unreadable frame', str(exc)
        if not stored:
            return record, 'empty folder', f'{db}[{path}]: record holds no frames'
        absent = [n for n in names if n not in stored]
        if absent:
            return record, 'missing frames', (f'{db}[{path}]: {len(absent)} of {len(names)} '
                                              f'listed frames absent (first: {absent[0]})')
        sources = [(stored[n], f'{db}[{path}/{n}]') for n in names] if decode else []
    else:
        folder = os.path.join(root, path)
        if not os.path.isdir(folder):
            return record, 'missing video', f'{folder}: no such folder'
        present = set(os.listdir(folder))
        if not any(n.lower().endswith(('.jpg', '.jpeg', '.png')) for n in present):
            return record, 'empty folder', f'{folder}: no frames'
        absent = [n for n in names if n not in present]
        if absent:
            return record, 'missing frames', (f'{folder}: {len(absent)} of {len(names)} '
                                              f'listed frames absent (first: {absent[0]}); '
                                              f'the list says {start}..{end}, the folder '
                                              f'{describe(folder, present)}')
        sources = [(os.path.join(folder, n), os.path.join(folder, n)) for n in names] \
            if decode else []
    for src, name in sources:
        try:
            _full_decode(src, name)
        except FrameReadError as exc:
            return record, 'unreadable frame', str(exc)
    return record, None, ''


_STORAGES = {}


def _storage(db, tmpl, rebuild=''):
    if db not in _STORAGES:
        _STORAGES[db] = LMDBStorage(db, tmpl, rebuild)   # checks it is not cut short
    return _STORAGES[db]


def check_split(list_file: str, root: str, db: str | None = None, tmpl: str = '{:05d}.jpg',
                sep: str = ' ', workers: int = 1, decode: bool = True, bad_file: str | None = None,
                quiet: bool = False, labelled: bool | None = None, rebuild: str = '',
                allow_outside_root: bool = False) -> dict:
    """Check one list; write the bad entries to bad_file; return {kind: count, 'videos': n,
    'records': the list's records, 'bad_entries': [(record, kind, reason)]}. A listed path
    that leaves `root` is an error naming its line unless `allow_outside_root`."""
    records = read_list(list_file, sep, labelled=labelled,
                        root=None if allow_outside_root else f'--root {root}')
    if db:
        try:
            check_lmdb_path(db)
        except FileNotFoundError as exc:
            raise SystemExit(f'error: {exc}') from None
        _storage(db, tmpl, rebuild)                       # in this process, before any worker
    tasks = [(record, root, db, tmpl, decode) for record in records]
    counts = collections.Counter()
    bad = []
    pool = concurrent.futures.ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        results = pool.map(check_entry, tasks, chunksize=16) if pool else map(check_entry, tasks)
        for record, kind, reason in tqdm(results, total=len(tasks),
                                         desc=os.path.basename(list_file), unit='video',
                                         disable=quiet):
            if kind:
                counts[kind] += 1
                bad.append((record, kind, reason))
    finally:
        if pool:
            pool.shutdown()
    bad_file = bad_file or os.path.splitext(list_file)[0] + '.bad.txt'
    write_report(bad_file, [format_note(format_line(r.path, r.start, r.end, r.label, sep),
                                        f'{kind}: {reason}') for r, kind, reason in bad])
    stats = {k: counts.get(k, 0) for k in KINDS}
    stats.update(videos=len(records), bad=len(bad), bad_file=bad_file, bad_entries=bad,
                 records=records)
    return stats


def arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description='Check list files against frame folders or LMDB databases.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--root', required=True, help='dataset root (--datadir)')
    p.add_argument('--split', nargs='+', default=['train', 'val'],
                   help="lists <root>/<split>.txt (or --dataset's list names)")
    p.add_argument('--dataset', default=None,
                   help='read the list names and field separator of this dataset '
                        '(utils/dataset_config.py: e.g. mini_train.txt, ";" for kinetics400)')
    p.add_argument('--list', default=None, help='check this list file (single --split)')
    p.add_argument('--use_lmdb', action='store_true',
                   help='check <root>/<split>.lmdb (or --lmdb) instead of the folders')
    p.add_argument('--lmdb', default=None, help='the LMDB database (single --split)')
    p.add_argument('--image_tmpl', default='{:05d}.jpg',
                   help="frame file names; optical flow: '{:05d}_{}.jpg' (x and y images)")
    p.add_argument('--sep', default=None,
                   help="list field separator (default: --dataset's, or ' ')")
    p.add_argument('--no_decode', action='store_true',
                   help='only check presence and counts, do not decode the JPEGs (fast)')
    p.add_argument('-j', '--workers', type=int, default=1, help='parallel processes')
    p.add_argument('--bad', default=None, help='bad-entries file (default <list>.bad.txt)')
    p.add_argument('--write_clean', action='store_true',
                   help='also write <list>.clean.txt without the bad entries')
    p.add_argument('--allow_outside_root', action='store_true',
                   help='accept listed paths outside --root (absolute, or .. above it)')
    p.add_argument('-q', '--quiet', action='store_true', help='no progress bar')
    return p


def main(argv=None) -> int:
    a = arg_parser().parse_args(argv)
    if (a.list or a.lmdb or a.bad) and len(a.split) != 1:
        raise SystemExit('error: --list/--lmdb/--bad take a single --split')
    cfg = get_dataset_config(a.dataset) if a.dataset else {}
    sep = a.sep or cfg.get('sep', ' ')
    total_bad = 0
    for split in a.split:
        list_file = a.list or os.path.join(a.root, list_name(cfg, split))
        db = (a.lmdb or lmdb_path(a.root, split)) if (a.use_lmdb or a.lmdb) else None
        again = ' '.join(shlex.quote(x) for x in ['python3', 'tools/build_lmdb.py', '--root',
                                                  a.root, '--split', split] +
                         (['--dataset', a.dataset] if a.dataset else []))
        s = check_split(list_file, a.root, db, a.image_tmpl, sep, a.workers, not a.no_decode,
                        a.bad, a.quiet, labels_required(split), again, a.allow_outside_root)
        where = db or a.root
        summary = ', '.join(f'{s[k]} {k}' for k in KINDS)
        print(f'{split}: {s["videos"]} videos checked against {where}: {s["bad"]} bad ({summary})')
        for record, kind, reason in s['bad_entries'][:10]:
            print(f'  {list_file}:{record.line}: {kind}: {reason}')
        if s['bad']:
            print(f'  bad entries written to {s["bad_file"]}')
            if a.write_clean:
                bad_paths = {r.path for r, _, _ in s['bad_entries']}
                clean = os.path.splitext(list_file)[0] + '.clean.txt'
                write_list(clean, [r for r in s['records'] if r.path not in bad_paths], sep)
                print(f'  list without them: {clean}')
        total_bad += s['bad']
    return 1 if total_bad else 0


if __name__ == '__main__':
    run_main(lambda: sys.exit(main()), trains=False)
