"""Tracker backends, written for real (W&B offline, TensorBoard event files, MLflow on sqlite) and read back."""

from __future__ import annotations

import csv
import io
import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evalcast.trackers import (
    CompositeTracker,
    Curve,
    LazyTracker,
    NoopTracker,
    make_tracker,
    register_tracker,
    tracker_names,
    trackers_from_hf_trainer,
    trackers_from_lightning,
)
from evalcast.trackers.curves import curve_table, final_metrics
from tests.readback import (
    mlflow_artifacts,
    mlflow_history,
    mlflow_runs,
    read_wandb_run,
    tb_images,
    tb_layout,
    tb_scalars,
    tb_text,
    wandb_run_dirs,
)

REPO = Path(__file__).resolve().parents[1]


def make_curve(current_x: float | None = 3e9) -> Curve:
    x = np.linspace(1e9, 1e10, 12)
    f = 0.7 - 0.5 * (x / 1e9) ** -0.5
    return Curve(x=x, series={"forecast": f, "lo80": f - 0.05, "hi80": f + 0.05, "lo95": f - 0.1, "hi95": f + 0.1},
                 x_name="tokens", observed_x=x[:3], observed_y=f[:3] + 0.01, title="toy pass@1",
                 meta={} if current_x is None else {"current_x": current_x})


