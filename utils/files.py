"""Writing output files safely: whole or not at all, never through a link planted in the folder.

- ``atomic_write`` writes to a temporary file in the same folder and renames it over the target:
  a crash, a Ctrl-C or a full disk leaves the previous file intact, and a symbolic link at the
  target's name is replaced, not followed (its target stays unchanged).
- ``open_append`` opens a log for appending with O_NOFOLLOW: a link at its name is an error.
- ``remove_stale_temporaries`` removes the temporary files of writers that were killed
  (``.tmp-<pid>-*`` of a process that no longer runs), which no rename will ever claim.
- ``csv_cell`` keeps a spreadsheet from reading a name as a formula.
"""
import errno
import os
import re
import tempfile

from utils.errors import UserError, disk_full, is_disk_full

TMP_PREFIX = '.tmp-'
_TMP_NAME = re.compile(r'\.tmp-(?:(\d+)-)?')


def atomic_write(path: str, data, todo: str) -> None:
    """Write bytes (or str, as UTF-8) to `path` through a temporary file in the same folder,
    then rename. A full disk is one line naming the file and whether the previous one is
    intact, then ``todo`` (what to do about it)."""
    if isinstance(data, str):
        data = data.encode('utf-8', 'surrogateescape')
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # The pid in the name tells remove_stale_temporaries whose it is.
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'{TMP_PREFIX}{os.getpid()}-',
                               suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        if is_disk_full(exc):
            kept = (f'the previous {os.path.basename(path)} is intact'
                    if os.path.isfile(path) else 'nothing was written')
            raise disk_full(path, f'{kept}; {todo}') from None
        raise


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW, 0o644)


def open_append(path: str):
    """`path` opened for appending text (UTF-8, line-buffered), created if absent; a symbolic
    link at that name is a UserError (a link planted in a run folder must not make the run
    write elsewhere)."""
    try:
        return open(path, 'a', buffering=1, encoding='utf-8', errors='surrogateescape',
                    opener=_no_follow)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(f'{path} is a symbolic link; the run writes its own file there '
                            f'and does not follow links: remove the link') from None
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:                  # another user's process
        return True
    return True


def remove_stale_temporaries(folder: str) -> list[str]:
    """Remove the temporary files atomic_write left in `folder` when its process was killed
    mid-write (``.tmp-<pid>-*`` whose process is gone; ``.tmp-*`` of older versions, which
    named no pid); returns their names. Call it holding the folder (utils/run_folder.py)."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        found = _TMP_NAME.match(name)
        if not found:
            continue
        pid = found.group(1)
        if pid is not None and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        path = os.path.join(folder, name)
        if os.path.isfile(path) and not os.path.islink(path):
            os.remove(path)
            removed.append(name)
    return removed


def csv_cell(text: str) -> str:
    """A text field for a CSV that spreadsheets open: one starting with = + - @ (or a tab or
    carriage return) would be run as a formula, so it gets a leading apostrophe, which
    spreadsheets show as text."""
    return "'" + text if text[:1] in ('=', '+', '-', '@', '\t', '\r') else text

