"""What a classifier confuses: confusion matrix, per-class accuracy, an ordering of the classes
that puts confused classes side by side, the most confused pairs, and the synthetic dataset's
within-pair accuracy. Pure numpy (no torch, no matplotlib) except `plot_confusion`, which
imports matplotlib when called; test.py and tools/report.py use these.

Ordering (`confusion_order`): the confusion is symmetrised (S = C + C^T, diagonal zeroed) and
the class pairs are taken by decreasing S, greedily joining classes into chains, each class
with at most two neighbours and no cycle (the greedy heuristic of the travelling-salesman
path). A class is thus next to the class it is most confused with unless both of that class's
places are already taken by stronger confusions. The chains are laid out by decreasing total
confusion, then the classes confused with nothing in label order. Ties go to the lower labels,
so the order is deterministic.
"""
import numpy as np


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class."""
    labels, predictions = np.asarray(labels, int), np.asarray(predictions, int)
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (labels, predictions), 1)
    return cm


def per_class_accuracy(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(videos of each class, top-1 accuracy of each class in %, NaN for a class with none)."""
    videos = cm.sum(axis=1)
    with np.errstate(invalid='ignore', divide='ignore'):
        acc = np.where(videos > 0, 100.0 * np.diag(cm) / np.maximum(videos, 1), np.nan)
    return videos, acc


