"""The local run directory: evalcast's source of truth for history, arrays and component state.

Layout (the record schema and its versions are in ``docs/architecture.md``)::

    RUN_DIR/
      meta.json              expert-set fingerprint, settings, host (checked when the run is reopened)
      format_preview.json    the first anchor's rendered prompts, completions, extracted answers, verdicts
      history.jsonl          one record per checkpoint (:class:`~evalcast.runs.record.Record`), append-only
      examples/              per-example statistics per checkpoint (step_000000100.npz)
      anchors/               anchor labels per anchor checkpoint: question ids, samples n, correct c
      probe_features/        the anchor questions' hidden-state features at anchors (the probe resumes from them)
      probe_predictions/     the probe's P(solve) per question per checkpoint
      state/                 component state (the probe's weights), replaced atomically

Every file but ``history.jsonl`` is replaced atomically (written to a temporary file, fsynced, renamed), so a
crash leaves the old or the new version, never a mix. ``history.jsonl`` is only ever appended to; a crash
mid-append can leave a torn last line, which readers skip and the next writer cuts off (with a warning)
before appending. Reading it resolves what a resumed run re-did: a record for a
step already present replaces the earlier one, and a ``{"rewind_to": S}`` marker (written when training
resumes from the checkpoint at step S) drops earlier records with a step beyond S. So reopening a run
appends, and the history never holds a duplicated or a lost point.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from evalcast.runs.record import FORMAT_VERSION, VERSION_KEY, Record, RecordFormatError

logger = logging.getLogger(__name__)

HISTORY, META, PREVIEW = "history.jsonl", "meta.json", "format_preview.json"
EXAMPLES, ANCHOR_LABELS, FEATURES, PREDICTIONS = "examples", "anchors", "probe_features", "probe_predictions"


class RunStore:
    """Reads and writes one run directory (only rank 0 writes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._tail_checked = False

    # ---------------------------------------------------------------- history
    def append(self, record: Record) -> None:
        """Append one record durably (flushed and fsynced: a crash loses at most this line)."""
        self._append_line(json.dumps(record.to_json(), default=_json_default, allow_nan=True))

    def rewind(self, step: int) -> None:
        """Forget records beyond ``step`` (training resumed from the checkpoint at ``step``)."""
        self._append_line(json.dumps({"rewind_to": int(step)}))

    def _append_line(self, line: str) -> None:
        if not self._tail_checked:
            self._repair_tail()
            self._tail_checked = True
        with open(self.path / HISTORY, "ab") as fh:
            fh.write((line + "\n").encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())

    def _repair_tail(self) -> None:
        """Before this process first appends: end the file on a whole line (a crash can tear the last one).

        A torn line is cut off with a warning; a last line that is whole but lost its newline keeps it.
        """
        path = self.path / HISTORY
        if not path.exists():
            return
        with open(path, "rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            start, pos = None, size
            while start is None and pos > 0:
                low = max(0, pos - (1 << 16))
                fh.seek(low)
                cut = fh.read(pos - low).rfind(b"\n")
                start, pos = (low + cut + 1 if cut >= 0 else None), low
            start = start or 0
            if start == size:
                return
            fh.seek(start)
            tail = fh.read()
            if _parses(tail):
                fh.seek(size)
                fh.write(b"\n")
            else:
                logger.warning("%s: cutting off a torn last line of %d bytes (a crash during a write); the "
                               "checkpoint it held is evaluated again", path, len(tail))
                fh.truncate(start)
            fh.flush()
            os.fsync(fh.fileno())

    def history(self) -> list[Record]:
        """Records by increasing step, one per step, after replacements and rewinds.

        Raises :class:`~evalcast.runs.record.RecordFormatError` naming the file and line of a record
        this evalcast cannot read (a later format version, or a corrupt line other than a torn last one).
        """
        by_step: dict[int, Record] = {}
        path = self.path / HISTORY
        if not path.exists():
            return []
        lines = path.read_bytes().split(b"\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                if number == len(lines):  # a torn last line (no newline after it) from a crash mid-write
                    logger.warning("%s: ignoring a truncated last line", path)
                    continue
                raise RecordFormatError(f"{path}:{number}: corrupt history record (not a JSON object); the run "
                                        "directory was damaged outside evalcast. Restore it or use a new "
                                        "run_dir") from None
            try:
                if not isinstance(raw, dict):
                    raise TypeError(f"a history line must be a JSON object, got {type(raw).__name__}")
                if "rewind_to" in raw:
                    limit = int(raw["rewind_to"])
                    by_step = {s: r for s, r in by_step.items() if s <= limit}
                    continue
                record = Record.from_json(raw)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise RecordFormatError(f"{path}:{number}: {exc}") from exc
            by_step[record.step] = record
        return [by_step[s] for s in sorted(by_step)]

    # ---------------------------------------------------------------- metadata and state
    def read_meta(self) -> dict[str, Any] | None:
        """``meta.json``, or None for a new run directory (refused when a later evalcast wrote it)."""
        path = self.path / META
        if not path.exists():
            return None
        meta = _read_json(path)
        version = meta.get(VERSION_KEY, 1)
        if version != FORMAT_VERSION:
            raise RecordFormatError(f"{path}: run directory format version {version!r}: this evalcast reads "
                                    f"version {FORMAT_VERSION}; upgrade evalcast to read this run")
        return meta

    def write_meta(self, meta: dict[str, Any]) -> None:
        data = {VERSION_KEY: FORMAT_VERSION, **meta}
        _atomic_write(self.path / META, json.dumps(data, indent=2, default=_json_default).encode("utf-8"))

    def write_preview(self, preview: dict[str, Any]) -> None:
        """The format preview (written once, at the run's first anchor)."""
        _atomic_write(self.path / PREVIEW, json.dumps(preview, indent=2, ensure_ascii=False,
                                                      default=_json_default).encode("utf-8"))

    def read_preview(self) -> dict[str, Any] | None:
        path = self.path / PREVIEW
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def save_state(self, name: str, state: dict[str, Any]) -> None:
        _atomic_write(self.path / "state" / f"{name}.json",
                      json.dumps(state, default=_json_default).encode("utf-8"))

    def load_state(self, name: str) -> dict[str, Any] | None:
        path = self.path / "state" / f"{name}.json"
        return _read_json(path) if path.exists() else None

    # ---------------------------------------------------------------- arrays
    def save_arrays(self, step: int, name: str, arrays: dict[str, np.ndarray]) -> Path:
        path = self.path / name / f"step_{step:09d}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return path

    def load_arrays(self, step: int, name: str) -> dict[str, np.ndarray] | None:
        path = self.path / name / f"step_{step:09d}.npz"
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise RecordFormatError(f"{path}: unreadable array file ({type(exc).__name__}: {exc}); the run "
                                    "directory was damaged outside evalcast. Delete the file to recompute "
                                    "without it, or use a new run_dir") from exc


def _atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data``: a temporary file beside it, fsynced, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _parses(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line.decode("utf-8")), dict)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object file of the run directory; a damaged one is a :class:`RecordFormatError` naming it."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordFormatError(f"{path}: corrupt JSON ({exc}); the run directory was damaged outside "
                                "evalcast. Restore the file or use a new run_dir") from None
    if not isinstance(data, dict):
        raise RecordFormatError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
