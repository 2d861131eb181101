"""List files, class lists and path reports: the one reader and writer of each line format.

**List file** (train/val/test lists): one video a line, `path<sep>start<sep>end<sep>label`, with
`sep` the dataset's separator (utils/dataset_config.py: ' ' for most datasets, ';' for
kinetics400 and mini_kinetics400, as the original code). Frame numbers are 1-based and
inclusive; a label is a class index, -1 meaning "no label".

- The last three fields are integers and everything before them is the path, separators
  included: `air drumming/my clip 1 1 120 0` is the video `air drumming/my clip 1`, frames 1 to
  120, class 0. The fields after the path are separated by exactly one `sep`; trailing
  whitespace and a UTF-8 byte-order mark are ignored, blank lines skipped.
- A list may also have no labels (`path start end`: only test lists do). Train and val lists
  are read as labelled (`labelled=True`). Any other list is read as labelled when every line
  ends in three integers, and as unlabelled (`path start end`, the last two fields the
  integers) otherwise, so a path ending in a space and a number survives in an unlabelled list
  as long as one line of it has no third integer. Writers always write the labelled form (-1
  for no label), so whatever they write reads back exactly.
- A path may hold any character but a tab or a line break (the writers refuse those, as the
  reports below put a tab after the path). Names with `sep` in them are written as they are:
  this code reads them, the original code only reads spaces in `;` lists.

**Class list** (`categories.txt`): one class name a line in label order; surrounding
whitespace is stripped and blank lines skipped (the annotation tool numbers classes the same
way), so names keep their inner spaces (`air drumming`). An empty file or a repeated name is an
error.

**Path reports** (bad-entries, missing-video and extraction reports, exclusion lists, video
lists): one entry a line, a path or a list line, optionally followed by a tab and notes
separated by tabs; a line starting with # that has no note (and, in an exclusion list, is no
list line) is a comment.

Every error is one line, `file:line: what is wrong; what to do`, raised as ListFileError (a
utils.errors.UserError: printed as `error: ...`, exit status 1, no traceback). Files are UTF-8;
bytes that are not UTF-8 (a file name from another system) pass through unchanged.
"""
import os
import re
from dataclasses import dataclass, field

from utils.errors import UserError

NO_LABEL = -1
ENCODING = dict(encoding='utf-8', errors='surrogateescape')
_READ_ENCODING = dict(encoding='utf-8-sig', errors='surrogateescape')
_INT = re.compile(r'-?[0-9]+\Z')
_FORBIDDEN = ('\t', '\n', '\r')


class ListFileError(UserError):
    """A malformed list, class list or report; the message is `file:line: what; what to do`."""


@dataclass(frozen=True)
class VideoRecord:
    path: str
    start: int
    end: int
    label: int  # NO_LABEL (-1) when the list has none
    line: int = field(default=0, compare=False)   # its line in the list file (0: not read)

    @property
    def num_frames(self) -> int:
        return self.end - self.start + 1


def labels_required(split: str) -> bool | None:
    """How to read the list of `split`: train and val lists must be labelled (True); any other
    list (test) is decided from its lines (None)."""
    return True if split in ('train', 'val') else None


# ----------------------------------------------------------------------------- list lines

def _split(line: str, sep: str, numbers: int):
    """(path, [ints]) if `line` ends in `numbers` integer fields after a non-empty path."""
    parts = line.rsplit(sep, numbers)
    if len(parts) != numbers + 1 or not parts[0] or not all(_INT.match(p) for p in parts[1:]):
        return None
    return parts[0], [int(p) for p in parts[1:]]


def _sep_hint(line: str, sep: str) -> str | None:
    """What to do when `line` reads with another separator than the dataset's."""
    for other, name in ((';', "';'"), (' ', 'spaces'), ('\t', 'tabs'), (',', 'commas')):
        if other != sep and (_split(line, other, 3) or _split(line, other, 2)):
            if other == ';':
                return ("the fields look separated by ';': give the list's --dataset "
                        "(kinetics400 and mini_kinetics400 read ';' lists)")
            return f'the fields look separated by {name}: this dataset separates them by {sep!r}'
    return None


