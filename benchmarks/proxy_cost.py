"""Time and peak memory of evalcast's proxy pass against a bare forward pass over the same tokens.

    OMP_NUM_THREADS=1 python benchmarks/proxy_cost.py [--quick | --realistic] [--modes eager,compiled]
        [--min-chunk-positions N] [--device cuda --autocast]
    OMP_NUM_THREADS=1 python benchmarks/proxy_cost.py --chunk-sweep 1,256,512

Shapes: the original head-heavy model (4 layers × 512) with vocabularies of 32k and 128k and sequence
lengths 512 and 2048 (4,096 tokens per batch), and a model with a realistic head share (12 layers × 768,
vocabularies 32k and 128k, one 2,048-token sequence). A Llama built from config runs (a)
``model(input_ids).logits`` and (b) evalcast's teacher-forced pass with every statistic over every
position but the prompt's, once with the eager statistics and once with ``StatsConfig(compile=True)``.

Each shape runs in a fresh process; after one untimed warm-up of each method (the compiled one pays its
compilation there: ``compile_s`` is that warm-up minus the median compiled pass), the methods alternate
(bare, eager, compiled, bare, ...) so that load from other jobs hits all of them alike, and
``ratio_time`` is the median over repeats of the per-repeat ratio of wall times (``ratio_cpu_time``: of
the process's CPU times, which other jobs disturb less). Peak memory is the resident-set
high-water mark during the first timed pass (reset through /proc/self/clear_refs; glibc is told to map
every allocation of 64 KiB or more on its own, so freed memory goes back to the system and one method's
peak is not hidden in another's leftovers) or ``torch.cuda.max_memory_allocated``, minus what was
resident before. Writes ``benchmarks/results/proxy_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
#: (layers, hidden, vocab, seq, batch, realistic head share)
GRID = [(12, 768, 32768, 2048, 1, True), (12, 768, 131072, 2048, 1, True), (4, 512, 32768, 512, 8, False),
        (4, 512, 32768, 2048, 2, False), (4, 512, 131072, 512, 8, False), (4, 512, 131072, 2048, 2, False)]
TARGET = 1.10


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise RuntimeError(field)


def measure(layers: int, hidden: int, vocab: int, seq: int, batch: int, modes: list[str], device: str, dtype: str,
            repeats: int, autocast: bool = False, min_positions: int | None = None) -> dict:
    """Every method on one shape, in this (fresh) process."""
    import numpy as np
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from evalcast.data import ExpertRecord, ExpertSet, PromptConfig, TokenizeConfig
    from evalcast.stats import StatsConfig, StatsTap, check_compatible, run_forward

    positions = StatsConfig().min_chunk_positions if min_positions is None else min_positions

    def stats_config(compile: bool) -> StatsConfig:
        return StatsConfig(compile=compile, min_chunk_positions=positions)

    torch.manual_seed(0)
    words = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{f"w{i}": i for i in range(3, vocab)}}
    backend = Tokenizer(models.WordLevel(vocab=words, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    rng = torch.Generator().manual_seed(0)
    records = []
    for i in range(batch):
        ids = torch.randint(3, vocab, (seq - 1,), generator=rng).tolist()
        records.append(ExpertRecord(prompt=" ".join(f"w{t}" for t in ids[:32]),
                                    solution=" " + " ".join(f"w{t}" for t in ids[32:]), id=str(i)))
    experts = ExpertSet(records, tok, cache_dir=Path(os.environ.get("TMPDIR", "/tmp")) / "evalcast-bench-cache",
                        progress=False,  # the solution starts with its own space: no separator token
                        config=TokenizeConfig(prompt_format=PromptConfig(separator="")))
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=int(hidden * 2.6875),
                         num_hidden_layers=layers, num_attention_heads=hidden // 64, num_key_value_heads=hidden // 128,
                         max_position_embeddings=seq, tie_word_embeddings=False)
    dev = torch.device(device)
    model = LlamaForCausalLM(config).to(dev, getattr(torch, dtype)).eval()
    plans = experts.batches(max_tokens=seq * batch, pad_multiple=64)
    assert len(plans) == 1 and len(plans[0].rows) == batch, plans
    ids = torch.as_tensor([list(experts.table.sequence(i)) for i in range(batch)], device=dev)
    head = check_compatible(model, vocab_size=experts.vocab_size, longest=seq)
    sums: dict[str, np.ndarray] = {}

    low = torch.bfloat16 if autocast else None

    def bare() -> None:
        with torch.autocast(dev.type, dtype=low, enabled=autocast):
            model(input_ids=ids, use_cache=False).logits.sum().item()

    def proxy(mode: str) -> None:
        tap = StatsTap(experts, head, stats_config(compile=mode == "compiled"), dev)
        sums[mode] = run_forward(model, experts, plans, tap, device=dev, autocast_dtype=low).sums

    methods = {"bare": bare, **{mode: (lambda mode=mode: proxy(mode)) for mode in modes}}
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def timed(run) -> tuple[float, int, float]:
        if dev.type == "cuda":
            sync()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        else:
            base = _rss_kib("VmRSS:")
            Path("/proc/self/clear_refs").write_text("5")
        start, cpu = time.perf_counter(), time.process_time()
        run()
        sync()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        peak = (torch.cuda.max_memory_allocated() - base if dev.type == "cuda"
                else (_rss_kib("VmHWM:") - base) * 1024)
        return seconds, int(peak), cpu

    with torch.no_grad():
        warmup = {name: timed(run)[0] for name, run in methods.items()}
        times: dict[str, list[float]] = {name: [] for name in methods}
        cpu_times: dict[str, list[float]] = {name: [] for name in methods}
        peaks: dict[str, int] = {}
        for r in range(repeats):
            for name, run in methods.items():
                seconds, peak, cpu = timed(run)
                times[name].append(seconds)
                cpu_times[name].append(cpu)
                if r == 0:
                    peaks[name] = peak
    head_params = head.module.weight.numel()
    params = sum(p.numel() for p in model.parameters())
    rows = []
    for mode in modes:
        ratios = [p / b for p, b in zip(times[mode], times["bare"], strict=True)]
        median = statistics.median(times[mode])
        rows.append({
            "shape": f"{layers}x{hidden} vocab {vocab} seq {seq} batch {batch}", "mode": mode,
            "ratio_time": statistics.median(ratios),
            "ratio_cpu_time": statistics.median(p / b for p, b in zip(cpu_times[mode], cpu_times["bare"], strict=True)),
            "ratio_peak_mem": peaks[mode] / peaks["bare"],
            "compile_s": max(0.0, warmup[mode] - median) if mode == "compiled" else 0.0,
            "min_chunk_positions": positions, "chunk_positions": stats_config(False).chunk_positions(vocab),
            "layers": layers, "hidden": hidden, "vocab": vocab, "seq": seq, "batch": batch, "params": params,
            "head_params_share": head_params / (params - model.get_input_embeddings().weight.numel()),
            "bare_s": statistics.median(times["bare"]), "proxy_s": median, "bare_all_s": times["bare"],
            "proxy_all_s": times[mode], "ratios": ratios, "bare_peak_bytes": peaks["bare"],
            "proxy_peak_bytes": peaks[mode], "warmup_s": warmup[mode],
            "scored_tokens": int(experts.table.scored_lengths.sum()),
            "max_rel_diff_vs_eager": (float(np.max(np.abs(sums[mode] - sums["eager"])
                                                   / np.maximum(np.abs(sums["eager"]), 1e-6)))
                                      if "eager" in sums else None)})
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--autocast", action="store_true", help="run both passes under bf16 autocast")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default="eager,compiled")
    parser.add_argument("--quick", action="store_true", help="the 4x512 model, 32k vocabulary, length 512 only")
    parser.add_argument("--realistic", action="store_true", help="the 12x768 shapes only")
    parser.add_argument("--min-chunk-positions", type=int, help="StatsConfig.min_chunk_positions (default: its "
                                                                    "default)")
    parser.add_argument("--chunk-sweep", help="comma-separated min_chunk_positions values, run on the 12x768 131k "
                                              "shape (eager) instead of the grid; default --out proxy_cost_chunks.json")
    parser.add_argument("--out", default=str(RESULTS / "proxy_cost.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    modes = args.modes.split(",")
    if args.child:
        layers, hidden, vocab, seq, batch = (int(v) for v in args.child.split(","))
        print(json.dumps(measure(layers, hidden, vocab, seq, batch, modes, args.device, args.dtype, args.repeats,
                                 args.autocast, args.min_chunk_positions)))
        return
    grid = GRID[2:3] if args.quick else [g for g in GRID if g[-1]] if args.realistic else GRID
    floors: list[int | None] = [args.min_chunk_positions]
    if args.chunk_sweep:
        grid, floors, args.modes = GRID[1:2], [int(v) for v in args.chunk_sweep.split(",")], "eager"
        if args.out == str(RESULTS / "proxy_cost.json"):
            args.out = str(RESULTS / "proxy_cost_chunks.json")
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    rows = []
    started = time.perf_counter()
    print(f"{'shape':<38} {'mode':<9} {'ratio_time':>10} {'ratio_mem':>9} {'compile_s':>9} {'bare_s':>7}")
    for (layers, hidden, vocab, seq, batch, realistic), floor in ((g, f) for g in grid for f in floors):
        cmd = [sys.executable, __file__, "--child", f"{layers},{hidden},{vocab},{seq},{batch}", "--device",
               args.device, "--dtype", args.dtype, "--repeats", str(args.repeats), "--modes", args.modes,
               *(["--autocast"] if args.autocast else []),
               *(["--min-chunk-positions", str(floor)] if floor else [])]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
        for row in json.loads(out.strip().splitlines()[-1])["rows"]:
            row["realistic"] = realistic
            if realistic:
                row["target_ratio_time"] = TARGET
                row["target_met"] = row["ratio_time"] <= TARGET
            rows.append(row)
            print(f"{row['shape']:<38} {row['mode']:<9} {row['ratio_time']:>10.3f} {row['ratio_peak_mem']:>9.3f} "
                  f"{row['compile_s']:>9.1f} {row['bare_s']:>7.2f}", flush=True)
        write(args.out, args, rows, started)
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")


def write(out: str, args: argparse.Namespace, rows: list[dict], started: float) -> None:
    """The rows so far (written after every shape, so a run cut short keeps what it measured)."""
    result = {"device": args.device, "dtype": args.dtype, "autocast": "bfloat16" if args.autocast else None,
              "threads": os.environ.get("OMP_NUM_THREADS"),
              "machine": platform.processor() or platform.machine(), "repeats": args.repeats,
              "load_average_at_end": os.getloadavg(), "wall_s": time.perf_counter() - started,
              "target_ratio_time_realistic": TARGET, "rows": rows}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
