"""The ``headline`` object of ``ladder.json``: the figures the README quotes, every one from held-out runs.

``headline`` holds exactly the keys issue 11 names (a number, or ``None`` with the reason in ``notes``);
``headline_context`` holds what a reader needs beside them: the baselines, the targets, which proxy was
chosen and on which (tuning) runs.
"""

from __future__ import annotations

import math
from typing import Any

from benchmarks.ladder.runs import Run

TARGETS = {
    "probe_auroc_unseen_questions": {"min": 0.80},
    "probe_pass1_error_unseen": {"max": 0.05},
    "ranking_spearman_best_proxy": {"min": 0.9, "above": "ranking_spearman_val_loss"},
    "drop_delay_saves_best_proxy": {"at_most": "drop_delay_saves_val_loss"},
    "forecast": {"mae@10": 0.10, "mae@25": 0.05, "vs_loss_twostep": 0.5, "coverage80": [0.7, 0.9]},
}
KEYS = (
    "probe_auroc_unseen_questions",
    "probe_pass1_error_unseen",
    "ranking_spearman_best_proxy",
    "ranking_spearman_val_loss",
    "ranking_points",
    "drop_delay_saves_best_proxy",
    "drop_delay_saves_val_loss",
    "forecast",
    "heldout_runs",
    "tuning_runs",
)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def headline(
    out: dict[str, Any], runs: list[Run], forecast: dict[str, Any] | None, extra_notes: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(headline, headline_context)`` from the analysed sections."""
    h: dict[str, Any] = {}
    notes: list[str] = []

    probe = out["probe"]["rolling"]["heldout"]
    h["probe_auroc_unseen_questions"] = _num(probe["mean"]["auroc"])
    h["probe_pass1_error_unseen"] = _num(probe["mean"]["pass_at_1_error"])
    if not probe["runs"]:
        notes.append("probe_*: null: no held-out run had a trained probe at any scored save")
    elif h["probe_auroc_unseen_questions"] is None:
        notes.append(
            "probe_auroc_unseen_questions: null: at no scored save of a held-out run did the unseen "
            "questions hold both solved and failed ones (AUROC undefined)"
        )

    matched = out["proxies"]["matched_compute"]
    ranked = matched["heldout"]
    best = matched["best_proxy"]
    if "mean" not in ranked or best is None:
        h["ranking_spearman_best_proxy"] = h["ranking_spearman_val_loss"] = h["ranking_points"] = None
        notes.append(f"ranking_*: null: {ranked.get('note', 'no proxy ranked the tuning runs')}")
    else:
        h["ranking_spearman_best_proxy"] = _num(ranked["mean"]["all"][best])
        h["ranking_spearman_val_loss"] = _num(ranked["mean"]["all"]["val_loss"])
        h["ranking_points"] = ranked["points_used"]["all"]
        if not ranked["points_used"]["all"]:
            notes.append("ranking_*: null: at no compute value did the held-out runs' true pass@1 differ")

    drop = out["dropped_task"]
    best_drop = drop["best_proxy"]
    held = [drop["runs"][n] for n in drop["heldout_runs"]]
    h["drop_delay_saves_best_proxy"] = h["drop_delay_saves_val_loss"] = None
    if len(held) != 1:
        notes.append(f"drop_delay_*: null: {len(held)} held-out dropped-task runs (one expected)")
    else:
        d = held[0]
        if best_drop is None:
            notes.append(
                "drop_delay_saves_best_proxy: null: no proxy left its band without a false alarm on the tuning drop run"
            )
        else:
            h["drop_delay_saves_best_proxy"] = d["metrics"][f"{d['task']}/{best_drop}"]["delay_saves"]
        h["drop_delay_saves_val_loss"] = d["metrics"]["all/val_loss"]["delay_saves"]
        for key in ("drop_delay_saves_best_proxy", "drop_delay_saves_val_loss"):
            if h[key] is None and not (key.endswith("proxy") and best_drop is None):
                notes.append(
                    f"{key}: null: never left its pre-drop band in the {d['saves_after']} saves after "
                    "the drop (not detected)"
                )

    h["forecast"] = forecast
    notes.extend(extra_notes)
    h["heldout_runs"] = [r.name for r in runs if r.heldout]
    h["tuning_runs"] = [r.name for r in runs if not r.heldout]
    h["notes"] = notes
    return h, _context(out, held[0] if len(held) == 1 else None)


def _context(out: dict[str, Any], drop: dict[str, Any] | None) -> dict[str, Any]:
    probe = out["probe"]
    matched = out["proxies"]["matched_compute"]
    ranked = matched["heldout"].get("mean", {}).get("all", {})
    tuned = matched["tuning"].get("mean", {}).get("all", {})
    best = matched["best_proxy"]
    ctx: dict[str, Any] = {
        "targets": TARGETS,
        "probe": {
            "protocol": "rolling: labels at the run's anchor saves on its trainable questions; scored at "
            "every other save on the questions never labelled",
            "baseline": "pass rate at the last anchor of the labelled questions of the same task and level",
            "baseline_auroc": probe["rolling"]["heldout"]["baseline_mean"]["auroc"],
            "baseline_pass1_error": probe["rolling"]["heldout"]["baseline_mean"]["pass_at_1_error"],
            "brier": probe["rolling"]["heldout"]["mean"]["brier"],
            "unseen_questions_min": probe["rolling"]["heldout"]["unseen_questions_min"],
            "scored_saves": probe["rolling"]["heldout"]["scored_saves"],
            "first_third": probe["first_third"]["heldout"]["mean"],
            "first_third_baseline": probe["first_third"]["heldout"]["baseline_mean"],
            "tuning_runs": probe["rolling"]["tuning"]["mean"],
        },
        "ranking": {
            "best_proxy": best,
            "chosen_on": matched["best_proxy_chosen_on"],
            "best_proxy_on_tuning_runs": tuned.get(best) if best else None,
            "runs": matched["heldout"].get("runs"),
            "compute_values": len(matched["heldout"].get("compute", [])),
            "val_loss_mix": ranked.get("val_loss_mix"),
            "train_loss": ranked.get("train_loss"),
            "every_proxy": {m: ranked.get(m) for m in ranked},
        },
    }
    if drop is not None:
        rows = drop["metrics"]
        best_drop = out["dropped_task"]["best_proxy"]
        ctx["dropped_task"] = {
            "run": next(n for n, d in out["dropped_task"]["runs"].items() if d is drop),
            "task": drop["task"],
            "best_proxy": best_drop,
            "chosen_on": out["dropped_task"]["tuning_runs"],
            "window": drop["window"],
            "saves_after": drop["saves_after"],
            "control": drop["control"],
            "true_pass": [drop["true_pass_before"], drop["true_pass_end"]],
            "true_pass_delay_saves": drop["true_pass_delay_saves"],
            "alert_delay_saves": drop["alert_delay_saves"],
            "train_loss_delay_saves": rows["all/train_loss"]["delay_saves"],
            "control_false_alarm": {
                k: rows[k]["control_delay_saves"] is not None
                for k in ([f"{drop['task']}/{best_drop}"] if best_drop else []) + ["all/val_loss"]
            },
            "spearman_after": {
                "best_proxy": rows[f"{drop['task']}/{best_drop}"]["spearman_after"] if best_drop else None,
                "val_loss": rows["all/val_loss"]["spearman_after"],
                "train_loss": rows["all/train_loss"]["spearman_after"],
            },
        }
    return ctx
