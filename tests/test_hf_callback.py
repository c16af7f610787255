"""The HF Trainer adapter on real ``transformers.Trainer`` runs: invisible to training, resumable, robust."""

from __future__ import annotations

import logging

import pytest
from transformers import TrainerCallback

from evalcast import Monitor, MonitorConfig
from evalcast.callbacks.transformers import TransformersCallback
from evalcast.toy import tiny_gpt2
from tests.guarantee import (
    MUTATIONS,
    assert_invisible,
    break_isolation,
    differences,
    draw_during_evaluation,
    handled_with_traceback,
    trace,
    unguard,
)
from tests.hf_utils import losses, make_trainer


def fresh_model(tok):
    return tiny_gpt2(tok, n_layer=2, n_embd=32, n_head=2, n_positions=64, seed=0)


class StopAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


@pytest.fixture(scope="module")
def plain_trace(tok, tmp_path_factory):
    """The reference: the same Trainer run without evalcast."""
    plain = make_trainer(fresh_model(tok), tok, tmp_path_factory.mktemp("plain"))
    plain.train()
    return trace(plain.model, losses(plain))


def watched_run(tok, experts, out_dir):
    """Dropout on (GPT-2's 0.1), shuffled batches (HF's RandomSampler), evaluations at the saves of steps
    4 and 8 (between optimizer steps) and 12; the evaluation draws from every RNG stream."""
    monitor = Monitor(experts, config=MonitorConfig(progress=True))
    callback = TransformersCallback(monitor)
    model = fresh_model(tok)
    draw_during_evaluation(model)
    watched = make_trainer(model, tok, out_dir, callbacks=[callback])
    callback.bind(watched)
    watched.train()
    return watched, monitor, trace(watched.model, losses(watched))


def test_training_is_bit_identical_with_the_callback(tok, experts, tmp_path, plain_trace):
    watched, monitor, watched_trace = watched_run(tok, experts, tmp_path / "watched")
    assert fresh_model(tok).config.resid_pdrop > 0  # dropout on
    assert_invisible(plain_trace, watched_trace, min_losses=12)
    plain_loss = plain_trace.losses
    # metrics reached the Trainer's log stream and the run directory under <output_dir>/evalcast
    logged = [h for h in watched.state.log_history if "evalcast/all/nll" in h]
    assert [h["step"] for h in logged] == [4, 8, 12]
    assert monitor.run_dir == tmp_path / "watched" / "evalcast"
    history = monitor.history()
    assert [r.step for r in history] == [4, 8, 12]
    assert history[0].metrics["evalcast/all/nll"] > history[-1].metrics["evalcast/all/nll"]
    assert history[-1].train["loss"] == plain_loss[-1]
    assert monitor.budget.max_steps == 12 and len(monitor.budget.lr) == 13


@pytest.mark.mutation
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_the_bit_identity_check_catches_broken_isolation(tok, experts, tmp_path, plain_trace, monkeypatch, mutation):
    break_isolation(monkeypatch, mutation)
    _, monitor, watched_trace = watched_run(tok, experts, tmp_path / "watched")
    assert [r.step for r in monitor.history()] == [4, 8, 12]
    assert differences(plain_trace, watched_trace)


def test_every_n_steps_and_log_filter(tok, experts, tmp_path):
    monitor = Monitor(experts, run_dir=tmp_path / "run")
    trainer = make_trainer(fresh_model(tok), tok, tmp_path / "out", save_steps=100)
    trainer.add_callback(TransformersCallback(monitor, every_n_steps=3, log_to_trainer="all", trainer=trainer))
    trainer.train()
    assert [r.step for r in monitor.history()] == [3, 6, 9, 12]
    logged = [h for h in trainer.state.log_history if "evalcast/all/nll" in h]
    assert "evalcast/domain/math/add/nll.rarity" in logged[0]


def test_an_unbound_callback_evaluates_and_says_what_it_leaves_out(tok, experts, tmp_path, caplog):
    """HF never hands callbacks their Trainer: unbound, the run directory fills as usual, and the user is
    told that the report_to runs and trainer.log are left out (and how to bind)."""
    monitor = Monitor(experts, run_dir=tmp_path / "run")
    trainer = make_trainer(fresh_model(tok), tok, tmp_path / "out", callbacks=[TransformersCallback(monitor)],
                           report_to=["tensorboard"])
    with caplog.at_level(logging.WARNING, logger="evalcast"):
        trainer.train()
    assert [r.step for r in monitor.history()] == [4, 8, 12]
    assert not [h for h in trainer.state.log_history if "evalcast/all/nll" in h]
    assert "not to report_to=['tensorboard'] nor trainer.log" in caplog.text and "callback.bind(trainer)" in caplog.text
    with pytest.raises(ValueError, match="every_n_steps=0"):
        TransformersCallback(monitor, every_n_steps=0)


