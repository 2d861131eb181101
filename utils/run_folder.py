"""One run folder, one run: which folder a training run writes to, and holding it.

A run's folder is `<logdir>/<run name>` (utils/engine.run_name: dataset, modality, model,
sampling, frames). Two things must never happen there: two live runs writing the same files,
and a new run silently replacing an earlier run's checkpoints (the same options on another
dataset give the same name). So:

- the run holds an exclusive lock on `<folder>/.lock` (flock: the kernel releases it when the
  process ends, however it ends) while it writes; a second run on a held folder is refused with
  one line naming the holder's pid;
- a run that does not resume from the folder's own checkpoint never starts in a folder that
  holds an earlier run: it takes `<name>-2`, `<name>-3`, ... (the first without one) and says so;
- holding the folder, it removes the temporary files of writers that were killed mid-write.
"""
import fcntl
import os
import socket
import time

from utils.errors import UserError
from utils.files import remove_stale_temporaries

LOCK = '.lock'
# What makes a folder hold a run: the files a training run writes first.
RUN_FILES = ('run.json', 'checkpoint.pth.tar', 'model_best.pth.tar', 'metrics.jsonl')


def holds_run(folder: str) -> bool:
    """Whether `folder` holds (the start of) a training run."""
    return any(os.path.lexists(os.path.join(folder, f)) for f in RUN_FILES)


class FolderLock:
    """An exclusive lock on a run folder (flock on `<folder>/.lock`, which records the holder's
    pid, host and start time). `acquire` returns False if another process holds it."""

    def __init__(self, folder: str):
        self.folder = folder
        self.path = os.path.join(folder, LOCK)
        self._fd = None

    def acquire(self) -> bool:
        os.makedirs(self.folder, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise UserError(f'cannot lock the run folder {self.folder} ({self.path}: '
                            f'{exc.strerror}); remove what is in the way or choose another '
                            f'--logdir') from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def record_holder(self) -> None:
        """Write this process into the held lock's file (who holds it, for holder()); only
        once the run keeps the folder, so that a run that moves on leaves it unchanged."""
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f'{os.getpid()} {socket.gethostname()} {time.strftime("%F %T")}\n'
                  .encode(), 0)

    def holder(self) -> str:
        """Who holds the lock, as its file says: 'pid N on HOST since TIME'."""
        try:
            with open(self.path, encoding='utf-8', errors='replace') as f:
                pid, host, *since = f.read().split()
            return f'pid {pid} on {host} since {" ".join(since)}'
        except (OSError, ValueError):
            return 'another process'

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)                 # closing the descriptor releases the flock
            self._fd = None


def claim(logdir: str, name: str, resumes_here) -> tuple[str, FolderLock, list[str]]:
    """The folder this run writes to, locked, and notes for the log.

    `resumes_here(folder)` says whether the run continues the run of `folder` (--resume of its
    checkpoint, or --resume auto finding one). A run that does not, in a folder holding an
    earlier run, gets the first of `<name>-2`, `<name>-3`, ... that holds none. A folder
    another live run holds is an error naming it, whatever this run would do there."""
    base = os.path.join(logdir, name)
    notes = []
    folder = base
    lock = FolderLock(folder)
    if not lock.acquire():
        raise in_use(lock)
    if holds_run(base) and not resumes_here(base):
        lock.release()
        n = 2
        while True:
            folder = f'{base}-{n}'
            lock = FolderLock(folder)
            if not holds_run(folder) and lock.acquire():
                if holds_run(folder):            # another run took it meanwhile
                    lock.release()
                else:
                    break
            n += 1
        notes.append(f'{base} holds an earlier run, which this run leaves as it is: it writes '
                     f'to {folder} (--resume auto would continue the earlier run)')
    lock.record_holder()
    removed = remove_stale_temporaries(folder)
    if removed:
        notes.append(f'removed {len(removed)} temporary file{"s" * (len(removed) > 1)} of an '
                     f'interrupted checkpoint write from {folder}')
    return folder, lock, notes


def in_use(lock: FolderLock) -> UserError:
    return UserError(f'the run folder {lock.folder} is in use by another run '
                     f'({lock.holder()}); wait for it to end, or give another --logdir')
