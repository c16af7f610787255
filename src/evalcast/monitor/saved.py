"""Saved runs as forecast inputs: reference runs of a live monitor, and re-forecasts of any run directory.

The monitor records in ``meta.json`` what a forecast of the run needs besides its history
(:func:`forecast_meta`): the training budget and LR schedule, the non-embedding parameter count, the
groups of every anchor question, the forecast groups and the :class:`ForecastConfig`. :func:`read_run`
reads a run directory back (finished or not); :func:`run_inputs` turns its history, cut at a step, into
the same :class:`~evalcast.forecast.TaskInputs` the monitor built at that step. :class:`References` holds
the reference runs of a monitor, checked against its expert set, and prepares them per group on first use.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evalcast.forecast import (
    ClusterConfig,
    ForecastConfig,
    GateConfig,
    ReferenceConfig,
    ReferenceRun,
    ReferenceSet,
    TaskInputs,
    prepare_references,
)
from evalcast.monitor.config import Budget
from evalcast.monitor.forecast_step import build_inputs
from evalcast.runs import Record, RunHistory, RunStore
from evalcast.runs.history import ok_records

_NESTED = {"gates": GateConfig, "clusters": ClusterConfig, "references": ReferenceConfig}


def forecast_meta(budget: Budget, n_params: float | None, groups_of: Mapping[str, Sequence[str]],
                  groups: Sequence[str], config: ForecastConfig | None) -> dict[str, Any]:
    """The ``meta.json`` fields a later forecast of this run (or one using it as a reference) reads, as JSON
    reads them back (so that a field is rewritten only when it changed)."""
    fields = {"budget": {"max_steps": budget.max_steps, "max_tokens": budget.max_tokens, "lr": budget.lr},
              "n_params": n_params, "anchor_groups": {q: list(g) for q, g in groups_of.items()},
              "forecast_groups": list(groups), "forecast": _config_dict(config)}
    return json.loads(json.dumps(fields, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def _config_dict(config: ForecastConfig | None) -> dict[str, Any] | None:
    """The config as plain data; None (re-forecasts then use the defaults) for one that does not convert, e.g. a
    ``chance`` mapping type that cannot be rebuilt, so that recording it never costs the checkpoint's record."""
    try:
        return None if config is None else {k: dict(v) if isinstance(v, Mapping) else v for k, v in
                                            dataclasses.asdict(config, dict_factory=dict).items()}
    except Exception:
        return None


def config_from_meta(raw: Mapping[str, Any] | None) -> ForecastConfig:
    """The :class:`ForecastConfig` recorded in ``meta.json`` (the defaults when none was)."""
    if not raw:
        return ForecastConfig()
    names = {f.name for f in dataclasses.fields(ForecastConfig)}

    def build(cls: type, values: Mapping[str, Any]) -> Any:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known})

    kwargs = {k: build(_NESTED[k], v) if k in _NESTED else tuple(v) if isinstance(v, list) else v
              for k, v in raw.items() if k in names}
    return ForecastConfig(**kwargs)


@dataclasses.dataclass(frozen=True, eq=False)
class SavedRun:
    """A run directory read back: its meta, evaluated records, budget and probe predictions."""

    path: Path
    meta: dict[str, Any]
    records: list[Record]
    budget: Budget
    n_params: float | None
    groups_of: dict[str, list[str]]
    groups: list[str]
    predictions: Mapping[int, Mapping[str, float]]

    @property
    def fingerprint(self) -> str:
        return str(self.meta.get("expert_set"))


def read_run(run_dir: str | Path) -> SavedRun:
    """Read an evalcast run directory; a missing directory or a run written without forecast metadata (by
    an older evalcast) raises ``ValueError`` naming the file and what is missing."""
    path = Path(run_dir)
    if not (path / "meta.json").is_file():
        raise ValueError(f"{path}: not an evalcast run directory (no meta.json); give the run_dir a Monitor wrote")
    store = RunStore(path)
    meta = store.read_meta() or {}
    raw = meta.get("budget")
    if not isinstance(raw, Mapping) or not (raw.get("max_steps") or raw.get("max_tokens")):
        raise ValueError(f"{path / 'meta.json'}: no training budget recorded (field 'budget': written by an older "
                         "evalcast, or the monitor never knew the budget); forecasts need the horizon")
    budget = Budget(max_steps=raw.get("max_steps"), max_tokens=raw.get("max_tokens"), lr=raw.get("lr"))
    groups_of = {str(q): list(g) for q, g in (meta.get("anchor_groups") or {}).items()}
    groups = list(meta.get("forecast_groups") or ["all", *meta.get("tasks", [])])
    n_params = meta.get("n_params")
    history = RunHistory(store)
    return SavedRun(path, meta, ok_records(history.records()), budget,
                    float(n_params) if isinstance(n_params, (int, float)) and math.isfinite(n_params) else None,
                    groups_of, groups, history.predictions())


def run_inputs(run: SavedRun, config: ForecastConfig, at_step: int | None = None) -> tuple[list[TaskInputs], str]:
    """Forecaster inputs of every forecast group from the records up to ``at_step`` (all by default)."""
    records = [r for r in run.records if at_step is None or r.step <= at_step]
    return build_inputs(records, run.groups, run.budget, run.predictions, run.groups_of, config)


class References:
    """A monitor's reference runs: read and checked at construction, prepared per group on first use."""

    def __init__(self, run_dirs: Sequence[str | Path], fingerprint: str, config: ForecastConfig) -> None:
        self.config = config
        self.runs = [read_run(d) for d in run_dirs]
        for run in self.runs:
            if run.fingerprint != fingerprint:
                raise ValueError(f"reference run {run.path}: it was evaluated on another expert set (fingerprint "
                                 f"{run.fingerprint[:12]} vs this monitor's {fingerprint[:12]}); references must be "
                                 "runs on the same expert set, or their metrics are not comparable")
        names = [r.path.resolve() for r in self.runs]
        if len(set(names)) != len(names):
            raise ValueError(f"references: a run directory is given twice ({[str(r.path) for r in self.runs]})")
        self._inputs: dict[str, list[ReferenceRun]] | None = None
        self._prepared: dict[str, ReferenceSet] = {}

    def for_groups(self, groups: Sequence[str]) -> dict[str, ReferenceSet]:
        """The prepared references of each group that at least one reference run holds."""
        if self._inputs is None:
            self._inputs = {}
            for k, run in enumerate(self.runs):
                name = f"{k}:{run.path.name}"
                for inputs in run_inputs(run, self.config)[0]:
                    self._inputs.setdefault(inputs.name, []).append(ReferenceRun(name, inputs, run.n_params))
        for group in groups:
            if group not in self._prepared and group in self._inputs:
                self._prepared[group] = prepare_references(self._inputs[group], self.config)
        return {g: self._prepared[g] for g in groups if g in self._prepared}
