#!/usr/bin/env python3
"""Write list files (`path start end label`) from dataset annotations and extracted frames.

The lists are named and separated as the --dataset they are for (utils/dataset_config.py;
default: kinetics400, st2stv2, st2stv1, moments or synthetic after the format): e.g.
`train.txt` with spaces, `mini_train.txt`, or `path;start;end;label` for kinetics400. Lines
are written by utils/list_file.py, so any file name is listed (`air drumming/my clip 1 1 90
0`); the original code reads names with spaces only in ';' lists. A list without labels is
written with label -1. categories.txt holds one class name a line.

Formats (the first argument):
  kinetics400  CSV with columns label,youtube_id,time_start,time_end,split; a video is found
               as the frame folder named <youtube_id>_<start:06d>_<end:06d> (or <youtube_id>)
               anywhere under --frames. Classes: the sorted label names (or --classes).
  ssv2         Something-Something v2: JSON list of {id, label, template, placeholders} and the
               labels JSON {name: index} (--classes); the class is the template without [].
               Test JSON (only ids) gives a list without labels.
  ssv1         Something-Something v1: CSV lines `id;label` and the labels file (one name a
               line, --classes); test CSV with only ids gives a list without labels.
  moments      Moments in Time: CSV lines `path,label,...` (path like label/video.mp4) and the
               categories file (`name,index` lines, --classes) or sorted names.
  folders      generic: --videos holding one folder per class (`<class>/<video>.<ext>`), or
               `<split>/<class>/<video>` when --split_folders; classes are the sorted folders.
               --val_fraction and --test_fraction split each class on its own (stratified):
               of a class's n videos round(n x fraction) go to val and to test, at least one
               to val when n >= 2 and one to test when n >= 3, and at least one stays in
               train; which ones is decided by a hash of each video's path, so the same
               videos give the same split on every run and for every --split. Several splits
               at once: --split train val test.

Each listed video must have been extracted under --frames; its frames are read from the
extraction's .done marker (1..N), else from the folder: frames numbered from 0 (00000.jpg, as
ffmpeg -start_number 0 writes) are listed 0..N-1, and frames named otherwise than --image_tmpl
(00001.png) are listed by the template of the folder's first file name, with a note saying
which --image_tmpl the run then needs. Videos without frames are left out of the list and
counted (written to <list>.missing.txt, `path<TAB>reason`).

--from_videos (for --video_backend pyav, which decodes clips from the video files): no
extraction and no --frames; videos are found under --videos the same way (by relative path
without extension, or by base name), list lines are `<path relative to --videos>.<ext> 1 N
label`, and N is the number of frames decoding gives (utils/video_reader.py). N is counted from
the packets, without decoding (~70x faster), for the codecs where that count was verified to
equal the decoded count (utils.video_reader.FRAME_PER_PACKET_CODECS: h264, mpeg4, vp9), and by
decoding otherwise or with --count decode. -j counts in parallel. A video that cannot be
opened, has no video stream or no frames goes to <out>/<split>.missing.txt with the reason.

Usage:
  python3 tools/annotations.py kinetics400 --ann kinetics400/train.csv --split train \\
      --frames data/k400 --out data/k400
  python3 tools/annotations.py ssv2 --ann something-something-v2-train.json \\
      --classes something-something-v2-labels.json --split train --frames data/ssv2 --out data/ssv2
  python3 tools/annotations.py folders --videos raw/ --frames data/mine --out data/mine \\
      --split train val test --val_fraction 0.2 --test_fraction 0.2
  python3 tools/annotations.py folders --videos raw/ --from_videos --split train -j 2
      (writes raw/train.txt with lines like `jump/a.mp4 1 300 0`; -j: up to the CPU cores)
"""
import argparse
import collections
import concurrent.futures
import csv
import hashlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from utils.dataset_config import DATASET_CONFIG, get_dataset_config, list_name  # noqa: E402
from utils.errors import UserError, run_main  # noqa: E402
from utils.list_file import (ListFileError, format_line, format_note,  # noqa: E402
                             read_categories, write_categories, write_report)
from utils.list_file import write_list as write_list_file  # noqa: E402

FORMATS = ('kinetics400', 'ssv2', 'ssv1', 'moments', 'folders')
# The dataset (utils/dataset_config.py) whose list names and separator a format writes.
DEFAULT_DATASET = dict(kinetics400='kinetics400', ssv2='st2stv2', ssv1='st2stv1',
                       moments='moments', folders='synthetic')


