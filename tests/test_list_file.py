"""utils/list_file.py: the list, class-list and report formats, written and read back."""
import pytest

from utils.errors import UserError
from utils.list_file import (ListFileError, VideoRecord, format_line, format_note,
                             read_categories, read_exclusions, read_list, read_paths,
                             write_categories, write_list, write_report)

NAMES = ['air drumming/my clip (1) \'x\', ü', 'a/clip 1', 'a/clip 2 7', 'a/ends in space ',
         ' leading', 'semi;colon', '"quoted"', '日本語/動画', 'plain', '12345']


@pytest.mark.parametrize('sep', [' ', ';'])
@pytest.mark.parametrize('labelled', [True, None])
def test_any_name_round_trips(tmp_path, sep, labelled):
    f = str(tmp_path / 'l.txt')
    records = [VideoRecord(n, 1 + i, 10 + i, i % 3) for i, n in enumerate(NAMES)]
    assert write_list(f, records, sep) == len(NAMES)
    assert read_list(f, sep, num_classes=3, labelled=labelled) == records


def test_unlabelled_lists_round_trip_through_the_writer(tmp_path):
    # Every path ends in a space and a number: only the writer's -1 labels keep them whole.
    f = str(tmp_path / 'test.txt')
    write_list(f, [('clip 1', 1, 30, None), ('clip 2', 1, 45, None)])
    assert open(f).read() == 'clip 1 1 30 -1\nclip 2 1 45 -1\n'
    assert [(r.path, r.end, r.label) for r in read_list(f)] == [('clip 1', 30, -1),
                                                                ('clip 2', 45, -1)]


def test_labelled_or_not_is_decided_per_file(tmp_path):
    f = tmp_path / 'l.txt'
    f.write_text('a/b 1 30 3\n\nc 5 9 0\n')
    assert [(r.path, r.start, r.end, r.label) for r in read_list(str(f))] == [
        ('a/b', 1, 30, 3), ('c', 5, 9, 0)]
    # Lines without labels (the original's test lists); one line without a third integer
    # makes the file unlabelled, so `clip 1 1 30` is the video `clip 1`.
    f.write_text('clip 1 1 30\nother 1 20\n')
    assert [(r.path, r.end, r.label) for r in read_list(str(f))] == [('clip 1', 30, -1),
                                                                     ('other', 20, -1)]
    # Train and val lists are read as labelled whatever the lines look like.
    with pytest.raises(ListFileError, match=r'l.txt:2: no label .*train or val'):
        read_list(str(f), labelled=True)


def test_bom_crlf_and_trailing_whitespace(tmp_path):
    f = tmp_path / 'l.txt'
    f.write_bytes('\ufeffmy clip 1 3 0 \r\nb 2 4 1\r\n'.encode())
    assert [(r.path, r.label) for r in read_list(str(f), labelled=True)] == [('my clip', 0),
                                                                              ('b', 1)]


@pytest.mark.parametrize('content,labelled,msg', [
    ('a 1 30 0\nb 1\n', None, ':2: expected'),
    ('a 1 x 0\n', True, ':1: expected `path start end label`'),
    ('a 1 30 0\nb 1 30\n', None, ':1: some lines have a label and some do not .line 2'),
    ('a 30 1 0\n', True, ':1: frame range 30..1'),
    ('a 1 30 7\n', True, ':1: label 7 is outside 0..3'),
    ('a 1 30 -1\n', True, ':1: label -1 .no label.'),
    ('a;1;30;0\n', True, r":1: expected .*separated by ';': give the list's --dataset"),
    ('a\t1\t30\t0\n', True, ':1: expected .*separated by tabs'),
    ('a\tb 1 30 0\n', True, ':1: a tab in the path'),
    ('\n  \n', None, 'no videos listed'),
])
def test_errors_are_one_line_naming_file_and_line(tmp_path, content, labelled, msg):
    f = tmp_path / 'bad.txt'
    f.write_text(content)
    with pytest.raises(ListFileError, match=msg) as e:
        read_list(str(f), num_classes=4, labelled=labelled)
    text = str(e.value.code)
    assert isinstance(e.value, UserError) and text.startswith(f'error: {f}')
    assert '\n' not in text and '; ' in text                   # what is wrong; what to do


def test_missing_list_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match='list file not found: .*none.txt'):
        read_list(str(tmp_path / 'none.txt'))


def test_writer_refuses_what_no_line_can_hold():
    for bad in ('a\tb', 'a\nb', ''):
        with pytest.raises(ListFileError, match='rename it'):
            format_line(bad, 1, 2, 0)
    assert format_line('a b', 1, 2, sep=';') == 'a b;1;2;-1'


def test_categories(tmp_path):
    f = str(tmp_path / 'categories.txt')
    write_categories(f, ['air drumming', 'brushing teeth', 'ü'])
    assert read_categories(f) == ['air drumming', 'brushing teeth', 'ü']
    (tmp_path / 'categories.txt').write_text('\ufeff  air drumming \r\n\n brushing teeth\n\n')
    assert read_categories(f) == ['air drumming', 'brushing teeth']
    (tmp_path / 'categories.txt').write_text('\n \n')
    with pytest.raises(ListFileError, match='categories.txt: no class names'):
        read_categories(f)
    (tmp_path / 'categories.txt').write_text('a\nb\na\n')
    with pytest.raises(ListFileError, match=r'categories.txt:3: class .a. is also on line 1'):
        read_categories(f)
    with pytest.raises(ListFileError, match='class list not found'):
        read_categories(str(tmp_path / 'none.txt'))
    with pytest.raises(ListFileError, match='surrounding whitespace'):
        write_categories(f, [' a'])


def test_reports_and_exclusions(tmp_path):
    f = str(tmp_path / 'bad.txt')
    write_report(f, [format_note(format_line('my clip 1', 1, 30, 0), 'missing video: x\ty'),
                     format_note('plain path', 'FAILED', 'why'),
                     format_note('#1 clip 2 1 5 -1', 'a list line starting with #'),
                     format_note('odd\nname', 'shown escaped')], header='summary\nline')
    lines = open(f).read().split('\n')
    assert lines[0] == '# summary line' and lines[1] == 'my clip 1 1 30 0\tmissing video: x y'
    assert lines[4] == "'odd\\nname'\tshown escaped"
    assert read_paths(f) == ['my clip 1 1 30 0', 'plain path', '#1 clip 2 1 5 -1',
                             "'odd\\nname'"]
    entries = read_exclusions(f)
    assert entries[0] >= {'my clip 1'} and 'my clip' not in entries[0]
    assert entries[1] == {'plain path'} and '#1 clip 2' in entries[2]
    assert len(entries) == 4                                    # the header is a comment


def test_records_know_their_line(tmp_path):
    """Each record carries its line in the file (blank lines counted), for messages naming
    file:line; the line is not part of a record's identity."""
    f = tmp_path / 'l.txt'
    f.write_text('\ufeffa 1 5 0\n\n  \nmy clip 2 9 1\n')
    a, b = read_list(str(f))
    assert (a.line, b.line) == (1, 4)
    assert b == VideoRecord('my clip', 2, 9, 1)
