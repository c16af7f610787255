"""HF Trainer under torchrun (2 CPU processes, gloo): losses with and without evalcast; proxies on rank 0."""

from __future__ import annotations

import sys
from pathlib import Path

from common import dump, setup

from evalcast import Monitor
from evalcast.callbacks.transformers import TransformersCallback
from evalcast.toy import tiny_gpt2
from tests.hf_utils import losses, make_trainer


def main(out: Path) -> None:
    tok, experts = setup(out)
    kwargs = {"ddp_backend": "gloo", "save_steps": 4, "max_steps": 8}
    plain = make_trainer(tiny_gpt2(tok, n_embd=32, n_positions=64, seed=0), tok, out / "plain", **kwargs)
    plain.train()
    monitor = Monitor(experts, run_dir=out / "run")
    watched = make_trainer(tiny_gpt2(tok, n_embd=32, n_positions=64, seed=0), tok, out / "watched",
                           callbacks=[TransformersCallback(monitor)], **kwargs)
    watched.train()
    dump(out, "hf", {"plain": losses(plain), "watched": losses(watched), "world": monitor.exchange.world_size,
                     "decisions": {step: e.ok for step, e in monitor._decided.items()}})


if __name__ == "__main__":
    main(Path(sys.argv[1]))
