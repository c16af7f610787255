"""Cost of the token statistics relative to the output-layer matmul they need anyway, eager and compiled.

    OMP_NUM_THREADS=1 python benchmarks/stats_kernel.py [--vocab 131072] [--hidden 768] [--repeats 7]

For one default-sized chunk (``StatsConfig().chunk_positions(vocab)`` positions), times (a) the fp32
matmul ``h·Wᵀ`` alone, (b) ``token_statistics`` eager and (c) ``token_statistics`` compiled, alternating
(a, b, c, a, ...) so that load from other jobs falls on all alike; ``ratio_*`` is the median of the
per-repeat ratios of wall times to (a) (``ratio_cpu_*``: of process CPU times, which other jobs on a
shared machine disturb less). The whole pass's ratio follows from the output layer's share of the model's
forward FLOPs: ``estimated_pass_ratio = 1 + (ratio − 1) × head_flops_share``, an estimate (both the
matmul and the statistics cost the same per logit, so the ratio measured at one vocabulary serves both; the
benchmark of the whole pass is ``benchmarks/proxy_cost.py``). Writes
``benchmarks/results/stats_kernel.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from evalcast.stats import StatsConfig, token_statistics

RESULTS = Path(__file__).resolve().parent / "results"


def head_flops_share(layers: int, hidden: int, vocab: int, seq: int) -> float:
    """Output-layer share of a Llama forward's matmul FLOPs per token (intermediate 2.6875·d, GQA with
    half the key/value heads, causal attention over ``seq`` positions on average half-way)."""
    attention_proj = 2 * hidden * hidden + 2 * hidden * hidden // 2
    mlp = 3 * hidden * int(hidden * 2.6875)
    scores = 2 * hidden * seq // 2
    body = layers * (attention_proj + mlp + scores)
    return hidden * vocab / (body + hidden * vocab)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=131072)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=str(RESULTS / "stats_kernel.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    n = StatsConfig().chunk_positions(args.vocab)
    weight = torch.randn(args.vocab, args.hidden) / args.hidden ** 0.5
    hidden = torch.randn(n, args.hidden)
    targets = torch.randint(0, args.vocab, (n,))
    methods = {"matmul": lambda: hidden @ weight.T,
               "eager": lambda: token_statistics(hidden, weight, None, targets, StatsConfig()),
               "compiled": lambda: token_statistics(hidden, weight, None, targets, StatsConfig(compile=True))}
    first = {}
    for name, run in methods.items():
        started = time.perf_counter()
        run()
        first[name] = time.perf_counter() - started
    times: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.repeats):
        for name, run in methods.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            run()
            times[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
    result = {"vocab": args.vocab, "hidden": args.hidden, "positions": n, "repeats": args.repeats,
              "threads": os.environ.get("OMP_NUM_THREADS"), "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(), "load_average_at_end": os.getloadavg(),
              "seconds": {k: statistics.median(v) for k, v in times.items()},
              "compile_s": max(0.0, first["compiled"] - statistics.median(times["compiled"]))}
    for mode in ("eager", "compiled"):
        ratio = statistics.median(c / m for c, m in zip(times[mode], times["matmul"], strict=True))
        result[f"ratio_{mode}"] = ratio
        result[f"ratio_cpu_{mode}"] = statistics.median(c / m for c, m in zip(cpu[mode], cpu["matmul"], strict=True))
        for vocab in (32768, 131072):
            share = head_flops_share(12, 768, vocab, 2048)
            result[f"estimated_pass_ratio_{mode}_12x768_vocab{vocab}"] = 1 + (ratio - 1) * share
    result["head_flops_share_12x768"] = {v: head_flops_share(12, 768, v, 2048) for v in (32768, 131072)}
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
