"""The Lightning adapter on real ``lightning.Trainer`` runs (single process; DDP is in test_distributed.py)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from evalcast import Monitor
from evalcast.callbacks.lightning import LightningCallback
from tests.lightning_utils import TinyLM, loader, trainer


def fit(tmp_path, tok, callbacks, name, fit_kwargs=None, **kwargs):
    L.seed_everything(0)
    module = TinyLM(tok)
    run = trainer(tmp_path / name, callbacks, **kwargs)
    run.fit(module, loader(tok), **(fit_kwargs or {}))
    return module, run


def test_bit_identical_and_logged_every_save(tok, experts, tmp_path):
    plain, _ = fit(tmp_path, tok, [ModelCheckpoint(every_n_train_steps=4, save_top_k=-1)], "plain")
    monitor = Monitor(experts)
    callback = LightningCallback(monitor)
    checkpoint = ModelCheckpoint(every_n_train_steps=4, save_top_k=-1, save_last=True)  # save_last: two calls/step
    watched, _ = fit(tmp_path, tok, [callback, checkpoint], "watched", logger=CSVLogger(tmp_path / "csv"))
    assert watched.losses == plain.losses and len(plain.losses) == 12
    for a, b in zip(plain.parameters(), watched.parameters()):
        assert torch.equal(a, b)
    assert monitor.run_dir == tmp_path / "watched" / "evalcast"
    assert [r.step for r in monitor.history()] == [4, 8, 12]
    metrics = (tmp_path / "csv" / "lightning_logs" / "version_0" / "metrics.csv").read_text()
    assert "evalcast/all/nll" in metrics.splitlines()[0]
    saved = torch.load(checkpoint.last_model_path, weights_only=False)
    assert saved["callbacks"][callback.state_key]["last_step"] == 12


def test_weights_only_saves_are_evaluated(tok, experts, tmp_path):
    weights_only = Monitor(experts, run_dir=tmp_path / "w")
    fit(tmp_path, tok, [LightningCallback(weights_only),
                        ModelCheckpoint(every_n_train_steps=4, save_top_k=-1, save_weights_only=True)], "wo")
    assert [r.step for r in weights_only.history()] == [4, 8, 12]


def test_monitor_based_save_during_validation(tok, experts, tmp_path):
    monitor = Monitor(experts, run_dir=tmp_path / "v")
    L.seed_everything(0)
    module = TinyLM(tok)
    run = trainer(tmp_path / "val", [LightningCallback(monitor), ModelCheckpoint(monitor="val_loss", save_top_k=-1)],
                  val_check_interval=4, limit_val_batches=1)
    run.fit(module, loader(tok), loader(tok, n=8))
    assert [r.step for r in monitor.history()] == [4, 8, 12]
    assert module.training  # validation-time evaluation left the module's mode as Lightning set it


def test_every_n_steps_and_stop(tok, experts, tmp_path):
    monitor = Monitor(experts, run_dir=tmp_path / "n")
    fit(tmp_path, tok, [LightningCallback(monitor, every_n_steps=5)], "n", enable_checkpointing=False)
    assert [r.step for r in monitor.history()] == [5, 10]


def test_resume_from_checkpoint_continues_history(tok, experts, tmp_path):
    reference = Monitor(experts, run_dir=tmp_path / "ref")
    fit(tmp_path, tok, [LightningCallback(reference), ModelCheckpoint(every_n_train_steps=4, save_top_k=-1)], "ref")

    class StopAt(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step >= 10:
                trainer.should_stop = True

    first = Monitor(experts)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1)
    fit(tmp_path, tok, [LightningCallback(first), ckpt, StopAt()], "run")
    assert [r.step for r in first.history()] == [4, 8]
    resumed = Monitor(experts)
    path = sorted((tmp_path / "ckpt").glob("*step=8*.ckpt"))[0]
    fit(tmp_path, tok, [LightningCallback(resumed), ModelCheckpoint(dirpath=tmp_path / "ckpt2", every_n_train_steps=4,
                                                                   save_top_k=-1)], "run",
        fit_kwargs={"ckpt_path": str(path)})
    assert [r.step for r in resumed.history()] == [4, 8, 12]
    for got, want in zip(resumed.history(), reference.history()):
        assert got.metrics["evalcast/all/nll"] == pytest.approx(want.metrics["evalcast/all/nll"], rel=1e-6)