# ----------------------------------------------------------------------------- classes

def read_classes(path: str) -> list:
    """Class names in index order from a labels file: JSON {name: index} or [names], lines
    `name`, `name,index` or `name;index`."""
    with open(path, encoding='utf-8-sig') as f:
        text = f.read()
    if path.endswith('.json'):
        data = json.loads(text)
        if isinstance(data, dict):
            return [n for n, _ in sorted(data.items(), key=lambda kv: int(kv[1]))]
        return list(data)
    names, indexed = [], []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        for sep in (';', ','):
            head, _, tail = line.rpartition(sep)
            if head and tail.strip().isdigit():
                indexed.append((int(tail), head.strip()))
                break
        else:
            names.append(line)
    if indexed and not names:
        return [n for _, n in sorted(indexed)]
    return names or [n for _, n in sorted(indexed)]


# ----------------------------------------------------------------------------- parsers
# Each returns [(candidate frame-folder keys, label name or None)].

KINETICS_COLUMNS = ('label', 'youtube_id', 'time_start', 'time_end', 'split')


def parse_kinetics400(ann: str, split: str | None) -> list:
    out = []
    with open(ann, newline='', encoding='utf-8-sig') as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        absent = [c for c in KINETICS_COLUMNS[1:4] if c not in header]
        if absent:
            raise UserError(f'{ann}: a kinetics400 CSV has the columns '
                            f'{",".join(KINETICS_COLUMNS)} (label and split may be left out); '
                            f'this one has {",".join(header) or "no header"}, without '
                            f'{", ".join(absent)}; give --ann the CSV of the Kinetics-400 '
                            f'release')
        for row in reader:
            if split and row.get('split') and row['split'] != split and \
                    not (split == 'val' and row['split'] == 'validate'):
                continue
            yid = row['youtube_id']
            try:
                start, end = int(float(row['time_start'])), int(float(row['time_end']))
            except (TypeError, ValueError):
                raise UserError(f'{ann}:{reader.line_num}: time_start {row["time_start"]!r} '
                                f'and time_end {row["time_end"]!r} should be numbers (seconds); '
                                f'fix or remove the line') from None
            label = row.get('label')
            out.append(([f'{yid}_{start:06d}_{end:06d}', yid], label if label else None))
    return out


def ssv2_class(template: str) -> str:
    return template.replace('[', '').replace(']', '')


def parse_ssv2(ann: str, split: str | None) -> list:
    with open(ann, encoding='utf-8-sig') as f:
        items = json.load(f)
    return [([str(it['id'])], ssv2_class(it['template']) if 'template' in it else None)
            for it in items]


def parse_ssv1(ann: str, split: str | None) -> list:
    out = []
    with open(ann, encoding='utf-8-sig') as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            vid, _, label = line.partition(';')
            out.append(([vid.strip()], label.strip() or None))
    return out


def parse_moments(ann: str, split: str | None) -> list:
    out = []
    with open(ann, newline='', encoding='utf-8-sig') as f:
        for row in csv.reader(f):
            if not row or not row[0].strip():
                continue
            path = row[0].strip()
            stem = os.path.splitext(path)[0]
            label = row[1].strip() if len(row) > 1 and row[1].strip() else None
            out.append(([stem, os.path.basename(stem)], label))
    return out


SPLITS = ('train', 'val', 'test')


