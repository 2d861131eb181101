"""What every figure of the toolkit shares (test.py's confusion matrix, tools/report.py's plots,
tools/predict.py's timeline): matplotlib without a display, text in any script, and value
axes that stay readable when a curve is flat.

Class names come from users' folders and may be in any script (`跳舞 dance`, `sauter à la
corde`). Matplotlib's default font, DejaVu Sans, has no CJK glyphs and draws them as empty
boxes, with one warning a glyph. `setup()` puts the installed fonts of WIDE_FONTS after DejaVu
Sans in the font families, so that matplotlib takes each glyph DejaVu lacks from the first of
them that has it; with none installed the figures are drawn as before, and the glyph warnings
are silenced in both cases (a box is what they would warn about).
"""
import functools
import warnings

# Fonts with wide Unicode coverage, most complete first: CJK (Linux, macOS, Windows), then
# other scripts, then GNU Unifont, which has nearly every glyph of the basic plane.
WIDE_FONTS = (
    'Noto Sans CJK JP', 'Noto Sans CJK SC', 'Noto Sans CJK TC', 'Noto Sans CJK KR',
    'Source Han Sans', 'Source Han Sans SC', 'WenQuanYi Zen Hei', 'WenQuanYi Micro Hei',
    'Droid Sans Fallback', 'Noto Sans SC', 'Noto Sans JP', 'Noto Sans KR', 'AR PL UMing CN',
    'Arial Unicode MS', 'PingFang SC', 'Hiragino Sans', 'Apple SD Gothic Neo',
    'Microsoft YaHei', 'Yu Gothic', 'Malgun Gothic', 'SimHei', 'MS Gothic',
    'Noto Sans', 'Noto Sans Arabic', 'Noto Sans Hebrew', 'Noto Sans Devanagari',
    'Noto Sans Bengali', 'Noto Sans Tamil', 'Noto Sans Thai', 'Noto Sans Georgian',
    'Noto Sans Armenian', 'Noto Sans Ethiopic', 'Unifont')


@functools.lru_cache(maxsize=None)
def wide_fonts() -> tuple[str, ...]:
    """The families of WIDE_FONTS that matplotlib finds installed, in that order."""
    from matplotlib import font_manager
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return tuple(name for name in WIDE_FONTS if name in installed)


def setup() -> None:
    """Prepare matplotlib to draw files: the Agg backend (no display needed), the installed
    wide fonts as fallbacks of the text (monospaced text: family=monospace()), no glyph
    warnings."""
    import matplotlib
    matplotlib.use('Agg')
    wide = list(wide_fonts())
    if wide:
        matplotlib.rcParams['font.family'] = ['DejaVu Sans', *wide]
    # Appended (once), so that a filter set by the caller, e.g. to see them, still wins.
    warnings.filterwarnings('ignore', message=r'Glyph \d+ .*missing from', category=UserWarning,
                            append=True)


def monospace() -> list[str]:
    """The font families of monospaced text (family=...): matplotlib's own monospace font,
    then the wide fonts. (The generic family 'monospace' names one font: no fallback.)"""
    return ['DejaVu Sans Mono', *wide_fonts()]


def keep_span(ax, values, min_span: float, low: float | None = None,
              high: float | None = None) -> None:
    """Give the y axis of `ax` at least `min_span` around `values` (within [low, high]), so
    that a flat curve (all zero, or one value) shows on a sensible scale instead of
    matplotlib's +-0.04-wide one; wider data keep matplotlib's limits."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return
    lo, hi = min(values), max(values)
    if hi - lo >= min_span:
        return
    centre = (lo + hi) / 2
    bottom, top = centre - min_span / 2, centre + min_span / 2
    if low is not None and bottom < low:
        bottom, top = low, low + min_span
    if high is not None and top > high:
        bottom, top = max(high - min_span, low if low is not None else high - min_span), high
    ax.set_ylim(bottom, top)
