"""Read what the trackers wrote back from disk, without a server (shared by tests).

W&B offline runs: the ``run-<id>.wandb`` transaction log is LevelDB-log framing of
``wandb_internal_pb2.Record`` (see /work/shared/ECOSYSTEM.md §3); it is only complete after
``run.finish()``. TensorBoard: ``EventAccumulator``. MLflow: ``MlflowClient`` on a sqlite URI.
"""

from __future__ import annotations

import glob
import json
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_BLOCK, _HEADER = 32768, 7


# --------------------------------------------------------------------------------------------- W&B
def wandb_run_dirs(wandb_dir: str | Path) -> list[Path]:
    """The offline run directories under ``WANDB_DIR`` (``<dir>/wandb/offline-run-*``), oldest first."""
    return sorted(Path(wandb_dir, "wandb").glob("offline-run-*"))


def iter_records(path: str | Path) -> Iterator[Any]:
    """Yield the ``Record`` protos of a ``.wandb`` file, checking every chunk's CRC."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    if data[:4] != b":W&B" or struct.unpack("<H", data[4:6])[0] != 0xBEE1:
        raise ValueError(f"{path}: not a W&B transaction log (bad file header)")
    pos, buf = 7, b""
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # block-tail padding
            pos += left
            continue
        crc, n, typ = struct.unpack("<IHB", data[pos:pos + _HEADER])
        if typ == 0 and n == 0:
            pos += left
            continue
        chunk = data[pos + _HEADER:pos + _HEADER + n]
        if len(chunk) < n:  # truncated tail of a run still being written
            break
        if zlib.crc32(chunk, zlib.crc32(bytes([typ]))) & 0xFFFFFFFF != crc:
            raise ValueError(f"{path}: CRC mismatch at byte {pos}")
        pos += _HEADER + n
        if typ in (1, 2):  # FULL / FIRST
            buf = chunk
            if typ == 2:
                continue
        elif typ == 3:  # MIDDLE
            buf += chunk
            continue
        else:  # LAST
            buf += chunk
        record = pb.Record()
        record.ParseFromString(buf)
        yield record
        buf = b""


def _apply_items(target: dict[str, Any], items: Any) -> None:
    for item in items:
        keys = list(item.nested_key) or [item.key]
        node = target
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = json.loads(item.value_json)


@dataclass
class WandbRun:
    """Everything one offline run recorded."""

    run_dir: Path
    run_id: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    exited: bool = False

    @property
    def files_dir(self) -> Path:
        return self.run_dir / "files"

    def column(self, key: str, step_key: str = "evalcast/step") -> list[tuple[Any, Any]]:
        """``(row[step_key], row[key])`` for every history row holding ``key``, in log order."""
        return [(row.get(step_key), row[key]) for row in self.history if key in row]

    def table(self, value: dict[str, Any]) -> dict[str, Any]:
        """The ``{"columns", "data"}`` JSON a ``table-file`` history value points at."""
        if value.get("_type") != "table-file":
            raise ValueError(f"not a table-file value: {value}")
        return json.loads((self.files_dir / value["path"]).read_text())


def read_wandb_run(run_dir: str | Path, *, wait_s: float = 30.0) -> WandbRun:
    """Parse the ``.wandb`` file of one finished offline run.

    ``run.finish()`` can return before wandb-core has written the file (seen: 1 time in 8 the file
    held only its 7-byte header right after ``finish``), so this re-reads until the run's ``exit``
    record is there, for at most ``wait_s`` seconds.
    """
    run_dir = Path(run_dir)
    files = list(run_dir.glob("run-*.wandb"))
    if len(files) != 1:
        raise FileNotFoundError(f"{run_dir}: expected one run-*.wandb file, found {len(files)}")
    deadline = time.monotonic() + wait_s
    while True:
        run = _parse_run(run_dir, files[0])
        if run.exited:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"{files[0]}: no exit record after {wait_s} s; was the run finished?")
        time.sleep(0.05)


def _parse_run(run_dir: Path, path: Path) -> WandbRun:
    run = WandbRun(run_dir=run_dir)
    for record in iter_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id = record.run.run_id
        elif kind == "history":
            row: dict[str, Any] = {}
            _apply_items(row, record.history.item)
            run.history.append(row)
        elif kind == "summary":
            _apply_items(run.summary, record.summary.update)
        elif kind == "config":
            _apply_items(run.config, record.config.update)
        elif kind == "alert":
            a = record.alert
            run.alerts.append({"title": a.title, "text": a.text, "level": a.level,
                               "wait_duration": a.wait_duration})
        elif kind == "metric":
            m = record.metric
            run.metrics.append({"name": m.name, "glob_name": m.glob_name, "step_metric": m.step_metric,
                                "step_sync": m.options.step_sync})
        elif kind == "exit":
            run.exited = True
    return run


# ------------------------------------------------------------------------------------- TensorBoard
def _accumulators(logdir: str | Path) -> list[Any]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = []
    for path in sorted(glob.glob(f"{logdir}/**/events.out.tfevents.*", recursive=True)):
        acc = EventAccumulator(path, size_guidance={"scalars": 0, "tensors": 0, "images": 0})
        acc.Reload()
        out.append(acc)
    return out


def tb_scalars(logdir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` over every event file under ``logdir``."""
    out: dict[str, list[tuple[int, float]]] = {}
    for acc in _accumulators(logdir):
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


