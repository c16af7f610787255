"""TensorBoard backend: writes through a ``SummaryWriter``, reusing one that is handed in.

Reuse HF's ``TensorBoardCallback.tb_writer`` (it exists only after ``on_train_begin``) or Lightning's
``TensorBoardLogger.experiment``; a writer handed in is flushed by :meth:`finish`, never closed. With
``log_dir`` instead, the tracker opens its own writer at first use and closes it in :meth:`finish`.

What goes where (``name`` is the key passed in):

* scalars: ``add_scalar(tag, value, step)``;
* a curve: the fan chart as ``add_figure(name, ...)`` and the values at the end of the budget as scalars
  ``name/final``, ``name/final_lo80`` ... (see :func:`~evalcast.trackers.curves.final_metrics`);
* tables: a markdown table via ``add_text``; images: ``add_image`` (RGB);
* alerts: ``add_text("evalcast/alerts", ...)``;
* the custom-scalars layout of :mod:`evalcast.trackers.tb_layout` (proxies, forecast with its band as
  Margin charts, probe quality, cost), written at the first log and again only when a new forecast
  with 80% bounds appears.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.tensorboard import SummaryWriter

from evalcast.trackers.base import AlertLevel, Curve, Tracker
from evalcast.trackers.curves import check_curve, final_metrics
from evalcast.trackers.figures import render_curve
from evalcast.trackers.tb_layout import evalcast_layout, margins_from_tags

ALERTS_TAG = "evalcast/alerts"


class TensorBoardTracker(Tracker):
    """Logs to TensorBoard event files.

    Args:
        writer: a ``SummaryWriter`` (torch or tensorboardX) to reuse; never closed by this tracker.
        log_dir: where to open a writer of its own when none is handed in.
        layout: write evalcast's custom-scalars layout (turn off to keep a layout of your own).
        max_table_rows: rows of a table rendered as markdown; the rest are counted, not shown.
    """

    def __init__(self, writer: Any | None = None, *, log_dir: str | Path | None = None,
                 layout: bool = True, max_table_rows: int = 200) -> None:
        if writer is None and log_dir is None:
            raise ValueError("TensorBoardTracker needs a SummaryWriter to reuse (writer=...) or a "
                             "directory for its own (log_dir=...)")
        self._writer = writer
        self._log_dir = None if log_dir is None else str(log_dir)
        self.owns_writer = writer is None
        self.layout = layout
        self.max_table_rows = max_table_rows
        self._tags: set[str] = set()
        self._margins: dict[str, tuple[str, str, str]] | None = None

    @property
    def writer(self) -> Any:
        """The writer in use (opened at first access when the tracker owns it)."""
        if self._writer is None:
            self._writer = SummaryWriter(log_dir=self._log_dir)
        return self._writer

    def log(self, metrics: Mapping[str, float], *, step: int) -> None:
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, float(value), global_step=int(step))
        self._update_layout(metrics)

    def log_curve(self, name: str, curve: Curve, *, step: int) -> None:
        check_curve(curve, where=f"TensorBoardTracker.log_curve({name!r})")
        self.writer.add_figure(name, render_curve(curve), global_step=int(step), close=False)
        self.log(final_metrics(name, curve), step=step)

    def log_table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, step: int) -> None:
        self.writer.add_text(name, markdown_table(columns, rows, max_rows=self.max_table_rows),
                             global_step=int(step))

    def log_image(self, name: str, path: str, *, step: int) -> None:
        from PIL import Image

        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        self.writer.add_image(name, pixels, global_step=int(step), dataformats="HWC")

    def alert(self, title: str, text: str, *, level: AlertLevel = "WARN", step: int) -> None:
        self.writer.add_text(ALERTS_TAG, f"**{level}** {_cell(title)}: {text}", global_step=int(step))

    def finish(self) -> None:
        if self._writer is None:
            return
        self._writer.flush()
        if self.owns_writer:
            self._writer.close()
            self._writer = None

    def _update_layout(self, metrics: Mapping[str, float]) -> None:
        if not self.layout:
            return
        self._tags.update(metrics)
        margins = margins_from_tags(self._tags)
        if margins != self._margins:
            self.writer.add_custom_scalars(evalcast_layout(margins))
            self._margins = margins


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, max_rows: int = 200) -> str:
    """A GitHub-style markdown table (TensorBoard's text plugin renders it); floats to 4 digits."""
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows[:max_rows]]
    if len(rows) > max_rows:
        lines.append(f"\n({len(rows) - max_rows} more rows not shown)")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")
