"""One ladder run: a real ``transformers.Trainer`` with evalcast attached and the ground truth beside it.

Run directory ``<root>/<run name>/``::

    run.json      the run spec (role included), the model's sizes, the ground-truth questions (order of truth
                  rows), evalcast's anchor and probe settings, wall and CPU time
    truth.jsonl   per save: step, tokens seen, per-question greedy correctness (0/1) of every question, its cost,
                  and the validation loss on the run's own mix (``val_loss_mix``)
    evalcast/     evalcast's own run directory (history.jsonl with ``train.val_loss`` on the common validation
                  text, probe_features/ at every save, anchors ...)

The ground truth runs in a second callback's ``on_save``, after evalcast's, on the live model:
``evaluate_generative`` and the no-grad validation pass leave the model's modes and the RNG streams as they
were, so the training run is the one it would be without them.
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
from benchmarks.ladder.data import MixStream, common_validation_texts, lr_lambda, mix_validation_texts, questions
from evalcast.callbacks.transformers import TransformersCallback
from evalcast.data import ExpertSet
from evalcast.data.records import ExpertRecord
from evalcast.forecast import ForecastConfig
from evalcast.generate import DecodeConfig, evaluate_generative
from evalcast.monitor import AnchorConfig, Monitor, MonitorConfig
from evalcast.probe import ProbeConfig
from evalcast.tasks import CHARSET
from evalcast.toy import TextDataset, char_tokenizer, tiny_gpt2

TRUTH, SPEC = "truth.jsonl", "run.json"


def decode_config(preset: Preset) -> DecodeConfig:
    """Greedy, stopped at a blank line (never inside the ``#### answer`` line): anchors and ground truth alike."""
    return DecodeConfig(max_new_tokens=preset.max_new_tokens, batch_size=preset.gen_batch, stop=("\n\n",),
                        progress=False)


class GroundTruth(TrainerCallback):
    """Greedy pass@1 of every question and the loss on the run's own mix at every save, appended to
    ``truth.jsonl``."""

    def __init__(self, path: Path, tokenizer: Any, records: list[ExpertRecord], decode: DecodeConfig,
                 mix_validation: TextDataset, batch_size: int) -> None:
        self.path, self.tokenizer, self.records, self.decode = path, tokenizer, records, decode
        self.mix_validation, self.batch_size = mix_validation, batch_size

    def on_save(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs["model"]
        result = evaluate_generative(model, self.tokenizer, self.records, config=self.decode)
        started = time.perf_counter()
        loss = validation_loss(model, self.mix_validation, self.batch_size)
        row = {"step": state.global_step, "tokens_seen": int(state.num_input_tokens_seen or 0),
               "correct": [int(q.correct_count) for q in result.questions], "seconds": result.wall_s,
               "generate_seconds": result.generate_s, "tokens_generated": result.tokens_generated,
               "val_loss_mix": loss, "val_loss_mix_seconds": time.perf_counter() - started}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def validation_loss(model: torch.nn.Module, dataset: TextDataset, batch_size: int) -> float:
    """Mean token loss (natural log, every predicted token weighted alike) of ``dataset``, in eval mode without
    gradients. No ``DataLoader``: making one draws from the global RNG, and training must not notice.

    Not the ``Trainer``'s ``eval_loss`` (evalcast's ``train.val_loss``): transformers 5 divides each batch's
    summed loss by a label count that includes every text's first, unpredicted token, and weighs a short last
    batch as a full one; compare each loss with itself across saves and runs, not the two with each other.
    """
    training = model.training
    model.eval()
    total, tokens = 0.0, 0
    try:
        with torch.no_grad():
            for start in range(0, len(dataset), batch_size):
                batch = TextDataset.collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
                n = int((batch["labels"][:, 1:] != -100).sum())
                total += float(model(**batch).loss) * n
                tokens += n
    finally:
        model.train(training)
    return total / tokens


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """All parameters, and non-embedding ones (token and position embeddings left out; the head is tied)."""
    total = sum(p.numel() for p in model.parameters())
    embedding = sum(p.numel() for n, p in model.named_parameters() if n.split(".")[-2] in ("wte", "wpe"))
    return total, total - embedding


def check_generation_room(tokenizer: Any, records: list[ExpertRecord], preset: Preset) -> None:
    """Fail before training when ``max_new_tokens`` could cut a correct solution (and its EOS) short."""
    longest = max(len(tokenizer(r.solution, add_special_tokens=False)["input_ids"]) for r in records)
    if longest + 1 > preset.max_new_tokens:
        raise ValueError(f"Preset.max_new_tokens={preset.max_new_tokens} is below the longest expert solution "
                         f"({longest} tokens + EOS); raise it to at least {longest + 1}")


def train_run(spec: RunSpec, preset: Preset, root: str | Path) -> Path:
    """Train one run (one thread) and write its run directory; returns it."""
    torch.set_num_threads(1)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    logging.getLogger("evalcast").setLevel(logging.ERROR)
    started, cpu_started = time.perf_counter(), time.process_time()
    out = Path(root) / spec.name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tokenizer = char_tokenizer(CHARSET)
    records = questions(preset)
    check_generation_room(tokenizer, records, preset)
    experts = ExpertSet(records, tokenizer, cache_dir=out / "cache", progress=False)
    model = tiny_gpt2(tokenizer, n_layer=spec.size.n_layer, n_embd=spec.size.n_embd, n_head=spec.size.n_head,
                      n_positions=preset.seq_length, seed=spec.seed)
    n_params, n_nonembedding = parameter_counts(model)
    if n_nonembedding != spec.size.n_nonembedding:
        raise RuntimeError(f"{spec.name}: {n_nonembedding} non-embedding parameters, Size says "
                           f"{spec.size.n_nonembedding}: update Size.n_nonembedding for this model class")
    anchors = AnchorConfig(every=preset.anchor_every, questions=preset.anchor_questions, decode=decode_config(preset))
    probe = ProbeConfig(heldout_fraction=preset.probe_heldout)
    (out / SPEC).write_text(json.dumps({
        "spec": spec.to_dict(), "preset": preset.name, "n_params": n_params, "n_nonembedding": n_nonembedding,
        "save_every": preset.save_every(spec), "anchor_every": preset.anchor_every,
        "anchor_questions": preset.anchor_questions, "probe": probe.to_dict(),
        "questions": [{"id": r.id, "task": r.task, "level": r.meta["difficulty"]} for r in records]}, indent=1))

    forecast = ForecastConfig(every=spec.forecast_every)
    monitor = Monitor(experts, run_dir=out / "evalcast", config=MonitorConfig(pad_multiple=16, save_features=True),
                      anchors=anchors, probe=probe, forecast=forecast)
    optimizer = torch.optim.AdamW(model.parameters(), lr=preset.lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(spec, preset))
    every = preset.save_every(spec)
    args = TrainingArguments(
        output_dir=str(out / "hf"), max_steps=spec.steps, per_device_train_batch_size=preset.batch_size,
        per_device_eval_batch_size=64, learning_rate=preset.lr, save_strategy="steps", save_steps=every,
        save_total_limit=1, save_only_model=True, eval_strategy="steps", eval_steps=every, logging_steps=every,
        prediction_loss_only=True, report_to=[], use_cpu=True, seed=spec.seed, disable_tqdm=True,
        include_num_input_tokens_seen="non_padding", dataloader_num_workers=0)
    common = TextDataset(tokenizer, common_validation_texts(preset), preset.seq_length)
    own_mix = TextDataset(tokenizer, mix_validation_texts(spec, preset), preset.seq_length)
    truth = GroundTruth(out / TRUTH, tokenizer, records, decode_config(preset), own_mix,
                        args.per_device_eval_batch_size)
    trainer = Trainer(model=model, args=args, train_dataset=MixStream(tokenizer, spec, preset),
                      eval_dataset=common, data_collator=TextDataset.collate, optimizers=(optimizer, scheduler),
                      callbacks=[TransformersCallback(monitor, log_to_trainer="none"), truth])
    trainer.remove_callback(PrinterCallback)
    with (out / "train.log").open("w") as log, redirect_stdout(log), redirect_stderr(log):
        trainer.train()
    shutil.rmtree(out / "hf", ignore_errors=True)
    meta = json.loads((out / SPEC).read_text())
    meta["wall_s"] = time.perf_counter() - started
    meta["cpu_s"] = time.process_time() - cpu_started
    (out / SPEC).write_text(json.dumps(meta, indent=1))
    return out
