"""Figures of a run's history: proxies, probe quality, alerts, cost.

Headless: every figure is a ``matplotlib.figure.Figure`` on its own Agg canvas, so the global backend and
pyplot's figure list are never touched (safe inside a training process). Functions that build a figure
return ``None`` when the history holds nothing to draw.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from evalcast.runs.history import ok_records, run_axis
from evalcast.runs.record import Record

DEFAULT_PANELS = ("nll", "top1", "log_rank", "entropy", "greedy_match", "pair_accuracy")
PROBE_PANELS = (("probe_auroc", "AUROC (earlier probe, new anchor)"), ("probe_brier", "Brier score"),
                ("probe_pass@1_error", "|predicted − anchor pass@1|"))
COST_PARTS = ("forward_seconds", "probe_seconds", "anchor_seconds", "forecast_seconds", "alerts_seconds")
LEVEL_COLORS = {"INFO": "tab:blue", "WARN": "tab:orange", "ERROR": "tab:red"}


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def label_x(ax: Axes, x_name: str) -> None:
    """Name the x axis; token counts read as 150k, 2M."""
    ax.set_xlabel(x_name)
    if x_name.startswith("tokens"):
        ax.xaxis.set_major_formatter(EngFormatter())


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def proxies_figure(history: Sequence[Record], groups: Sequence[str], panels: Sequence[str] = DEFAULT_PANELS,
                   title: str = "evalcast proxy metrics") -> Figure | None:
    """One panel per metric, one line per group, over the run."""
    records = ok_records(history)
    x, x_name = run_axis(records)
    panels = [p for p in panels if any(r.has(g, p) for r in records for g in groups)]
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = new_figure(4.2 * cols, 3.2 * rows)
    for k, panel in enumerate(panels):
        ax = fig.add_subplot(rows, cols, k + 1)
        for group in groups:
            ax.plot(x, [r.value(group, panel) for r in records], marker="o", markersize=3, label=group)
        ax.set_title(panel)
        label_x(ax, x_name)
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=8)
    fig.suptitle(title)
    return fig


def plot_proxies(history: Sequence[Record], groups: Sequence[str], path: str | Path,
                 panels: Sequence[str] = DEFAULT_PANELS, title: str = "evalcast proxy metrics") -> Path:
    """:func:`proxies_figure` written as PNG (an empty figure when there is nothing to draw)."""
    fig = proxies_figure(history, groups, panels, title) or new_figure(4.2, 3.2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def probe_figure(history: Sequence[Record], groups: Sequence[str]) -> Figure | None:
    """Predicted pass@1 (probe, every checkpoint) against the anchors' real pass@1, and the probe's
    quality at each anchor: AUROC, Brier score and pass@1 error of the previous probe on the new labels."""
    records = ok_records(history)
    has = {m for r in records for k in r.metrics for m in ("pass@1_probe", "pass@1_anchor", "probe_auroc")
           if k.endswith("/" + m)}
    if not has:
        return None
    x, x_name = run_axis(records)
    fig = new_figure(10, 7)
    ax = fig.add_subplot(2, 2, 1)
    for k, group in enumerate(groups):
        color = f"C{k}"
        ax.plot(x, [r.value(group, "pass@1_probe") for r in records], color=color, label=f"{group} probe")
        anchors = [(xi, r.value(group, "pass@1_anchor")) for xi, r in zip(x, records)
                   if r.has(group, "pass@1_anchor")]
        if anchors:
            ax.scatter(*zip(*anchors), color=color, marker="s", s=22, label=f"{group} anchor")
    ax.set_title("pass@1: probe (lines) vs anchors (squares)")
    label_x(ax, x_name)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    for k, (metric, label) in enumerate(PROBE_PANELS, start=2):
        ax = fig.add_subplot(2, 2, k)
        for j, group in enumerate(groups):
            points = [(xi, r.value(group, metric)) for xi, r in zip(x, records)
                      if r.has(group, metric)]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=4, color=f"C{j}", label=group)
        if not ax.lines:
            ax.text(0.5, 0.5, "not defined yet\n(needs a probe before the anchor\nand both outcomes)",
                    ha="center", va="center", transform=ax.transAxes, fontsize=9, color="grey")
        ax.set_title(label)
        label_x(ax, x_name)
        ax.grid(alpha=0.3)
    return fig


def alerts_figure(history: Sequence[Record]) -> Figure | None:
    """Alert timeline: one row per rule, a marker per alert (colour: level; ``X``: asked to stop)."""
    alerts = [(r.step, a) for r in ok_records(history) for a in r.alerts]
    if not alerts:
        return None
    rules = sorted({a.rule for _, a in alerts})
    fig = new_figure(10, 1.2 + 0.45 * len(rules))
    ax = fig.add_subplot()
    steps = [r.step for r in history]
    ax.set_xlim(min(steps) - 1, max(steps) + 1)
    for step, a in alerts:
        ax.scatter(step, rules.index(a.rule), s=90 if a.stop_training else 50,
                   marker="X" if a.stop_training else "o", color=LEVEL_COLORS.get(a.level, "grey"), zorder=3)
    ax.set_yticks(range(len(rules)), rules)
    ax.set_ylim(-0.6, len(rules) - 0.4)
    ax.set_xlabel("step")
    ax.set_title("alerts (blue INFO, orange WARN, red ERROR; X: asked to stop training)")
    ax.grid(alpha=0.3, axis="x")
    return fig


def cost_figure(history: Sequence[Record]) -> Figure | None:
    """Seconds per evaluation, by part, and their running total."""
    records = ok_records(history)
    parts = [p for p in COST_PARTS if any(r.has("cost", p) for r in records)]
    if not records or not records[-1].has("cost", "seconds"):
        return None
    steps = [r.step for r in records]
    fig = new_figure(11, 3.4)
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(steps, [r.value("cost", "seconds") for r in records], color="black", marker="o", markersize=3,
            label="total")
    for k, part in enumerate(parts):
        ax.plot(steps, [r.value("cost", part) for r in records], marker=".", color=f"C{k}",
                linestyle="-" if part != "anchor_seconds" else "none", label=part.removesuffix("_seconds"))
    ax.set_title("seconds per evaluation")
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax = fig.add_subplot(1, 2, 2)
    total = 0.0
    running = []
    for r in records:
        total += r.value("cost", "seconds")
        running.append(total)
    ax.plot(steps, running, color="black")
    ax.set_title("evaluation seconds, cumulative")
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    return fig
