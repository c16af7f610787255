"""HF Trainer under torchrun (2 CPU processes, gloo): the run without evalcast, with it (dropout on, shuffled
batches, evaluations at the saves of steps 4 (between optimizer steps) and 8 that draw from every RNG
stream) and with it under each isolation mutation; dumps the differences each shows; proxies on rank 0."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from common import dump, setup

from evalcast import Monitor
from evalcast.callbacks.transformers import TransformersCallback
from evalcast.toy import tiny_gpt2
from tests.guarantee import MUTATIONS, break_isolation, differences, draw_during_evaluation, trace
from tests.hf_utils import losses, make_trainer


def run(tok, out: Path, monitor: Monitor | None):
    kwargs = {"ddp_backend": "gloo", "save_steps": 4, "max_steps": 8}
    model = tiny_gpt2(tok, n_embd=32, n_positions=64, seed=0)
    draw_during_evaluation(model)
    callbacks = [TransformersCallback(monitor)] if monitor is not None else []
    trainer = make_trainer(model, tok, out, callbacks=callbacks, **kwargs)
    trainer.train()
    return trace(trainer.model, losses(trainer))


def main(out: Path) -> None:
    tok, experts = setup(out)
    plain = run(tok, out / "plain", None)
    monitor = Monitor(experts, run_dir=out / "run")
    watched = run(tok, out / "watched", monitor)
    mutated = {}
    for mutation in MUTATIONS:
        with pytest.MonkeyPatch.context() as mp:
            break_isolation(mp, mutation)
            mutant = Monitor(experts, run_dir=out / mutation, name=mutation)
            mutated[mutation] = differences(plain, run(tok, out / f"out_{mutation}", mutant))
    dump(out, "hf", {"differences": differences(plain, watched), "losses": len(plain.losses), "mutated": mutated,
                     "world": monitor.exchange.world_size,
                     "decisions": {step: e.ok for step, e in monitor._decided.items()}})


if __name__ == "__main__":
    main(Path(sys.argv[1]))