def split_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(val, test) videos of a class of `n`: each fraction of n rounded (halves up), at least
    one in val when n >= 2 and one in test when n >= 3 (for fractions above 0), and at least
    one left to train."""
    val, test = int(n * val_fraction + 0.5), int(n * test_fraction + 0.5)
    if val_fraction > 0 and n >= 2:
        val = max(val, 1)
    if test_fraction > 0 and n >= 3:
        test = max(test, 1)
    val = min(val, n - 1)
    return val, min(test, n - 1 - val)


def stratified_split(videos: list, classes: list, val_fraction: float,
                     test_fraction: float) -> dict:
    """{video: 'train' | 'val' | 'test'} for videos (relative paths) of the given classes,
    class by class (split_counts). A class's videos are ordered by a hash of their path, so
    which of them go to val and test depends on the names alone, not on the order found or on
    the other classes."""
    def key(video):
        return hashlib.sha1(os.path.splitext(video)[0].encode('utf-8', 'surrogateescape')
                            ).hexdigest(), video
    by_class = {}
    for video, label in zip(videos, classes):
        by_class.setdefault(label, []).append(video)
    where = {}
    for members in by_class.values():
        members = sorted(members, key=key)
        val, test = split_counts(len(members), val_fraction, test_fraction)
        for k, video in enumerate(members):
            where[video] = 'val' if k < val else 'test' if k < val + test else 'train'
    return where


def parse_folders(videos: str, split: str | None, split_folders: bool = False,
                  val_fraction: float = 0.0, keep_ext: bool = False,
                  test_fraction: float = 0.0) -> list:
    """Entries of a one-folder-per-class layout (with fractions: the `split` part of a
    stratified_split); keep_ext: keys keep the file extension (lists of video files, where
    a.mp4 and a.avi are two videos)."""
    from tools.extract_frames import find_videos
    root = os.path.join(videos, split) if split_folders else videos
    found = [(rel, rel.split(os.sep)[0]) for rel in find_videos(root)
             if len(rel.split(os.sep)) >= 2]
    where = None
    if not split_folders and (val_fraction > 0 or test_fraction > 0):
        where = stratified_split([r for r, _ in found], [c for _, c in found], val_fraction,
                                 test_fraction)
    out = []
    for rel, label in found:
        if where is not None and where[rel] != split:
            continue
        name = rel if keep_ext else os.path.splitext(rel)[0]
        key = os.path.join(split, name) if split_folders else name
        out.append(([key], label))
    return out


# ----------------------------------------------------------------------------- frames

def count_frames(folder: str, image_tmpl: str = '{:05d}.jpg') -> int:
    """Frames of an extracted folder: the .done marker's count, else consecutive frames from 1."""
    try:
        with open(os.path.join(folder, '.done')) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    try:
        names = set(os.listdir(folder))
    except OSError:
        return 0
    n = 0
    while image_tmpl.format(n + 1) in names:
        n += 1
    return n


def frame_range(folder: str, image_tmpl: str = '{:05d}.jpg') -> tuple[int, int, str] | None:
    """(first, last, template) of an extracted folder's frames: 1..N from the .done marker of
    tools/extract_frames.py; else the consecutive frames `image_tmpl` names, from 0 when the
    folder has a frame 0 (utils/frame_files.frame_span); else those of the template its first
    image file follows (00001.png: '{:05d}.png'); None when it holds no numbered frames."""
    from utils.frame_files import frame_span, guess_template
    try:
        with open(os.path.join(folder, '.done')) as f:
            return 1, int(f.read().split()[0]), image_tmpl
    except (OSError, ValueError, IndexError):
        pass
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    for tmpl in (image_tmpl, guess_template(names)):
        span = frame_span(names, tmpl) if tmpl else None
        if span:
            return span[0], span[1], tmpl
    return None


def index_frame_folders(frames_root: str) -> dict:
    """{relative path and base name: relative path} of every folder holding images."""
    index = {}
    for dirpath, dirnames, filenames in os.walk(frames_root):
        if dirpath.endswith('.part'):
            continue
        if any(f.lower().endswith(('.jpg', '.jpeg', '.png')) for f in filenames):
            rel = os.path.relpath(dirpath, frames_root)
            index[rel] = rel
            index.setdefault(os.path.basename(rel), rel)
    return index


def index_video_files(videos_root: str) -> dict:
    """{relative path, relative path without extension, base name without extension: relative
    path of the video file}; where two files share a stem the first in sorted order wins."""
    from tools.extract_frames import find_videos
    index = {}
    for rel in find_videos(videos_root):
        stem = os.path.splitext(rel)[0]
        index[rel] = rel
        index.setdefault(stem, rel)
        index.setdefault(os.path.basename(stem), rel)
    return index


