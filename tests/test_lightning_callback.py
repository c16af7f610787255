"""The Lightning adapter on real ``lightning.Trainer`` runs (single process; DDP is in test_distributed.py)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from evalcast import Monitor
from evalcast.callbacks.lightning import LightningCallback
from tests.guarantee import MUTATIONS, assert_invisible, break_isolation, differences, draw_during_evaluation, trace
from tests.lightning_utils import TinyLM, loader, trainer


def fit(tmp_path, tok, callbacks, name, fit_kwargs=None, **kwargs):
    L.seed_everything(0)
    module = TinyLM(tok)
    run = trainer(tmp_path / name, callbacks, **kwargs)
    run.fit(module, loader(tok), **(fit_kwargs or {}))
    return module, run


def invisible_fit(tmp_path, tok, callbacks, name, **kwargs):
    """Dropout on, shuffled batches, evaluations at the saves of steps 4 and 8 (between optimizer steps) and
    12; an evaluation draws from every RNG stream. Returns the trainer and the training trace."""
    L.seed_everything(0)
    module = TinyLM(tok, dropout=0.1)
    if callbacks:
        draw_during_evaluation(module.model)
    run = trainer(tmp_path / name, [*callbacks, ModelCheckpoint(every_n_train_steps=4, save_top_k=-1, save_last=True)],
                  **kwargs)
    run.fit(module, loader(tok, shuffle=True))
    return run, trace(module, module.losses)


@pytest.fixture(scope="module")
def plain_trace(tok, tmp_path_factory):
    return invisible_fit(tmp_path_factory.mktemp("plain"), tok, [], "plain")[1]


def test_bit_identical_and_logged_every_save(tok, experts, tmp_path, plain_trace):
    monitor = Monitor(experts)
    callback = LightningCallback(monitor)
    # save_last: two on_save_checkpoint calls per step
    run, watched_trace = invisible_fit(tmp_path, tok, [callback], "watched", logger=CSVLogger(tmp_path / "csv"))
    assert_invisible(plain_trace, watched_trace, min_losses=12)
    assert monitor.run_dir == tmp_path / "watched" / "evalcast"
    assert [r.step for r in monitor.history()] == [4, 8, 12]
    metrics = (tmp_path / "csv" / "lightning_logs" / "version_0" / "metrics.csv").read_text()
    assert "evalcast/all/nll" in metrics.splitlines()[0]
    saved = torch.load(run.checkpoint_callback.last_model_path, weights_only=False)
    assert saved["callbacks"][callback.state_key]["last_step"] == 12


@pytest.mark.mutation
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_the_bit_identity_check_catches_broken_isolation(tok, experts, tmp_path, plain_trace, monkeypatch, mutation):
    break_isolation(monkeypatch, mutation)
    monitor = Monitor(experts)
    _, watched_trace = invisible_fit(tmp_path, tok, [LightningCallback(monitor)], "watched")
    assert [r.step for r in monitor.history()] == [4, 8, 12]
    assert differences(plain_trace, watched_trace)


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
