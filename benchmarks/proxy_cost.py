"""Time and peak memory of evalcast's proxy pass against a bare forward pass over the same tokens.

    OMP_NUM_THREADS=1 python benchmarks/proxy_cost.py [--quick] [--device cuda] [--dtype bfloat16]

For vocabularies of 32k and 128k and sequence lengths 512 and 2048 (4,096 tokens per batch), a Llama
built from config runs (a) ``model(input_ids).logits`` and (b) evalcast's teacher-forced pass with every
statistic over every position but the prompt's. Each measurement runs in a fresh process: peak memory
is the resident-set high-water mark (CPU; reset through /proc/self/clear_refs before the pass) or
``torch.cuda.max_memory_allocated`` (GPU), minus what was resident before the pass. Writes
``benchmarks/results/proxy_cost.json``.
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


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise RuntimeError(field)


def measure(vocab: int, seq: int, method: str, device: str, dtype: str, hidden: int, layers: int, repeats: int) -> dict:
    """One configuration and method, in this (fresh) process."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from evalcast.data import ExpertRecord, ExpertSet
    from evalcast.stats import StatsConfig, StatsTap, check_compatible, run_forward

    torch.manual_seed(0)
    words = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{f"w{i}": i for i in range(3, vocab)}}
    backend = Tokenizer(models.WordLevel(vocab=words, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    batch = 4096 // seq
    rng = torch.Generator().manual_seed(0)
    records = []
    for i in range(batch):
        ids = torch.randint(3, vocab, (seq - 1,), generator=rng).tolist()
        records.append(ExpertRecord(prompt=" ".join(f"w{t}" for t in ids[:32]),
                                    solution=" " + " ".join(f"w{t}" for t in ids[32:]), id=str(i)))
    experts = ExpertSet(records, tok, cache_dir=Path(os.environ.get("TMPDIR", "/tmp")) / "evalcast-bench-cache",
                        progress=False)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=int(hidden * 2.6875),
                         num_hidden_layers=layers, num_attention_heads=hidden // 64, num_key_value_heads=hidden // 128,
                         max_position_embeddings=seq, tie_word_embeddings=False)
    dev = torch.device(device)
    model = LlamaForCausalLM(config).to(dev, getattr(torch, dtype)).eval()
    plans = experts.batches(max_tokens=4096, pad_multiple=64)
    assert len(plans) == 1 and len(plans[0].rows) == batch, plans
    ids = torch.as_tensor([list(experts.table.sequence(i)) for i in range(batch)], device=dev)
    head = check_compatible(model, vocab_size=experts.vocab_size, longest=seq)

    def bare() -> None:
        model(input_ids=ids, use_cache=False).logits.sum().item()

    def proxy() -> None:
        tap = StatsTap(experts, head, StatsConfig(), dev)
        run_forward(model, experts, plans, tap, device=dev)

    run = bare if method == "bare" else proxy
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with torch.no_grad():
        if dev.type == "cuda":
            sync()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            run()
            sync()
            peak = torch.cuda.max_memory_allocated() - base
        else:
            base = _rss_kib("VmRSS:")
            Path("/proc/self/clear_refs").write_text("5")
            run()
            peak = (_rss_kib("VmHWM:") - base) * 1024
        times = []
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            run()
            sync()
            times.append(time.perf_counter() - start)
    return {"vocab": vocab, "seq": seq, "batch": batch, "method": method, "seconds": statistics.median(times),
            "all_seconds": times, "peak_bytes": int(peak), "scored_tokens": int(experts.table.scored_lengths.sum()),
            "params": sum(p.numel() for p in model.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="32k vocabulary, length 512 only")
    parser.add_argument("--out", default=str(RESULTS / "proxy_cost.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        vocab, seq, method = args.child.split(",")
        print(json.dumps(measure(int(vocab), int(seq), method, args.device, args.dtype, args.hidden, args.layers,
                                 args.repeats)))
        return
    grid = [(32768, 512)] if args.quick else [(32768, 512), (32768, 2048), (131072, 512), (131072, 2048)]
    rows = []
    print(f"{'vocab':>7} {'seq':>5} {'bare s':>8} {'proxy s':>8} {'ratio':>6} {'bare MiB':>9} {'proxy MiB':>9}")
    for vocab, seq in grid:
        pair = {}
        for method in ("bare", "proxy"):
            cmd = [sys.executable, __file__, "--child", f"{vocab},{seq},{method}", "--device", args.device,
                   "--dtype", args.dtype, "--hidden", str(args.hidden), "--layers", str(args.layers),
                   "--repeats", str(args.repeats)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            pair[method] = json.loads(out.strip().splitlines()[-1])
        row = {"vocab": vocab, "seq": seq, "batch": pair["bare"]["batch"], "bare": pair["bare"], "proxy": pair["proxy"],
               "time_ratio": pair["proxy"]["seconds"] / pair["bare"]["seconds"],
               "memory_ratio": pair["proxy"]["peak_bytes"] / pair["bare"]["peak_bytes"]}
        rows.append(row)
        print(f"{vocab:>7} {seq:>5} {pair['bare']['seconds']:>8.3f} {pair['proxy']['seconds']:>8.3f} "
              f"{row['time_ratio']:>6.2f} {pair['bare']['peak_bytes'] / 2**20:>9.1f} "
              f"{pair['proxy']['peak_bytes'] / 2**20:>9.1f}")
    result = {"device": args.device, "dtype": args.dtype, "hidden": args.hidden, "layers": args.layers,
              "params": rows[0]["bare"]["params"], "threads": os.environ.get("OMP_NUM_THREADS"),
              "machine": platform.processor() or platform.machine(), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