def count_video_frames(path: str, count: str = 'demux') -> tuple:
    """(N, '') where N is the number of frames decoding the first video stream gives, or
    (0, reason). count='demux' counts packets without decoding where one packet is one frame
    (utils.video_reader.packet_index), else decodes; count='decode' always decodes."""
    import av
    from utils.video_reader import packet_index
    try:
        index = packet_index(path) if count == 'demux' else None
        if index is not None:
            n = len(index[0])
        else:
            with av.open(path) as container:
                if not container.streams.video:
                    return 0, 'no video stream'
                n = sum(1 for _ in container.decode(container.streams.video[0]))
    except Exception as exc:  # noqa: BLE001 - any failure is reported, the run goes on
        return 0, f'cannot read video: {type(exc).__name__}: {exc}'
    return (n, '') if n else (0, 'no frames decoded')


def _count_task(task):
    return count_video_frames(*task)


def count_videos(paths: list, count: str = 'demux', workers: int = 1, quiet: bool = True) -> list:
    """count_video_frames of each path, in order, with -j processes and a progress bar."""
    from tqdm import tqdm
    tasks = [(p, count) for p in paths]
    pool = concurrent.futures.ProcessPoolExecutor(workers) if workers > 1 and paths else None
    try:
        results = pool.map(_count_task, tasks, chunksize=4) if pool else map(_count_task, tasks)
        return list(tqdm(results, total=len(tasks), desc='count frames', unit='video',
                         disable=quiet))
    finally:
        if pool:
            pool.shutdown()


def write_list(entries: list, classes: list | None, frames_root: str, list_path: str,
               image_tmpl: str = '{:05d}.jpg', from_videos: bool = False, workers: int = 1,
               count: str = 'demux', quiet: bool = True, sep: str = ' ') -> dict:
    """Write `path 1 N label` lines (separated by `sep`) for entries that have frames; returns
    counts. With from_videos, `frames_root` is the root of the video files, paths are video
    files and N comes from the videos (count_videos)."""
    class_index = {c: i for i, c in enumerate(classes)} if classes else {}
    index = index_video_files(frames_root) if from_videos else index_frame_folders(frames_root)
    located, missing = [], []
    not_found = 'no video file' if from_videos else 'no extracted frames'
    for keys, label in entries:
        rel = next((index[k] for k in keys if k in index), None)
        if rel is None:
            missing.append((keys[0], not_found))
        else:
            located.append((keys, label, rel))
    paths = [os.path.join(frames_root, rel) for _, _, rel in located]
    if from_videos:
        counted = count_videos(paths, count, workers, quiet)
        spans = [(1, n, None) if n else None for n, _ in counted]
        reasons = [reason for _, reason in counted]
    else:
        spans = [frame_range(p, image_tmpl) for p in paths]
        reasons = ['no extracted frames'] * len(spans)
    lines, unknown, labelled = [], [], set()
    from_zero, templates = 0, collections.Counter()
    for (keys, label, rel), span, reason in zip(located, spans, reasons):
        if span is None:
            missing.append((rel if from_videos else keys[0], reason))
        elif label is not None and label not in class_index:
            unknown.append((keys[0], f'label {label!r} not in the class list'))
        else:
            first, last, tmpl = span
            from_zero += first == 0
            if tmpl and tmpl != image_tmpl:
                templates[tmpl] += 1
            row = (rel, first, last, class_index.get(label))
            try:
                format_line(*row, sep=sep)
            except ListFileError as exc:          # a tab or line break in the file name
                missing.append((rel, exc.message))
                continue
            lines.append(row)
            labelled.add(label is not None)
    if len(labelled) > 1:
        raise ListFileError(f'{list_path}: some annotations have labels and some do not; '
                            f'give --ann the annotations of one split')
    write_report_or_remove(os.path.splitext(list_path)[0] + '.missing.txt', missing + unknown)
    write_list_file(list_path, lines, sep)
    return dict(written=len(lines), missing=len(missing), unknown_label=len(unknown),
                from_zero=from_zero, templates=dict(templates),
                per_class=collections.Counter(row[3] for row in lines))


def write_report_or_remove(path: str, items: list) -> None:
    """Write [(path, reason)] as a report, or remove an old report when there is nothing."""
    if items:
        write_report(path, [format_note(p, reason) for p, reason in items])
    elif os.path.exists(path):
        os.remove(path)


PARSERS = dict(kinetics400=parse_kinetics400, ssv2=parse_ssv2, ssv1=parse_ssv1,
               moments=parse_moments)


