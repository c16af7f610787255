"""End to end: real training runs with evalcast attached, every tracker read back from disk (no server).

W&B offline runs are read from their ``.wandb`` transaction log, TensorBoard from its event files, MLflow
from its sqlite store (readers in ``tests/readback.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from evalcast import ExpertSet, ForecastConfig, Monitor, MonitorConfig
from evalcast.alerts import TargetReached
from evalcast.monitor.forecast_step import FORECAST_COLUMNS
from tests.readback import mlflow_history, mlflow_runs, read_wandb_run, tb_images, tb_scalars, tb_text, wandb_run_dirs


@pytest.fixture
def trackers_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """W&B offline under ``tmp_path``, MLflow on a sqlite store there, and ``tmp_path`` as working directory."""
    import wandb

    root = tmp_path / "wandb_root"
    root.mkdir()
    for key, value in {"WANDB_MODE": "offline", "WANDB_DIR": root, "WANDB_CACHE_DIR": root / "cache",
                       "WANDB_CONFIG_DIR": root / "config", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off",
                       "WANDB_PROJECT": "evalcast-e2e", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
                       "MLFLOW_EXPERIMENT_NAME": "evalcast-e2e"}.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.chdir(tmp_path)
    import mlflow

    # MLFLOW_TRACKING_URI is only read when no process-wide URI is set; pin this test's store explicitly
    # and unset it afterwards, so that later tests (tests/test_trackers.py) see their own MLFLOW_TRACKING_URI.
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    yield root
    if wandb.run is not None:
        wandb.finish()
    wandb.teardown()
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None is mlflow's "not set" (its own default)


def test_hf_trainer_with_wandb_tensorboard_and_mlflow(trackers_env: Path, tmp_path: Path) -> None:
    """400 steps on two easy tasks: pass@1 rises from 0, so forecasts get published at some saves."""
    import wandb
    from transformers import Trainer, TrainingArguments

    from evalcast import AnchorConfig
    from evalcast.callbacks.transformers import TransformersCallback
    from evalcast.generate import DecodeConfig
    from evalcast.report import write_report
    from evalcast.tasks import CHARSET, get_task, training_texts
    from evalcast.toy import TextDataset, char_tokenizer, tiny_gpt2

    tok = char_tokenizer(CHARSET)
    mix = {"sort": 1.0, "chain": 1.0}
    records = [r for t in mix for r in get_task(t).sample(24, seed=0, difficulties=(1,))]
    experts = ExpertSet(records, tok, cache_dir=tmp_path / "cache", progress=False)
    anchors = AnchorConfig(every=1, questions=48, decode=DecodeConfig(max_new_tokens=40, batch_size=48, progress=False))
    fast = ForecastConfig(n_bootstrap=100)  # half the default bootstrap: half the cost
    monitor = Monitor(experts, run_dir=tmp_path / "evalcast", config=MonitorConfig(pad_multiple=16), anchors=anchors,
                      forecast=fast, alerts=[TargetReached("all", 0.3)])
    out = tmp_path / "hf"
    args = TrainingArguments(output_dir=str(out), max_steps=400, save_steps=40, per_device_train_batch_size=16,
                             learning_rate=3e-3, lr_scheduler_type="constant", logging_steps=40, save_only_model=True,
                             save_total_limit=1, report_to=["wandb", "tensorboard", "mlflow"], run_name="evalcast-e2e",
                             include_num_input_tokens_seen="non_padding", use_cpu=True, seed=0, disable_tqdm=True)
    dataset = TextDataset(tok, training_texts(mix, 400 * 16, seed=0, difficulties=(1,)), 48)
    trainer = Trainer(model=tiny_gpt2(tok, n_layer=2, n_embd=64, n_head=4, n_positions=64), args=args,
                      train_dataset=dataset)
    trainer.add_callback(TransformersCallback(monitor, trainer=trainer))
    trainer.train()
    wandb.finish()  # HF's WandbCallback leaves its run open

    history = monitor.history()
    steps = list(range(40, 401, 40))
    assert [r.step for r in history] == steps and all(r.status == "ok" for r in history)
    published = [r.step for r in history if r.metrics.get("evalcast/all/forecast_status") == 1.0]
    assert published, [r.forecasts["all"].message for r in history]
    alert_steps = [r.step for r in history if r.alerts]
    assert len(alert_steps) == 1  # TargetReached fires once per run
    nll = [(r.step, r.metrics["evalcast/all/nll"]) for r in history]

    # W&B: one run (HF's), evalcast scalars on evalcast/step, the forecast chart and tables, the alert
    (run_dir,) = wandb_run_dirs(trackers_env)
    rec = read_wandb_run(run_dir)
    assert [(s, pytest.approx(v)) for s, v in rec.column("evalcast/all/nll")] == nll
    assert [s for s, _ in rec.column("evalcast/all/pass@1_anchor")] == steps
    assert [s for s, _ in rec.column("evalcast/all/forecast_final")] == published
    assert any("train/loss" in row for row in rec.history)
    assert rec.config["_wandb"]["visualize"]["evalcast/all/forecast"]["panel_config"]["panelDefId"] == \
        "wandb/lineseries/v0"
    assert [s for s, _ in rec.column("evalcast/all/forecast/fan")] == published
    curve = rec.table(rec.column("evalcast/all/forecast_table")[-1][1])
    assert {row[1] for row in curve["data"]} >= {"forecast", "lo80", "hi80", "lo95", "hi95", "observed"}
    tables = rec.column("evalcast/forecasts")
    assert [s for s, _ in tables] == steps
    last = rec.table(tables[-1][1])
    assert last["columns"] == list(FORECAST_COLUMNS) and {row[0] for row in last["data"]} == {"all", "sort", "chain"}
    (alert,) = rec.alerts
    assert alert["title"] == "all: pass@1_anchor reached 0.3" and alert["level"] == "INFO"
    assert f"training step {alert_steps[0]}" in alert["text"]

    # TensorBoard: HF's writer under output_dir/runs
    scalars = tb_scalars(out)
    assert [(s, pytest.approx(v, rel=1e-6)) for s, v in scalars["evalcast/all/nll"]] == nll
    assert "train/loss" in scalars
    assert [s for s, *_ in tb_images(out)["evalcast/all/forecast"]] == published
    assert [s for s, _ in tb_text(out)["evalcast/alerts/text_summary"]] == alert_steps

    # MLflow: HF's run, no second one; names sanitised for MLflow
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    (run,) = mlflow_runs(uri, "evalcast-e2e")
    assert [(s, pytest.approx(v)) for s, v in mlflow_history(uri, run.info.run_id, "evalcast/all/nll")] == nll
    assert [s for s, _ in mlflow_history(uri, run.info.run_id, "evalcast/all/pass_at_1_anchor")] == steps
    assert "loss" in run.data.metrics
    assert run.data.tags["evalcast.alert.all_pass_1_anchor_reached_0_3"].startswith(f"INFO at step {alert_steps[0]}")

    # the report of this run shows a published fan chart
    report = write_report(monitor.run_dir, tmp_path / "report")
    assert (report.parent / "forecast_all.png").stat().st_size > 10_000
    assert "all: the latest published forecast" in report.read_text()  # the fan's caption, not the "none" note


def test_lightning_with_wandb_logger(trackers_env: Path, tmp_path: Path, tok, experts) -> None:
    """A short run without anchors: forecasts are attempted and refused (no pass@1 to fit), so W&B gets the
    forecasts table with the refusal reasons, but no curve."""
    import lightning as L
    import wandb
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import WandbLogger

    from evalcast.callbacks.lightning import LightningCallback
    from tests.lightning_utils import TinyLM, loader, trainer

    monitor = Monitor(experts, run_dir=tmp_path / "evalcast", alerts=[TargetReached("all", 10.0, metric="nll")])
    logger = WandbLogger(name="evalcast-pl", save_dir=str(trackers_env))
    L.seed_everything(0)
    run = trainer(tmp_path / "pl", [LightningCallback(monitor), ModelCheckpoint(every_n_train_steps=4, save_top_k=-1)],
                  logger=logger, log_every_n_steps=1)
    run.fit(TinyLM(tok), loader(tok))
    wandb.finish()

    history = monitor.history()
    assert [r.step for r in history] == [4, 8, 12]
    (run_dir,) = wandb_run_dirs(trackers_env)
    rec = read_wandb_run(run_dir)
    assert [(s, pytest.approx(v)) for s, v in rec.column("evalcast/all/nll")] == [
        (r.step, r.metrics["evalcast/all/nll"]) for r in history]
    assert any("train_loss" in row for row in rec.history)  # the module's own self.log, same run
    tables = rec.column("evalcast/forecasts")
    assert [s for s, _ in tables] == [4, 8, 12]
    rows = rec.table(tables[-1][1])["data"]
    assert {row[0] for row in rows} == {"all", "add", "sub"}
    assert all(row[1] == "refused" and row[6] for row in rows)  # status and reason
    assert not any(key.endswith("/forecast") for key in rec.config.get("_wandb", {}).get("visualize", {}))
    assert [a["title"] for a in rec.alerts] == ["all: nll reached 10"]
    assert "training step 4" in rec.alerts[0]["text"]
