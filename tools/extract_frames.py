#!/usr/bin/env python3
"""Extract the frames of videos (mp4, webm, mkv, avi, ...) to folders of JPEGs, with PyAV.

`<videos>/<dir>/<name>.<ext>` becomes `<out>/<dir>/<name>/00001.jpg, 00002.jpg, ...` (every
decoded frame, numbered from 1), upright (a phone video's display rotation applied:
utils/video_reader.upright_image), the shorter side resized to --short_side keeping the aspect
ratio (0 keeps the size). No ffmpeg binary is needed (PyAV bundles the decoders).

- Resumable: a video is extracted into `<name>.part/` and renamed to `<name>/` with a `.done`
  marker (holding the frame count) when complete, so a killed run restarts where it stopped;
  completed videos are skipped.
- Robust: a video that cannot be decoded is written to the report file with the reason and the
  run goes on (exit status 1 at the end when something failed). A video that ends early keeps
  the frames decoded so far and is reported as truncated (a warning: exit status 0), with the
  path, when its decoding fails part-way or when it gives fewer frames than its header says:
  fewer than N - max(2, N // 100) for the header's count N (PyAV's stream.frames; mp4, mov
  and avi give one, mkv and webm do not, so a cut mkv is only found by a decoding error).
  The tolerance allows for containers whose count is off by a frame or two (edit lists,
  packed B-frames); a copy cut short loses far more. The .done marker keeps the header's
  count, so a resumed run, which skips the video, reports it again.
- The report (<out>/extract_report.txt) has a `# summary` line, then one `path<TAB>FAILED or
  WARNING<TAB>reason` line per video (utils/list_file.py: any file name); it can be given
  back as --video_list to redo those videos.
- Optionally writes the list files afterwards (--lists; see tools/annotations.py).

Usage:
    python3 tools/extract_frames.py --videos raw/ --out data/mine -j 2     (-j: CPU cores)
    python3 tools/annotations.py folders --videos raw/ --frames data/mine --out data/mine
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tqdm import tqdm  # noqa: E402

from utils.errors import is_disk_full, run_main  # noqa: E402
from utils.list_file import format_note, read_paths, write_report  # noqa: E402
from utils.video_reader import VIDEO_EXTENSIONS, resized_size, upright_image  # noqa: E402,F401


DONE = '.done'


def ended_early(decoded: int, header_frames: int) -> bool:
    """Whether a video decoded to fewer frames than its header's count allows (see the module
    docstring: a tolerance of max(2, 1%) frames; no count in the header, no verdict)."""
    return header_frames > 0 and decoded < header_frames - max(2, header_frames // 100)


def find_videos(root: str, extensions=VIDEO_EXTENSIONS) -> list:
    """Relative paths of the video files under `root`, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in filenames:
            if f.lower().endswith(extensions):
                found.append(os.path.relpath(os.path.join(dirpath, f), root))
    return sorted(found)


def frame_folder(out: str, rel_video: str) -> str:
    """Where a video's frames go: under `out` always, at its path without the extension (a
    video outside --videos, allowed by --allow_outside_root, loses its leading / and ..)."""
    parts = [p for p in os.path.normpath(os.path.splitext(rel_video)[0]).split(os.sep)
             if p not in ('', os.curdir, os.pardir)]
    return os.path.join(out, *parts)


def is_done(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, DONE))


def is_own(folder: str, tmpl: str) -> bool:
    """Whether `folder` holds nothing but what this tool writes (frames named as `tmpl`, its
    .done marker): only such a folder is ever deleted or replaced, so a list entry can never
    make it remove a user's folder."""
    frame = re.compile(re.sub(r'\\\{[^}]*\\\}', r'\\d+', re.escape(tmpl)) + r'\Z')
    try:
        return all(name == DONE or (frame.match(name) and os.path.isfile(
            os.path.join(folder, name)) and not os.path.islink(os.path.join(folder, name)))
                   for name in os.listdir(folder))
    except OSError:
        return False


def done_count(folder: str) -> int | None:
    """The frame count recorded by a completed extraction, or None."""
    return done_counts(folder)[0]


def done_counts(folder: str) -> tuple:
    """(frames extracted, frames the header gave or 0) from a completed extraction's marker
    (`N [header count]`), or (None, 0)."""
    try:
        with open(os.path.join(folder, DONE)) as f:
            fields = f.read().split()
        return int(fields[0]), int(fields[1]) if len(fields) > 1 else 0
    except (OSError, ValueError, IndexError):
        return None, 0


