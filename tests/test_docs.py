"""The README and the docs pages cannot drift from the code: every command line in them parses
with the project's own parsers (the options exist, the values are valid), every link leads to a
file and heading that exist, and every docs page is reachable from the README."""
import argparse
import glob
import importlib
import os
import re
import shlex

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ['README.md'] + sorted(os.path.relpath(p, ROOT)
                               for p in glob.glob(os.path.join(ROOT, 'docs', '*.md')))
ENTRYPOINTS = {'train.py': 'train', 'test.py': 'test', 'train_dist.py': 'train_dist'}


def commands(page: str) -> list[tuple[int, list[str]]]:
    """(line number, argv from the script on) of every `python3 SCRIPT ...` or `torchrun ...
    SCRIPT ...` line in the page's fenced shell blocks (continuation lines joined)."""
    found, in_block, pending = [], False, None
    lines = open(os.path.join(ROOT, page), encoding='utf-8').read().splitlines()
    for number, line in enumerate(lines, 1):
        if line.startswith('```'):
            in_block = not in_block and line.strip('`') in ('', 'bash', 'sh')
            continue
        if not in_block:
            continue
        start, text = pending or (number, '')
        text += ' ' + line.strip()
        if text.endswith('\\'):
            pending = (start, text[:-1])
            continue
        pending = None
        if text.split()[:1] not in (['python3'], ['python'], ['torchrun']):
            continue
        # `-j "$(nproc)"` (the CPU cores): what the docs write for a machine of any size
        argv = shlex.split(text.replace('"$(nproc)"', '2'), comments=True)
        if argv:
            for i, word in enumerate(argv):
                if word in ENTRYPOINTS or (word.startswith('tools/') and word.endswith('.py')):
                    found.append((start, argv[i:]))
                    break
    return found


ALL = [(page, line, argv) for page in PAGES for line, argv in commands(page)]


def test_the_docs_hold_commands():
    assert len([c for c in ALL if c[0] == 'README.md']) >= 8
    assert {argv[0] for _, _, argv in ALL} >= {'train.py', 'test.py', 'train_dist.py',
                                               'tools/extract_frames.py',
                                               'tools/annotations.py'}


class Parsed(Exception):
    """Raised by the patched parser once a tool's command line has parsed."""


def parse_tool(argv: list[str], monkeypatch) -> None:
    """Run the tool's main with argparse stopped right after its command line parsed (any
    rest of options a tool hands on is then parsed as test.py's model options)."""
    module = importlib.import_module(argv[0][:-3].replace('/', '.'))
    original = argparse.ArgumentParser.parse_known_args

    def stop(self, args=None, namespace=None):
        ns, rest = original(self, args, namespace)
        raise Parsed(ns, rest)
    monkeypatch.setattr(argparse.ArgumentParser, 'parse_known_args', stop)
    try:
        module.main(argv[1:])
    except Parsed as done:
        ns, rest = done.args
    else:
        pytest.fail(f'{argv[0]} did not parse a command line')
    finally:
        monkeypatch.setattr(argparse.ArgumentParser, 'parse_known_args', original)
    if rest:
        from opts import arg_parser
        arg_parser().parse_args(rest)
    return ns


@pytest.mark.parametrize('page, line, argv', ALL,
                         ids=[f'{p}:{n}' for p, n, _ in ALL])
def test_every_command_parses(page, line, argv, monkeypatch):
    assert '...' not in argv, f'{page}:{line}: write the command out in full'
    assert not any('$' in word for word in argv), f'{page}:{line}: no shell variables'
    if argv[0] in ENTRYPOINTS:
        import opts
        monkeypatch.setattr(opts, 'check_files', lambda *a: None)   # placeholders for files
        module = importlib.import_module(argv[0][:-3])
        parser = (module.test_parser() if argv[0] == 'test.py' else
                  module.arg_parser(distributed=True) if argv[0] == 'train_dist.py' else
                  module.arg_parser())
        if argv[0] == 'train_dist.py':
            from utils.distributed import add_launch_options
            parser = add_launch_options(parser) if not any(
                a.dest == 'nproc_per_node' for a in parser._actions) else parser
        opts.parse_config(parser, argv[1:], ENTRYPOINTS[argv[0]])
    else:
        parse_tool(argv, monkeypatch)


LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def anchors(path: str) -> set[str]:
    """The anchors of a page's headings (not of # lines inside code blocks)."""
    found, in_code = set(), False
    for line in open(path, encoding='utf-8').read().splitlines():
        if line.startswith('```'):
            in_code = not in_code
        elif not in_code and re.match(r'#+ ', line):
            found.add(slug(line.lstrip('#')))
    return found


@pytest.mark.parametrize('page', PAGES)
def test_every_link_leads_somewhere(page):
    path = os.path.join(ROOT, page)
    for target in LINK.findall(open(path, encoding='utf-8').read()):
        if target.startswith(('http://', 'https://', 'mailto:')):
            continue
        file, _, anchor = target.partition('#')
        dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
        assert os.path.exists(dest), f'{page}: {target} does not exist'
        if anchor and dest.endswith('.md'):
            assert anchor in anchors(dest), f'{page}: no heading #{anchor} in {file or page}'


def test_every_docs_page_is_linked_from_the_readme():
    readme = open(os.path.join(ROOT, 'README.md'), encoding='utf-8').read()
    linked = {os.path.normpath(t.partition('#')[0]) for t in LINK.findall(readme)}
    for page in PAGES[1:]:
        assert page in linked, f'{page} is not linked from the README'


def test_the_readme_is_a_front_page():
    lines = open(os.path.join(ROOT, 'README.md'), encoding='utf-8').read().splitlines()
    assert len(lines) <= 320, len(lines)
