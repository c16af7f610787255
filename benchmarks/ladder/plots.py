"""The benchmark's figures (``matplotlib.figure.Figure`` on an Agg canvas; modest PNGs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchmarks.ladder.config import TASKS
from benchmarks.ladder.forecasts import METHODS
from benchmarks.ladder.proxies import LOSSES, PROXIES
from benchmarks.ladder.runs import Run

DPI = 80
SIZE_COLORS = {"XS": "tab:purple", "S": "tab:blue", "M": "tab:orange", "L": "tab:green"}
HORIZON_COLORS = ("tab:red", "tab:purple", "tab:blue")


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def curves(runs: list[Run], path: Path) -> Path:
    """Ladder runs: true pass@1 and the validation loss on the common text against compute."""
    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    for r in (r for r in runs if r.spec.group == "ladder"):
        style = dict(color=SIZE_COLORS.get(r.spec.size.name, "gray"), ls="-" if r.spec.mix.filler == 0 else "--",
                     label=f"{r.name} ({r.meta['n_nonembedding'] / 1e3:.0f}k)")
        ax1.plot(r.compute, r.true_pass("all"), **style)
        ax2.plot(r.compute, r.metric("all", "val_loss"), **style)
    ax1.set(xscale="log", xlabel="compute 6·N·D (FLOPs)", ylabel="true pass@1 (all tasks)",
            title="ground truth (solid: mix A, dashed: mix B + filler)")
    ax2.set(xscale="log", yscale="log", xlabel="compute 6·N·D (FLOPs)", ylabel="validation loss (common text)",
            title="validation loss")
    ax1.legend(fontsize=7)
    return _save(fig, path)


def selection(matched: dict[str, Any], path: Path) -> Path:
    """Oriented Spearman across ladder runs at matched compute, per metric (mean over compute values)."""
    names = [*PROXIES, *LOSSES]
    fig = Figure(figsize=(10, 3.8))
    ax = fig.subplots()
    x = np.arange(len(names))
    for k, group in enumerate(("all", *TASKS)):
        values = [matched["mean"][group][m] for m in names]
        ax.bar(x + (k - 1.5) * 0.2, np.nan_to_num(np.array(values, dtype=float)), 0.2, label=group)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    ax.set(ylabel="oriented Spearman ρ", ylim=(-1, 1),
           title=f"ranking {len(matched['runs'])} ladder runs at matched compute (mean over "
                 f"{len(matched['compute'])} compute values)")
    for i, name in enumerate(names):
        if name in LOSSES:
            ax.axvspan(i - 0.45, i + 0.45, color="0.9", zorder=0)
    ax.legend(fontsize=7, ncol=4)
    return _save(fig, path)


def dropped(run: Run, path: Path) -> Path:
    """The dropped-task run: per-task truth, the dropped task's proxies, and the overall losses."""
    task, fraction = run.spec.drop or ("sort", 0.5)
    fig = Figure(figsize=(11, 3.4))
    axes = fig.subplots(1, 3)
    for t in TASKS:
        axes[0].plot(run.steps, run.true_pass(t), label=t, lw=2 if t == task else 1)
    axes[0].set(ylabel="true pass@1", title="ground truth per task")
    axes[0].legend(fontsize=7)
    axes[1].plot(run.steps, run.metric(task, "top1"), label=f"{task} top1")
    axes[1].plot(run.steps, run.metric(task, "greedy_match"), label=f"{task} greedy_match")
    axes[1].plot(run.steps, np.exp(-run.metric(task, "nll")), label=f"{task} exp(-nll)")
    axes[1].set(title=f"proxies of {task} (higher is better)")
    axes[1].legend(fontsize=7)
    axes[2].plot(run.steps, run.metric("all", "val_loss"), label="val loss (common text)")
    axes[2].plot(run.steps, run.metric("all", "train_loss"), label="train loss (current mix)")
    axes[2].set(title="overall losses", yscale="log")
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.axvline(fraction * run.spec.steps, color="k", ls=":", lw=1)
        ax.set_xlabel("step")
    return _save(fig, path)


