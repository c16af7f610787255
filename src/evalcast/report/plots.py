"""Figures of a run's history (headless: ``matplotlib.figure.Figure`` on an Agg canvas, no global backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evalcast.proxy.aggregate import metric_name

DEFAULT_PANELS = ("nll", "top1", "log_rank", "entropy", "greedy_match", "pair_accuracy")


def run_axis(history: Sequence[dict[str, Any]]) -> tuple[list[float], str]:
    """The x values of a history: tokens seen when every record has them, else steps."""
    if history and all(r.get("tokens_seen") for r in history):
        return [float(r["tokens_seen"]) for r in history], "tokens seen"
    return [float(r["step"]) for r in history], "step"


def plot_proxies(history: Sequence[dict[str, Any]], groups: Sequence[str], path: str | Path,
                 panels: Sequence[str] = DEFAULT_PANELS, title: str = "evalcast proxy metrics") -> Path:
    """One panel per metric, one line per group (task), over the run; written as PNG."""
    records = [r for r in history if r.get("status") == "ok"]
    x, x_name = run_axis(records)
    panels = [p for p in panels if any(metric_name(g, p) in r["metrics"] for r in records for g in groups)]
    cols = min(3, max(1, len(panels)))
    rows = -(-len(panels) // cols) or 1
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    for k, panel in enumerate(panels):
        ax = fig.add_subplot(rows, cols, k + 1)
        for group in groups:
            ys = [r["metrics"].get(metric_name(group, panel), float("nan")) for r in records]
            ax.plot(x, ys, marker="o", markersize=3, label=group)
        ax.set_title(panel)
        ax.set_xlabel(x_name)
        ax.grid(alpha=0.3)
    if panels:
        fig.axes[0].legend(fontsize=8)
    fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
