"""Share of training wall time that evalcast adds, by evaluation cadence, with and without anchors (an estimate).

    OMP_NUM_THREADS=1 python benchmarks/overhead.py [--setups ladder,12x768] [--questions 8]
        [--anchor-questions 4] [--merge]

Two setups, each on this machine and thread count:

* ``ladder``: the ladder's largest size (GPT-2, 4 layers × 96, character vocabulary), its training batch
  (32 × 96 tokens), its run length (1,800 steps) and its expert set (240 questions with negatives); anchors
  as the ladder runs them (192 questions, at most 60 new tokens).
* ``12x768``: a Llama of 12 layers × 768 with a 32k BPE vocabulary (trained on GSM8K), 256 GSM8K test
  questions as the expert set, training sequences of 1,024 tokens (shorter than a real run's, so attention
  costs less and the overhead comes out higher), and a compute-optimal run of 20 tokens per parameter;
  anchors at the defaults (256 questions, at most 256 new tokens), measured on ``--anchor-questions``
  (4 by default) in one batch (batches of 32, the default, decode more cheaply per question than smaller
  ones: below 32 the scaled anchor cost is an upper bound).

Measured in CPU seconds of the process (``time.process_time``: the machine is shared, and CPU time is far
less sensitive to other jobs than wall time): the seconds per training token (AdamW steps after one
warm-up) and, per save, a ``Monitor.evaluate`` without anchors (``proxy_s``) and the extra seconds of one
with an anchor at that save (``anchor_s``). The models are untrained: how much they generate
(``anchor_tokens_generated_measured``) is not what a trained model writes. The character-level ladder
model stops after a few characters (its anchors cost less than a trained model's); the 12x768 model does
not stop and runs to the token limit (an upper bound).
Where the measurement used fewer questions than the setup's (``--questions``, to keep the script short on
a shared CPU), the time is scaled linearly to the full count (``*_scale``). The overhead at cadence c (an
evaluation every c of the run, 1/c evaluations) is estimated as evaluations × per-save seconds / (run
tokens × seconds per training token), for no anchors, anchors at every 4th save (the default) and anchors
at every save. The ratio transfers to other hardware only as far as training and evaluation speed up alike
(on GPUs generation is latency-bound and gains less). Writes ``benchmarks/results/overhead.json``
(``--merge``: keeping its rows of the setups not measured in this run).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

RESULTS = Path(__file__).resolve().parent / "results"
CADENCES = (0.01, 0.02, 0.05)


@dataclass
class Setup:
    name: str
    model: Any
    tokenizer: Any
    records: list
    train_ids: torch.Tensor
    run_tokens: int
    run_tokens_why: str
    expert_questions: int
    """Expert-set questions of the setup (``records`` may hold fewer: the proxy time is scaled)."""
    anchor_questions: int
    max_new_tokens: int
    measured_anchor_questions: int


def ladder_setup(questions: int | None) -> Setup:
    from benchmarks.ladder.config import full
    from benchmarks.ladder.data import questions as ladder_questions
    from evalcast.tasks import CHARSET
    from evalcast.toy import char_tokenizer, tiny_gpt2

    preset = full()
    size = max((r.size for r in preset.runs), key=lambda s: s.n_nonembedding)
    spec = next(r for r in preset.runs if r.size == size)
    tokenizer = char_tokenizer(CHARSET)
    records = ladder_questions(preset)
    model = tiny_gpt2(tokenizer, n_layer=size.n_layer, n_embd=size.n_embd, n_head=size.n_head,
                      n_positions=preset.seq_length, seed=0)
    ids = torch.randint(0, len(tokenizer), (preset.batch_size, preset.seq_length),
                        generator=torch.Generator().manual_seed(0))
    anchors = min(preset.anchor_questions, questions or preset.anchor_questions)
    return Setup("ladder", model, tokenizer, records, ids, spec.steps * preset.batch_size * preset.seq_length,
                 f"the ladder's run: {spec.steps} steps x {preset.batch_size} x {preset.seq_length} tokens",
                 len(records), preset.anchor_questions, preset.max_new_tokens, anchors)


def realistic_setup(questions: int | None, anchor_questions: int = 4) -> Setup:
    from transformers import LlamaConfig, LlamaForCausalLM

    from benchmarks.ladder.speed import GSM8K, bpe_tokenizer
    from evalcast.tasks import load_gsm8k

    full_questions = 256
    measured = min(full_questions, questions or full_questions)
    tokenizer = bpe_tokenizer(32768, 4000)
    records = load_gsm8k(GSM8K / "test.jsonl", limit=measured)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=768, intermediate_size=2064, num_hidden_layers=12,
        num_attention_heads=12, num_key_value_heads=6, max_position_embeddings=2048, tie_word_embeddings=False,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    params = sum(p.numel() for p in model.parameters())
    ids = torch.randint(0, len(tokenizer), (1, 1024), generator=torch.Generator().manual_seed(0))
    return Setup("12x768", model, tokenizer, records, ids, 20 * params,
                 f"compute-optimal: 20 tokens per parameter ({params} parameters)", full_questions,
                 full_questions, 256, min(measured, anchor_questions))


def seconds_per_token(setup: Setup, steps: int) -> float:
    """CPU seconds per training token (median over steps after one warm-up)."""
    model = setup.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for step in range(steps + 1):
        started = time.process_time()
        model(input_ids=setup.train_ids, labels=setup.train_ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:  # the first step allocates the optimizer state
            times.append(time.process_time() - started)
    return statistics.median(times) / setup.train_ids.numel()


def evaluation_seconds(setup: Setup) -> tuple[float, float, int]:
    """CPU seconds of one save without anchors, of the anchor on top of it, and the tokens it generated."""
    from evalcast import AnchorConfig, ExpertSet, Monitor
    from evalcast.generate import DecodeConfig

    model = setup.model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        experts = ExpertSet(setup.records, setup.tokenizer, cache_dir=Path(tmp) / "cache", progress=False)
        plain = Monitor(experts, run_dir=Path(tmp) / "plain", forecast=None)
        started = time.process_time()
        assert plain.evaluate(model, 1).ok
        proxy_s = time.process_time() - started
        decode = DecodeConfig(max_new_tokens=setup.max_new_tokens, batch_size=32, progress=False)
        anchored = Monitor(experts, run_dir=Path(tmp) / "anchored", forecast=None,
                           anchors=AnchorConfig(every=1, questions=setup.measured_anchor_questions, decode=decode))
        started = time.process_time()
        record = anchored.evaluate(model, 1).record
        anchored_s = time.process_time() - started
        assert record is not None and record.anchor is not None, "the anchor did not run"
        return proxy_s, max(0.0, anchored_s - proxy_s), record.anchor.tokens_generated


def measure(setup: Setup, train_steps: int) -> dict[str, Any]:
    per_token = seconds_per_token(setup, train_steps)
    proxy_measured, anchor_measured, generated = evaluation_seconds(setup)
    proxy_scale = setup.expert_questions / len(setup.records)
    anchor_scale = setup.anchor_questions / setup.measured_anchor_questions
    proxy_s, anchor_s = proxy_measured * proxy_scale, anchor_measured * anchor_scale
    train_s = setup.run_tokens * per_token
    table = []
    for cadence in CADENCES:
        evaluations = round(1 / cadence)
        table.append({"cadence": cadence, "evaluations": evaluations,
                      "no_anchors": evaluations * proxy_s / train_s,
                      "anchors_every_4th": evaluations * (proxy_s + anchor_s / 4) / train_s,
                      "anchors_every_save": evaluations * (proxy_s + anchor_s) / train_s})
    params = sum(p.numel() for p in setup.model.parameters())
    return {"setup": setup.name, "params": params, "train_tokens_per_step": setup.train_ids.numel(),
            "train_s_per_token": per_token, "run_tokens": setup.run_tokens, "run_tokens_why": setup.run_tokens_why,
            "run_train_s_estimate": train_s, "expert_questions": setup.expert_questions,
            "expert_questions_measured": len(setup.records), "proxy_s_measured": proxy_measured,
            "proxy_scale": proxy_scale,
            "proxy_s": proxy_s, "anchor_questions": setup.anchor_questions,
            "anchor_questions_measured": setup.measured_anchor_questions, "anchor_scale": anchor_scale,
            "anchor_s_measured": anchor_measured, "anchor_tokens_generated_measured": generated,
            "max_new_tokens": setup.max_new_tokens, "anchor_s": anchor_s, "overhead": table, "estimate": True}


def kept_rows(path: Path, measured: list[str]) -> list[dict[str, Any]]:
    """The rows of an earlier result for setups not measured now (``--merge``).

    The file's top-level ``wall_s`` and ``load_average_at_end`` describe the run that wrote it: a row
    without its own gets them, so that they stay with it once the file holds rows of several runs.
    """
    if not path.is_file():
        return []
    earlier = json.loads(path.read_text())
    rows = [r for r in earlier.get("rows", []) if r.get("setup") not in measured]
    for row in rows:
        for key in ("wall_s", "load_average_at_end"):
            if key not in row and key in earlier:
                row[key] = earlier[key]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setups", default="ladder,12x768")
    parser.add_argument("--questions", type=int, default=8,
                        help="GSM8K questions measured for the 12x768 setup (scaled to 256)")
    parser.add_argument("--anchor-questions", type=int, default=4,
                        help="anchor questions measured for the 12x768 setup, in one batch (scaled to 256)")
    parser.add_argument("--train-steps", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "overhead.json"))
    parser.add_argument("--merge", action="store_true",
                        help="keep the rows of --out for setups not measured now (each row keeps its run's wall time "
                             "and load average)")
    args = parser.parse_args()
    logging.getLogger("evalcast").setLevel(logging.ERROR)
    torch.manual_seed(0)
    builders = {"ladder": ladder_setup, "12x768": lambda q: realistic_setup(q, args.anchor_questions)}
    kept = kept_rows(Path(args.out), args.setups.split(",")) if args.merge else []
    started, rows = time.perf_counter(), []
    for name in args.setups.split(","):
        setup_started = time.perf_counter()
        row = measure(builders[name](args.questions), args.train_steps)
        row.update(wall_s=time.perf_counter() - setup_started, load_average_at_end=os.getloadavg())
        rows.append(row)
        print(f"{name}: {row['train_s_per_token'] * 1e3:.3f} ms/train token, proxy {row['proxy_s']:.1f} s, "
              f"anchor {row['anchor_s']:.1f} s per save (scaled), run {row['run_train_s_estimate'] / 3600:.1f} h")
        for t in row["overhead"]:
            print(f"  every {t['cadence']:.0%}: no anchors {t['no_anchors']:.2%}, anchors every 4th "
                  f"{t['anchors_every_4th']:.2%}, every save {t['anchors_every_save']:.2%}", flush=True)
        result = {"device": "cpu", "threads": os.environ.get("OMP_NUM_THREADS"), "torch": torch.__version__,
                  "machine": platform.processor() or platform.machine(), "load_average_at_end": os.getloadavg(),
                  "wall_s": time.perf_counter() - started, "estimate": "per-save evaluation seconds / (run tokens x "
                  "measured seconds per training token); untrained models: anchor lengths are not a trained model's",
                  "rows": kept + rows}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
