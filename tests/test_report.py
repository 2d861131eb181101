"""tools/report.py on two tiny runs, test.py's per-class outputs, utils/confusion.py."""
import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import tiny_synthetic
import test as test_entry
import train as train_entry
from tools import report
from utils import confusion
from utils.errors import UserError
from utils.synthetic import CLASS_NAMES

pytestmark = pytest.mark.usefixtures('one_thread')


def tiny_args(data, logdir, temporal='TAM'):
    return ['--dataset', 'synthetic', '--datadir', data, '--backbone_net', 'resnet', '-d', '18',
            '--temporal_module_name', temporal, '--groups', '4', '--input_size', '32', '-b', '2',
            '-j', '0', '--no_imagenet_pretrained', '--logdir', logdir, '--lr', '0.01',
            '--lr_scheduler', 'step', '--lr_steps', '10', '--epochs', '1']


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Two 1-epoch runs (TAM, TSN) on a 4-class synthetic dataset; test.py on the first."""
    root = tmp_path_factory.mktemp('report')
    data = str(root / 'data')
    tiny_synthetic(data)
    logdir = str(root / 'logs')
    a = train_entry.main(tiny_args(data, logdir, 'TAM'))
    b = train_entry.main(tiny_args(data, logdir, 'TSN'))
    tested = test_entry.main(tiny_args(data, logdir, 'TAM') + [
        '--pretrained', os.path.join(a['folder'], 'model_best.pth.tar'), '--eval_split', 'test',
        '--num_clips', '2', '--num_crops', '1'])
    return dict(data=data, logdir=logdir, a=a['folder'], b=b['folder'], tested=tested)


def assert_png(path, min_side=200):
    with Image.open(path) as im:
        assert im.format == 'PNG' and min(im.size) >= min_side, (path, im.size)


def test_report_table_matches_the_run_folders(runs, tmp_path, capsys):
    out = str(tmp_path / 'out')
    (tmp_path / 'not_a_run').mkdir()
    open(os.path.join(runs['logdir'], 'predictions.csv'), 'w').close()   # a file: no run
    rc = report.main([os.path.join(runs['logdir'], '*'), str(tmp_path / 'not_a_run'),
                      '--out', out])
    assert rc == 0
    captured = capsys.readouterr()
    assert f'warning: {tmp_path / "not_a_run"}: no run.json' in captured.err
    assert len([ln for ln in captured.err.splitlines() if 'warning' in ln]) == 1
    rows = list(csv.DictReader(open(os.path.join(out, 'report.csv'))))
    assert {r['run'] for r in rows} == {os.path.basename(runs['a']), os.path.basename(runs['b'])}
    for row in rows:
        folder = row['folder']
        run = json.load(open(os.path.join(folder, 'run.json')))
        metrics = [json.loads(ln) for ln in open(os.path.join(folder, 'metrics.jsonl'))]
        assert row['model'] == run['arch'] and int(row['frames']) == run['frames']
        assert float(row['params_m']) == pytest.approx(run['params'] / 1e6)
        assert float(row['gflops']) == pytest.approx(2 * run['conv_gmacs'])
        assert float(row['val_top1']) == pytest.approx(metrics[-1]['val_top1'])
        assert float(row['val_top5']) == pytest.approx(metrics[-1]['val_top5'])
        assert float(row['clips_per_s']) == pytest.approx(metrics[-1]['train_clips_per_s'])
        assert float(row['wall_s']) == pytest.approx(metrics[-1]['epoch_seconds'])
        assert int(row['epochs']) == 1
    tested = next(r for r in rows if r['folder'] == runs['a'])
    result = json.load(open(os.path.join(runs['a'], 'test_2clips_1crops_result.json')))
    assert float(tested['test_top1']) == pytest.approx(result['top1'])
    assert tested['test_views'] == '2x1'
    assert float(tested['within_pair']) == pytest.approx(result['within_pair_acc'])
    other = next(r for r in rows if r['folder'] == runs['b'])
    assert other['test_top1'] == '' and other['within_pair'] == ''
    md = open(os.path.join(out, 'report.md')).read()
    assert 'GFLOPs (2 x conv GMACs)' in md and f'{result["top1"]:.2f} (2x1)' in md
    assert md in captured.out
    for name in ('accuracy_vs_gflops.png', 'curves.png'):
        assert_png(os.path.join(out, name))


def test_report_keeps_the_last_line_of_a_resumed_epoch(runs, tmp_path):
    folder = tmp_path / 'run'
    folder.mkdir()
    for name in ('run.json',):
        (folder / name).write_text(open(os.path.join(runs['b'], name)).read())
    line = json.loads(open(os.path.join(runs['b'], 'metrics.jsonl')).readline())
    lines = [dict(line, epoch=1, val_top1=10.0), dict(line, epoch=2, val_top1=30.0),
             dict(line, epoch=2, val_top1=20.0, val_top5=90.0)]
    (folder / 'metrics.jsonl').write_text(''.join(json.dumps(x) + '\n' for x in lines))
    got = report.read_run(str(folder))
    assert [e['epoch'] for e in got['epochs']] == [1, 2]
    assert (got['row']['val_top1'], got['row']['val_top5'], got['row']['best_epoch']) == \
        (20.0, 90.0, 2)


def test_report_without_any_run_is_an_error_naming_the_pattern(tmp_path, capsys):
    pattern = str(tmp_path / 'logs' / '*')
    with pytest.raises(UserError) as err:
        report.main([pattern, '--out', str(tmp_path / 'o')])
    assert err.value.message.startswith(f"no run to report in '{pattern}'")
    assert f'warning: {pattern}: matches no folder' in capsys.readouterr().err


def fake_run(folder, top1: list[float], loss: list[float]) -> str:
    """A run folder as train.py writes it, with these val top-1 and training losses."""
    os.makedirs(folder)
    json.dump(dict(name=os.path.basename(folder), arch='resnet18-TSN', frames=4,
                   params=11e6, conv_gmacs=0.5, classes=['a', 'b']),
              open(os.path.join(folder, 'run.json'), 'w'))
    with open(os.path.join(folder, 'metrics.jsonl'), 'w') as f:
        for epoch, (t, l) in enumerate(zip(top1, loss), 1):
            f.write(json.dumps(dict(epoch=epoch, val_top1=t, val_top5=t, train_loss=l,
                                    train_clips_per_s=5.0, epoch_seconds=3.0)) + '\n')
    return str(folder)


def test_flat_curves_keep_a_sensible_axis(tmp_path, monkeypatch):
    """All-zero accuracies and a constant loss: a 0-10 % axis and a loss axis of +-10 %, not
    matplotlib's +-0.04 around the value; curves that vary keep matplotlib's limits."""
    import matplotlib.pyplot as plt
    figs = []
    monkeypatch.setattr(plt, 'close', figs.append)
    flat = [fake_run(tmp_path / 'flat', [0.0, 0.0, 0.0], [2.0, 2.0, 2.0])]
    report.plot([report.read_run(f) for f in flat], str(tmp_path))
    scatter, curves = figs
    top, loss = curves.axes
    assert top.get_ylim() == (0, 10) and scatter.axes[0].get_ylim() == (0, 10)
    assert loss.get_ylim() == pytest.approx((1.8, 2.2))
    figs.clear()
    varied = [fake_run(tmp_path / 'varied', [10.0, 50.0, 90.0], [2.0, 1.0, 0.5])]
    report.plot([report.read_run(f) for f in varied], str(tmp_path))
    low, high = figs[1].axes[0].get_ylim()
    assert low < 10 and 90 < high < 100
    monkeypatch.undo()
    for fig in figs:
        plt.close(fig)


def test_confusion_figure_is_sized_to_its_content(tmp_path):
    """3 classes: the picture has no empty side. Cut in 5 upright strips, each right of the
    labels has something drawn in at least half its rows (the panel of pairs beside the
    matrix used to leave the right 40% blank but for 3 lines of text)."""
    cm = np.array([[3, 1, 0], [0, 4, 0], [1, 0, 2]])
    path = str(tmp_path / 'c.png')
    fig = confusion.plot_confusion(cm, ['waving hands', 'sauter à la corde', 'tanzen'], path)
    import matplotlib.pyplot as plt
    plt.close(fig)
    ink = (np.asarray(Image.open(path).convert('RGB')) != 255).any(axis=-1)
    width = ink.shape[1]
    drawn = [ink[:, k * width // 5:(k + 1) * width // 5].any(axis=1).mean() for k in range(5)]
    assert min(drawn[1:]) > 0.5, drawn


def cjk_font() -> str | None:
    """An installed font that draws 跳 (None: none is installed)."""
    from matplotlib import font_manager, ft2font
    from utils.figures import wide_fonts
    for family in wide_fonts():
        path = font_manager.findfont(font_manager.FontProperties(family=family),
                                     fallback_to_default=False)
        if ord('跳') in ft2font.FT2Font(path).get_charmap():
            return family
    return None


def test_class_names_in_any_script_draw_without_glyph_warnings(tmp_path, capfd):
    """Where a CJK font is installed, CJK class names are drawn with it (no glyph is missing,
    so matplotlib warns of none); without one the figure is drawn all the same, silently."""
    import warnings
    import matplotlib.pyplot as plt
    from tools import predict
    names = ['跳舞 dance', 'sauter à la corde', 'waving hands']
    cm = np.array([[2, 1, 0], [0, 3, 0], [1, 0, 2]])
    rows = [dict(start_s=k, end_s=k + 1, _probs=np.array([0.5, 0.3, 0.2]), input='v.mp4')
            for k in range(3)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')          # would show the glyph warnings setup() hides
        plt.close(confusion.plot_confusion(cm, names, str(tmp_path / 'c.png')))
        predict.plot_timeline(str(tmp_path / 't.png'), rows, names)
    glyphs = [str(w.message) for w in caught if 'Glyph' in str(w.message)]
    assert not capfd.readouterr().err
    if cjk_font() is None:
        pytest.skip('no font with CJK glyphs is installed (fc-list :lang=zh)')
    assert not glyphs, glyphs[:2]


def test_test_py_writes_per_class_confusion_and_tensorboard(runs):
    folder, tag = runs['a'], 'test_2clips_1crops'
    rows = list(csv.DictReader(open(os.path.join(folder, f'{tag}_per_class.csv'))))
    assert [r['name'] for r in rows] == CLASS_NAMES[:4]
    scores = np.load(os.path.join(folder, f'{tag}_scores.npy'))
    labels = runs['tested']['labels']
    for c, r in enumerate(rows):
        mine = labels == c
        assert int(r['videos']) == mine.sum()
        assert float(r['top1']) == pytest.approx(100 * np.mean(scores[mine].argmax(1) == c))
    assert_png(os.path.join(folder, f'{tag}_confusion.png'))
    assert open(os.path.join(folder, f'{tag}_confused_pairs.txt')).readline().startswith('true')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    import glob
    tags = set()
    for events in glob.glob(os.path.join(folder, 'events.out.tfevents.*')):
        acc = EventAccumulator(events, size_guidance={'images': 0, 'tensors': 0})
        acc.Reload()
        tags |= set(acc.Tags()['images']) | set(acc.Tags()['tensors'])
    assert f'test/{tag}_confusion' in tags
    assert any(t.startswith(f'test/{tag}_per_class') for t in tags)


# ----------------------------------------------------------------------------- pure functions

def test_confusion_matrix_and_per_class_accuracy():
    cm = confusion.confusion_matrix([0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 0, 2], 4)
    assert cm.tolist() == [[1, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    videos, acc = confusion.per_class_accuracy(cm)
    assert videos.tolist() == [2, 3, 1, 0]
    assert acc[:3] == pytest.approx([50.0, 200 / 3, 100.0]) and np.isnan(acc[3])
    assert confusion.most_confused_pairs(cm, 1) == [(0, 1, 1, 50.0)]


def test_confusion_order_puts_confused_classes_together():
    # 0<->3 strongly, 3<->5, 1<->4; 2 confused with nothing
    cm = np.eye(6, dtype=int) * 10
    cm[0, 3], cm[3, 0], cm[3, 5], cm[1, 4] = 5, 4, 3, 2
    order = confusion.confusion_order(cm)
    assert sorted(order) == list(range(6))
    assert order == [0, 3, 5, 1, 4, 2]
    assert confusion.confusion_order(np.eye(3, dtype=int)) == [0, 1, 2]


def test_within_pair_accuracy_from_known_scores():
    names = CLASS_NAMES[:4] + ['other']            # moving_left/right, up/down, other
    pairs = confusion.synthetic_pairs(names)
    assert sorted(pairs) == [(0, 1), (2, 3)]
    assert confusion.synthetic_pairs(CLASS_NAMES)[:5] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    scores = np.array([[2., 1, 9, 0, 0],     # true 0: 2 > 1 right (though 2 is top-1)
                       [2., 1, 0, 0, 0],     # true 1: 1 < 2 wrong
                       [0., 0, 1, 1, 0],     # true 2: tie, wrong
                       [0., 0, 0, 0, 5]])    # true 4: in no pair, not counted
    acc, n = confusion.within_pair_accuracy(scores, [0, 1, 2, 4], pairs)
    assert (acc, n) == (pytest.approx(100 / 3), 3)
    assert confusion.within_pair_accuracy(scores, [4, 4, 4, 4], pairs) == (None, 0)
    assert confusion.is_synthetic_classes(CLASS_NAMES[:4])
    assert not confusion.is_synthetic_classes(['a', 'b'])


def test_plot_confusion_many_classes(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 174, 2000)
    preds = np.where(rng.random(2000) < 0.6, labels, rng.integers(0, 174, 2000))
    cm = confusion.confusion_matrix(labels, preds, 174)
    fig = confusion.plot_confusion(cm, [f'class {c}' for c in range(174)],
                                   str(tmp_path / 'c.png'))
    import matplotlib.pyplot as plt
    plt.close(fig)
    assert_png(str(tmp_path / 'c.png'), 1000)
    assert len(confusion.format_confused_pairs(cm, [str(c) for c in range(174)]).splitlines()) == 21


# ----------------------------------------------------------------------------- a hand-made run

def write_run(folder, val_top1, val_top5, classes=CLASS_NAMES[:4]):
    """A run folder as train.py writes it, of epochs with these val top-1/top-5 (and known
    speeds and times), without training."""
    folder.mkdir()
    (folder / 'run.json').write_text(json.dumps(dict(
        name='a-run', arch='resnet18-TAM', frames=4, params=2.5e6, conv_gmacs=0.75,
        classes=list(classes))))
    (folder / 'metrics.jsonl').write_text(''.join(json.dumps(dict(
        epoch=e + 1, lr=0.01, train_loss=2.0 - 0.1 * e, train_top1=10.0, train_top5=50.0,
        train_clips_per_s=10.0 * (e + 1), train_data_time=0.01, val_loss=1.0, val_top1=t1,
        val_top5=t5, best_top1=max(val_top1[:e + 1]), epoch_seconds=60.0 + e,
        run_seconds=0.0)) + '\n' for e, (t1, t5) in enumerate(zip(val_top1, val_top5))))
    return str(folder)


def test_report_takes_val_top5_from_the_best_epoch_not_the_last(tmp_path):
    folder = write_run(tmp_path / 'run', val_top1=[20.0, 60.0, 40.0, 60.0],
                       val_top5=[50.0, 80.0, 95.0, 99.0])
    row = report.read_run(folder)['row']
    # best val top-1 first reached at epoch 2; its top-5, not the last epoch's nor the best
    assert (row['val_top1'], row['val_top5'], row['best_epoch']) == (60.0, 80.0, 2)
    assert row['epochs'] == 4 and row['wall_s'] == pytest.approx(60 + 61 + 62 + 63)
    assert row['clips_per_s'] == pytest.approx(25.0)
    assert row['params_m'] == pytest.approx(2.5) and row['gflops'] == pytest.approx(1.5)
    assert row['test_top1'] is None and row['within_pair'] is None


def test_report_test_columns_come_from_the_newest_result_and_its_scores(tmp_path):
    folder = write_run(tmp_path / 'run', [10.0, 30.0], [40.0, 70.0])
    older = os.path.join(folder, 'val_1clips_1crops_result.json')
    with open(older, 'w') as f:
        json.dump(dict(top1=99.0, count=4, num_clips=1, num_crops=1), f)
    os.utime(older, (1e9, 1e9))
    tag = 'test_2clips_3crops'
    with open(os.path.join(folder, f'{tag}_result.json'), 'w') as f:
        json.dump(dict(top1=75.0, count=4, num_clips=2, num_crops=3), f)
    # Both classes of both pairs (0, 1) and (2, 3): right, right, wrong, right; and an
    # unlabelled video (-1), left out.
    scores = np.array([[2., 1, 0, 0], [1., 2, 0, 0], [0., 0, 1, 2], [0., 0, 1, 3], [5., 0, 0, 0]])
    labels = [0, 1, 2, 3, -1]
    np.save(os.path.join(folder, f'{tag}_scores.npy'), scores)
    with open(os.path.join(folder, f'{tag}_predictions.csv'), 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['video', 'label', 'top1'])
        w.writerows([f'v{k}', y, 0] for k, y in enumerate(labels))
    row = report.read_run(folder)['row']
    assert (row['test_top1'], row['test_views']) == (75.0, '2x3')
    assert row['within_pair'] == pytest.approx(75.0)
    assert report.formatted(row)['test_top1'] == '75.00 (2x3)'
