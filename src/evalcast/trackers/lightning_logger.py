"""Any Lightning logger (``CSVLogger``, ``NeptuneLogger``, a custom one) as an evalcast tracker.

Only ``logger.log_metrics(metrics, step)`` is common to every Lightning logger, so this backend logs
scalars and, for a curve, its values at the end of the budget (``name/final``, ``name/final_lo80`` ...).
Tables, images and alerts have no common Lightning API and are not logged here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evalcast.trackers.base import Curve, Tracker
from evalcast.trackers.curves import check_curve, final_metrics


class LightningLoggerTracker(Tracker):
    """Forwards scalars to ``logger.log_metrics``; :meth:`finish` calls ``logger.save()`` (a flush)."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def log(self, metrics: Mapping[str, float], *, step: int) -> None:
        self.logger.log_metrics({k: float(v) for k, v in metrics.items()}, step=int(step))

    def log_curve(self, name: str, curve: Curve, *, step: int) -> None:
        check_curve(curve, where=f"LightningLoggerTracker.log_curve({name!r})")
        self.log(final_metrics(name, curve), step=step)

    def finish(self) -> None:
        self.logger.save()