def tb_images(logdir: str | Path) -> dict[str, list[tuple[int, int, int, bytes]]]:
    """``{tag: [(step, width, height, encoded PNG), ...]}``."""
    out: dict[str, list[tuple[int, int, int, bytes]]] = {}
    for acc in _accumulators(logdir):
        for tag in acc.Tags()["images"]:
            out.setdefault(tag, []).extend(
                (e.step, e.width, e.height, e.encoded_image_string) for e in acc.Images(tag))
    return out


def tb_text(logdir: str | Path) -> dict[str, list[tuple[int, str]]]:
    """``{tag: [(step, text), ...]}`` for ``add_text`` summaries (stored as string tensors)."""
    out: dict[str, list[tuple[int, str]]] = {}
    for acc in _accumulators(logdir):
        for tag in acc.Tags()["tensors"]:
            if acc.SummaryMetadata(tag).plugin_data.plugin_name != "text":
                continue
            for e in acc.Tensors(tag):
                out.setdefault(tag, []).append((e.step, e.tensor_proto.string_val[0].decode()))
    return out


def tb_layout(logdir: str | Path) -> dict[str, dict[str, tuple[str, list[str]]]]:
    """The latest custom-scalars layout as ``{category: {chart title: (kind, tags)}}``."""
    from tensorboard.plugins.custom_scalar import layout_pb2, metadata

    latest = None
    for acc in _accumulators(logdir):
        if metadata.CONFIG_SUMMARY_TAG in acc.Tags()["tensors"]:
            latest = acc.Tensors(metadata.CONFIG_SUMMARY_TAG)[-1]
    if latest is None:
        return {}
    layout = layout_pb2.Layout()
    layout.ParseFromString(latest.tensor_proto.string_val[0])
    out: dict[str, dict[str, tuple[str, list[str]]]] = {}
    for category in layout.category:
        charts = out.setdefault(category.title, {})
        for chart in category.chart:
            if chart.HasField("multiline"):
                charts[chart.title] = ("Multiline", list(chart.multiline.tag))
            else:
                series = chart.margin.series[0]
                charts[chart.title] = ("Margin", [series.value, series.lower, series.upper])
    return out


# ------------------------------------------------------------------------------------------ MLflow
def mlflow_runs(tracking_uri: str, experiment: str) -> list[Any]:
    """The runs of one experiment (newest first), each with ``.data.metrics`` / ``.data.tags``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise LookupError(f"no MLflow experiment named {experiment!r} at {tracking_uri}")
    return list(client.search_runs([exp.experiment_id]))


def mlflow_history(tracking_uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    """``[(step, value), ...]`` of one metric, in step order."""
    from mlflow.tracking import MlflowClient

    hist = MlflowClient(tracking_uri=tracking_uri).get_metric_history(run_id, key)
    return sorted((m.step, m.value) for m in hist)


def mlflow_artifacts(tracking_uri: str, run_id: str) -> dict[str, Path]:
    """``{artifact path: local file}`` for every artifact of a run (downloaded from a local store)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    root = Path(client.download_artifacts(run_id, ""))
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}