def probe(section: dict[str, Any], runs: list[Run], path: Path) -> Path:
    """Offline probe: predicted vs true pass@1 of the probe questions, both protocols (grey: first third)."""
    first, rolling = section["first_third"]["runs"], section["rolling"]["runs"]
    shown = [r for r in runs if first.get(r.name, {}).get("status") == "ok"][:6]
    fig = Figure(figsize=(11, 5.5))
    axes = np.atleast_1d(fig.subplots(2, 3)).ravel()
    for ax, r in zip(axes, shown):
        c = first[r.name]["curve"]
        ax.plot(r.steps, r.true_pass("all"), color="0.6", lw=1, label="true (all questions)")
        ax.plot(c["step"], c["true"], color="k", label="true (probe questions)")
        ax.plot(c["step"], c["predicted"], color="tab:orange", label="probe, first third")
        if rolling.get(r.name, {}).get("status") == "ok":
            ax.plot(rolling[r.name]["curve"]["step"], rolling[r.name]["curve"]["predicted"], color="tab:blue",
                    ls="--", label="probe, rolling anchors")
        ax.axvspan(0, r.spec.steps / 3, color="0.92", zorder=0)
        ax.set(title=f"{r.name}: AUROC {first[r.name]['pooled']['auroc']:.2f} (first third)", xlabel="step",
               ylim=(0, 1))
    for ax in axes[len(shown):]:
        ax.set_axis_off()
    if shown:
        axes[0].legend(fontsize=7)
    return _save(fig, path)


def fans(section: dict[str, Any], runs: list[Run], path: Path) -> Path:
    """Forecast fans (80% band) from each horizon, over the true curve, group ``all``."""
    by_name = {r.name: r for r in runs}
    shown = [n for n in section["fans"] if n in by_name][:4]
    fig = Figure(figsize=(10, 6))
    axes = np.atleast_1d(fig.subplots(2, 2)).ravel()
    for ax, name in zip(axes, shown):
        r = by_name[name]
        ax.plot(r.tokens, r.true_pass("all"), color="k", lw=1.5, label="true pass@1")
        colors = {str(h): c for h, c in zip(section["horizons"], HORIZON_COLORS)}
        for h, fan in sorted(section["fans"][name].items(), key=lambda kv: float(kv[0])):
            color = colors.get(h, "gray")
            x = np.array(fan["x"], dtype=float)
            ax.plot(x, np.array(fan["mean"], dtype=float), color=color, label=f"from {float(h):.0%}")
            if fan["lo80"]:
                ax.fill_between(x, np.array(fan["lo80"], dtype=float), np.array(fan["hi80"], dtype=float),
                                color=color, alpha=0.15)
            ax.axvline(fan["x_last"], color=color, ls=":", lw=1)
        ax.set(title=f"{name} ({r.spec.schedule})", xlabel="tokens seen", ylabel="pass@1 (all)", ylim=(0, 1))
        ax.legend(fontsize=7)
    for ax in axes[len(shown):]:
        ax.set_axis_off()
    return _save(fig, path)


def forecast_errors(section: dict[str, Any], path: Path) -> Path:
    """MAE of published forecasts per method and horizon, with each method's refusal rate."""
    horizons = sorted(section["by_horizon"], key=float)
    fig = Figure(figsize=(9, 3.8))
    ax = fig.subplots()
    x = np.arange(len(METHODS))
    for k, h in enumerate(horizons):
        summary = section["by_horizon"][h]
        mae = [summary[m]["mae"] for m in METHODS]
        bars = ax.bar(x + (k - 1) * 0.27, np.nan_to_num(np.array(mae, dtype=float)), 0.27,
                      color=HORIZON_COLORS[k % 3], label=f"from {float(h):.0%}")
        for bar, m in zip(bars, METHODS):
            ax.annotate(f"{summary[m]['refusal_rate']:.0%}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=6)
    ax.set_xticks(x, METHODS)
    ax.set(ylabel="MAE of final pass@1 (published only)",
           title="forecast error by method and horizon (label: refusal rate)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plateau(run: Run, stops: dict[str, Any], lr_zero_at: float, path: Path) -> Path:
    """The plateau run: true pass@1 and NLL over training, with where each stop rule fires."""
    fig = Figure(figsize=(8, 3.6))
    ax = fig.subplots()
    ax.plot(run.steps, run.true_pass("all"), color="k", label="true pass@1 (all)")
    twin = ax.twinx()
    twin.plot(run.steps, run.metric("all", "nll"), color="tab:blue", alpha=0.6, label="nll (all)")
    twin.set_ylabel("expert NLL", color="tab:blue")
    for color, (rule, stop) in zip(("tab:red", "tab:orange"), stops.items()):
        if stop.get("stops"):
            ax.axvline(stop["step"], color=color, ls="--", label=f"{rule}: stop, saves {stop['compute_saved']:.0%}")
    ax.axvline(lr_zero_at * run.spec.steps, color="0.5", ls=":", label="LR reaches 0")
    ax.set(xlabel="step", ylabel="true pass@1", title=f"{run.name}: early stop on a plateau")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)
