"""Where a run reports: the console (through tqdm, so progress bars stay intact), a text log
file, and TensorBoard (scalars, and images such as the first training clips). Only the main
process writes; the others get a silent log.

While a log is open, the warnings of the data code (Python ``logging``: skipped, missing or
unreadable videos with their paths) go to its log.txt as well as to the console, also from
DataLoader workers, and the error that ends a run is appended to it (``record_in_open_logs``,
used by utils.errors.run_main).
"""
import logging
import os
import sys
import time

from tqdm import tqdm

from utils.errors import ERROR_SINKS, UserError
from utils.files import atomic_write, open_append

_open_logs: list = []                      # the RunLogs of this process with a log.txt open


def _stamp(msg: str) -> str:
    return f'{time.strftime("%Y-%m-%d %H:%M:%S")} {msg}\n'


def record_in_open_logs(line: str) -> None:
    """Append a line (the error that ends the run) to every open log.txt of this process."""
    for log in _open_logs:
        if log._file and not log._file.closed:
            log._file.write(_stamp(line))
            log._file.flush()


ERROR_SINKS.append(record_in_open_logs)


def make_folder(folder: str, option: str = '--logdir') -> None:
    """Create a run folder, or stop with one line naming `option` when it cannot be."""
    try:
        os.makedirs(folder, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, 'Permission denied', folder)
    except OSError as exc:
        # The part of the path in the way: a file where a folder should be, or no permission.
        blocker = folder
        while blocker and not os.path.exists(blocker):
            blocker = os.path.dirname(blocker)
        why = (f'{blocker} is a file, not a folder' if blocker and os.path.isfile(blocker)
               else exc.strerror or str(exc))
        raise UserError(f'cannot create the run folder {folder} ({why}), {option}; pass '
                        f'{option} a folder you can write to') from None


class _WarningsToLog(logging.Handler):
    """Python warnings of the run: to the console (stderr) and appended to log.txt. Opens
    the file for each record (warnings are rare), so that it works in forked and spawned
    DataLoader workers alike; lines are single appends, so processes do not interleave."""

    def __init__(self, path: str):
        super().__init__(logging.WARNING)
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = f'{record.levelname.lower()}: {record.getMessage()}'
            tqdm.write(msg, file=sys.stderr)
            with open_append(self.path) as f:
                f.write(_stamp(msg))
        except Exception:
            self.handleError(record)


def attach_warnings(path: str, worker_id: int | None = None) -> None:
    """Send this process's warnings to `path` (idempotent: a forked worker already has it).
    Also the DataLoader workers' init function (see utils.engine.make_loader), which DataLoader
    calls with the worker id (unused)."""
    root = logging.getLogger()
    if not any(isinstance(h, _WarningsToLog) and h.path == path for h in root.handlers):
        root.addHandler(_WarningsToLog(path))


def detach_warnings(path: str) -> None:
    root = logging.getLogger()
    for h in [h for h in root.handlers if isinstance(h, _WarningsToLog) and h.path == path]:
        root.removeHandler(h)


def current_log_path() -> str | None:
    """The log.txt of the most recently opened run log of this process, if one is open."""
    for log in reversed(_open_logs):
        if log._file and not log._file.closed:
            return log._file.name
    return None


class RunLog:
    """The log of a run in `folder`: log.txt (appended; `log_name`), TensorBoard events, JSON
    records.
    Files are written without following links planted in the folder (utils/files.py). `lock`
    (utils/run_folder.FolderLock), if given, is released by close."""

    def __init__(self, folder: str | None, tensorboard: bool = True, enabled: bool = True,
                 lock=None, log_name: str = 'log.txt'):
        self.enabled = enabled
        self.folder = folder
        self._file = None
        self._tb = None
        self._lock = lock
        if enabled and folder:
            make_folder(folder)
            self._file = open_append(os.path.join(folder, log_name))
            _open_logs.append(self)
            attach_warnings(self._file.name)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(log_dir=folder)

    def info(self, msg: str, console: bool = True) -> None:
        if not self.enabled:
            return
        if console:
            tqdm.write(msg, file=sys.stdout)
            sys.stdout.flush()
        if self._file:
            self._file.write(_stamp(msg))

    def scalars(self, values: dict, step: int, prefix: str = '') -> None:
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(f'{prefix}{k}', v, step)
            self._tb.flush()

    @property
    def tensorboard(self) -> bool:
        """Whether this log writes TensorBoard events (main process, TensorBoard on)."""
        return self._tb is not None

    def image(self, tag: str, image, step: int) -> None:
        """A (3, H, W) uint8 image to TensorBoard; nothing when `tensorboard` is False."""
        if self._tb is not None:
            self._tb.add_image(tag, image, step, dataformats='CHW')
            self._tb.flush()

    def record(self, name: str, row: dict) -> None:
        """Append `row` as one JSON line to `<folder>/<name>.jsonl` (metrics.jsonl: one line an
        epoch), the machine-readable record of a run that tools read."""
        if self.enabled and self.folder:
            import json
            with open_append(os.path.join(self.folder, f'{name}.jsonl')) as f:
                f.write(json.dumps(row, default=str) + '\n')

    def write_json(self, name: str, content: dict) -> None:
        """`<folder>/<name>.json` (run.json: what the run is), replaced whole."""
        if self.enabled and self.folder:
            import json
            atomic_write(os.path.join(self.folder, f'{name}.json'),
                         json.dumps(content, indent=1, default=str), 'free some space')

    def progress(self, iterable, **kwargs):
        """A tqdm bar on a terminal and the main process; plain iteration elsewhere."""
        disable = not self.enabled or not sys.stderr.isatty()
        return tqdm(iterable, disable=disable, dynamic_ncols=True, leave=False, **kwargs)

    def release_folder(self) -> None:
        """Let another run have the folder (the lock), keeping the log open."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def close(self) -> None:
        if self._file:
            detach_warnings(self._file.name)
            self._file.close()
        if self in _open_logs:
            _open_logs.remove(self)
        if self._tb is not None:
            self._tb.close()
        self.release_folder()
