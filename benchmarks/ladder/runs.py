"""A finished run directory, read back: evalcast's history aligned with the ground truth, save by save."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.ladder.config import RunSpec
from benchmarks.ladder.train import SPEC, TRUTH
from evalcast.proxy.aggregate import metric_name
from evalcast.runs import Record, RunStore


@dataclass
class Run:
    """One run: spec, sizes, and per save (aligned): evalcast record and true per-question correctness."""

    path: Path
    spec: RunSpec
    meta: dict[str, Any]
    records: list[Record]
    truth: np.ndarray
    """``[saves, questions]`` greedy correctness (0/1)."""
    truth_rows: list[dict[str, Any]]
    ids: list[str]
    tasks: np.ndarray

    @classmethod
    def load(cls, path: str | Path) -> Run:
        path = Path(path)
        meta = json.loads((path / SPEC).read_text())
        rows = [json.loads(line) for line in (path / TRUTH).read_text().splitlines() if line.strip()]
        history = {r.step: r for r in RunStore(path / "evalcast").history() if r.ok}
        rows = [r for r in rows if r["step"] in history]
        return cls(path=path, spec=RunSpec.from_dict(meta["spec"]), meta=meta,
                   records=[history[r["step"]] for r in rows],
                   truth=np.array([r["correct"] for r in rows], dtype=float), truth_rows=rows,
                   ids=[q["id"] for q in meta["questions"]], tasks=np.array([q["task"] for q in meta["questions"]]))

    @property
    def name(self) -> str:
        return self.spec.name

    @cached_property
    def steps(self) -> np.ndarray:
        return np.array([r.step for r in self.records], dtype=float)

    @cached_property
    def tokens(self) -> np.ndarray:
        return np.array([r["tokens_seen"] for r in self.truth_rows], dtype=float)

    @cached_property
    def compute(self) -> np.ndarray:
        """C = 6·N·D with N non-embedding parameters and D training tokens seen."""
        return 6.0 * self.meta["n_nonembedding"] * self.tokens

    @cached_property
    def anchor(self) -> np.ndarray:
        """True at the saves where evalcast ran its anchors (and retrained its probe on them)."""
        return np.array([r.anchor is not None for r in self.records], dtype=bool)

    @property
    def heldout(self) -> bool:
        """A held-out run (only scored), as opposed to a tuning run."""
        return self.spec.role == "heldout"

    @property
    def fraction(self) -> np.ndarray:
        return self.steps / self.spec.steps

    def true_pass(self, group: str) -> np.ndarray:
        """True pass@1 of a task (or ``all``) at every save."""
        mask = np.ones(len(self.ids), bool) if group == "all" else self.tasks == group
        return self.truth[:, mask].mean(axis=1)

    def metric(self, group: str, name: str) -> np.ndarray:
        """An evalcast metric (``nll``, ``top1.answer`` ...) or a loss at every save: ``val_loss`` (the common
        validation text, as evalcast logged it), ``val_loss_mix`` (the run's own mix) or ``train_loss``.

        ``pass@1_probe`` is NaN at anchor saves: there the probe was just trained on that save's own labels, so
        its value is in-sample; at every other save it is the probe trained on earlier anchors."""
        if name == "val_loss_mix":
            return np.array([_num(r.get("val_loss_mix")) for r in self.truth_rows])
        if name in ("val_loss", "train_loss"):
            key = "val_loss" if name == "val_loss" else "loss"
            return np.array([_num(r.train.get(key)) for r in self.records])
        weighting = name.split(".", 1)[1] if "." in name else "token"
        key = metric_name(group, name.split(".", 1)[0], weighting)
        values = np.array([_num(r.metrics.get(key)) for r in self.records])
        if name.split(".", 1)[0] == "pass@1_probe":
            values[self.anchor] = math.nan
        return values

    def cost(self, name: str) -> np.ndarray:
        return np.array([_num(r.metrics.get(metric_name("cost", name))) for r in self.records])


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.nan


def load_runs(root: str | Path) -> list[Run]:
    """Every finished run directory under ``root`` (those with a ``run.json`` and a ground truth)."""
    return [Run.load(p.parent) for p in sorted(Path(root).glob(f"*/{SPEC}")) if (p.parent / TRUTH).exists()]
