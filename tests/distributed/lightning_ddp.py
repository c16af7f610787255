"""Lightning ``strategy="ddp"`` on 2 CPU processes (Lightning re-launches this script for rank 1)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
from common import setup
from lightning.pytorch.callbacks import ModelCheckpoint

from evalcast import Monitor
from evalcast.callbacks.lightning import LightningCallback
from tests.lightning_utils import TinyLM, loader, trainer


def main(out: Path, with_evalcast: bool) -> None:
    tok, experts = setup(out)
    L.seed_everything(0)
    module = TinyLM(tok)
    callbacks = [ModelCheckpoint(dirpath=out / "ckpt", every_n_train_steps=4, save_top_k=-1)]
    monitor = Monitor(experts, run_dir=out / "run") if with_evalcast else None
    if monitor is not None:
        callbacks.append(LightningCallback(monitor))
    run = trainer(out / ("watched" if with_evalcast else "plain"), callbacks, max_steps=8, devices=2,
                  strategy="ddp", use_distributed_sampler=True)
    run.fit(module, loader(tok))
    decisions = {s: e.ok for s, e in monitor._decided.items()} if monitor else {}
    name = "watched" if with_evalcast else "plain"
    (out / f"lightning_{name}.rank{run.global_rank}.json").write_text(json.dumps(
        {"losses": module.losses, "decisions": decisions, "world": run.world_size}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] == "evalcast")
