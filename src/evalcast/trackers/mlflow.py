"""MLflow backend: writes into the active run (or a given one) through an ``MlflowClient``.

**Which run.** At first use: the ``run_id`` it was given (with ``client``, e.g. Lightning's
``MLFlowLogger.experiment`` and ``.run_id``); else, when neither ``client`` nor ``tracking_uri`` was given,
``mlflow.active_run()`` (the run HF's ``MLflowCallback`` or the user started); else a run of its own in
``experiment_name``, created without making it the active run, and ended by :meth:`finish`. Runs it did
not create are never ended. mlflow 3.17 refuses the file store, so use a database URI
(``MLFLOW_TRACKING_URI=sqlite:///<abs path>/mlflow.db``).

**Metric names.** MLflow accepts only letters, digits, ``_ - . /``, spaces (and ``:`` off Windows) and
no empty or ``.``/``..`` path segments. :func:`mlflow_metric_name` maps ``@`` to ``_at_``
(``evalcast/gsm8k/pass@1_probe`` -> ``evalcast/gsm8k/pass_at_1_probe``), every other character outside
ASCII letters, digits and ``_ - . /`` to ``_``, drops empty segments and turns ``.``/``..`` segments into
``_``/``__``. Two names that map to the same key raise an error instead of mixing their histories.
Scalars go through ``log_batch`` in chunks of at most 1000 metrics (MLflow's per-call limit).

**Artifacts** (``<dir>`` is the sanitised name): a curve is ``<dir>/step_<step>.png`` (fan chart) and
``<dir>/step_<step>.json`` (the data), plus scalars ``name/final``, ``name/final_lo80`` ...; a table is
``<dir>/step_<step>.json`` (``{"columns", "data", "step"}``); an image is ``<dir>/step_<step><suffix>``;
an alert sets the tag ``evalcast.alert.<title slug>`` and writes ``evalcast/alerts/step_<step>_<slug>.txt``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_METRICS_PER_BATCH, MAX_TAG_VAL_LENGTH

from evalcast.trackers.base import AlertLevel, Curve, Tracker
from evalcast.trackers.curves import check_curve, curve_to_dict, final_metrics, jsonable
from evalcast.trackers.figures import curve_png


def mlflow_metric_name(name: str) -> str:
    """The MLflow-safe form of an evalcast metric name (see the module docstring for the mapping)."""
    safe = re.sub(r"[^A-Za-z0-9_\-./]", "_", name.replace("@", "_at_"))
    parts = [{".": "_", "..": "__"}.get(p, p) for p in safe.split("/") if p]
    key = "/".join(parts)
    if not key or len(key) > MAX_ENTITY_KEY_LENGTH:
        raise ValueError(f"metric name {name!r} cannot be stored in MLflow: it becomes {key!r}, which is "
                         f"empty or longer than {MAX_ENTITY_KEY_LENGTH} characters; use a shorter name")
    return key


class MlflowTracker(Tracker):
    """Logs to an MLflow run; see the module docstring for run reuse, names and artifacts.

    Args:
        run_id: the run to write into.
        client: the client to write through (default: ``MlflowClient(tracking_uri)``).
        tracking_uri: the store, when not the current one (``MLFLOW_TRACKING_URI``).
        experiment_name: where a run of its own is created (the experiment is created if missing).
        run_name: the name of a run of its own.
        artifact_location: artifact root for an experiment this tracker creates.
    """

    def __init__(self, run_id: str | None = None, *, client: MlflowClient | None = None,
                 tracking_uri: str | None = None, experiment_name: str = "evalcast",
                 run_name: str | None = None, artifact_location: str | None = None) -> None:
        self._run_id = run_id
        self._reuse_active = client is None and tracking_uri is None
        self.client = client if client is not None else MlflowClient(tracking_uri=tracking_uri)
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.artifact_location = artifact_location
        self.owns_run = False
        self._names: dict[str, str] = {}

    @property
    def run_id(self) -> str:
        """The run in use, resolved (or created) at first access."""
        if self._run_id is None:
            active = mlflow.active_run() if self._reuse_active else None
            self._run_id = active.info.run_id if active is not None else self._create_run()
        return self._run_id

    def prepare(self) -> None:
        """Take the active run here: MLflow keeps it per thread, and calls run on a worker thread."""
        if self._run_id is None and self._reuse_active:
            active = mlflow.active_run()
            if active is not None:
                self._run_id = active.info.run_id

    def _create_run(self) -> str:
        exp = self.client.get_experiment_by_name(self.experiment_name)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(
            self.experiment_name, artifact_location=self.artifact_location)
        run = self.client.create_run(exp_id, run_name=self.run_name)
        self.owns_run = True
        return run.info.run_id

    def _key(self, name: str) -> str:
        key = mlflow_metric_name(name)
        first = self._names.setdefault(key, name)
        if first != name:
            raise ValueError(f"MlflowTracker: metric names {first!r} and {name!r} both become {key!r} in "
                             "MLflow; rename one of them")
        return key

    def log(self, metrics: Mapping[str, float], *, step: int) -> None:
        now = int(time.time() * 1000)
        entries = [Metric(self._key(k), float(v), now, int(step)) for k, v in metrics.items()]
        for i in range(0, len(entries), MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=entries[i:i + MAX_METRICS_PER_BATCH])

    def log_curve(self, name: str, curve: Curve, *, step: int) -> None:
        check_curve(curve, where=f"MlflowTracker.log_curve({name!r})")
        stem = f"{mlflow_metric_name(name)}/step_{int(step):08d}"
        with tempfile.TemporaryDirectory(prefix="evalcast-") as tmp:
            png = Path(tmp, Path(stem).name + ".png")
            curve_png(curve, png)
            self.client.log_artifact(self.run_id, str(png), artifact_path=str(Path(stem).parent))
        self.client.log_dict(self.run_id, curve_to_dict(curve), f"{stem}.json")
        self.log(final_metrics(name, curve), step=step)

    def log_table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, step: int) -> None:
        table = {"columns": list(columns), "data": jsonable([list(r) for r in rows]), "step": int(step)}
        self.client.log_dict(self.run_id, table, f"{mlflow_metric_name(name)}/step_{int(step):08d}.json")

    def log_image(self, name: str, path: str, *, step: int) -> None:
        with tempfile.TemporaryDirectory(prefix="evalcast-") as tmp:
            copy = Path(tmp, f"step_{int(step):08d}{Path(path).suffix}")
            shutil.copyfile(path, copy)
            self.client.log_artifact(self.run_id, str(copy), artifact_path=mlflow_metric_name(name))

    def alert(self, title: str, text: str, *, level: AlertLevel = "WARN", step: int) -> None:
        slug = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")[:100] or "alert"
        message = f"{level} at step {int(step)}: {title}\n\n{text}"
        self.client.set_tag(self.run_id, f"evalcast.alert.{slug}", message[:MAX_TAG_VAL_LENGTH])
        self.client.log_text(self.run_id, message + "\n", f"evalcast/alerts/step_{int(step):08d}_{slug}.txt")

    def finish(self) -> None:
        if self._run_id is not None and self.owns_run:
            self.client.set_terminated(self._run_id)
            self.owns_run = False