def confusion_order(cm: np.ndarray) -> list[int]:
    """The classes in an order that puts confused classes next to each other (the module's
    docstring has the rule)."""
    n = cm.shape[0]
    s = (cm + cm.T).astype(float)
    np.fill_diagonal(s, 0)
    i, j = np.triu_indices(n, 1)
    w = s[i, j]
    keep = w > 0
    i, j, w = i[keep], j[keep], w[keep]
    order = np.lexsort((j, i, -w))           # strongest first; ties: lower labels first
    parent = list(range(n))

    def root(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    neighbours = [[] for _ in range(n)]
    for k in order:
        a, b = int(i[k]), int(j[k])
        if len(neighbours[a]) < 2 and len(neighbours[b]) < 2 and root(a) != root(b):
            neighbours[a].append(b)
            neighbours[b].append(a)
            parent[root(a)] = root(b)
    chains, seen = [], set()
    for start in range(n):                   # walk each chain from its lower-labelled end
        if start in seen or len(neighbours[start]) != 1:
            continue
        chain, prev, cur = [start], None, start
        while True:
            seen.add(cur)
            nxt = [c for c in neighbours[cur] if c != prev]
            if not nxt:
                break
            prev, cur = cur, nxt[0]
            chain.append(cur)
        chains.append(chain)
    strength = [s[np.ix_(c, c)].sum() for c in chains]
    chains = [c for _, c in sorted(zip(strength, chains), key=lambda t: (-t[0], t[1][0]))]
    alone = [c for c in range(n) if c not in seen]
    return [c for chain in chains for c in chain] + alone


def most_confused_pairs(cm: np.ndarray, top: int = 20) -> list[tuple[int, int, int, float]]:
    """The `top` largest off-diagonal cells: (true class, predicted class, videos, % of the
    true class's videos), by decreasing count, ties by labels."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    t, p = np.nonzero(off)
    counts = off[t, p]
    order = np.lexsort((p, t, -counts))[:top]
    videos = cm.sum(axis=1)
    return [(int(t[k]), int(p[k]), int(counts[k]), 100.0 * counts[k] / videos[t[k]])
            for k in order]


def synthetic_pairs(names: list[str]) -> list[tuple[int, int]]:
    """The time-reversed pairs of the synthetic dataset (utils/synthetic.py: two classes of
    the same motion, one played backwards, e.g. moving_left/moving_right) among `names`, as
    (label, label); a pair is left out unless both of its classes are in `names`."""
    from utils.synthetic import _CLASS_SPEC
    by_motion: dict = {}
    for name, (motion, _) in _CLASS_SPEC.items():
        by_motion.setdefault(motion, []).append(name)
    where = {name: k for k, name in enumerate(names)}
    return [(where[a], where[b]) for group in by_motion.values() if len(group) == 2
            for a, b in [group] if a in where and b in where]


def is_synthetic_classes(names: list[str]) -> bool:
    """Whether `names` are (a prefix of) the synthetic dataset's classes in its order."""
    from utils.synthetic import CLASS_NAMES
    return bool(names) and list(names) == list(CLASS_NAMES[:len(names)])


def within_pair_accuracy(scores: np.ndarray, labels, pairs) -> tuple[float | None, int]:
    """(% of videos whose score for their true class is higher than for its pair partner,
    number of such videos): among the videos whose true class belongs to one of `pairs`
    ((a, b) labels); (None, 0) if there are none. A tie counts as wrong."""
    scores, labels = np.asarray(scores), np.asarray(labels, int)
    partner = {}
    for a, b in pairs:
        partner[a], partner[b] = b, a
    rows = [k for k, y in enumerate(labels) if y in partner]
    if not rows:
        return None, 0
    rows = np.array(rows)
    true = labels[rows]
    other = np.array([partner[y] for y in true])
    right = scores[rows, true] > scores[rows, other]
    return 100.0 * float(right.mean()), len(rows)


def plot_confusion(cm: np.ndarray, names: list[str], path: str, top: int = 20,
                   title: str = ''):
    """Draw the row-normalised confusion matrix in `confusion_order` with the `top` most
    confused pairs listed under it, save it as a PNG at `path` and return the figure (the
    caller closes it). Counts are written in the cells only up to 30 classes; tick labels
    shrink with the number of classes (readable at 174 on the saved image)."""
    from utils import figures
    figures.setup()
    import matplotlib.pyplot as plt
    n = cm.shape[0]
    order = confusion_order(cm)
    m = cm[np.ix_(order, order)].astype(float)
    rows = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    lines = [f'most confused, up to {top} (true -> predicted: videos, % of true)']
    for t, p, count, pct in most_confused_pairs(cm, top):
        lines.append(f'{names[t] if t < len(names) else t} -> '
                     f'{names[p] if p < len(names) else p}: {count} ({pct:.0f}%)')
    if len(lines) == 1:
        lines.append('(none: no video was misclassified)')
    # The pairs go under the matrix, in a panel as tall as their lines (8 pt, 1.25 line
    # spacing) and as wide as the longest (monospace ~0.6 em a character, CJK two), so that
    # the picture is as large as what it shows (bbox_inches='tight' trims the rest).
    text_width = max(sum(2 if ord(ch) > 0x2E7F else 1 for ch in ln) for ln in lines) * 8 * 0.6 / 72
    text_height = 0.2 + len(lines) * 8 * 1.25 / 72
    side = min(max(4.0, 0.11 * n), 24.0)
    fig, (ax, side_ax) = plt.subplots(2, 1, figsize=(max(side + 2.5, text_width + 0.5),
                                                     side + 2.5 + text_height),
                                      gridspec_kw=dict(height_ratios=[side + 1.5, text_height]))
    side_ax.axis('off')
    im = ax.imshow(norm, cmap='Blues', vmin=0, vmax=1, interpolation='nearest')
    labels = [names[c] if c < len(names) else str(c) for c in order]
    font = max(2.0, min(9.0, 0.6 * 72 * side / max(n, 1)))     # ~60% of a row's height
    ax.set_xticks(range(n), labels, rotation=90, fontsize=font)
    ax.set_yticks(range(n), labels, fontsize=font)
    ax.set_xlabel('predicted class')
    ax.set_ylabel('true class')
    ax.set_title(title or f'confusion ({n} classes, rows normalised, confused classes together)',
                 fontsize=10)
    if n <= 30:
        for r in range(n):
            for c in range(n):
                if m[r, c]:
                    ax.text(c, r, str(int(m[r, c])), ha='center', va='center', fontsize=7,
                            color='white' if norm[r, c] > 0.5 else 'black')
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, shrink=0.5, label='fraction of the true class')
    side_ax.text(0.0, 1.0, '\n'.join(lines), ha='left', va='top', fontsize=8,
                 family=figures.monospace(), transform=side_ax.transAxes, linespacing=1.25)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches='tight', pad_inches=0.15)    # no empty margins
    return fig


def format_confused_pairs(cm: np.ndarray, names: list[str], top: int = 20) -> str:
    """The `top` most confused pairs as text, one a line (the _confused_pairs.txt file)."""
    out = ['true\tpredicted\tvideos\tpercent_of_true']
    for t, p, count, pct in most_confused_pairs(cm, top):
        out.append(f'{names[t] if t < len(names) else t}\t{names[p] if p < len(names) else p}'
                   f'\t{count}\t{pct:.1f}')
    return '\n'.join(out) + '\n'