def outside_root(path: str) -> bool:
    """Whether a listed path leaves the folder it is relative to: an absolute path, or one
    whose `..` climb above it (`a/../../b`). Lists name videos under their root (--datadir,
    --videos, --root); a path outside it would read, or for tools/extract_frames.py write and
    replace, another folder."""
    if os.path.isabs(path):
        return True
    norm = os.path.normpath(path)
    return norm == os.pardir or norm.startswith(os.pardir + os.sep)


OUTSIDE_HINT = ('list paths relative to {root}, or pass --allow_outside_root to read videos '
                'outside it on purpose')


def read_list(list_file: str, sep: str = ' ', num_classes: int | None = None,
              labelled: bool | None = None, root: str | None = None) -> list[VideoRecord]:
    """The videos of a list file (see the module docstring for the format and how labelled is
    decided when None). ListFileError naming the file and line of the first bad line; with
    `root` (the folder the paths are relative to), also of the first path that leaves it
    (outside_root)."""
    if not os.path.isfile(list_file):
        raise ListFileError(f'list file not found: {list_file}; write it with '
                            f'tools/annotations.py or check --datadir and --dataset')
    with open(list_file, **_READ_ENCODING) as f:
        lines = [(n, line.rstrip()) for n, line in enumerate(f, 1) if line.strip()]
    if not lines:
        raise ListFileError(f'{list_file}: no videos listed (the file is empty); write it with '
                            f'tools/annotations.py')
    required = labelled is True
    if labelled is None:
        labelled = all(_split(text, sep, 3) for _, text in lines)
    first_unlabelled = None if labelled else next(
        n for n, text in lines if not _split(text, sep, 3))
    numbers_per_line = 3 if labelled else 2
    parsed = [(lineno, text, _split(text, sep, numbers_per_line)) for lineno, text in lines]
    records = {}
    # Lines that fit no form are reported first, before the ones that fit another reading.
    for lineno, text, fields in sorted(parsed, key=lambda item: item[2] is not None):
        def bad(what, todo='fix or remove the line'):
            return ListFileError(f'{list_file}:{lineno}: {what} (line: {text!r}); {todo}')

        if fields is None:
            form = 'path start end label' if labelled else 'path start end [label]'
            if labelled and _split(text, sep, 2):
                raise bad('no label', 'a train or val list needs `path start end label` on '
                                      'every line')
            raise bad(f'expected `{form}` separated by {sep!r}, the last fields integers',
                      _sep_hint(text, sep) or 'fix or remove the line')
        path, numbers = fields
        if '\t' in path:
            raise bad('a tab in the path', f'separate the fields by {sep!r}; a listed name '
                                           f'cannot hold a tab (rename the video)')
        if root is not None and outside_root(path):
            raise bad(f'the path {path!r} leaves {root} (absolute, or .. above it)',
                      OUTSIDE_HINT.format(root=root))
        start, end = numbers[:2]
        label = numbers[2] if labelled else NO_LABEL
        if start < 0 or end < start:
            if not labelled and _split(text, sep, 3):
                raise bad(f'some lines have a label and some do not (line {first_unlabelled} '
                          f'has none)', 'label every line (-1 for no label) or none')
            raise bad(f'frame range {start}..{end} is empty or negative')
        if labelled and (required or label != NO_LABEL):       # -1: no label, test lists only
            top = (num_classes or 0) - 1
            if label < 0 or (num_classes is not None and label > top):
                if label == NO_LABEL:
                    raise bad('label -1 (no label)', 'a train or val list needs a label on '
                                                     'every line')
                rng = f'0..{top}' if num_classes is not None else '0 or more'
                raise bad(f'label {label} is outside {rng}',
                          'check the list against categories.txt and --dataset')
        records[lineno] = VideoRecord(path, start, end, label, lineno)
    return [records[lineno] for lineno, _ in lines]


def _check_path(path: str, what: str = 'path') -> None:
    if not path or any(c in path for c in _FORBIDDEN):
        raise ListFileError(f'cannot list the {what} {path!r}: it is empty or holds a tab or a '
                            f'line break; rename it')


def format_line(path: str, start: int, end: int, label: int | None = None,
                sep: str = ' ') -> str:
    """One list line (no newline), always labelled (-1 for no label) so it reads back exactly."""
    _check_path(path)
    return sep.join((path, str(int(start)), str(int(end)),
                     str(NO_LABEL if label is None else int(label))))


