"""Wall time of evalcast's proxy pass against a greedy generative evaluation of the same GSM8K questions.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ladder/speed.py [--smoke] [--questions 256]

A byte-level BPE tokenizer (8k vocabulary) is trained on GSM8K train text with ``tokenizers``; a Llama of
~17M parameters (10.6M non-embedding) is built from config, untrained. An untrained model's generation
would stop at random, so its length is fixed instead: questions are sorted by the token length of their
expert solution and cut into batches, and each batch generates exactly as many new tokens as the longest
solution in it (``min_new_tokens = max_new_tokens``): what a model that solves the question would
produce. Both sides run the same model on the same device and thread count; the proxy side is
``Monitor.evaluate`` (every statistic and weighting, probe features, records written; one call: a second
one measured no faster). Writes ``benchmarks/results/ladder_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import torch

from benchmarks.ladder.config import REPO, RESULTS
from benchmarks.ladder.measures import clean

GSM8K = next((d / "shared" / "data" / "gsm8k" for d in REPO.parents if (d / "shared" / "data" / "gsm8k").is_dir()),
             REPO.parent / "shared" / "data" / "gsm8k")
"""``../shared/data/gsm8k`` beside the repository, or beside a folder above it (a git worktree's checkout)."""


@dataclass(frozen=True)
class SpeedConfig:
    questions: int = 256
    vocab: int = 8000
    hidden: int = 384
    layers: int = 6
    heads: int = 6
    kv_heads: int = 2
    intermediate: int = 1024
    gen_batch: int = 32
    tokenizer_texts: int | None = None
    """GSM8K train rows the tokenizer learns from (None: all)."""


SMOKE = SpeedConfig(questions=8, vocab=1000, hidden=64, layers=2, heads=2, kv_heads=1, intermediate=128, gen_batch=4,
                    tokenizer_texts=500)


def bpe_tokenizer(vocab: int, limit: int | None) -> Any:
    """A byte-level BPE trained on GSM8K train questions and solutions."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rows = [json.loads(line) for line in (GSM8K / "train.jsonl").read_text().splitlines()[:limit]]
    backend = Tokenizer(models.BPE(unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator((t for r in rows for t in (r["question"], r["answer"])), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", bos_token="<eos>")


def measure(config: SpeedConfig) -> dict[str, Any]:
    """Both wall times on this machine (one thread), with the sizes that explain them."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from evalcast.data import ExpertSet
    from evalcast.data.table import EXPERT
    from evalcast.generate import DecodeConfig, evaluate_generative
    from evalcast.monitor import Monitor, MonitorConfig
    from evalcast.probe import ProbeConfig
    from evalcast.tasks import load_gsm8k

    torch.set_num_threads(1)
    torch.manual_seed(0)
    tokenizer = bpe_tokenizer(config.vocab, config.tokenizer_texts)
    records = load_gsm8k(GSM8K / "test.jsonl", limit=config.questions)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden, intermediate_size=config.intermediate,
        num_hidden_layers=config.layers, num_attention_heads=config.heads, num_key_value_heads=config.kv_heads,
        max_position_embeddings=1024, tie_word_embeddings=False, bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)).eval()
    n_params = sum(p.numel() for p in model.parameters())
    n_embedding = model.get_input_embeddings().weight.numel() + model.get_output_embeddings().weight.numel()
    with tempfile.TemporaryDirectory() as tmp:
        experts = ExpertSet(records, tokenizer, cache_dir=Path(tmp) / "cache", progress=False)
        table = experts.table
        rows = np.flatnonzero(table.kind == EXPERT)
        solution = {experts.records[table.record_index[i]].id: int(table.scored_lengths[i]) for i in rows}
        prompt_tokens = [int(table.lengths[i] - table.scored_lengths[i]) for i in rows]
        monitor = Monitor(experts, run_dir=Path(tmp) / "run", probe=ProbeConfig(), forecast=None)
        started = time.perf_counter()
        monitor.evaluate(model, 1)
        proxy_s = time.perf_counter() - started

        ordered = sorted(records, key=lambda r: solution[r.id])
        generate_s, generated = 0.0, 0
        for start in range(0, len(ordered), config.gen_batch):
            batch = ordered[start:start + config.gen_batch]
            length = max(solution[r.id] for r in batch)
            model.generation_config.min_new_tokens = length
            decode = DecodeConfig(max_new_tokens=length, batch_size=len(batch), progress=False)
            result = evaluate_generative(model, tokenizer, batch, config=decode)
            generate_s += result.wall_s
            generated += result.tokens_generated
    lengths = np.array(list(solution.values()))
    return clean({
        "questions": len(records), "solution_tokens_mean": float(lengths.mean()),
        "solution_tokens_max": int(lengths.max()),
        "prompt_tokens_mean": float(np.mean(prompt_tokens)), "tokens_generated": generated,
        "tokens_generated_over_solution_tokens": generated / float(lengths.sum()),
        "model": {"kind": "Llama (untrained, from config)", "params": n_params,
                  "non_embedding_params": n_params - n_embedding, "vocab": len(tokenizer), **config.__dict__},
        "device": f"CPU ({platform.processor() or platform.machine()}), 1 thread, torch {torch.__version__}",
        "proxy_batch": f"MonitorConfig() default: up to {MonitorConfig().max_tokens} padded tokens per forward",
        "generation_batch": config.gen_batch,
        "proxy_s": proxy_s, "generate_s": generate_s, "speedup": generate_s / proxy_s,
        "note": "generation length fixed at each batch's longest expert solution (an untrained model); greedy, "
                "KV cache on; the proxy time covers every statistic, weighting and probe features"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny model, 8 questions")
    parser.add_argument("--questions", type=int, help="GSM8K test questions (default 256)")
    parser.add_argument("--out", type=Path, default=RESULTS / "ladder_speed.json")
    args = parser.parse_args()
    config = SMOKE if args.smoke else SpeedConfig()
    if args.questions:
        config = SpeedConfig(**{**config.__dict__, "questions": args.questions})
    result = measure(config)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"{result['questions']} GSM8K questions, solutions {result['solution_tokens_mean']:.0f} tokens on average "
          f"(max {result['solution_tokens_max']}), model {result['model']['params'] / 1e6:.1f}M params on "
          f"{result['device']}: proxy pass {result['proxy_s']:.1f} s, generation {result['generate_s']:.1f} s, "
          f"speedup {result['speedup']:.1f}x → {args.out}")


if __name__ == "__main__":
    main()
