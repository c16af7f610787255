"""Checks that need a CUDA device (run them on a GPU machine; CI has none).

    python benchmarks/gpu_checks.py

1. token statistics under bf16 autocast on CUDA, eager and ``StatsConfig(compile=True)``, equal the naive
   fp32 full-softmax reference computed from the same hidden states;
2. an evaluation with sampled anchors leaves the CUDA (and CPU) RNG streams exactly as they were;
3. sampled generation is reproducible from its seed on CUDA.
4. time and peak memory of the proxy pass against the bare forward under bf16 autocast, eager and compiled,
   on every shape of ``benchmarks/proxy_cost.py`` (``--no-timing`` skips it), written to
   ``benchmarks/results/proxy_cost_cuda.json``.
Prints one line per check and writes ``benchmarks/results/gpu_checks.json``; exits non-zero on failure and
exits cleanly, writing nothing, where there is no CUDA device. It has not been run on a GPU yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from evalcast import AnchorConfig, ExpertRecord, ExpertSet, Monitor
from evalcast.generate import DecodeConfig, generate_completions
from evalcast.stats import StatsConfig, StatsTap, check_compatible, run_forward
from evalcast.toy import char_tokenizer, tiny_llama

RESULTS = Path(__file__).resolve().parent / "results"


def records() -> list[ExpertRecord]:
    return [ExpertRecord(prompt=f"what is {a}+{b}?", solution=f"{a}+{b}={a + b}\n#### {a + b}", id=str(i))
            for i, (a, b) in enumerate((a, b) for a in range(3, 40, 7) for b in range(2, 30, 9))]


def scored_hidden(experts, plans, seen) -> torch.Tensor:
    """The final hidden state before each scored token, read from the batches the output layer received."""
    table = experts.table
    hidden = torch.empty(int(table.scored_lengths.sum()), seen[0].shape[-1], dtype=seen[0].dtype, device=seen[0].device)
    for plan, batch in zip(plans, seen, strict=True):
        for b, i in enumerate(plan.rows):
            if i >= 0:
                start, length = int(table.solution_start[i]), int(table.lengths[i])
                offset = int(table.scored_offsets[i])
                hidden[offset:offset + length - start] = batch[b, start - 1:length - 1]
    return hidden


def statistics_match(tok, experts, device) -> dict:
    """Eager and compiled statistics under bf16 autocast against the naive fp32 full softmax of the same hidden
    states (nll, entropy, top-1): the largest absolute differences, and whether they are within the CPU tests'
    fp32 tolerance (rtol 1e-4, atol 2e-5)."""
    model = tiny_llama(tok, hidden=64, n_layer=2, seed=0).to(device).eval()
    head = check_compatible(model, vocab_size=experts.vocab_size, longest=int(experts.table.lengths.max()))
    plans = experts.batches(max_tokens=512)
    out = {}
    for mode in ("eager", "compiled"):
        tap = StatsTap(experts, head, StatsConfig(compile=mode == "compiled"), device, keep_per_token=True)
        seen: list[torch.Tensor] = []
        hook = head.module.register_forward_pre_hook(
            lambda module, args, seen=seen: seen.append(args[0].detach().clone()))
        try:
            with torch.no_grad():
                run_forward(model, experts, plans, tap, device=device, autocast_dtype=torch.bfloat16)
        finally:
            hook.remove()
        hidden = scored_hidden(experts, plans, seen).float()
        weight = model.get_output_embeddings().weight[:experts.vocab_size].float()
        targets = torch.as_tensor(experts.table.scored_targets(), device=device, dtype=torch.long)
        log_p = torch.log_softmax(hidden @ weight.T, -1)
        nll = -log_p.gather(1, targets[:, None])[:, 0]
        entropy = -(log_p.exp() * log_p).sum(1)
        top1 = (log_p.argmax(1) == targets).float()
        fast = tap.per_token
        names = StatsConfig().names
        for name, ref in (("nll", nll), ("entropy", entropy), ("top1", top1)):
            got = fast[:, names.index(name)]
            out[f"{mode} {name} max abs diff"] = float((got - ref).abs().max())
            out[f"{mode} {name} within fp32 tolerance"] = bool(torch.allclose(got, ref, rtol=1e-4, atol=2e-5))
    return out


def rng_untouched(tok, experts, device) -> bool:
    model = tiny_llama(tok, hidden=64, n_layer=2, seed=0).to(device)
    decode = DecodeConfig(greedy=False, n=2, max_new_tokens=8, seed=1, progress=False)
    with tempfile.TemporaryDirectory() as run_dir:
        monitor = Monitor(experts, run_dir=run_dir, anchors=AnchorConfig(every=1, questions=8, decode=decode))
        cuda, cpu = torch.cuda.get_rng_state(), torch.get_rng_state()
        evaluation = monitor.evaluate(model, 1)
    return evaluation.ok and torch.equal(torch.cuda.get_rng_state(), cuda) and torch.equal(torch.get_rng_state(), cpu)


def sampling_reproducible(tok, device) -> bool:
    model = tiny_llama(tok, hidden=64, n_layer=2, seed=3).to(device, torch.bfloat16)
    config = DecodeConfig(greedy=False, n=2, max_new_tokens=10, seed=1, batch_size=4, progress=False)
    prompts = ["what is 12+7?", "1+1=2. 3+4=", "zz"]
    return generate_completions(model, tok, prompts, config) == generate_completions(model, tok, prompts, config)


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: these checks need a GPU; nothing was run or written")
        return 0
    device = torch.device("cuda")
    tok = char_tokenizer()
    with tempfile.TemporaryDirectory() as cache:
        experts = ExpertSet(records(), tok, cache_dir=cache, progress=False)
        numerics = statistics_match(tok, experts, device)
        checks = {**{k: v for k, v in numerics.items() if isinstance(v, bool)},
                  "evaluation leaves CUDA and CPU RNG untouched": rng_untouched(tok, experts, device),
                  "seeded sampling is reproducible": sampling_reproducible(tok, device)}
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    if "--no-timing" not in sys.argv:
        subprocess.run([sys.executable, str(Path(__file__).parent / "proxy_cost.py"), "--device", "cuda",
                        "--autocast", "--out", str(RESULTS / "proxy_cost_cuda.json")], check=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gpu_checks.json").write_text(json.dumps(
        {"device": torch.cuda.get_device_name(), "checks": checks,
         "max_abs_diff": {k: v for k, v in numerics.items() if not isinstance(v, bool)}}, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
