"""The run record: what evalcast keeps of one checkpoint, one JSON line of ``history.jsonl``.

An evaluated checkpoint (``status == "ok"``) holds the training context, every metric, and the parts
its components added: the anchor (real pass@1 per question), the probe's status, the forecasts per
group, the alerts raised and the components that failed. A skipped checkpoint holds its ``reason``.
Per-example arrays never travel inside a record: they go to the run directory beside it.

Format versions (written as ``format_version`` on every line; the layout is in ``docs/architecture.md``):

* 1: the first layout. Records written before the version field existed are read as version 1.

A record of a later version is refused with a message naming that version, never half-read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from evalcast.forecast.results import TaskForecast
from evalcast.proxy.aggregate import metric_name

FORMAT_VERSION = 1
VERSION_KEY = "format_version"

Status = Literal["ok", "skipped"]
AlertKind = Literal["early_stop", "target_reached", "plateau", "regression", "data_mix"]
Level = Literal["INFO", "WARN", "ERROR"]


class RecordFormatError(ValueError):
    """A record this version of evalcast cannot read (a later format version, or a malformed line)."""


@dataclass(frozen=True)
class Alert:
    """One alert: who raised it, a readable reason, and what to do about it.

    ``stop_training``: the rule asks the trainer to stop (only rules configured to act set it).
    ``groups``: the tasks or domains concerned. ``suggestion``: e.g. new mixture weights per domain.
    """

    rule: str
    kind: AlertKind
    step: int
    title: str
    text: str
    level: Level = "WARN"
    stop_training: bool = False
    groups: tuple[str, ...] = ()
    suggestion: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["groups"], out["suggestion"] = list(self.groups), dict(self.suggestion)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Alert:
        return cls(**{**d, "groups": tuple(d.get("groups", ())), "suggestion": dict(d.get("suggestion", {}))})


@dataclass(frozen=True)
class AnchorSummary:
    """A checkpoint's anchor: how many questions were generated and scored, and each one's pass@1.

    ``report`` is the probe's report at this anchor (its earlier self scored on the new labels), as the
    probe writes it; ``seconds`` and ``tokens_generated`` are the anchor's cost.
    """

    questions: int
    per_question: Mapping[str, float]
    report: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    tokens_generated: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"questions": self.questions, "report": dict(self.report), "per_question": dict(self.per_question),
                "seconds": self.seconds, "tokens_generated": self.tokens_generated}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AnchorSummary:
        return cls(questions=int(d["questions"]), per_question={str(q): float(p) for q, p in d["per_question"].items()},
                   report=dict(d.get("report", {})), seconds=float(d.get("seconds", 0.0)),
                   tokens_generated=int(d.get("tokens_generated", 0)))


@dataclass(frozen=True)
class ProbeStatus:
    """Whether the probe predicted at this checkpoint (``"ok"``) or not (``"none"``, with the reason)."""

    status: Literal["ok", "none"]
    reason: str = ""
    message: str = ""


@dataclass
class Record:
    """One checkpoint of a run (see the module docstring)."""

    step: int
    status: Status = "ok"
    tokens_seen: int | None = None
    epoch: float | None = None
    time: float = 0.0
    session: str = ""
    reason: str = ""
    """Why the checkpoint was skipped (empty when ok)."""
    train: dict[str, float] = field(default_factory=dict)
    """Training figures at the checkpoint: ``loss``, ``lr``, ``grad_norm``, ``val_loss`` where known."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Every metric by its tracker name, ``evalcast/<group>/<metric>``."""
    anchor: AnchorSummary | None = None
    probe: ProbeStatus | None = None
    forecasts: dict[str, TaskForecast] = field(default_factory=dict)
    alerts: tuple[Alert, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)
    """Components that failed at this checkpoint (``probe``, ``forecast``, ``alerts``, ``anchor``) and why."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def value(self, group: str, metric: str) -> float:
        """``evalcast/<group>/<metric>`` at this checkpoint; NaN where it was not measured."""
        return _number(self.metrics.get(metric_name(group, metric)))

    def has(self, group: str, metric: str) -> bool:
        return metric_name(group, metric) in self.metrics

    def train_value(self, name: str) -> float:
        """A training figure (``loss``, ``lr`` ...); NaN where the trainer did not report it."""
        return _number(self.train.get(name))

    def to_json(self) -> dict[str, Any]:
        """The JSON object of one ``history.jsonl`` line (parts left out when absent)."""
        out: dict[str, Any] = {VERSION_KEY: FORMAT_VERSION, "step": self.step, "status": self.status,
                               "tokens_seen": self.tokens_seen, "epoch": self.epoch, "time": self.time,
                               "session": self.session}
        if not self.ok:
            out["reason"] = self.reason
            return out
        out.update(train=dict(self.train), metrics=dict(self.metrics))
        if self.anchor is not None:
            out["anchor"] = self.anchor.to_dict()
        if self.probe is not None:
            out["probe"] = asdict(self.probe)
        if self.forecasts:
            out["forecasts"] = {group: f.to_dict() for group, f in self.forecasts.items()}
        out["alerts"] = [a.to_dict() for a in self.alerts]
        if self.errors:
            out["errors"] = dict(self.errors)
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Record:
        """Read one line's object (any format version this evalcast knows; see the module docstring)."""
        version = d.get(VERSION_KEY, 1)
        if version != FORMAT_VERSION:
            raise RecordFormatError(
                f"record format version {version!r}: this evalcast reads version {FORMAT_VERSION} (a later "
                "evalcast wrote it); upgrade evalcast to read this run")
        if "step" not in d:
            raise RecordFormatError("a record without a step")
        probe = d.get("probe")
        return cls(
            step=int(d["step"]), status=d.get("status", "ok"), tokens_seen=d.get("tokens_seen"), epoch=d.get("epoch"),
            time=float(d.get("time") or 0.0), session=str(d.get("session", "")), reason=str(d.get("reason", "")),
            train=dict(d.get("train") or {}), metrics=dict(d.get("metrics") or {}),
            anchor=AnchorSummary.from_dict(d["anchor"]) if d.get("anchor") else None,
            probe=ProbeStatus(**probe) if probe else None,
            forecasts={group: TaskForecast.from_dict(f) for group, f in (d.get("forecasts") or {}).items()},
            alerts=tuple(Alert.from_dict(a) for a in d.get("alerts") or ()), errors=dict(d.get("errors") or {}))


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
