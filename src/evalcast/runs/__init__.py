"""A run's record and its storage: the typed per-checkpoint record, the run directory, reading a history.

Everything that reads or writes a run (the monitor, forecasts, alert rules, the report) goes through
:class:`Record`, :class:`RunStore` and :mod:`evalcast.runs.history`.
"""

from evalcast.runs.history import RunHistory, ok_records, run_axis, series
from evalcast.runs.record import (
    FORMAT_VERSION,
    Alert,
    AnchorSummary,
    ProbeStatus,
    Record,
    RecordFormatError,
)
from evalcast.runs.store import RunStore

__all__ = ["FORMAT_VERSION", "Alert", "AnchorSummary", "ProbeStatus", "Record", "RecordFormatError", "RunHistory",
           "RunStore", "ok_records", "run_axis", "series"]
