"""evalcast on a ``lightning.Trainer``: the callback evaluates at every checkpoint save.

    python examples/lightning_module.py --out /tmp/evalcast-lightning            # one process
    python examples/lightning_module.py --out /tmp/evalcast-lightning --devices 2   # DDP (Lightning spawns rank 1)

The LightningModule wraps a Hugging Face causal LM; the callback finds it by its output layer (or pass
``model_getter=``). Lightning does not count tokens: ``tokens_per_step`` gives the forecast's token axis.
"""

from __future__ import annotations

import argparse

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from evalcast import AnchorConfig, Budget, ExpertSet, Monitor, MonitorConfig
from evalcast.callbacks.lightning import LightningCallback
from evalcast.generate import DecodeConfig
from evalcast.tasks import CHARSET, get_task, training_texts
from evalcast.toy import TextDataset, char_tokenizer, tiny_gpt2

BATCH, LENGTH = 32, 128


class CausalLM(L.LightningModule):
    def __init__(self, model: torch.nn.Module, lr: float = 3e-3) -> None:
        super().__init__()
        self.model, self.lr = model, lr

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.model(**batch).loss
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 20))
        return [optimizer], [{"scheduler": schedule, "interval": "step"}]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="evalcast-lightning")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--devices", type=int, default=1)
    args = parser.parse_args()
    tokenizer = char_tokenizer(CHARSET)
    mix = {"add": 1.0, "sort": 1.0, "chain": 1.0}
    experts = ExpertSet([r for t in mix for r in get_task(t).sample(30, seed=0, negatives=True)], tokenizer,
                        cache_dir=f"{args.out}/cache", progress=False)
    monitor = Monitor(experts, config=MonitorConfig(pad_multiple=16), budget=Budget(max_steps=args.steps),
                      anchors=AnchorConfig(every=3, questions=45,
                                           decode=DecodeConfig(max_new_tokens=96, stop=("\n\n",), progress=False)))
    dataset = TextDataset(tokenizer, training_texts(mix, args.steps * BATCH * args.devices, seed=0), LENGTH)
    trainer = L.Trainer(default_root_dir=args.out, max_steps=args.steps, accelerator="cpu", devices=args.devices,
                        strategy="ddp" if args.devices > 1 else "auto", logger=False, enable_progress_bar=False,
                        callbacks=[ModelCheckpoint(every_n_train_steps=20, save_top_k=-1),
                                   LightningCallback(monitor, tokens_per_step=BATCH * LENGTH * args.devices)])
    trainer.fit(CausalLM(tiny_gpt2(tokenizer, n_embd=64, n_head=4, n_positions=LENGTH)),
                DataLoader(dataset, batch_size=BATCH, collate_fn=dataset.collate))
    if trainer.is_global_zero:
        from evalcast.report import write_report

        print(f"report: {write_report(monitor.run_dir)}")


if __name__ == "__main__":
    main()
