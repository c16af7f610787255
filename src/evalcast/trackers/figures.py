"""Headless fan chart of a forecast :class:`~evalcast.trackers.base.Curve` (PNG).

Draws the 95% and 80% bands (series ``lo95/hi95``, ``lo80/hi80``), the ``forecast`` line, any other
series as dashed lines, the observed anchor points and, when ``curve.meta["current_x"]`` is set, a
vertical line at the current checkpoint. Uses ``matplotlib.figure.Figure`` with an Agg canvas, so the
global matplotlib backend (and pyplot's figure list) is never touched; safe in training processes and
reused by the HTML report.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evalcast.trackers.base import Curve
from evalcast.trackers.curves import BANDS, FORECAST, check_curve

_BAND_ALPHA = {95: 0.15, 80: 0.3}
_COLOR = "tab:blue"


def render_curve(curve: Curve, *, size: tuple[float, float] = (6.4, 4.0), dpi: int = 100) -> Figure:
    """Draw ``curve`` on a new Agg-backed figure and return it (no pyplot state involved)."""
    check_curve(curve, where=f"render_curve({curve.title or 'curve'!r})")
    fig = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.13, top=0.91)  # fixed: tight_layout costs a draw
    ax = fig.add_subplot()
    x = list(curve.x)
    banded: set[str] = set()
    for lo, hi, coverage in BANDS:
        if lo in curve.series and hi in curve.series:
            ax.fill_between(x, curve.series[lo], curve.series[hi], color=_COLOR,
                            alpha=_BAND_ALPHA[coverage], linewidth=0, label=f"{coverage}% interval")
            banded.update((lo, hi))
    if FORECAST in curve.series:
        ax.plot(x, curve.series[FORECAST], color=_COLOR, linewidth=2, label=FORECAST)
    others = [key for key in curve.series if key != FORECAST and key not in banded]
    for i, key in enumerate(others, start=1):
        ax.plot(x, curve.series[key], color=f"C{i}", linestyle="--", linewidth=1, label=key)
    if len(curve.observed_x):
        ax.scatter(curve.observed_x, curve.observed_y, color="black", s=18, zorder=3, label="observed")
    current = curve.meta.get("current_x")
    if current is not None:
        ax.axvline(float(current), color="grey", linestyle=":", linewidth=1, label="now")
    ax.set_xlabel(curve.x_name)
    y_name = curve.meta.get("y_name")
    if y_name:
        ax.set_ylabel(str(y_name))
    if curve.title:
        ax.set_title(curve.title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    return fig


def figure_png(fig: Figure) -> bytes:
    """Encode a figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def curve_png(curve: Curve, path: str | Path | None = None, *, dpi: int = 100) -> bytes:
    """Render ``curve`` to PNG bytes, also writing them to ``path`` when given."""
    data = figure_png(render_curve(curve, dpi=dpi))
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return data
