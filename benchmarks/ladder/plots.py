"""The benchmark's figures (``matplotlib.figure.Figure`` on an Agg canvas; modest PNGs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchmarks.ladder.config import TASKS
from benchmarks.ladder.proxies import LOSSES, PROXIES
from benchmarks.ladder.runs import Run

DPI = 80
SIZE_COLORS = {"XS": "tab:purple", "S": "tab:blue", "M": "tab:orange", "L": "tab:green"}


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def curves(runs: list[Run], path: Path) -> Path:
    """Ladder runs (held-out ones thick): true pass@1 and the validation loss on the common text vs compute."""
    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    for r in (r for r in runs if r.spec.group == "ladder"):
        style = dict(color=SIZE_COLORS.get(r.spec.size.name, "gray"), ls="-" if r.spec.mix.filler == 0 else "--",
                     lw=2 if r.heldout else 1, label=f"{r.name} ({r.meta['n_nonembedding'] / 1e3:.0f}k, {r.spec.role})")
        ax1.plot(r.compute, r.true_pass("all"), **style)
        ax2.plot(r.compute, r.metric("all", "val_loss"), **style)
    ax1.set(xscale="log", xlabel="compute 6·N·D (FLOPs)", ylabel="true pass@1 (all tasks)",
            title="ground truth (solid: mix A, dashed: mix B + filler)")
    ax2.set(xscale="log", yscale="log", xlabel="compute 6·N·D (FLOPs)", ylabel="validation loss (common text)",
            title="validation loss")
    ax1.legend(fontsize=7)
    return _save(fig, path)


def selection(matched: dict[str, Any], path: Path) -> Path:
    """Oriented Spearman across runs at matched compute, per metric, group ``all``: held-out and tuning runs
    side by side, each the mean over the same compute values (a constant metric counts 0)."""
    names = [*PROXIES, *LOSSES]
    fig = Figure(figsize=(10, 3.8))
    ax = fig.subplots()
    x = np.arange(len(names))
    for k, (role, color) in enumerate((("heldout", "tab:blue"), ("tuning", "0.65"))):
        ranked = matched[role]
        if "mean" not in ranked:
            continue
        values = np.array([ranked["mean"]["all"][m] for m in names], dtype=float)
        ax.bar(x + (k - 0.5) * 0.4, np.nan_to_num(values), 0.4, color=color,
               label=f"{role}: {len(ranked['runs'])} runs, {ranked['points_used']['all']} compute values")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    best = matched.get("best_proxy")
    ax.set(ylabel="oriented Spearman ρ", ylim=(-1, 1),
           title=f"ranking runs at matched compute (all tasks); best on tuning runs: {best}")
    for i, name in enumerate(names):
        if name in LOSSES:
            ax.axvspan(i - 0.45, i + 0.45, color="0.93", zorder=0)
    ax.legend(fontsize=7)
    return _save(fig, path)


def dropped(run: Run, section: dict[str, Any], path: Path) -> Path:
    """A dropped-task run: per-task truth, the chosen proxy, and the overall losses, with detection saves."""
    task, fraction = run.spec.drop or ("sort", 0.5)
    study = section["runs"][run.name]
    best = section.get("best_proxy") or "nll"
    fig = Figure(figsize=(11, 3.4))
    axes = fig.subplots(1, 3)
    for t in TASKS:
        axes[0].plot(run.steps, run.true_pass(t), label=t, lw=2 if t == task else 1)
    axes[0].set(ylabel="true pass@1", title=f"{run.name}: ground truth per task")
    axes[0].legend(fontsize=7)
    panels = ((axes[1], task, (best,)), (axes[2], "all", ("val_loss", "train_loss")))
    for ax, group, metrics in panels:
        for m in metrics:
            line = ax.plot(run.steps, run.metric(group, m), label=f"{group}/{m}")[0]
            lag = study["metrics"][f"{group}/{m}"]["delay_saves"]
            if lag is not None:
                k = int(np.searchsorted(run.steps, study["first_save_after"])) + lag - 1
                ax.axvline(run.steps[k], color=line.get_color(), ls="--", lw=1)
        ax.set(title=f"{group}: dashed = leaves its pre-drop band")
        ax.legend(fontsize=7)
    for ax in axes:
        ax.axvline(fraction * run.spec.steps, color="k", ls=":", lw=1)
        ax.set_xlabel("step")
    return _save(fig, path)


def probe(section: dict[str, Any], runs: list[Run], path: Path) -> Path:
    """Held-out runs: predicted vs true pass@1 of the questions the probe never trained on, at scored saves."""
    rolling, first = section["rolling"]["runs"], section["first_third"]["runs"]
    shown = [r for r in runs if r.heldout and rolling.get(r.name, {}).get("status") == "ok"][:6]
    fig = Figure(figsize=(11, 5.5))
    axes = np.atleast_1d(fig.subplots(2, 3)).ravel()
    for ax, r in zip(axes, shown):
        c = rolling[r.name]["per_save"]
        ax.plot(c["step"], c["true"], color="k", label="true (unseen questions)")
        ax.plot(c["step"], c["predicted"], color="tab:blue", label="probe, rolling anchors")
        if first.get(r.name, {}).get("status") == "ok":
            f = first[r.name]["per_save"]
            ax.plot(f["step"], f["predicted"], color="tab:orange", ls="--", label="probe, first third")
        auroc = rolling[r.name]["mean"]["auroc"]
        ax.set(title=f"{r.name}: AUROC {'—' if auroc is None else f'{auroc:.2f}'} (unseen, rolling)", xlabel="step",
               ylim=(0, 1))
    for ax in axes[len(shown):]:
        ax.set_axis_off()
    if shown:
        axes[0].legend(fontsize=7)
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
