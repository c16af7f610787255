"""Wall time of evalcast's proxy pass and anchor evaluation against lm-eval's GSM8K task, same model and questions.

    OMP_NUM_THREADS=1 python benchmarks/speed_vs_lmeval.py [--questions 32] [--smoke]

The model is the one of ``benchmarks/ladder/speed.py`` (a Llama built from config with a byte-level BPE
trained on GSM8K train text), saved as a local Hugging Face checkpoint. On the first ``--questions``
GSM8K test questions, on this CPU and thread count, in CPU seconds of the process (``time.process_time``:
on a shared machine wall time mostly measures the other jobs; ``*_wall_s`` keep it):

* ``proxy_s``: ``Monitor.evaluate`` without anchors (every statistic and weighting, probe features);
* ``anchor_s``: what a ``Monitor.evaluate`` with an anchor on every question (greedy, at most 256 new
  tokens, the expert set's prompt format) costs beyond ``proxy_s``;
* ``lmeval_s``: ``lm_eval.simple_evaluate`` with lm-eval's own ``gsm8k`` configuration (5-shot
  "Question: … Answer:" prompts from the train split, ``until`` = its stop strings, greedy,
  ``max_gen_toks`` 256) through its ``hf`` model class on the saved checkpoint, the dataset read from the
  local JSON files instead of the Hub; ``lmeval_generate_s`` is its part spent in ``generate`` (the rest
  loads the checkpoint and the data set and builds the prompts), ``lmeval_context_tokens_mean`` the
  5-shot prompt length per question, padding included.

The model is untrained: it does not learn to stop, so generations run to the limit (``lmeval_at_limit``
counts lm-eval's rows that neither wrote a stop string nor the end-of-text token, ``lmeval_tokens_decoded``
the tokens it decoded; ``anchor_tokens_generated`` is evalcast's count) and pass@1 is 0 on both sides;
the times are what an early checkpoint costs. Writes ``benchmarks/results/speed_vs_lmeval.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from benchmarks.ladder.speed import GSM8K, SMOKE, SpeedConfig, bpe_tokenizer

RESULTS = Path(__file__).resolve().parent / "results"
MAX_GEN_TOKS = 256

TASK_YAML = """task: evalcast_gsm8k_local
dataset_path: json
dataset_name: null
dataset_kwargs:
  data_files:
    train: {train}
    test: {test}
output_type: generate_until
training_split: train
fewshot_split: train
test_split: test
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    ignore_punctuation: false
    regexes_to_ignore: [",", "\\\\$", "(?s).*#### ", "\\\\.$"]
generation_kwargs:
  until: ["Question:", "</s>", "<|im_end|>"]
  do_sample: false
  temperature: 0.0
  max_gen_toks: {max_gen_toks}
repeats: 1
num_fewshot: 5
filter_list:
  - name: "strict-match"
    filter:
      - function: "regex"
        regex_pattern: "#### (\\\\-?[0-9\\\\.\\\\,]+)"
      - function: "take_first"
"""
"""lm-eval's ``gsm8k.yaml`` (v3.0), its dataset read from local files (and its ``flexible-extract`` filter
left out: pass@1 here is the strict match, as evalcast's anchors grade the ``####`` answer)."""


def build(config: SpeedConfig, directory: Path) -> tuple[Any, Any]:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer = bpe_tokenizer(config.vocab, config.tokenizer_texts)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden, intermediate_size=config.intermediate,
        num_hidden_layers=config.layers, num_attention_heads=config.heads, num_key_value_heads=config.kv_heads,
        max_position_embeddings=2048, tie_word_embeddings=False, bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model, tokenizer


def evalcast_times(model: Any, tokenizer: Any, questions: int, gen_batch: int, tmp: Path) -> dict[str, Any]:
    from evalcast import AnchorConfig, ExpertSet, Monitor
    from evalcast.generate import DecodeConfig
    from evalcast.tasks import load_gsm8k

    records = load_gsm8k(GSM8K / "test.jsonl", limit=questions)
    experts = ExpertSet(records, tokenizer, cache_dir=tmp / "cache", progress=False)
    started = time.process_time()
    assert Monitor(experts, run_dir=tmp / "plain", forecast=None).evaluate(model, 1).ok
    proxy_s = time.process_time() - started
    decode = DecodeConfig(max_new_tokens=MAX_GEN_TOKS, batch_size=gen_batch, progress=False)
    monitor = Monitor(experts, run_dir=tmp / "anchored", forecast=None,
                      anchors=AnchorConfig(every=1, questions=questions, decode=decode))
    started = time.process_time()
    record = monitor.evaluate(model, 1).record
    anchored_s = time.process_time() - started
    assert record is not None and record.anchor is not None, "the anchor did not run"
    scores = list(record.anchor.per_question.values())
    return {"proxy_s": proxy_s, "anchor_s": max(0.0, anchored_s - proxy_s), "anchor_wall_s": record.anchor.seconds,
            "anchor_questions": record.anchor.questions,
            "anchor_pass_at_1": sum(scores) / len(scores), "anchor_tokens_generated": record.anchor.tokens_generated}