# ------------------------------------------------------------------------------------ core, no I/O
def test_importing_trackers_loads_no_tracking_framework() -> None:
    code = ("import sys, evalcast.trackers as t; t.make_tracker; t.trackers_from_hf_trainer; "
            "print([m for m in ('wandb', 'mlflow', 'tensorboard', 'torch.utils.tensorboard', 'lightning', "
            "'pytorch_lightning', 'transformers', 'matplotlib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_registry_builds_by_name_and_names_the_known_ones() -> None:
    assert {"wandb", "tensorboard", "mlflow", "noop"} <= set(tracker_names())
    assert isinstance(make_tracker("noop"), NoopTracker)
    register_tracker("test-composite", "evalcast.trackers.base:CompositeTracker")
    assert isinstance(make_tracker("test-composite", trackers=[]), CompositeTracker)
    with pytest.raises(ValueError, match=r"unknown tracker 'nope'.*mlflow.*tensorboard.*wandb"):
        make_tracker("nope")


def test_curve_views_final_values_and_wide_table() -> None:
    curve = make_curve()
    final = final_metrics("evalcast/toy/forecast", curve)
    assert set(final) == {"evalcast/toy/forecast/final", "evalcast/toy/forecast/final_lo80",
                          "evalcast/toy/forecast/final_hi80", "evalcast/toy/forecast/final_lo95",
                          "evalcast/toy/forecast/final_hi95"}
    assert final["evalcast/toy/forecast/final"] == pytest.approx(curve.series["forecast"][-1])
    columns, rows = curve_table(curve)
    assert columns == ["tokens", "forecast", "lo80", "hi80", "lo95", "hi95", "observed"]
    assert len(rows) == 12 + 3
    assert rows[0][-1] is None and rows[-1][1] is None and rows[-1][-1] == pytest.approx(curve.observed_y[-1])


def test_fan_chart_png_has_bands_line_points_and_now_marker(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt
    from PIL import Image

    from evalcast.trackers.figures import curve_png, render_curve

    fig = render_curve(make_curve())
    ax = fig.axes[0]
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {
        "95% interval", "80% interval", "forecast", "observed", "now"}
    assert plt.get_fignums() == []  # pyplot's figure list untouched
    data = curve_png(make_curve(), tmp_path / "fan.png")
    assert (tmp_path / "fan.png").read_bytes() == data
    assert Image.open(io.BytesIO(data)).size == (640, 400)
    with pytest.raises(ValueError, match="series 'lo80' has 2 values but x has 3"):
        render_curve(Curve(x=[1, 2, 3], series={"forecast": [1, 2, 3], "lo80": [1, 2]}))
    with pytest.raises(ValueError, match="no series and no observed points"):
        render_curve(Curve(x=[], series={}))


def test_mlflow_metric_names_are_sanitised() -> None:
    from evalcast.trackers.mlflow import mlflow_metric_name

    assert mlflow_metric_name("evalcast/gsm8k/pass@1_probe") == "evalcast/gsm8k/pass_at_1_probe"
    assert mlflow_metric_name("evalcast//math:algebra/../nll%") == "evalcast/math_algebra/__/nll_"
    with pytest.raises(ValueError, match="longer than 250"):
        mlflow_metric_name("x" * 251)


# --------------------------------------------------------------------------------------------- W&B
@pytest.fixture
def wandb_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import wandb

    root = tmp_path / "wandb_root"
    for key, value in {"WANDB_MODE": "offline", "WANDB_DIR": root, "WANDB_CACHE_DIR": root / "cache",
                       "WANDB_CONFIG_DIR": root / "config", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off",
                       "WANDB_PROJECT": "evalcast-tests"}.items():
        monkeypatch.setenv(key, str(value))
    root.mkdir()
    monkeypatch.chdir(tmp_path)  # anything a framework writes to the working directory stays in tmp
    yield root
    if wandb.run is not None:
        wandb.finish()
    wandb.teardown()  # wandb reads WANDB_DIR once per process (its singleton); the next test gets its own


def log_everything(tracker, step: int) -> None:
    tracker.log({"evalcast/gsm8k/nll": 1.0 / step, "evalcast/gsm8k/pass@1_probe": step / 100}, step=step)
    tracker.log_curve("evalcast/gsm8k/forecast", make_curve(), step=step)
    tracker.log_table("evalcast/gsm8k/domains", ["domain", "nll"], [["algebra", 1.5], ["geometry", 2.0]], step=step)
    tracker.alert("gsm8k plateau", "nll flat for 3 saves", level="WARN", step=step)


def test_wandb_reuses_the_users_run_and_leaves_it_open(wandb_dir: Path) -> None:
    import wandb

    from evalcast.trackers.wandb import WandbTracker

    run = wandb.init()
    tracker = WandbTracker(init={"project": "must-not-be-used"})  # an open run wins over init
    for step in (10, 20):
        log_everything(tracker, step)
    tracker.finish()
    assert tracker.run is run and wandb.run is run and not run._is_finished
    run.log({"user/after": 1.0})  # still usable by its owner
    run.finish()

    assert len(wandb_run_dirs(wandb_dir)) == 1
    rec = read_wandb_run(wandb_run_dirs(wandb_dir)[0])
    assert rec.column("evalcast/gsm8k/nll") == [(10, 0.1), (20, 0.05)]
    assert rec.column("evalcast/gsm8k/pass@1_probe") == [(10, 0.1), (20, 0.2)]
    assert any("user/after" in row for row in rec.history)
    assert {"glob_name": "evalcast/*", "step_metric": "evalcast/step", "step_sync": True}.items() <= next(
        m for m in rec.metrics if m["glob_name"] == "evalcast/*").items()
    # forecast: line_series chart (Vega spec in config) + its table, the wide table, the fan image, summary
    spec = rec.config["_wandb"]["visualize"]["evalcast/gsm8k/forecast"]
    assert spec["panel_config"]["panelDefId"] == "wandb/lineseries/v0"
    (step, series), = rec.column("evalcast/gsm8k/forecast_table")[-1:]
    lines = rec.table(series)
    assert step == 20 and {r[1] for r in lines["data"]} == {"forecast", "lo80", "hi80", "lo95", "hi95", "observed"}
    wide = rec.table(rec.column("evalcast/gsm8k/forecast/data")[-1][1])
    assert wide["columns"][:2] == ["tokens", "forecast"] and len(wide["data"]) == 15
    fan = rec.column("evalcast/gsm8k/forecast/fan")[-1][1]
    assert fan["_type"] == "image-file" and (rec.files_dir / fan["path"]).stat().st_size > 1000
    latest = rec.summary["evalcast/gsm8k/forecast/latest"]
    assert latest["step"] == 20 and latest["forecast"] == pytest.approx(make_curve().series["forecast"][-1])
    assert rec.table(rec.column("evalcast/gsm8k/domains")[-1][1])["data"] == [["algebra", 1.5], ["geometry", 2.0]]
    # alerts: two W&B alert records (W&B itself throttles repeats) and the cumulative table
    assert [(a["title"], a["level"], a["wait_duration"]) for a in rec.alerts] == [
        ("gsm8k plateau", "WARN", 600_000)] * 2
    assert "training step 10" in rec.alerts[0]["text"]
    alerts = rec.table(rec.column("evalcast/alerts")[-1][1])
    assert [row[:3] for row in alerts["data"]] == [[10, "WARN", "gsm8k plateau"], [20, "WARN", "gsm8k plateau"]]
    # the workspace template points at keys this run really has, and its regexes cover the scalars
    module = workspace_template()
    panels = [p for s in module["expand"](module["load_layout"](), ["gsm8k"]) for p in s["panels"]]
    logged = {key for row in rec.history for key in row}
    referenced = {p.get("table_key") or p.get("key") or p["keys"][0] for p in panels if p["kind"] != "line"}
    assert referenced <= logged
    regexes = [p["metric_regex"] for p in panels if p["kind"] == "line"]
    for key in ("evalcast/gsm8k/nll", "evalcast/gsm8k/pass@1_probe"):
        assert sum(bool(re.match(r, key)) for r in regexes) == 1, key


def test_wandb_resume_never_drops_points(wandb_dir: Path) -> None:
    """A resumed run's ``_step`` is far ahead of the trainer's step; points logged again must survive."""
    import wandb

    from evalcast.trackers.wandb import WandbTracker

    run = wandb.init()
    run.define_metric("train/global_step")  # what HF's WandbCallback registers
    run.define_metric("*", step_metric="train/global_step", step_sync=True)
    first = WandbTracker()
    for step in (10, 20, 30):
        first.log({"evalcast/gsm8k/nll": 1.0 / step}, step=step)
    run.log({"train/loss": 0.5}, step=500)  # the resumed run's _step, restored from the server
    resumed = WandbTracker()  # a fresh tracker after the restart, same run
    resumed.log({"evalcast/gsm8k/nll": 0.03}, step=30)  # re-logged: the save after the resumed checkpoint
    resumed.log({"evalcast/gsm8k/nll": 0.025}, step=40)
    run.finish()

    rec = read_wandb_run(wandb_run_dirs(wandb_dir)[0])
    points = rec.column("evalcast/gsm8k/nll")
    assert points == [(10, 0.1), (20, 0.05), (30, pytest.approx(1 / 30)), (30, 0.03), (40, 0.025)]
    steps = [s for s, _ in points]
    assert steps == sorted(steps)  # the custom x-axis stays monotone
    internal = [row["_step"] for row in rec.history if "evalcast/gsm8k/nll" in row]
    assert internal[-1] > 500  # logged after the run's _step had jumped, and kept


def test_wandb_standalone_opens_and_finishes_its_own_run(wandb_dir: Path) -> None:
    import wandb

    tracker = make_tracker("wandb", init={"name": "evalcast-standalone"}, fan_image=False)
    tracker.log({"evalcast/cost/seconds": 1.5}, step=5)
    assert tracker.owns_run and wandb.run is tracker.run
    tracker.finish()
    assert wandb.run is None
    (run_dir,) = wandb_run_dirs(wandb_dir)
    rec = read_wandb_run(run_dir)
    assert rec.exited and rec.column("evalcast/cost/seconds") == [(5, 1.5)]


def test_wandb_refuses_to_open_a_run_behind_the_users_back(wandb_dir: Path) -> None:
    from evalcast.trackers.wandb import WandbTracker

    with pytest.raises(RuntimeError, match="no W&B run is open"):
        WandbTracker().log({"evalcast/x": 1.0}, step=1)
    assert wandb_run_dirs(wandb_dir) == []


# -------------------------------------------------------------------------------------- TensorBoard
def test_tensorboard_scalars_figure_table_alert_and_layout(tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    tracker = make_tracker("tensorboard", log_dir=logdir)
    for step in (10, 20):
        tracker.log({"evalcast/gsm8k/nll": 1.0 / step, "evalcast/gsm8k/forecast_final": 0.5,
                     "evalcast/gsm8k/forecast_final_lo80": 0.4, "evalcast/gsm8k/forecast_final_hi80": 0.6},
                    step=step)
    log_everything(tracker, 30)
    png = tmp_path / "probe.png"
    from evalcast.trackers.figures import curve_png

    curve_png(make_curve(None), png)
    tracker.log_image("evalcast/gsm8k/probe_calibration", str(png), step=30)
    tracker.finish()

    scalars = tb_scalars(logdir)
    assert [(s, pytest.approx(v)) for s, v in scalars["evalcast/gsm8k/nll"]] == [(10, 0.1), (20, 0.05), (30, 1 / 30)]
    assert scalars["evalcast/gsm8k/forecast/final_hi80"][0][0] == 30
    images = tb_images(logdir)
    (step, width, height, data), = images["evalcast/gsm8k/forecast"]
    assert (step, width, height) == (30, 640, 400) and data[:4] == b"\x89PNG"
    assert images["evalcast/gsm8k/probe_calibration"][0][:3] == (30, 640, 400)
    text = tb_text(logdir)
    table = text["evalcast/gsm8k/domains/text_summary"][0][1]
    assert table.splitlines()[:3] == ["| domain | nll |", "|---|---|", "| algebra | 1.5 |"]
    assert text["evalcast/alerts/text_summary"] == [(30, "**WARN** gsm8k plateau: nll flat for 3 saves")]
    layout = tb_layout(logdir)
    assert set(layout) == {"evalcast: proxies", "evalcast: forecast", "evalcast: probe", "evalcast: cost"}
    forecast = layout["evalcast: forecast"]
    assert forecast["evalcast/gsm8k/forecast_final (80% interval)"] == (
        "Margin", ["evalcast/gsm8k/forecast_final", "evalcast/gsm8k/forecast_final_lo80",
                   "evalcast/gsm8k/forecast_final_hi80"])
    assert forecast["evalcast/gsm8k/forecast/final (80% interval)"][0] == "Margin"
    (regex,) = layout["evalcast: probe"]["pass@1: probe vs anchors"][1]
    assert re.match(regex, "evalcast/gsm8k/pass@1_probe") and not re.match(regex, "evalcast/gsm8k/nll")


def test_tensorboard_reuses_a_handed_writer_without_closing_it(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    from evalcast.trackers.tensorboard import TensorBoardTracker

    writer = SummaryWriter(log_dir=str(tmp_path / "tb"))
    tracker = TensorBoardTracker(writer=writer, layout=False)
    tracker.log({"evalcast/gsm8k/nll": 2.0}, step=1)
    tracker.finish()
    writer.add_scalar("user/loss", 3.0, 2)  # the owner still writes to the same file
    writer.close()
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 1
    scalars = tb_scalars(tmp_path / "tb")
    assert scalars["evalcast/gsm8k/nll"] == [(1, 2.0)] and scalars["user/loss"] == [(2, 3.0)]
    assert tb_layout(tmp_path / "tb") == {}
    with pytest.raises(ValueError, match=r"writer=.*log_dir="):
        TensorBoardTracker()


def test_tensorboard_layout_file_and_script_match_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evalcast.trackers.tb_layout import evalcast_layout

    shipped = json.loads((REPO / "integrations/tensorboard/layout.json").read_text())
    assert shipped == evalcast_layout()
    monkeypatch.setattr(sys, "argv", ["write_layout.py", str(tmp_path / "run"), "--task", "gsm8k"])
    runpy.run_path(str(REPO / "integrations/tensorboard/write_layout.py"), run_name="__main__")
    layout = tb_layout(tmp_path / "run")
    assert layout["evalcast: forecast"]["evalcast/gsm8k/forecast_final (80% interval)"][0] == "Margin"


def workspace_template() -> dict:
    """``make_workspace.py`` loaded as a module (it must import without wandb-workspaces)."""
    return runpy.run_path(str(REPO / "integrations/wandb/make_workspace.py"))


def test_wandb_workspace_template_is_import_safe_and_complete() -> None:
    module = workspace_template()
    layout = module["load_layout"]()
    assert layout == json.loads((REPO / "integrations/wandb/workspace.json").read_text())
    assert layout["x_axis"] == "evalcast/step"
    sections = module["expand"](layout, ["gsm8k", "humaneval"])
    assert [s["name"] for s in sections] == [
        "evalcast: proxies", "evalcast: forecast", "evalcast: probe", "evalcast: cost and alerts"]
    forecast = sections[1]["panels"]
    assert [p["kind"] for p in forecast] == ["line", "custom_chart", "custom_chart", "media", "media", "table", "table"]
    assert forecast[2]["table_key"] == "evalcast/humaneval/forecast_table"
    with pytest.raises(SystemExit, match="needs the wandb-workspaces package"):
        module["main"](["--entity", "e", "--project", "p", "--task", "gsm8k"])


# ------------------------------------------------------------------------------------------- MLflow
@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory):
    """One sqlite store per module (creating its tables takes ~2 s).

    MLflow fixes the default artifact root (``./mlruns``) when it first opens a store, so the store is
    opened here, inside the temporary directory.
    """
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.chdir(root)
        MlflowClient(uri).search_experiments()
        yield uri, root


def test_mlflow_own_run_batches_sanitises_and_stores_artifacts(mlflow_store) -> None:
    uri, root = mlflow_store
    tracker = make_tracker("mlflow", experiment_name="evalcast-own", artifact_location=str(root / "own"))
    log_everything(tracker, 10)
    many = {f"evalcast/many/m{i:04d}": float(i) for i in range(1200)}  # over the 1000-per-call limit
    tracker.log(many, step=20)
    png = root / "probe.png"
    from evalcast.trackers.figures import curve_png

    curve_png(make_curve(None), png)
    tracker.log_image("evalcast/gsm8k/probe_calibration", str(png), step=10)
    tracker.finish()

    (run,) = mlflow_runs(uri, "evalcast-own")
    assert run.info.status == "FINISHED" and run.info.run_id == tracker.run_id
    assert mlflow_history(uri, tracker.run_id, "evalcast/gsm8k/pass_at_1_probe") == [(10, 0.1)]
    assert "evalcast/gsm8k/pass@1_probe" not in run.data.metrics
    assert sum(k.startswith("evalcast/many/") for k in run.data.metrics) == 1200
    assert run.data.metrics["evalcast/gsm8k/forecast/final"] == pytest.approx(make_curve().series["forecast"][-1])
    assert run.data.tags["evalcast.alert.gsm8k_plateau"].startswith("WARN at step 10: gsm8k plateau")
    artifacts = mlflow_artifacts(uri, tracker.run_id)
    assert artifacts["evalcast/gsm8k/forecast/step_00000010.png"].read_bytes()[:4] == b"\x89PNG"
    curve = json.loads(artifacts["evalcast/gsm8k/forecast/step_00000010.json"].read_text())
    assert curve["x_name"] == "tokens" and len(curve["series"]["hi95"]) == 12
    table = json.loads(artifacts["evalcast/gsm8k/domains/step_00000010.json"].read_text())
    assert table == {"columns": ["domain", "nll"], "data": [["algebra", 1.5], ["geometry", 2.0]], "step": 10}
    assert "nll flat" in artifacts["evalcast/alerts/step_00000010_gsm8k_plateau.txt"].read_text()
    assert "evalcast/gsm8k/probe_calibration/step_00000010.png" in artifacts


def test_mlflow_reuses_the_active_run_and_refuses_name_clashes(mlflow_store) -> None:
    import mlflow

    uri, root = mlflow_store
    exp_id = mlflow.create_experiment("evalcast-active", artifact_location=str(root / "active"))
    with mlflow.start_run(experiment_id=exp_id) as active:
        tracker = make_tracker("mlflow")
        tracker.log({"evalcast/gsm8k/pass@1_probe": 0.25}, step=3)
        with pytest.raises(ValueError, match="'evalcast/gsm8k/pass@1_probe' and 'evalcast/gsm8k/pass_at_1_probe'"):
            tracker.log({"evalcast/gsm8k/pass_at_1_probe": 0.3}, step=4)
        tracker.finish()
        assert tracker.run_id == active.info.run_id and not tracker.owns_run
        assert mlflow.active_run().info.run_id == active.info.run_id
        assert mlflow.get_run(active.info.run_id).info.status == "RUNNING"
    assert mlflow_history(uri, active.info.run_id, "evalcast/gsm8k/pass_at_1_probe") == [(3, 0.25)]


# ------------------------------------------------------------------------------ framework discovery
def test_hf_trainer_reporters_are_reused(wandb_dir: Path, tmp_path: Path, mlflow_store,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    import wandb
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=32, n_layer=1, n_embd=16, n_head=2, n_positions=16))
    data = [{"input_ids": ids, "labels": ids} for ids in torch.randint(0, 32, (16, 12))]
    out = tmp_path / "hf"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "evalcast-hf")
    args = TrainingArguments(output_dir=str(out), max_steps=4, save_steps=2, per_device_train_batch_size=4,
                             logging_steps=1, report_to=["wandb", "tensorboard", "mlflow"], save_only_model=True,
                             use_cpu=True, disable_tqdm=True, run_name="evalcast-hf")

    class SaveHook(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            tracker.log({"evalcast/toy/nll": 1.0 / state.global_step}, step=state.global_step)
            if state.global_step == args.max_steps:
                tracker.log_curve("evalcast/toy/forecast", make_curve(), step=state.global_step)

    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[SaveHook()])
    backends = trackers_from_hf_trainer(trainer)
    assert [b.what for b in backends] == [
        "HF WandbCallback's run", "HF TensorBoardCallback's tb_writer", "HF MLflowCallback's active run"]
    tracker = CompositeTracker(backends)
    for backend in backends:  # before training there is nothing to reuse yet
        with pytest.raises(RuntimeError, match="does not exist yet: HF creates it in on_train_begin"):
            backend.log({"evalcast/toy/nll": 0.0}, step=0)
    trainer.train()
    tracker.finish()
    assert wandb.run is not None  # the callback's run: not ours to finish
    wandb.finish()

    (run_dir,) = wandb_run_dirs(wandb_dir)
    rec = read_wandb_run(run_dir)
    assert rec.column("evalcast/toy/nll") == [(2, 0.5), (4, 0.25)]
    assert any("train/loss" in row for row in rec.history)
    assert "evalcast/toy/forecast" in rec.config["_wandb"]["visualize"]
    scalars = tb_scalars(out)
    assert scalars["evalcast/toy/nll"] == [(2, 0.5), (4, 0.25)]
    assert "train/loss" in scalars and "evalcast/toy/forecast" in tb_images(out)
    uri, _ = mlflow_store
    (run,) = mlflow_runs(uri, "evalcast-hf")  # HF's run, no second one
    assert mlflow_history(uri, run.info.run_id, "evalcast/toy/nll") == [(2, 0.5), (4, 0.25)]
    assert "loss" in run.data.metrics and "evalcast/toy/forecast/step_00000004.png" in mlflow_artifacts(
        uri, run.info.run_id)


def test_lightning_loggers_are_reused(wandb_dir: Path, tmp_path: Path, mlflow_store) -> None:
    import lightning.pytorch as pl
    import torch
    import wandb
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger, WandbLogger

    uri, root = mlflow_store

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class SaveHook(pl.Callback):
        def on_save_checkpoint(self, trainer, pl_module, checkpoint):
            self.tracker.log({"evalcast/toy/nll": 1.0 / trainer.global_step}, step=trainer.global_step)

    loggers = [WandbLogger(name="evalcast-pl", save_dir=str(wandb_dir)), TensorBoardLogger(str(tmp_path / "tb")),
               CSVLogger(str(tmp_path / "csv")),
               MLFlowLogger(experiment_name="evalcast-pl", tracking_uri=uri, artifact_location=str(root / "pl"))]
    hook = SaveHook()
    trainer = pl.Trainer(max_steps=4, logger=loggers, accelerator="cpu", enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=str(tmp_path),
                         callbacks=[hook, pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2,
                                                                       save_top_k=-1)])
    backends = trackers_from_lightning(trainer)
    assert [type(b).__name__ for b in backends] == [
        "LazyTracker", "LazyTracker", "LightningLoggerTracker", "LazyTracker"]
    hook.tracker = CompositeTracker(backends)
    pairs = torch.utils.data.TensorDataset(torch.randn(16, 4), torch.randn(16, 1))
    data = torch.utils.data.DataLoader(pairs, batch_size=4)
    trainer.fit(Tiny(), data)
    hook.tracker.finish()
    assert isinstance(backends[0], LazyTracker) and backends[0].tracker.run is loggers[0].experiment
    wandb.finish()

    (run_dir,) = wandb_run_dirs(wandb_dir)
    assert read_wandb_run(run_dir).column("evalcast/toy/nll") == [(2, 0.5), (4, 0.25)]
    assert tb_scalars(loggers[1].log_dir)["evalcast/toy/nll"] == [(2, 0.5), (4, 0.25)]
    with open(Path(loggers[2].log_dir) / "metrics.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("evalcast/toy/nll")]
    assert [(int(r["step"]), float(r["evalcast/toy/nll"])) for r in rows] == [(2, 0.5), (4, 0.25)]
    assert mlflow_history(uri, loggers[3].run_id, "evalcast/toy/nll") == [(2, 0.5), (4, 0.25)]
