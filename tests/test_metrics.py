"""The numbers a run reports, on hand-made scores: top-1/top-5 (utils.engine.topk_correct, as
evaluation and training count them), test.py's mean class accuracy and top-5 predictions, and
the synthetic dataset's within-pair accuracy (utils/confusion.py).

The scores have more than five classes, so that top-5 is not capped at the class count, and
imbalanced classes, so that a mean over videos differs from a mean over classes.
"""
import csv
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from conftest import make_config
import test as test_entry
from utils import confusion
from utils.engine import Runtime, evaluate, make_loader, make_optimizer, topk_correct, \
    train_one_epoch
from utils.run_log import RunLog
from utils.synthetic import CLASS_NAMES

pytestmark = pytest.mark.usefixtures('one_thread')

CLASSES = 7


def ranked_scores() -> tuple[torch.Tensor, torch.Tensor]:
    """(7, 7) scores whose video k has its label at rank k (0: the highest score), each row a
    different order of the classes: top-1 counts 1 video, top-5 5, top-k k."""
    rng = np.random.default_rng(0)
    scores, labels = [], []
    for k in range(CLASSES):
        order = rng.permutation(CLASSES)             # order[r]: the class ranked r
        row = np.empty(CLASSES)
        row[order] = np.arange(CLASSES, 0, -1) + 0.5 * k   # distinct, descending by rank
        scores.append(row)
        labels.append(order[k])
    return torch.tensor(np.array(scores), dtype=torch.float32), torch.tensor(labels)


def test_topk_counts_the_label_within_the_first_k_scores():
    scores, labels = ranked_scores()
    assert topk_correct(scores, labels) == [1, 5]
    assert topk_correct(scores, labels, ks=tuple(range(1, CLASSES + 1))) == list(
        range(1, CLASSES + 1))
    # Three classes: top-5 is capped at the class count (every label is within it).
    three = torch.tensor([[3.0, 2, 1], [1, 3, 2], [2, 1, 3]])
    assert topk_correct(three, torch.tensor([2, 1, 0])) == [1, 3]


