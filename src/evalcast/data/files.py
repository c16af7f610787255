"""Expert-set files: read rows from JSONL, JSON, Parquet or a local ``datasets`` object, validate each
(:func:`evalcast.data.records.parse_record`) and write records back as JSONL."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalcast.data.records import ExpertRecord, ExpertSetError, FieldMap, OnInvalid, parse_record


@dataclass
class LoadReport:
    """What a loader kept and skipped, with the reason for every skipped row."""

    loaded: int = 0
    skipped: list[str] = field(default_factory=list)


def iter_raw_rows(source: str | Path | Any, *, split: str | None = None) -> Iterator[tuple[str, int, Any]]:
    """Yield ``(source name, 1-based line/row number, raw row)`` from a file or a ``datasets`` object.

    A line that is not valid JSON is yielded as an :class:`ExpertSetError` for the caller to raise or skip.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"expert set not found: {path}")
        suffixes = "".join(path.suffixes[-2:]).lower()
        if suffixes.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
            yield from _iter_jsonl(path)
        elif suffixes.endswith(".json"):
            yield from _iter_json(path)
        elif suffixes.endswith(".parquet"):
            yield from _iter_parquet(path)
        else:
            raise ExpertSetError("unsupported file type; use .jsonl, .jsonl.gz, .json or .parquet", source=str(path))
        return
    dataset = source
    if split is not None:
        dataset = dataset[split]
    elif isinstance(dataset, Mapping):
        raise ValueError(f"a DatasetDict needs split=...; splits: {list(dataset.keys())}")
    name = f"<dataset {(getattr(dataset, 'info', None) and dataset.info.dataset_name) or 'in memory'}>"
    for i, row in enumerate(dataset, start=1):
        yield name, i, row


def _iter_jsonl(path: Path) -> Iterator[tuple[str, int, Any]]:
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield str(path), number, ExpertSetError(
                    f"not valid UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1})", source=str(path),
                    line=number, hint="Save the file as UTF-8.")
                continue
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                row = ExpertSetError(f"malformed JSON ({exc.msg} at column {exc.colno})", source=str(path),
                                     line=number, hint="Each line must hold one JSON object.")
            yield str(path), number, row


def _iter_json(path: Path) -> Iterator[tuple[str, int, Any]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExpertSetError(f"not valid UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start})", source=str(path),
                             line=raw.count(b"\n", 0, exc.start) + 1, hint="Save the file as UTF-8.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExpertSetError(f"malformed JSON ({exc.msg})", source=str(path), line=exc.lineno) from None
    if isinstance(data, Mapping) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise ExpertSetError("a .json expert set must be a list of rows (or {'data': [...]})", source=str(path))
    for i, row in enumerate(data, start=1):
        yield str(path), i, row


def _iter_parquet(path: Path) -> Iterator[tuple[str, int, Any]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    for i, row in enumerate(table.to_pylist(), start=1):
        yield str(path), i, row


def load_records(source: str | Path | Any, *, fields: FieldMap | Mapping[str, str] | None = None,
                 split: str | None = None, task: str | None = None, on_invalid: OnInvalid = "error",
                 report: LoadReport | None = None) -> list[ExpertRecord]:
    """Read and validate every row of ``source``.

    ``task`` names rows that carry no task field (default: the file's stem). With
    ``on_invalid="skip"`` bad rows are dropped and listed in ``report``; ids must be unique.
    """
    fmap = FieldMap.of(fields)
    default_task = task or (Path(source).name.split(".")[0] if isinstance(source, (str, Path)) else "default")
    report = report if report is not None else LoadReport()
    records: list[ExpertRecord] = []
    seen: dict[str, tuple[str, int]] = {}
    for name, line, row in iter_raw_rows(source, split=split):
        try:
            if isinstance(row, ExpertSetError):
                raise row
            record = parse_record(row, fmap, source=name, line=line, default_task=default_task)
            if record.id in seen:
                first = seen[record.id]
                raise ExpertSetError(f"duplicate id {record.id!r} (first at {first[0]}:{first[1]})",
                                     source=name, line=line, field_name=fmap.id)
        except ExpertSetError as exc:
            if on_invalid == "error":
                raise
            report.skipped.append(str(exc))
            continue
        seen[record.id] = (name, line)
        records.append(record)
    if not records:
        raise ExpertSetError("no valid rows", source=str(source) if isinstance(source, (str, Path)) else "<dataset>",
                             hint=f"{len(report.skipped)} row(s) skipped." if report.skipped else "")
    report.loaded = len(records)
    return records


def write_jsonl(records: Iterable[ExpertRecord], path: str | Path) -> Path:
    """Write records as an expert-set JSONL file (the format every loader reads back)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
    return path
