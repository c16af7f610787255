"""``evalcast forecast RUN_DIR``: what the forecast would have said at a step of a saved run.

The run's history up to ``--at-step`` is turned into forecaster inputs exactly as the monitor built them
at that checkpoint (its budget, LR schedule, anchors, probe predictions and :class:`ForecastConfig` are in
the run directory), so a re-forecast at a step where the monitor forecast equals what it logged there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalcast.forecast import Forecast, forecast_run
from evalcast.monitor.saved import References, config_from_meta, read_run, run_inputs


def _number(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _method(f: Forecast) -> dict[str, Any]:
    ok = f.ok and f.final is not None
    return {"status": f.status, "reason": f.reason, "final": _number(f.final) if ok else None,
            "interval80": [_number(v) for v in f.interval80] if ok and f.interval80 else None}


def forecast_saved_run(run_dir: str | Path, references: Sequence[str | Path] = (),
                       at_step: int | None = None) -> tuple[int, dict[str, dict[str, Any]]]:
    """The step forecast from and, per group, the forecast (final, 80% interval, status, reason, message,
    proxy, flags) and every baseline; ``ValueError`` for a run or reference that cannot be used."""
    run = read_run(run_dir)
    config = config_from_meta(run.meta.get("forecast"))
    records = [r for r in run.records if at_step is None or r.step <= at_step]
    if not records:
        first = run.records[0].step if run.records else None
        raise ValueError(f"{run.path}: no evaluated checkpoint at or before step {at_step} (the first is {first})")
    step = records[-1].step
    inputs, reason = run_inputs(run, config, step)
    if not inputs:
        raise ValueError(f"{run.path}: cannot forecast: {reason}")
    refsets = References(references, run.fingerprint, config).for_groups(run.groups) if references else None
    results = forecast_run(inputs, config, refsets, run.n_params)
    out = {}
    for group, r in results.items():
        out[group] = {**_method(r.forecast), "message": r.message, "proxy": r.proxy.name if r.proxy else None,
                      "flags": list(r.forecast.flags), "baselines": {k: _method(b) for k, b in r.baselines.items()}}
    return step, out


def forecast_table(step: int, results: dict[str, dict[str, Any]]) -> str:
    """A plain-text table: one line per group, then its baselines."""

    def fmt(m: dict[str, Any]) -> str:
        if m["final"] is None:
            return f"refused ({m['reason']})"
        lo, hi = m["interval80"] or (None, None)
        interval = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else ""
        return f"{m['final']:.3f}{interval}"

    lines = [f"forecast of the final pass@1 from the checkpoints up to step {step} (80% intervals)"]
    for group, r in results.items():
        lines.append(f"{group:<24} {fmt(r):<28} proxy {r['proxy'] or '-'}")
        if r["final"] is None:
            lines.append(f"{'':<24}   {r['message']}")
        for name, b in r["baselines"].items():
            lines.append(f"{'':<24}   {name:<16} {fmt(b)}")
    return "\n".join(lines)