def write_list(list_file: str, records, sep: str = ' ') -> int:
    """Write records (VideoRecord or (path, start, end, label) tuples) as a list file, atomically
    (a killed run leaves the old file); returns the number of lines."""
    lines = [format_line(*(r if isinstance(r, tuple) else (r.path, r.start, r.end, r.label)),
                         sep=sep) + '\n' for r in records]
    _write_atomic(list_file, lines)
    return len(lines)


def _write_atomic(path: str, lines: list) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w', **ENCODING) as f:
        f.writelines(lines)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- class lists

def read_categories(path: str) -> list[str]:
    """Class names in label order from a categories.txt (see the module docstring)."""
    if not os.path.isfile(path):
        raise ListFileError(f'class list not found: {path}; write it with tools/annotations.py '
                            f'(one class name a line, in label order)')
    names, seen = [], {}
    with open(path, **_READ_ENCODING) as f:
        for lineno, line in enumerate(f, 1):
            name = line.strip()
            if not name:
                continue
            if name in seen:
                raise ListFileError(f'{path}:{lineno}: class {name!r} is also on line '
                                    f'{seen[name]}; list each class once, one a line')
            seen[name] = lineno
            names.append(name)
    if not names:
        raise ListFileError(f'{path}: no class names (the file is empty); write one class name '
                            f'a line, in label order (tools/annotations.py writes it)')
    return names


def write_categories(path: str, names: list) -> None:
    """Write a categories.txt that read_categories reads back as `names`."""
    for name in names:
        if name != name.strip() or not name or '\n' in name or '\r' in name:
            raise ListFileError(f'cannot write the class name {name!r} to {path}: empty, a line '
                                f'break or surrounding whitespace; rename the class')
    if len(set(names)) != len(names):
        raise ListFileError(f'cannot write {path}: a class name is repeated')
    _write_atomic(path, [n + '\n' for n in names])


# ----------------------------------------------------------------------------- path reports

def format_note(entry: str, *notes) -> str:
    """A report line (no newline): a path or list line, then each note after a tab, on one
    line. An entry holding a tab or a line break (a file name no list can hold) is written
    as Python's ascii() of it, for a person to read."""
    if not entry or any(c in entry for c in _FORBIDDEN):
        entry = ascii(entry)
    return '\t'.join([entry] + [' '.join(str(n).split()) for n in notes])


def write_report(path: str, lines: list, header: str | None = None) -> None:
    """Write report lines (format_note), after an optional `# header` line."""
    head = [f'# {" ".join(header.split())}\n'] if header else []
    _write_atomic(path, head + [line + '\n' for line in lines])


def _entries(path: str, what: str):
    """(line number, entry, is_comment) of each non-blank line of a path report: the entry is
    the part before the first tab; a line starting with # and holding no tab (no note) may be a
    comment."""
    if not os.path.isfile(path):
        raise ListFileError(f'{what} not found: {path}; check the path')
    with open(path, **_READ_ENCODING) as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip('\r\n')
            entry = line.partition('\t')[0]
            if entry.strip():
                yield lineno, entry, entry.startswith('#') and '\t' not in line


def read_paths(path: str, what: str = 'video list', root: str | None = None) -> list[str]:
    """The paths of a report or of a file of one path a line (extract_frames.py --video_list),
    each kept exactly; notes after a tab and comments (# lines without a note) are dropped.
    With `root`, a path that leaves it (outside_root) is a ListFileError naming the line."""
    out = []
    for lineno, entry, comment in _entries(path, what):
        if comment:
            continue
        if root is not None and outside_root(entry):
            raise ListFileError(f'{path}:{lineno}: the entry {entry!r} leaves {root} (absolute, '
                                f'or .. above it); {OUTSIDE_HINT.format(root=root)}')
        out.append(entry)
    return out


def read_exclusions(path: str, sep: str = ' ') -> list[frozenset]:
    """Each entry of an exclusion list (a bad-entries file, a list file or one path a line) as
    the video paths it may name: the path of the list line it is (labelled form first, as the
    tools write), and the whole entry as a bare path. # lines that are not list lines and have
    no note are comments."""
    out = []
    for _, entry, comment in _entries(path, 'exclusion list'):
        text = entry.rstrip()
        fields = _split(text, sep, 3) or _split(text, sep, 2)
        if fields is None and comment:
            continue
        out.append(frozenset(p for p in (entry, text, fields and fields[0]) if p))
    return out