def failing_evaluation_run(tok, experts, run_dir, out_dir, strict=False, max_steps=12):
    """The model raises in eval mode (inside evalcast's evaluation) at every save."""
    model = fresh_model(tok)
    model.transformer.h[0].register_forward_pre_hook(
        lambda module, args: (_ for _ in ()).throw(ValueError("hook failure")) if not module.training else None)
    monitor = Monitor(experts, run_dir=run_dir, config=MonitorConfig(strict=strict))
    return monitor, make_trainer(model, tok, out_dir, callbacks=[TransformersCallback(monitor)], max_steps=max_steps)


def test_an_evalcast_error_skips_the_save_and_training_goes_on(tok, experts, tmp_path, caplog):
    monitor, trainer = failing_evaluation_run(tok, experts, tmp_path / "run", tmp_path / "out")
    assert handled_with_traceback(trainer.train, caplog, "evaluation at step 4")  # WARNING+, with the traceback
    assert trainer.state.global_step == 12
    assert [(r.step, r.status) for r in monitor.history()] == [(4, "skipped"), (8, "skipped"), (12, "skipped")]
    assert "hook failure" in monitor.history()[0].reason
    _, trainer = failing_evaluation_run(tok, experts, tmp_path / "strict", tmp_path / "out2", strict=True)
    with pytest.raises(ValueError, match="hook failure"):
        trainer.train()


def failing_trainer_log_run(tok, experts, out_dir):
    """trainer.log raises on evalcast's metrics (a broken reporter; a fake: HF's own reporters swallow
    theirs)."""
    monitor = Monitor(experts)
    callback = TransformersCallback(monitor, log_to_trainer="headline")
    trainer = make_trainer(fresh_model(tok), tok, out_dir, callbacks=[callback], max_steps=4)
    callback.bind(trainer)
    log = trainer.log

    def broken_log(logs, *args, **kwargs):
        if any(k.startswith("evalcast/") for k in logs):
            raise OSError("reporter down")
        return log(logs, *args, **kwargs)
    trainer.log = broken_log
    return monitor, trainer


@pytest.mark.parametrize("mutation", [None, pytest.param("unguarded", marks=pytest.mark.mutation)])
def test_a_failing_trainer_log_is_logged_and_training_goes_on(tok, experts, tmp_path, caplog, monkeypatch, mutation):
    monitor, trainer = failing_trainer_log_run(tok, experts, tmp_path / "out")
    if mutation:
        unguard(monkeypatch)
        assert not handled_with_traceback(trainer.train, caplog, "trainer.log of step 4")
        return
    assert handled_with_traceback(trainer.train, caplog, "trainer.log of step 4")
    assert trainer.state.global_step == 4 and [r.step for r in monitor.history()] == [4]


@pytest.mark.mutation
def test_the_error_path_check_catches_an_unguarded_evaluation(tok, experts, tmp_path, caplog, monkeypatch):
    unguard(monkeypatch)
    _, trainer = failing_evaluation_run(tok, experts, tmp_path / "run", tmp_path / "out", max_steps=4)
    assert not handled_with_traceback(trainer.train, caplog, "evaluation at step 4")


def test_resume_continues_the_history_without_duplicates(tok, experts, tmp_path):
    reference = Monitor(experts, run_dir=tmp_path / "reference")
    make_trainer(fresh_model(tok), tok, tmp_path / "ref_out", callbacks=[TransformersCallback(reference)]).train()

    out = tmp_path / "out"
    first = Monitor(experts)
    make_trainer(fresh_model(tok), tok, out, callbacks=[TransformersCallback(first), StopAt(10)]).train()
    assert [r.step for r in first.history()] == [4, 8]
    # the process dies; a new one resumes from checkpoint-8 with a new monitor on the same run dir
    resumed = Monitor(experts)
    trainer = make_trainer(fresh_model(tok), tok, out, callbacks=[TransformersCallback(resumed)])
    trainer.train(resume_from_checkpoint=str(out / "checkpoint-8"))
    history, expected = resumed.history(), reference.history()
    assert [r.step for r in history] == [4, 8, 12]
    for got, want in zip(history, expected):
        assert got.metrics["evalcast/all/nll"] == pytest.approx(want.metrics["evalcast/all/nll"], rel=1e-6)
    # resuming once more from checkpoint-8 replaces step 12 instead of duplicating it
    again = Monitor(experts)
    make_trainer(fresh_model(tok), tok, out, callbacks=[TransformersCallback(again)]).train(
        resume_from_checkpoint=str(out / "checkpoint-8"))
    assert [r.step for r in again.history()] == [4, 8, 12]
    assert [r.session for r in again.history()] == [first.session, first.session, again.session]
