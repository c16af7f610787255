"""Checks that need a CUDA device (run them on a GPU machine; CI has none).

    python benchmarks/gpu_checks.py

1. token statistics of a bf16 model under bf16 autocast on CUDA equal the naive fp32 full-softmax
   reference computed from the same hidden states;
2. an evaluation with sampled anchors leaves the CUDA (and CPU) RNG streams exactly as they were;
3. sampled generation is reproducible from its seed on CUDA.
Prints one line per check and writes ``benchmarks/results/gpu_checks.json``; exits non-zero on failure.
For GPU timings and memory of the proxy pass, run ``benchmarks/proxy_cost.py --device cuda --dtype bfloat16``.
"""

from __future__ import annotations

import json
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


def statistics_match(tok, experts, device) -> bool:
    model = tiny_llama(tok, hidden=64, n_layer=2, seed=0).to(device, torch.bfloat16).eval()
    head = check_compatible(model, vocab_size=experts.vocab_size, longest=int(experts.table.lengths.max()))
    tap = StatsTap(experts, head, StatsConfig(), device, keep_per_token=True)
    with torch.no_grad():
        run_forward(model, experts, experts.batches(max_tokens=512), tap, device=device,
                    autocast_dtype=torch.bfloat16)
        weight = model.get_output_embeddings().weight[:experts.vocab_size].float()
        reference = []
        for i in range(experts.table.n_seq):
            ids = torch.as_tensor(experts.table.sequence(i), device=device, dtype=torch.long)[None]
            with torch.autocast("cuda", dtype=torch.bfloat16):
                hidden = model(ids, output_hidden_states=True).hidden_states[-1][0]
            logits = hidden.float() @ weight.T
            start = int(experts.table.solution_start[i])
            log_p = torch.log_softmax(logits[start - 1:-1], -1)
            reference.append(-log_p.gather(1, ids[0, start:, None])[:, 0])
    nll = torch.cat(reference).cpu()
    return torch.allclose(tap.per_token[:, 0].cpu(), nll, rtol=1e-3, atol=1e-3)


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
        print("no CUDA device: these checks need a GPU")
        return 2
    device = torch.device("cuda")
    tok = char_tokenizer()
    with tempfile.TemporaryDirectory() as cache:
        experts = ExpertSet(records(), tok, cache_dir=cache, progress=False)
        checks = {"bf16 statistics match the fp32 reference": statistics_match(tok, experts, device),
                  "evaluation leaves CUDA and CPU RNG untouched": rng_untouched(tok, experts, device),
                  "seeded sampling is reproducible": sampling_reproducible(tok, device)}
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gpu_checks.json").write_text(json.dumps({"device": torch.cuda.get_device_name(), **checks}, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
