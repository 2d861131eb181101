"""The one error path: a user's mistake or a bad file ends in one line, never a traceback.

Raise ``UserError('what, where; what to do')`` (or ``SystemExit('error: ...')``, which the
project used before and which behaves the same) anywhere: the process prints
``error: <message>`` on stderr and exits with status 1. Only an unexpected exception (a bug)
prints a traceback.

The command-line entrypoints run their ``main`` through ``run_main``, which turns every way a
run can end into that policy (see its docstring); Python callers of ``main(argv)`` (the tests)
get the exceptions as they are.
"""
import errno
import signal
import sys
import traceback
from contextlib import contextmanager


class UserError(SystemExit):
    """A mistake of the user or a bad input file. The message is one line:
    ``<what is wrong>, <where: file, line, option>; <what to do>``; it is printed as
    ``error: <message>`` and the process exits with status 1."""

    def __init__(self, message: str, details: str = ''):
        """`details`: more lines for the run's log.txt only (e.g. every key of a weights file
        that does not fit), so that the console keeps one line."""
        self.message = message
        self.details = details
        super().__init__(f'error: {message}')


class FrameReadError(RuntimeError):
    """A frame or video that cannot be read; the message names the file and the reason. (Not a
    UserError: training replaces such a video and counts it, see --max_bad_ratio.)"""


class VideoMissingError(FrameReadError):
    """A video that is not in the storage at all (its folder, LMDB record or file is absent),
    as opposed to a plain FrameReadError: a video that is there but cannot be read."""


# Where the line that ends a run also goes (utils/run_log.py adds its open log files), so that
# this module needs no other.
ERROR_SINKS: list = []

# What a Ctrl-C should tell the user: set by the engine once a checkpoint exists.
_resume_hint: str | None = None


def set_resume_checkpoint(path: str | None) -> None:
    """Record the checkpoint a Ctrl-C can resume from (None: nothing written yet)."""
    global _resume_hint
    _resume_hint = path


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill PID``, a cluster scheduler's preemption or time limit), raised in the
    main thread. A KeyboardInterrupt, so that everything that cleans up after a Ctrl-C (the
    loader's workers, the open logs) does so after a SIGTERM too."""


_terminated = False


def _on_sigterm(signum, frame):
    global _terminated
    if not _terminated:                      # a second SIGTERM while unwinding changes nothing
        _terminated = True
        raise Terminated()


def stop_on_sigterm() -> None:
    """End a one-process entrypoint on SIGTERM as on Ctrl-C (run_main's message, status 143)
    instead of dying silently. Not for the ranks of a distributed run: their launcher sends
    SIGTERM to the other ranks when one fails, and that rank's own error line must stay the
    last word."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def interrupted_message(trains: bool = True) -> str:
    """What a Ctrl-C or SIGTERM says; where something trains, also what to resume."""
    what = 'terminated (SIGTERM)' if _terminated else 'interrupted'
    if not trains:
        return what
    if _resume_hint:
        return f'{what}; resume with --resume {_resume_hint}'
    return f'{what} before the first checkpoint was written; nothing to resume'


def disk_full(path: str | None, what_to_do: str = 'free some space or choose another '
              '--logdir') -> UserError:
    return UserError(f'the disk is full writing {path or "a file"}; {what_to_do}')


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def reading_user_files():
    """Turn a missing list, LMDB or exclusion file (FileNotFoundError) into a one-line
    UserError (malformed lists already raise utils.list_file.ListFileError, a UserError). Only
    around code that reads those files, so that the same exception elsewhere stays a bug."""
    try:
        yield
    except SystemExit:
        raise
    except FileNotFoundError as exc:
        where = f'{exc.strerror}: {exc.filename}' if exc.filename else str(exc)
        raise UserError(f'{where}; check --datadir and the list, database and --exclude_list '
                        f'paths') from None


def _to_log(line: str) -> None:
    """The line into the log.txt of the run in progress, if any (ERROR_SINKS)."""
    for sink in ERROR_SINKS:
        try:
            sink(line)
        except Exception:                  # reporting must never hide the original error
            pass


def _say(line: str) -> None:
    sys.stdout.flush()
    print(line, file=sys.stderr, flush=True)
    _to_log(line)


def run_main(main, *args, report_interrupt: bool = True, trains: bool = True) -> None:
    """Run an entrypoint's main and exit as the error policy says:

    - a UserError or ``SystemExit('error: ...')``: that one line on stderr and in log.txt,
      status 1 (any other SystemExit keeps its code);
    - Ctrl-C: ``interrupted; resume with --resume <checkpoint>`` (just ``interrupted`` where
      nothing trains: ``trains=False``), status 130, no traceback; SIGTERM, where
      stop_on_sigterm was called: the same with ``terminated (SIGTERM)``, status 143;
    - a full disk: ``error: the disk is full writing <path>; ...``, status 1;
    - anything else is a bug: its traceback, then ``error: unexpected <Type> (a bug; please
      report it with the traceback above)``, status 1.

    ``main(*args)`` returning ends nothing: run_main returns (a spawned rank goes on).
    """
    try:
        main(*args)
        return
    except KeyboardInterrupt:
        code = _interrupted(report_interrupt, trains)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            raise
        line = str(exc.code)
        if getattr(exc, 'details', ''):
            _to_log(exc.details)
        _say(line if line.startswith('error:') else f'error: {line}')
        code = 1
    except Exception as exc:
        if _terminated:       # e.g. the loader's workers, killed by the same SIGTERM, noticed first
            code = _interrupted(report_interrupt, trains)
        elif is_disk_full(exc):
            _say(str(disk_full(exc.filename).code))
            code = 1
        else:
            code = _bug(exc)
    sys.exit(code)


def _interrupted(report: bool, trains: bool) -> int:
    if report:                               # (distributed: rank 0 alone speaks)
        _say(interrupted_message(trains))
    return 143 if _terminated else 130


def _bug(exc: BaseException) -> int:
    text = traceback.format_exc()
    sys.stdout.flush()
    sys.stderr.write(text)
    _to_log(text.rstrip('\n'))
    _say(f'error: unexpected {type(exc).__name__} (a bug; please report it with the '
         f'traceback above)')
    return 1