def make_list(fmt: str, frames: str, out: str, split: str, ann: str | None = None,
              classes_file: str | None = None, videos: str | None = None,
              split_folders: bool = False, val_fraction: float = 0.0,
              image_tmpl: str = '{:05d}.jpg', from_videos: bool = False, workers: int = 1,
              count: str = 'demux', quiet: bool = True, dataset: str | None = None,
              test_fraction: float = 0.0) -> dict:
    """Write the list of `split` (named and separated as `dataset`'s, by default the format's
    DEFAULT_DATASET: <out>/<split>.txt, mini_<split>.txt, ...) and <out>/categories.txt for
    annotation format `fmt`. With from_videos the list names the video files under `videos`
    (`frames` is unused). `val_fraction` and `test_fraction` split the folders format's
    videos class by class (stratified_split)."""
    cfg = get_dataset_config(dataset or DEFAULT_DATASET[fmt])
    for option, value in (('--val_fraction', val_fraction), ('--test_fraction', test_fraction)):
        if not 0 <= value < 1:
            raise UserError(f'{option} {value:g} is impossible; give a fraction from 0 to 1, '
                            f'e.g. 0.2')
    fractions = val_fraction > 0 or test_fraction > 0
    if fractions and val_fraction + test_fraction >= 1:
        raise UserError(f'--val_fraction {val_fraction:g} and --test_fraction '
                        f'{test_fraction:g} leave nothing to train on; give fractions that '
                        f'sum to less than 1')
    if fractions and (fmt != 'folders' or split_folders):
        raise UserError('--val_fraction/--test_fraction split the videos of the folders format '
                        '(one folder per class, without --split_folders); the other formats '
                        'and --split_folders come with their splits')
    if fractions and split not in SPLITS:
        raise UserError(f'--split {split}: --val_fraction/--test_fraction split the videos into '
                        f'{", ".join(SPLITS)}; give one or more of those')
    if from_videos and not videos:
        raise SystemExit('error: --from_videos needs --videos (the root of the video files)')
    for option, path, kind in (('--videos', videos, 'folder'), ('--ann', ann, 'file'),
                               ('--classes', classes_file, 'file'),
                               ('--frames', None if from_videos else frames, 'folder')):
        if path and not (os.path.isdir if kind == 'folder' else os.path.isfile)(path):
            raise UserError(f'{option} {path}: no such {kind}; check the path')
    if fmt == 'folders':
        if not videos:
            raise SystemExit('error: folders format needs --videos')
        root = os.path.join(videos, split) if split_folders else videos
        if not os.path.isdir(root):
            raise UserError(f'{root}: no such folder (--split_folders reads '
                            f'<videos>/<split>/<class>/<video>); check --split')
        entries = parse_folders(videos, split, split_folders, val_fraction, from_videos,
                                test_fraction)
    else:
        if not ann:
            raise SystemExit(f'error: {fmt} format needs --ann')
        try:
            entries = PARSERS[fmt](ann, split)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            # (json.JSONDecodeError and UnicodeDecodeError are ValueErrors)
            what = f'no field {exc}' if isinstance(exc, KeyError) else f'{exc}'
            raise UserError(f'--ann {ann}: not a {fmt} annotation file ({what}); check --ann '
                            f'and the format (see --help)') from None
    if classes_file:
        classes = read_classes(classes_file)
    else:
        cat = os.path.join(out, 'categories.txt')
        if fmt == 'folders':
            root = os.path.join(videos, split) if split_folders else videos
            classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        elif os.path.isfile(cat) and split != 'train':
            classes = read_categories(cat)       # written when the train list was made
        else:
            classes = sorted({label for _, label in entries if label is not None})
    if classes:
        write_categories(os.path.join(out, 'categories.txt'), classes)
    list_path = os.path.join(out, list_name(cfg, split))
    stats = write_list(entries, classes, videos if from_videos else frames, list_path,
                       image_tmpl, from_videos, workers, count, quiet, cfg['sep'])
    stats.update(classes=len(classes), list=list_path)
    return stats


def arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description='Write list files from dataset annotations and extracted frame folders.',
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('format', choices=FORMATS, help='annotation format')
    p.add_argument('--dataset', choices=sorted(DATASET_CONFIG), default=None,
                   help='write the list names and separator of this dataset (default after the '
                        'format: ' + ', '.join(f'{f} -> {d}' for f, d in DEFAULT_DATASET.items())
                        + ')')
    p.add_argument('--ann', help='annotation file (CSV or JSON) of this split')
    p.add_argument('--classes', help='class list (labels JSON / categories file); default: '
                                     'sorted names of the training annotations')
    p.add_argument('--videos', help='folders format: the folder of class folders of videos')
    p.add_argument('--split_folders', action='store_true',
                   help='folders format: --videos holds <split>/<class>/<video>')
    p.add_argument('--val_fraction', type=float, default=0.0,
                   help='folders format without split folders: this fraction of each class '
                        'goes to val (at least one video of a class of 2 or more; chosen by a '
                        'hash of the path: the same split every run)')
    p.add_argument('--test_fraction', type=float, default=0.0,
                   help='the same for test (at least one video of a class of 3 or more); '
                        'the rest is train')
    p.add_argument('--split', nargs='+', default=['train'],
                   help="split names: writes --dataset's list of each (<out>/<split>.txt, "
                        "mini_<split>.txt for the mini datasets); several only for the "
                        "folders format, e.g. --split train val test")
    p.add_argument('--frames', help='root of the extracted frame folders (not with '
                                    '--from_videos)')
    p.add_argument('--from_videos', action='store_true',
                   help='list the video files under --videos and count their frames (for '
                        '--video_backend pyav: no extraction)')
    p.add_argument('--count', choices=('demux', 'decode'), default='demux',
                   help='--from_videos: count frames from the packets where that equals '
                        'decoding (h264, mpeg4, vp9), or always by decoding')
    p.add_argument('-j', '--workers', type=int, default=1,
                   help='--from_videos: processes (up to the CPU cores: nproc says how many)')
    p.add_argument('-q', '--quiet', action='store_true', help='no progress bar')
    p.add_argument('--out', default=None,
                   help='where the list goes (default: --frames, or --videos with --from_videos)')
    p.add_argument('--image_tmpl', default='{:05d}.jpg',
                   help='frame file names; folders named otherwise (00001.png) are listed by '
                        'the names they hold, with a note')
    return p


def report(stats: dict, image_tmpl: str, classes: list) -> None:
    """Print what make_list wrote: one line, then notes on frames numbered from 0, frames
    named otherwise than --image_tmpl and classes missing from the list."""
    s = stats
    per_class = [s.get('per_class', {}).get(c, 0) for c in range(len(classes))]
    spread = (f' ({min(per_class)}-{max(per_class)} a class)' if per_class and
              min(per_class) != max(per_class) else f' ({per_class[0]} a class)' if per_class
              else '')
    print(f'{s["list"]}: {s["written"]} videos{spread}, {s["classes"]} classes; '
          f'{s["missing"]} without frames, {s["unknown_label"]} with unknown labels')
    if s.get('from_zero'):
        print(f'note: {s["from_zero"]} videos have frames numbered from 0: listed from 0')
    for tmpl, n in sorted(s.get('templates', {}).items()):
        print(f'note: {n} videos have frames named {tmpl!r}, not --image_tmpl {image_tmpl!r}: '
              f'give train.py, test.py and tools/check_dataset.py --image_tmpl {tmpl!r}')
    absent = [name for name, n in zip(classes, per_class) if not n]
    if absent and s['written']:
        print(f'note: {len(absent)} of {len(classes)} classes have no video in this list (first: '
              f'{absent[0]!r}); a class needs 2 videos for one in val, 3 for one in test too')


def main(argv=None) -> int:
    p = arg_parser()
    a = p.parse_args(argv)
    if not a.from_videos and not a.frames:
        p.error('--frames is required (or --from_videos with --videos)')
    if len(a.split) > 1 and a.format != 'folders':
        p.error(f'--split takes one split for the {a.format} format (--ann is the annotation '
                f'file of that split)')
    out = a.out or (a.videos if a.from_videos else a.frames)
    for split in a.split:
        s = make_list(a.format, a.frames, out, split, a.ann, a.classes, a.videos,
                      a.split_folders, a.val_fraction, a.image_tmpl, a.from_videos, a.workers,
                      a.count, a.quiet, a.dataset, a.test_fraction)
        report(s, a.image_tmpl, read_categories(os.path.join(out, 'categories.txt'))
               if s['classes'] else [])
    return 0


if __name__ == '__main__':
    run_main(lambda: sys.exit(main()), trains=False)
