"""The local run directory: evalcast's source of truth for history, arrays and component state.

Layout::

    RUN_DIR/
      meta.json            expert-set fingerprint, settings, model summary (checked when reopened)
      history.jsonl        one JSON record per checkpoint, append-only
      examples/            per-example arrays per checkpoint (step_000000100.npz)
      state/               component state (probe, alerts, forecasts), replaced atomically

``history.jsonl`` is only ever appended to. Reading it resolves what a resumed run re-did: a record for a
step already present replaces the earlier one, and a ``{"rewind_to": S}`` marker (written when training
resumes from the checkpoint at step S) drops earlier records with a step beyond S. So reopening a run
appends, and the history never holds a duplicated or a lost point.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

HISTORY, META = "history.jsonl", "meta.json"


class RunStore:
    """Reads and writes one run directory (only rank 0 writes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- history
    def append(self, record: dict[str, Any]) -> None:
        """Append one record durably (flushed and fsynced: a crash loses at most this line)."""
        line = json.dumps(record, default=_json_default, allow_nan=True)
        with open(self.path / HISTORY, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def rewind(self, step: int) -> None:
        """Forget records beyond ``step`` (training resumed from the checkpoint at ``step``)."""
        self.append({"rewind_to": int(step)})

    def history(self) -> list[dict[str, Any]]:
        """Records by increasing step, one per step, after replacements and rewinds."""
        by_step: dict[int, dict[str, Any]] = {}
        path = self.path / HISTORY
        if not path.exists():
            return []
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):  # a torn last line from a crash mid-write
                    logger.warning("%s: ignoring a truncated last line", path)
                    continue
                raise ValueError(f"{path}:{number}: corrupt history record") from None
            if "rewind_to" in record:
                limit = int(record["rewind_to"])
                by_step = {s: r for s, r in by_step.items() if s <= limit}
            else:
                by_step[int(record["step"])] = record
        return [by_step[s] for s in sorted(by_step)]

    # ---------------------------------------------------------------- metadata and state
    def read_meta(self) -> dict[str, Any] | None:
        path = self.path / META
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def write_meta(self, meta: dict[str, Any]) -> None:
        _atomic_write(self.path / META, json.dumps(meta, indent=2, default=_json_default).encode("utf-8"))

    def save_state(self, name: str, state: dict[str, Any]) -> None:
        _atomic_write(self.path / "state" / f"{name}.json",
                      json.dumps(state, default=_json_default).encode("utf-8"))

    def load_state(self, name: str) -> dict[str, Any] | None:
        path = self.path / "state" / f"{name}.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    # ---------------------------------------------------------------- arrays
    def save_arrays(self, step: int, name: str, arrays: dict[str, np.ndarray]) -> Path:
        path = self.path / name / f"step_{step:09d}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
        os.close(fd)
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
        return path

    def load_arrays(self, step: int, name: str) -> dict[str, np.ndarray] | None:
        path = self.path / name / f"step_{step:09d}.npz"
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
