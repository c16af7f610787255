"""One ladder run: a real ``transformers.Trainer`` with evalcast attached and the ground truth beside it.

Run directory ``<root>/<run name>/``::

    run.json      the run spec, the model's sizes, the ground-truth questions (order of truth rows), wall time
    truth.jsonl   per save: step, tokens seen, per-question greedy correctness (0/1) of every question, cost
    evalcast/     evalcast's own run directory (history.jsonl, probe_features/ at every save, anchors ...)

The ground truth runs in a second callback's ``on_save``, after evalcast's, on the live model:
``evaluate_generative`` leaves the model's modes and the RNG streams as they were.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import torch
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

from benchmarks.ladder.config import Preset, RunSpec
from benchmarks.ladder.data import MixStream, lr_lambda, questions, validation_texts
from evalcast.callbacks.transformers import TransformersCallback
from evalcast.data import ExpertSet
from evalcast.data.records import ExpertRecord
from evalcast.forecast import ForecastConfig
from evalcast.generate import DecodeConfig, evaluate_generative
from evalcast.monitor import AnchorConfig, Monitor, MonitorConfig
from evalcast.tasks import CHARSET
from evalcast.toy import TextDataset, char_tokenizer, tiny_gpt2

TRUTH, SPEC = "truth.jsonl", "run.json"


def decode_config(preset: Preset) -> DecodeConfig:
    """Greedy, stopped at a blank line (never inside the ``#### answer`` line): anchors and ground truth alike."""
    return DecodeConfig(max_new_tokens=preset.max_new_tokens, batch_size=preset.gen_batch, stop=("\n\n",),
                        progress=False)


class GroundTruth(TrainerCallback):
    """Greedy pass@1 of every question at every save, appended to ``truth.jsonl``."""

    def __init__(self, path: Path, tokenizer: Any, records: list[ExpertRecord], decode: DecodeConfig) -> None:
        self.path, self.tokenizer, self.records, self.decode = path, tokenizer, records, decode

    def on_save(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        result = evaluate_generative(kwargs["model"], self.tokenizer, self.records, config=self.decode)
        row = {"step": state.global_step, "tokens_seen": int(state.num_input_tokens_seen or 0),
               "correct": [int(q.correct_count) for q in result.questions], "seconds": result.wall_s,
               "generate_seconds": result.generate_s, "tokens_generated": result.tokens_generated}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """All parameters, and non-embedding ones (token and position embeddings left out; the head is tied)."""
    total = sum(p.numel() for p in model.parameters())
    embedding = sum(p.numel() for n, p in model.named_parameters() if n.split(".")[-2] in ("wte", "wpe"))
    return total, total - embedding


def train_run(spec: RunSpec, preset: Preset, root: str | Path) -> Path:
    """Train one run (one thread) and write its run directory; returns it."""
    torch.set_num_threads(1)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    logging.getLogger("evalcast").setLevel(logging.ERROR)
    started = time.perf_counter()
    out = Path(root) / spec.name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tokenizer = char_tokenizer(CHARSET)
    records = questions(preset)
    experts = ExpertSet(records, tokenizer, cache_dir=out / "cache", progress=False)
    model = tiny_gpt2(tokenizer, n_layer=spec.size.n_layer, n_embd=spec.size.n_embd, n_head=spec.size.n_head,
                      n_positions=preset.seq_length, seed=preset.seed)
    n_params, n_nonembedding = parameter_counts(model)
    (out / SPEC).write_text(json.dumps({
        "spec": spec.to_dict(), "preset": preset.name, "n_params": n_params, "n_nonembedding": n_nonembedding,
        "save_every": preset.save_every(spec), "anchor_every": preset.anchor_every,
        "questions": [{"id": r.id, "task": r.task, "level": r.meta["difficulty"]} for r in records]}, indent=1))

    decode = decode_config(preset)
    forecast = ForecastConfig(every=spec.forecast_every)
    monitor = Monitor(experts, run_dir=out / "evalcast", config=MonitorConfig(pad_multiple=16, save_features=True),
                      anchors=AnchorConfig(every=preset.anchor_every, questions=preset.anchor_questions, decode=decode),
                      forecast=forecast)
    optimizer = torch.optim.AdamW(model.parameters(), lr=preset.lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(spec, preset))
    every = preset.save_every(spec)
    args = TrainingArguments(
        output_dir=str(out / "hf"), max_steps=spec.steps, per_device_train_batch_size=preset.batch_size,
        per_device_eval_batch_size=64, learning_rate=preset.lr, save_strategy="steps", save_steps=every,
        save_total_limit=1, save_only_model=True, eval_strategy="steps", eval_steps=every, logging_steps=every,
        prediction_loss_only=True, report_to=[], use_cpu=True, seed=preset.seed, disable_tqdm=True,
        include_num_input_tokens_seen="non_padding", dataloader_num_workers=0)
    validation = TextDataset(tokenizer, validation_texts(spec, preset), preset.seq_length)
    trainer = Trainer(model=model, args=args, train_dataset=MixStream(tokenizer, spec, preset),
                      eval_dataset=validation, data_collator=TextDataset.collate, optimizers=(optimizer, scheduler),
                      callbacks=[TransformersCallback(monitor, log_to_trainer="none"),
                                 GroundTruth(out / TRUTH, tokenizer, records, decode)])
    trainer.remove_callback(PrinterCallback)
    with (out / "train.log").open("w") as log, redirect_stdout(log), redirect_stderr(log):
        trainer.train()
    shutil.rmtree(out / "hf", ignore_errors=True)
    meta = json.loads((out / SPEC).read_text())
    meta["wall_s"] = time.perf_counter() - started
    (out / SPEC).write_text(json.dumps(meta, indent=1))
    return out
