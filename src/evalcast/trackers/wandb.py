"""Weights & Biases backend: writes into the run that is already open, never opens a second one.

**Which run.** At first use the tracker takes, in order: the ``run`` it was given; the global
``wandb.run`` (the one HF's ``WandbCallback``, Lightning's ``WandbLogger`` or the user opened); and only
when neither exists and ``init`` was given, a run of its own (``wandb.init(**init)``). ``finish()``
finishes only a run the tracker opened itself, never one it was handed or found.

**Steps.** evalcast keeps its own x-axis. At first use the tracker calls
``define_metric("evalcast/step")`` and ``define_metric("evalcast/*", step_metric="evalcast/step",
step_sync=True)``, and every row it logs carries ``evalcast/step`` = the trainer's global step.
``wandb.log`` is never given ``step=``: W&B drops (with only a warning) a row whose ``step`` is below
the run's internal ``_step``, which HF and Lightning advance on every log and which a resumed run
restores from the server, so a ``step=`` call would silently lose evalcast's points. Without it every
call appends a row at the next ``_step`` (or joins the row a trainer left open with ``step=``); the
row's ``evalcast/step`` places the point. After a resume, a save logged again for a step the run already
passed is appended, not dropped, and lands at the same x as before.
HF's glob ``"*" -> train/global_step`` and Lightning's ``"*" -> trainer/global_step`` still apply too
(W&B fills those keys into evalcast's rows, which is harmless); the workspace template in
``integrations/wandb`` pins ``evalcast/step`` as the x-axis of every evalcast panel.

**What goes where** (``name`` is the key passed in, e.g. ``evalcast/gsm8k/forecast``):

* scalars: as given, plus ``evalcast/step``;
* a curve: ``name`` is a ``wandb.plot.line_series`` chart (forecast, bands and ``observed`` as lines;
  its data under ``name_table``), ``name/data`` the wide table of :func:`~evalcast.trackers.curves.curve_table`,
  ``name/fan`` the shaded fan chart as an image, and ``run.summary["name/latest"]`` the values at the end
  of the budget;
* tables: ``wandb.Table``; images: ``wandb.Image``;
* alerts: ``run.alert(..., wait_duration=alert_wait_s)`` (W&B then holds back repeats of one title), and
  the cumulative table ``evalcast/alerts`` (step, level, title, text) for the workspace.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import wandb

from evalcast.trackers.base import AlertLevel, Curve, Tracker
from evalcast.trackers.curves import check_curve, curve_table
from evalcast.trackers.figures import curve_png

if TYPE_CHECKING:
    from wandb.sdk.wandb_run import Run

STEP_KEY = "evalcast/step"
ALERTS_KEY = "evalcast/alerts"
_MAX_TITLE = 63  # W&B refuses alert titles of 64 characters or more


class WandbTracker(Tracker):
    """Logs to a W&B run; see the module docstring for run reuse and step handling.

    Args:
        run: the run to write into (default: ``wandb.run`` at first use).
        init: keyword arguments for ``wandb.init`` when no run is open; without them the tracker
            refuses to open one.
        alert_wait_s: seconds W&B waits before sending another alert with the same title.
        fan_image: also log the fan chart as an image (a chart with shaded bands, which
            ``line_series`` cannot draw).
    """

    def __init__(self, run: Run | None = None, *, init: Mapping[str, Any] | None = None,
                 alert_wait_s: float = 600.0, fan_image: bool = True) -> None:
        self._given = run
        self._init = dict(init) if init is not None else None
        self._run: Run | None = None
        self.owns_run = False
        self.alert_wait_s = alert_wait_s
        self.fan_image = fan_image
        self._alerts: list[list[Any]] = []

    @property
    def run(self) -> Run:
        """The run in use, resolved (and its step axis defined) at first access."""
        if self._run is None:
            run = self._resolve()
            run.define_metric(STEP_KEY)
            run.define_metric("evalcast/*", step_metric=STEP_KEY, step_sync=True)
            self._run = run
        return self._run

    def _resolve(self) -> Run:
        if self._given is not None:
            return self._given
        if wandb.run is not None:
            return wandb.run
        if self._init is None:
            raise RuntimeError(
                "WandbTracker: no W&B run is open (wandb.run is None). Open one first (wandb.init, or "
                "let HF's WandbCallback / Lightning's WandbLogger open it), pass run=..., or let the "
                "tracker open its own with WandbTracker(init={'project': ...}).")
        self.owns_run = True
        return wandb.init(**self._init)

    def _log(self, row: Mapping[str, Any], step: int) -> None:
        self.run.log({**row, STEP_KEY: int(step)})

    def log(self, metrics: Mapping[str, float], *, step: int) -> None:
        self._log({k: float(v) for k, v in metrics.items()}, step)

    def log_curve(self, name: str, curve: Curve, *, step: int) -> None:
        check_curve(curve, where=f"WandbTracker.log_curve({name!r})")
        keys = list(curve.series)
        xs = [list(map(float, curve.x))] * len(keys)
        ys = [list(map(float, curve.series[k])) for k in keys]
        if len(curve.observed_x):
            keys.append("observed")
            xs.append(list(map(float, curve.observed_x)))
            ys.append(list(map(float, curve.observed_y)))
        columns, rows = curve_table(curve)
        row: dict[str, Any] = {
            name: wandb.plot.line_series(xs, ys, keys=keys, title=curve.title or name, xname=curve.x_name),
            f"{name}/data": wandb.Table(columns=[*columns], data=rows),
        }
        if self.fan_image:
            from PIL import Image

            row[f"{name}/fan"] = wandb.Image(Image.open(io.BytesIO(curve_png(curve))))
        self._log(row, step)
        if len(curve.x):
            latest: dict[str, Any] = {"step": int(step), curve.x_name: float(curve.x[-1])}
            latest.update({k: float(v[-1]) for k, v in curve.series.items()})
            self.run.summary[f"{name}/latest"] = latest

    def log_table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, step: int) -> None:
        self._log({name: wandb.Table(columns=[*columns], data=[list(r) for r in rows])}, step)

    def log_image(self, name: str, path: str, *, step: int) -> None:
        self._log({name: wandb.Image(path)}, step)

    def alert(self, title: str, text: str, *, level: AlertLevel = "WARN", step: int) -> None:
        self.run.alert(title=title[:_MAX_TITLE], text=f"{text}\n(evalcast, training step {step})",
                       level=level, wait_duration=self.alert_wait_s)
        self._alerts.append([int(step), level, title, text])
        self._log({ALERTS_KEY: wandb.Table(columns=["step", "level", "title", "text"],
                                           data=[list(a) for a in self._alerts])}, step)

    def finish(self) -> None:
        if self._run is not None and self.owns_run:
            self._run.finish()
            self._run = None
            self.owns_run = False