def extract_video(task) -> tuple:
    """Extract one video -> (rel_video, status, frames, message); status ok|skip|warn|fail."""
    video_path, folder, short_side, quality, tmpl, overwrite = task
    if is_done(folder) and not overwrite:
        count, header_frames = done_counts(folder)
        if count and ended_early(count, header_frames):     # reported again on every run
            return video_path, 'warn', count, (f'truncated: ended after {count} of the '
                                               f'{header_frames} frames its header gives '
                                               f'(extracted before)')
        return video_path, 'skip', count or 0, ''
    import av
    part = folder.rstrip('/') + '.part'
    for mine in (part, folder):
        if os.path.lexists(mine) and not (os.path.isdir(mine) and not os.path.islink(mine)
                                          and is_own(mine, tmpl)):
            return video_path, 'fail', 0, (f'{mine} exists and holds other files than '
                                           f'extracted frames: it is left as it is; move it '
                                           f'away to extract this video')
    shutil.rmtree(part, ignore_errors=True)
    os.makedirs(part)
    count, problem, header_frames = 0, None, 0
    try:
        with av.open(video_path) as container:
            if not container.streams.video:
                raise ValueError('no video stream')
            stream = container.streams.video[0]
            stream.thread_type = 'AUTO'
            header_frames = stream.frames or 0
            try:
                for frame in container.decode(stream):
                    img = upright_image(frame, short_side)      # turned as the phone meant
                    count += 1
                    img.save(os.path.join(part, tmpl.format(count)), quality=quality)
            except (av.FFmpegError, ValueError, OSError) as exc:
                if count == 0 or is_disk_full(exc):
                    raise
                problem = f'truncated: decoding stopped after {count} frames: {exc}'
            if problem is None and ended_early(count, header_frames):
                problem = (f'truncated: ended after {count} of the {header_frames} frames its '
                           f'header gives (a file cut short?)')
    except Exception as exc:  # noqa: BLE001 - any failure is reported, the run goes on
        shutil.rmtree(part, ignore_errors=True)
        if is_disk_full(exc):
            raise                            # not this video's fault: every next one fails too
        return video_path, 'fail', 0, f'{type(exc).__name__}: {exc}'
    if count == 0:
        shutil.rmtree(part, ignore_errors=True)
        return video_path, 'fail', 0, 'no frames decoded'
    with open(os.path.join(part, DONE), 'w') as f:
        f.write(f'{count} {header_frames}\n')     # the header's count: see done_counts
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(os.path.dirname(folder) or '.', exist_ok=True)
    os.rename(part, folder)
    return video_path, ('warn' if problem else 'ok'), count, problem or ''


def extract_all(videos_root: str, out: str, short_side: int = 256, quality: int = 90,
                workers: int = 1, report: str | None = None, tmpl: str = '{:05d}.jpg',
                overwrite: bool = False, videos: list | None = None, quiet: bool = False) -> dict:
    """Extract every video under `videos_root` (or the given relative paths) into `out`."""
    rel_videos = videos if videos is not None else find_videos(videos_root)
    report = report or os.path.join(out, 'extract_report.txt')
    os.makedirs(out, exist_ok=True)
    tasks = [(os.path.join(videos_root, v), frame_folder(out, v), short_side, quality, tmpl,
              overwrite) for v in rel_videos]
    stats = dict(videos=len(tasks), ok=0, skip=0, warn=0, fail=0, frames=0)
    lines = []
    bar = tqdm(total=len(tasks), desc='extract', unit='video', disable=quiet)
    pool = concurrent.futures.ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        results = pool.map(extract_video, tasks, chunksize=1) if pool else map(extract_video, tasks)
        for (video, status, frames, message), rel in zip(results, rel_videos):
            bar.update()
            stats[status] += 1
            stats['frames'] += frames
            if status in ('fail', 'warn'):
                lines.append(format_note(rel, 'FAILED' if status == 'fail' else 'WARNING',
                                         message))
                bar.write(f'{"failed" if status == "fail" else "warning"}: {rel}: {message}')
    finally:
        bar.close()
        if pool:
            pool.shutdown()
    write_report(report, lines, f'extract_frames.py report {time.strftime("%F %T")}: '
                                f'{stats["videos"]} videos, {stats["ok"]} extracted, '
                                f'{stats["skip"]} already done, {stats["warn"]} truncated, '
                                f'{stats["fail"]} failed')
    stats['report'] = report
    return stats


def arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description='Extract video frames to folders of JPEGs (PyAV), resumably and in parallel.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog='Then write the list files with tools/annotations.py.')
    p.add_argument('--videos', required=True, help='folder of videos (searched recursively)')
    p.add_argument('--out', required=True, help='output folder of frame folders (--datadir)')
    p.add_argument('--video_list', default=None,
                   help='only these videos: a file of paths relative to --videos, one a line '
                        '(or an extraction report: its failed and truncated videos)')
    p.add_argument('--short_side', type=int, default=256,
                   help='resize so the shorter side has this many pixels (0: keep the size)')
    p.add_argument('--quality', type=int, default=90, help='JPEG quality (1-95)')
    p.add_argument('--image_tmpl', default='{:05d}.jpg', help='frame file names (1-based)')
    p.add_argument('-j', '--workers', type=int, default=1, help='parallel processes')
    p.add_argument('--report', default=None,
                   help='report of failed videos (default <out>/extract_report.txt)')
    p.add_argument('--overwrite', action='store_true', help='re-extract completed videos')
    p.add_argument('--allow_outside_root', action='store_true',
                   help='let --video_list name videos outside --videos (absolute, or .. above '
                        'it); their frames still go under --out')
    p.add_argument('-q', '--quiet', action='store_true', help='no progress bar')
    return p


def main(argv=None) -> int:
    args = arg_parser().parse_args(argv)
    if not os.path.isdir(args.videos):
        raise SystemExit(f'error: video folder not found: {args.videos}')
    videos = None
    if args.video_list:
        videos = read_paths(args.video_list, root=None if args.allow_outside_root
                            else f'--videos {args.videos}')
    s = extract_all(args.videos, args.out, args.short_side, args.quality, args.workers,
                    args.report, args.image_tmpl, args.overwrite, videos, args.quiet)
    print(f'{s["videos"]} videos: {s["ok"]} extracted, {s["skip"]} already done, '
          f'{s["warn"]} truncated, {s["fail"]} failed; {s["frames"]} frames; report: {s["report"]}')
    return 1 if s['fail'] else 0


if __name__ == '__main__':
    run_main(lambda: sys.exit(main()), trains=False)
