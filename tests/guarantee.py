"""The "invisible to training" check, shared by every framework's guarantee test and its mutation companion.

A guarantee test trains twice from the same seed, with and without evalcast, and compares what training
can observe afterwards: the losses, every parameter, every gradient, every module's mode and the python,
numpy, torch (and CUDA) RNG states, all exactly. The evaluation itself draws from every RNG stream
(:func:`draw_during_evaluation`), so a missing RNG restore cannot hide behind an evaluation that happens
to draw nothing. A companion test applies one of the :data:`MUTATIONS` (evalcast's isolation broken on
purpose) and asserts that :func:`differences` then finds something: proof that the check can fail.

The error-path check (:func:`handled_with_traceback`) and its mutation (:func:`unguard`) work the same way.
"""

from __future__ import annotations

import logging
import pickle
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from evalcast.errors import ErrorPolicy, Failure
from evalcast.stats.isolation import RngState, isolated


@dataclass
class TrainingTrace:
    """What a training run leaves behind that evalcast must not change."""

    losses: list[float]
    params: dict[str, torch.Tensor]
    grads: dict[str, torch.Tensor | None]
    modes: dict[str, bool]
    rng: dict[str, bytes]


def _local(t: torch.Tensor) -> torch.Tensor:
    """A tensor's data on this rank (the local shard of an FSDP2 DTensor)."""
    t = t.to_local() if hasattr(t, "to_local") else t
    return t.detach().clone()


def rng_states() -> dict[str, bytes]:
    states = {"python": pickle.dumps(random.getstate()), "numpy": pickle.dumps(np.random.get_state()),
              "torch": torch.get_rng_state().numpy().tobytes()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = b"".join(s.numpy().tobytes() for s in torch.cuda.get_rng_state_all())
    return states


def trace(model: nn.Module, losses: list[float]) -> TrainingTrace:
    """Capture right after training (before anything else draws from the RNG streams)."""
    return TrainingTrace(losses=list(losses),
                         params={n: _local(p) for n, p in model.named_parameters()},
                         grads={n: None if p.grad is None else _local(p.grad) for n, p in model.named_parameters()},
                         modes={n: m.training for n, m in model.named_modules()}, rng=rng_states())


def differences(plain: TrainingTrace, watched: TrainingTrace) -> list[str]:
    """Everything in which the run with evalcast differs from the run without it (empty: invisible)."""
    found = []
    if plain.losses != watched.losses:
        found.append(f"losses differ: {plain.losses} vs {watched.losses}")
    for name, p in plain.params.items():
        if not torch.equal(p, watched.params[name]):
            found.append(f"parameter {name} differs")
    for name, g in plain.grads.items():
        w = watched.grads[name]
        if (g is None) != (w is None) or (g is not None and not torch.equal(g, w)):
            found.append(f"gradient of {name} differs")
    found += [f"module {n!r} is in {'train' if watched.modes[n] else 'eval'} mode"
              for n, m in plain.modes.items() if watched.modes[n] != m]
    found += [f"{k} RNG state differs" for k in plain.rng if plain.rng[k] != watched.rng.get(k)]
    return found


def assert_invisible(plain: TrainingTrace, watched: TrainingTrace, *, min_losses: int) -> None:
    assert len(plain.losses) >= min_losses, "the reference run trained less than the test assumes"
    assert differences(plain, watched) == []


def draw_during_evaluation(model: nn.Module) -> None:
    """Draw from every RNG stream at each forward in eval mode (evalcast's evaluation; training is in
    train mode), as sampling during an anchor would."""

    def draw(module: nn.Module, args: object) -> None:
        if not module.training:
            random.random(), np.random.rand(), torch.rand(1)

    model.register_forward_pre_hook(draw)


# ---------------------------------------------------------------------------------------------- mutations
def _isolated_then(after: Callable[[nn.Module], None]) -> Callable[[nn.Module], object]:
    @contextmanager
    def broken(model: nn.Module) -> Iterator[None]:
        with isolated(model):
            yield
        after(model)
    return broken


def _keep_a_gradient(model: nn.Module) -> None:
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.full_like(p, 1e-3)


MUTATIONS = ("skip_rng_restore", "leave_eval_mode", "keep_a_gradient")


def break_isolation(monkeypatch: pytest.MonkeyPatch, mutation: str) -> None:
    """Break evalcast's isolation in one way (see :data:`MUTATIONS`)."""
    if mutation == "skip_rng_restore":
        monkeypatch.setattr(RngState, "restore", lambda self: None)
    elif mutation == "leave_eval_mode":
        monkeypatch.setattr("evalcast.monitor.monitor.isolated", _isolated_then(lambda model: model.eval()))
    elif mutation == "keep_a_gradient":
        monkeypatch.setattr("evalcast.monitor.monitor.isolated", _isolated_then(_keep_a_gradient))
    else:
        raise ValueError(mutation)


# ------------------------------------------------------------------------------------------- error paths
def handled_with_traceback(call: Callable[[], object], caplog: pytest.LogCaptureFixture, what: str) -> bool:
    """``call()`` returned (nothing raised into the caller) and evalcast logged "<what>... failed" at
    WARNING or above with the traceback: the contract of every evalcast error path (non-strict)."""
    caplog.clear()
    try:
        call()
    except Exception:
        return False
    return any(what in r.getMessage() and r.levelno >= logging.WARNING and r.exc_info is not None
               for r in caplog.records if r.name == "evalcast")


def unguard(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mutation of the error policy: every guarded block lets its exception through, unlogged."""

    @contextmanager
    def passthrough(self: ErrorPolicy, what: str, **kwargs: object) -> Iterator[Failure]:
        yield Failure()

    monkeypatch.setattr(ErrorPolicy, "guard", passthrough)
