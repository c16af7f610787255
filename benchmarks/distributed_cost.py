"""The proxy pass's time with 1 and 2 processes on the same expert set (each rank scores its shard).

    OMP_NUM_THREADS=1 python benchmarks/distributed_cost.py

Launches ``torchrun --nproc_per_node N`` for N = 1 and 2 on a GPT-2 built from config (~3M parameters,
character tokenizer) and 300 GSM8K solutions from ../shared/data; each launch evaluates 4 times after a
warm-up and reports the slowest rank's forward-pass seconds (it bounds the checkpoint). Writes
``benchmarks/results/distributed_cost.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SOLUTIONS, REPEATS = 300, 4


def worker(out: Path) -> None:
    import torch
    import torch.distributed as dist

    from evalcast import ExpertSet, Monitor, MonitorConfig
    from evalcast.tasks import load_gsm8k
    from evalcast.toy import char_tokenizer, tiny_gpt2

    if "RANK" in os.environ:
        dist.init_process_group("gloo")
    torch.set_num_threads(1)
    records = load_gsm8k(ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl")[:SOLUTIONS]
    alphabet = sorted({c for r in records for c in r.prompt + r.solution})
    tok = char_tokenizer("".join(alphabet))
    experts = ExpertSet(records, tok, cache_dir=out / "cache", progress=False)
    model = tiny_gpt2(tok, n_layer=4, n_embd=256, n_head=4, n_positions=1024).eval()
    world = dist.get_world_size() if dist.is_initialized() else 1
    monitor = Monitor(experts, run_dir=out / f"run{world}", config=MonitorConfig(max_tokens=8192, save_examples=False),
                      forecast=None)
    rank = dist.get_rank() if dist.is_initialized() else 0
    seconds, walls = [], []
    for step in range(REPEATS + 1):
        started = time.perf_counter()
        evaluation = monitor.evaluate(model, step)
        walls.append(time.perf_counter() - started)
        if step and rank == 0 and evaluation.ok:  # merged metrics exist on rank 0 only
            seconds.append(evaluation.metrics["evalcast/cost/forward_seconds"])  # the slowest rank's
    if rank == 0:
        (out / f"world{world}.json").write_text(json.dumps(
            {"world": world, "forward_seconds": seconds, "wall_seconds": walls[1:],
             "tokens_scored": int(experts.table.scored_lengths.sum()), "sequences": experts.table.n_seq,
             "params": sum(p.numel() for p in model.parameters())}))
    if dist.is_initialized():
        dist.destroy_process_group()


def main() -> None:
    out = Path(os.environ.get("TMPDIR", "/tmp")) / "evalcast-distributed-cost"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rows = {}
    for world in (1, 2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(world),
                        "--master_port", str(port), __file__, "--worker", str(out)], check=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
        rows[world] = json.loads((out / f"world{world}.json").read_text())
        print(f"{world} process(es): forward pass {statistics.median(rows[world]['forward_seconds']):.2f} s "
              f"(median of {len(rows[world]['forward_seconds'])}), whole evaluation "
              f"{statistics.median(rows[world]['wall_seconds']):.2f} s")
    ratio = statistics.median(rows[2]["forward_seconds"]) / statistics.median(rows[1]["forward_seconds"])
    print(f"2-process / 1-process forward time: {ratio:.2f} (ideal 0.50) on {os.cpu_count()} cores")
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"ratio_2_over_1": ratio, "cores": os.cpu_count(), "runs": rows}
    (RESULTS / "distributed_cost.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {RESULTS / 'distributed_cost.json'}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        worker(Path(sys.argv[2]))
    else:
        main()