def lmeval_times(directory: Path, questions: int, gen_batch: int, tmp: Path) -> dict[str, Any]:
    import lm_eval
    from lm_eval.tasks import TaskManager

    test = tmp / "test.jsonl"
    test.write_text("".join((GSM8K / "test.jsonl").read_text().splitlines(keepends=True)[:questions]))
    tasks = tmp / "tasks"
    tasks.mkdir()
    (tasks / "evalcast_gsm8k_local.yaml").write_text(TASK_YAML.format(train=GSM8K / "train.jsonl", test=test,
                                                                      max_gen_toks=MAX_GEN_TOKS))
    generations: dict[str, Any] = {"rows": [], "generate_s": 0.0, "context_tokens": 0}
    with recorded_generations(generations):
        started, wall = time.process_time(), time.perf_counter()
        out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={directory},dtype=float32",
                                      tasks=["evalcast_gsm8k_local"],
                                      task_manager=TaskManager(include_path=str(tasks)), batch_size=gen_batch,
                                      device="cpu", log_samples=True)
        lmeval_s, lmeval_wall_s = time.process_time() - started, time.perf_counter() - wall
    samples = out["samples"]["evalcast_gsm8k_local"]
    result = out["results"]["evalcast_gsm8k_local"]
    return {"lmeval_s": lmeval_s, "lmeval_wall_s": lmeval_wall_s, "lmeval_questions": len(samples),
            "lmeval_pass_at_1": result.get("exact_match,strict-match"),
            "lmeval_at_limit": sum(not stopped for _, stopped in generations["rows"]),
            "lmeval_tokens_decoded": sum(n for n, _ in generations["rows"]),
            "lmeval_generate_s": generations["generate_s"],
            "lmeval_context_tokens_mean": generations["context_tokens"] / max(len(generations["rows"]), 1)}


@contextlib.contextmanager
def recorded_generations(into: dict[str, Any]) -> Iterator[None]:
    """Record, per generated row of lm-eval's ``hf`` model, the tokens decoded and whether it stopped
    (``rows``), the CPU seconds spent in generation (``generate_s``: the rest of ``lmeval_s`` is loading
    the checkpoint and the data set and building the prompts) and the prompt tokens, padding included.

    A row stopped when its continuation holds the end-of-text token or one of the stop strings; one that
    did not ran to ``max_gen_toks`` (a batch only ends early once every row in it stopped). Counting from
    the tokens themselves: re-tokenizing the returned text does not give the generated length back (an
    untrained byte-level model writes partial UTF-8 characters, which decode to replacement characters).
    """
    from lm_eval.models.huggingface import HFLM

    original = HFLM._model_generate

    def recording(self: Any, context: torch.Tensor, max_length: int, stop: list[str], **kwargs: Any) -> torch.Tensor:
        started = time.process_time()
        out = original(self, context, max_length, stop, **kwargs)
        into["generate_s"] += time.process_time() - started
        into["context_tokens"] += context.numel()
        for row in out[:, context.shape[1]:].tolist():
            text = self.tok_decode(row, skip_special_tokens=False)
            into["rows"].append((len(row), self.eot_token_id in row or any(s in text for s in stop)))
        return out

    HFLM._model_generate = recording
    try:
        yield
    finally:
        HFLM._model_generate = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--smoke", action="store_true", help="the tiny model of ladder/speed.py --smoke")
    parser.add_argument("--out", default=str(RESULTS / "speed_vs_lmeval.json"))
    args = parser.parse_args()
    logging.getLogger("evalcast").setLevel(logging.ERROR)
    config = SMOKE if args.smoke else SpeedConfig()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model, tokenizer = build(config, tmp / "checkpoint")
        row = {**evalcast_times(model, tokenizer, args.questions, config.gen_batch, tmp),
               **lmeval_times(tmp / "checkpoint", args.questions, config.gen_batch, tmp)}
    row.update(questions=args.questions, model_params=sum(p.numel() for p in model.parameters()),
               model={k: v for k, v in config.__dict__.items() if k != "questions"}, max_gen_toks=MAX_GEN_TOKS,
               lmeval_over_proxy=row["lmeval_s"] / row["proxy_s"],
               lmeval_over_anchor=row["lmeval_s"] / row["anchor_s"],
               lmeval_over_proxy_plus_anchor=row["lmeval_s"] / (row["proxy_s"] + row["anchor_s"]), device="cpu",
               threads=os.environ.get("OMP_NUM_THREADS"), torch=torch.__version__,
               machine=platform.processor() or platform.machine(), load_average_at_end=os.getloadavg(),
               wall_s=time.perf_counter() - started, smoke=args.smoke)
    print(json.dumps(row, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
