"""Forecast figures from the run history: the latest fan chart, how the forecast of the final value moved
over the run, and which checkpoints published a forecast (and why the others refused)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from evalcast.forecast import TaskForecast
from evalcast.report.plots import label_x, new_figure
from evalcast.runs.history import TOKENS, ok_records, run_axis
from evalcast.runs.record import Record
from evalcast.trackers.curves import forecast_curve
from evalcast.trackers.figures import render_curve

OK_COLOR = "tab:green"


def x_of(record: Record, x_name: str) -> float | None:
    if x_name == TOKENS:
        return float(record.tokens_seen) if record.tokens_seen else None
    return float(record.step)


def latest_published(history: Sequence[Record], group: str) -> tuple[Record, TaskForecast] | None:
    for record in reversed(ok_records(history)):
        tf = record.forecasts.get(group)
        if tf is not None and tf.forecast.ok and tf.forecast.curve is not None:
            return record, tf
    return None


def fan_figure(history: Sequence[Record], group: str) -> Figure | None:
    """The latest published forecast of ``group``: its line, 80% and 95% bands, the anchors it was fit on,
    and the anchors measured after it (how the forecast fared)."""
    found = latest_published(history, group)
    if found is None:
        return None
    record, tf = found
    records = ok_records(history)
    x_name = run_axis([r for r in records if r.step <= record.step])[1]
    curve = forecast_curve(group, tf, x_name)
    assert curve is not None
    fig = render_curve(curve, size=(7.0, 4.2))
    ax = fig.axes[0]
    later = [(x, r.value(group, "pass@1_anchor")) for r in records if r.step > record.step
             and r.has(group, "pass@1_anchor") and (x := x_of(r, x_name)) is not None]
    if later:
        ax.scatter(*zip(*later), marker="D", s=28, facecolors="none", edgecolors="tab:red", zorder=4,
                   label="anchors after this forecast")
        ax.legend(loc="best", fontsize="small")
    ax.set_ylabel("pass@1")
    label_x(ax, x_name)
    ax.set_title(f"{group}: forecast made at step {record.step}: final {tf.forecast.final:.3f}", fontsize=10)
    return fig


def evolution_figure(history: Sequence[Record], group: str) -> Figure | None:
    """The forecast of the final value at every checkpoint (with 80%/95% intervals and the baselines),
    beside the anchors measured so far; refused checkpoints are marked at the bottom."""
    ok = ok_records(history)
    records = [r for r in ok if r.has(group, "forecast_status")]
    published = [r for r in records if r.has(group, "forecast_final")]
    if not published:
        return None
    xs, x_name = run_axis(ok)
    x_at = {r.step: x for r, x in zip(ok, xs)}
    fig = new_figure(7.0, 4.2)
    ax = fig.add_subplot()
    px = [x_at[r.step] for r in published]
    for lo, hi, width, alpha, label in (("forecast_lo95", "forecast_hi95", 2, 0.35, "95% interval"),
                                        ("forecast_lo80", "forecast_hi80", 6, 0.6, "80% interval")):
        ax.vlines(px, [r.value(group, lo) for r in published], [r.value(group, hi) for r in published],
                  color="tab:blue", alpha=alpha, linewidth=width, label=label)
    ax.scatter(px, [r.value(group, "forecast_final") for r in published], color="tab:blue", s=30, zorder=3,
               label="forecast of the final value")
    baselines = sorted({k.rsplit(".", 1)[1] for r in published for k in r.metrics
                        if k.startswith(f"evalcast/{group}/forecast_final.")})
    for k, name in enumerate(baselines, start=1):
        points = [(x_at[r.step], r.value(group, f"forecast_final.{name}")) for r in records
                  if r.has(group, f"forecast_final.{name}")]
        ax.plot(*zip(*points), linestyle="--", linewidth=1, color=f"C{k}", label=f"baseline: {name}")
    anchors = [(x_at[r.step], r.value(group, "pass@1_anchor")) for r in ok if r.has(group, "pass@1_anchor")]
    if anchors:
        ax.scatter(*zip(*anchors), color="black", s=18, zorder=3, label="anchor pass@1 (measured then)")
    refused = [x_at[r.step] for r in records if r.value(group, "forecast_status") != 1.0]
    if refused:
        ax.scatter(refused, [0.03] * len(refused), marker="x", color="grey", transform=ax.get_xaxis_transform(),
                   label="refused (see status)")
    last, x_end = ok[-1], _x_end(records[-1], group)
    if x_at[last.step] >= x_end * 0.999 and last.has(group, "pass@1_anchor"):
        ax.axhline(last.value(group, "pass@1_anchor"), color="black", linestyle=":", linewidth=1,
                   label="pass@1 measured at the end of the budget")
    label_x(ax, f"{x_name} when the forecast was made")
    ax.set_ylabel("pass@1 at the end of the budget")
    ax.set_title(f"{group}: how the forecast of the final pass@1 evolved", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return fig


def status_figure(history: Sequence[Record], groups: Sequence[str]) -> Figure | None:
    """Rows: groups; columns: checkpoints with a forecast attempt; colour: published or refusal reason."""
    records = [r for r in ok_records(history) if r.forecasts]
    if not records:
        return None
    cells: list[tuple[int, int, str]] = []
    for j, r in enumerate(records):
        found = r.forecasts
        for i, group in enumerate(groups):
            if group in found:
                cells.append((j, i, "published" if found[group].forecast.ok else found[group].reason or "refused"))
    reasons = sorted({c for *_, c in cells} - {"published"})
    colors: dict[str, Any] = {"published": OK_COLOR, **{r: f"C{k + 1}" for k, r in enumerate(reasons)}}
    fig = new_figure(max(6.0, 0.35 * len(records) + 3.0), 1.4 + 0.42 * len(groups))
    ax = fig.add_subplot()
    for label in ("published", *reasons):
        points = [(j, i) for j, i, c in cells if c == label]
        if points:
            ax.scatter(*zip(*points), marker="s", s=90, color=colors[label], label=label)
    ax.set_yticks(range(len(groups)), groups)
    ax.set_ylim(-0.6, len(groups) - 0.4)
    ticks = list(range(0, len(records), max(1, len(records) // 12)))
    ax.set_xticks(ticks, [str(records[j].step) for j in ticks])
    ax.set_xlabel("step")
    ax.set_title("forecast status per checkpoint (refusals by reason)", fontsize=10)
    fig.legend(loc="outside right upper", fontsize=8)
    return fig


def _x_end(record: Record, group: str) -> float:
    """The end of the budget on the forecast's x axis (infinite where unknown)."""
    forecast = record.forecasts.get(group)
    return forecast.x_end if forecast is not None and math.isfinite(forecast.x_end) and forecast.x_end else math.inf