class ScoreTable(torch.nn.Module):
    """A model that returns the hand-made scores of the video its clip encodes: clip k is the
    constant pixel value k, and with --mean 0 --std 1 the model's input is k / 255. Its one
    parameter takes no gradient, so a training step leaves the scores as they are."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.register_buffer('table', table)
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        k = (x[:, 0, 0, 0, 0] * 255).round().long()
        return self.table[k] + 0 * self.w


def clips_dataset(labels: torch.Tensor, views: int | None):
    """Video k: a 1x1 clip of value k (with a view axis when `views`), its label, readable."""
    shape = (3, 1, 1, 1) if views is None else (views, 3, 1, 1, 1)
    return [{'clip': torch.full(shape, k, dtype=torch.uint8), 'label': int(labels[k]),
             'bad': 0, 'index': k} for k in range(len(labels))]


def plain_config(*argv):
    return make_config('--mean', '0', '--std', '1', '-j', '0', *argv, num_classes=CLASSES)


def test_evaluation_reports_top5_of_seven_classes():
    scores, labels = ranked_scores()
    cfg = plain_config('-b', '4')
    loader = DataLoader(clips_dataset(labels, views=1), batch_size=3)   # batches of 3, 3, 1
    result = evaluate(ScoreTable(scores), loader, cfg, Runtime(torch.device('cpu')),
                      RunLog(None, enabled=False), keep_scores=True)
    assert result['count'] == 7
    assert result['top1'] == pytest.approx(100 / 7)
    assert result['top5'] == pytest.approx(500 / 7)
    assert result['loss'] == pytest.approx(float(F.cross_entropy(scores, labels)), rel=1e-6)
    torch.testing.assert_close(torch.from_numpy(result['scores']), scores)


def test_training_reports_top5_of_seven_classes():
    scores, labels = ranked_scores()
    cfg = plain_config('-b', '7', '--lr', '0.1')
    runtime = Runtime(torch.device('cpu'))
    model = ScoreTable(scores)
    loader = make_loader(clips_dataset(labels, views=None), cfg.data, runtime, train=True,
                         batch_size=7)                  # one batch, every video, shuffled
    result = train_one_epoch(model, loader, make_optimizer(model, cfg.optim), None, cfg, runtime,
                             0, RunLog(None, enabled=False))
    assert result['top1'] == pytest.approx(100 / 7)
    assert result['top5'] == pytest.approx(500 / 7)
    assert result['loss'] == pytest.approx(float(F.cross_entropy(scores, labels)), rel=1e-6)


def test_mean_class_accuracy_averages_over_classes_not_videos():
    # class 0: 6 videos, all right; class 1: 2 videos, 1 right; class 2: 2 videos, none right;
    # class 3: no video (not counted). Over videos 7/10, over the classes present (100+50+0)/3.
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 0, 0, 0, 0, 0, 1, 0, 0, 1])
    scores = np.eye(4)[predicted] + 0.1
    assert test_entry.mean_class_accuracy(scores, labels) == pytest.approx(50.0)
    assert np.mean(predicted == labels) == pytest.approx(0.7)       # what it must not give


def test_predictions_csv_lists_the_five_best_classes_in_order(tmp_path):
    scores, labels = ranked_scores()
    dataset = SimpleNamespace(records=[SimpleNamespace(path=f'v{k}', label=int(labels[k]))
                                       for k in range(CLASSES)])
    names = [f'c{c}' for c in range(CLASSES)]
    path = str(tmp_path / 'p.csv')
    test_entry.write_predictions(path, dataset, dict(scores=scores.numpy(),
                                                     index=np.arange(CLASSES)), names)
    rows = list(csv.DictReader(open(path)))
    assert list(rows[0]) == ['video', 'label'] + [f'top{i}' for i in range(1, 6)] + [
        f'score{i}' for i in range(1, 6)]
    for k, row in enumerate(rows):
        best = scores[k].argsort(descending=True)[:5].tolist()
        assert [row[f'top{i + 1}'] for i in range(5)] == [names[c] for c in best]
        assert [float(row[f'score{i + 1}']) for i in range(5)] == pytest.approx(
            scores[k, best].tolist())


# ----------------------------------------------------------------------------- within-pair

# Videos of both classes of each pair, (true class, its score, partner's score, a third class's
# score) -> right or wrong: right when the true class beats its partner, whatever the others
# score (a third class may be top-1); a tie is wrong.
WITHIN_PAIR_CASES = [
    (0, 3.0, 1.0, 9.0, True),      # first of a pair, beats its partner, third class on top
    (1, 2.0, 1.0, 0.0, True),      # second of a pair, beats its partner
    (1, 0.5, 1.0, 0.0, False),     # second of a pair, loses to its partner, beats the third
    (2, 1.0, 2.0, 0.0, False),     # first of a pair, loses to its partner
    (3, 5.0, 4.0, 9.0, True),      # second of a pair, beats its partner, third class on top
    (3, 4.0, 4.0, 0.0, False),     # a tie
    (5, 2.0, 1.0, 3.0, True),      # second of the third pair
    (4, 1.0, 3.0, 0.5, False),     # first of the third pair, loses
]


def within_pair_scores(cases):
    """Scores over the first 7 synthetic classes for the cases (the third class: the next
    class outside the pair)."""
    partner = {0: 1, 1: 0, 2: 3, 3: 2, 4: 5, 5: 4}
    scores, labels = np.zeros((len(cases), CLASSES)), []
    for row, (true, own, other, third, _) in enumerate(cases):
        scores[row, true], scores[row, partner[true]] = own, other
        scores[row, 6] = third                       # class 6: its partner 7 is not in the list
        labels.append(true)
    return scores, np.array(labels)


def test_within_pair_accuracy_scores_each_class_against_its_partner():
    assert sorted(confusion.synthetic_pairs(CLASS_NAMES[:CLASSES])) == [(0, 1), (2, 3), (4, 5)]
    scores, labels = within_pair_scores(WITHIN_PAIR_CASES)
    for row, case in enumerate(WITHIN_PAIR_CASES):
        acc, n = confusion.within_pair_accuracy(scores[[row]], labels[[row]],
                                                confusion.synthetic_pairs(CLASS_NAMES[:CLASSES]))
        assert (acc, n) == (100.0 if case[-1] else 0.0, 1), case
    acc, n = confusion.within_pair_accuracy(scores, labels,
                                            confusion.synthetic_pairs(CLASS_NAMES[:CLASSES]))
    assert (acc, n) == (pytest.approx(100 * 4 / 8), 8)


def test_within_pair_accuracy_leaves_out_classes_without_a_partner():
    # class 6 (rotating_clockwise) has its partner 7 outside the first 7 classes
    scores, labels = within_pair_scores(WITHIN_PAIR_CASES[:2])
    extra = np.zeros((1, CLASSES))
    extra[0, 6] = 1.0
    acc, n = confusion.within_pair_accuracy(np.vstack([scores, extra]),
                                            np.append(labels, 6),
                                            confusion.synthetic_pairs(CLASS_NAMES[:CLASSES]))
    assert (acc, n) == (100.0, 2)
