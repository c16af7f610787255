"""``evalcast demo``: a tiny model trained on CPU with the callback attached, end to end.

A character-level GPT-2 built from a config learns three synthetic reasoning tasks (column addition,
digit sorting, variable chains; :mod:`evalcast.tasks`) with a real ``transformers.Trainer``. At every
checkpoint evalcast scores held-out expert solutions in one teacher-forced pass; the run directory
gets the history, per-example arrays, probe state and forecasts, and an HTML report with its figures.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from evalcast.data import ExpertSet
from evalcast.generate import DecodeConfig
from evalcast.monitor import AnchorConfig, Monitor, MonitorConfig
from evalcast.proxy.aggregate import metric_name
from evalcast.report import write_report
from evalcast.runs import Record, ok_records
from evalcast.tasks import CHARSET, LEVELS, get_task, training_texts
from evalcast.toy import TextDataset, char_tokenizer, tiny_gpt2
from evalcast.validation import Rule, above, at_least, check_config

MIX = {"add": 1.0, "sort": 1.0, "chain": 1.0}


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo run (``evalcast demo``; the defaults train in a few minutes on two CPU cores)."""

    steps: int = 1200
    """Training steps."""
    save_every: int = 60
    """Checkpoint (and evaluation) interval in steps."""
    batch_size: int = 32
    seq_length: int = 128
    """Training sequence length in characters."""
    questions_per_task: int = 40
    """Expert solutions per task."""
    anchor_every: int = 4
    """An anchor at every this-many-th evaluation."""
    anchor_questions: int = 60
    n_layer: int = 2
    n_embd: int = 64
    """Width of the model (4 heads: a multiple of 4)."""
    learning_rate: float = 4e-3
    difficulties: tuple[int, ...] = (1, 2, 3)
    """Task difficulty levels (1..5) trained on and scored."""
    seed: int = 0

    def __post_init__(self) -> None:
        check_config(self, steps=at_least(1), save_every=at_least(1), batch_size=at_least(1), seq_length=at_least(16),
                     questions_per_task=at_least(1), anchor_every=at_least(1), anchor_questions=at_least(1),
                     n_layer=at_least(1), n_embd=Rule("a positive multiple of 4", lambda v: v > 0 and v % 4 == 0),
                     learning_rate=above(0), difficulties=Rule(f"a non-empty subset of {LEVELS}",
                                                                lambda d: bool(d) and set(d) <= set(LEVELS)),
                     seed=at_least(0))


def run_demo(out_dir: str | Path = "evalcast-demo", config: DemoConfig = DemoConfig(),
             console: Console | None = None) -> Path:
    """Train, evaluate at every save, write the run directory and figures; returns the run directory."""
    from transformers import Trainer, TrainingArguments

    from evalcast.callbacks.transformers import TransformersCallback

    console = console or Console()
    out = Path(out_dir)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    logging.getLogger("transformers").setLevel(logging.ERROR)
    started = time.perf_counter()
    tokenizer = char_tokenizer(CHARSET)
    records = [r for task in MIX for r in get_task(task).sample(config.questions_per_task, seed=config.seed,
                                                                 difficulties=config.difficulties, negatives=True)]
    experts = ExpertSet(records, tokenizer, cache_dir=out / "cache", progress=False)
    console.print(f"[bold]evalcast demo[/bold]: {experts!r}")
    texts = training_texts(MIX, config.steps * config.batch_size, seed=config.seed, difficulties=config.difficulties)
    dataset = TextDataset(tokenizer, texts, config.seq_length)
    model = tiny_gpt2(tokenizer, n_layer=config.n_layer, n_embd=config.n_embd, n_head=4,
                      n_positions=config.seq_length, seed=config.seed)
    decode = DecodeConfig(max_new_tokens=100, batch_size=64, stop=("\n\n",), progress=False)
    monitor = Monitor(experts, run_dir=out / "run", config=MonitorConfig(pad_multiple=16),
                      anchors=AnchorConfig(every=config.anchor_every, questions=config.anchor_questions,
                                           decode=decode))
    if monitor.history():
        raise FileExistsError(f"{out / 'run'} already holds a run; choose another --out")
    args = TrainingArguments(output_dir=str(out / "checkpoints"), max_steps=config.steps,
                             per_device_train_batch_size=config.batch_size, learning_rate=config.learning_rate,
                             lr_scheduler_type="cosine", warmup_steps=config.steps // 20, weight_decay=0.01,
                             save_strategy="steps", save_steps=config.save_every, save_total_limit=1,
                             logging_steps=config.save_every, report_to=[], use_cpu=True, seed=config.seed,
                             include_num_input_tokens_seen="non_padding", dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=dataset.collate,
                      callbacks=[TransformersCallback(monitor, log_to_trainer="none")])
    console.print(f"training {sum(p.numel() for p in model.parameters()):,} parameters for {config.steps} steps, "
                  f"evaluating every {config.save_every} steps")
    trainer.train()
    history = monitor.history()
    console.print(summary_table(history, ["all", *MIX]))
    report = write_report(out / "run")
    console.print(f"run directory: {out / 'run'}\nreport: {report} (figures beside it)\n"
                  f"done in {time.perf_counter() - started:.0f} s")
    return out / "run"


def summary_table(history: list[Record], groups: list[str]) -> Table:
    """First vs last checkpoint, per task, for the headline proxies."""
    ok = ok_records(history)
    table = Table(title=f"evalcast: first vs last checkpoint (steps {ok[0].step} → {ok[-1].step})")
    table.add_column("task")
    names = ("nll", "top1", "pair_accuracy", "pass@1_anchor", "pass@1_probe", "forecast_final")
    for name in names:
        table.add_column(name, justify="right")
    for group in groups:
        table.add_row(group, *(_first_last(ok, metric_name(group, n)) for n in names))
    return table


def _first_last(records: list[Record], key: str) -> str:
    values = [r.metrics[key] for r in records if key in r.metrics]
    return f"{values[0]:.3f} → {values[-1]:.3f}" if values else "—"
