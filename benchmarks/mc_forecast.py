"""Multiple-choice accuracy measured at every save, and the forecast of end-of-budget accuracy made from it.

    OMP_NUM_THREADS=1 python benchmarks/mc_forecast.py

A character-level GPT-2 built from config (2 layers, 64 wide) is trained with a plain torch loop on
``mc_add`` training texts (levels 2-3, train split) for ``STEPS`` steps; a :class:`~evalcast.Monitor`
with the budget known evaluates 200 held-out ``mc_add`` questions (K = 4) every ``EVERY`` steps: exact
``acc``/``acc_norm`` and the multiple-choice proxies from the teacher-forced pass, and the forecast of
``acc`` at the end of the budget. Reports the forecast made at 50% and 75% of the budget against the
accuracy measured at the end, the share of saves whose 80% interval holds the final accuracy, and the
cost of a save (forward seconds, tokens processed per question). Nothing was tuned on this run. Writes
``benchmarks/results/mc_forecast.json``.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
STEPS, EVERY, BATCH, WIDTH, QUESTIONS = 1200, 75, 32, 40, 200


def main() -> None:
    import torch

    from evalcast import Budget, ExpertSet, ForecastConfig, Monitor
    from evalcast.proxy.aggregate import metric_name
    from evalcast.tasks import get_task, training_text
    from evalcast.toy import char_tokenizer, tiny_gpt2

    torch.set_num_threads(1)
    tokenizer = char_tokenizer()
    family = get_task("mc_add")
    train = family.sample(1000, seed=1, difficulties=[2, 3], split="train")
    heldout = family.sample(QUESTIONS, seed=2, difficulties=[2, 3])
    scratch = Path(tempfile.mkdtemp(prefix="mc_forecast_"))
    experts = ExpertSet(heldout, tokenizer, cache_dir=scratch / "cache", progress=False)
    model = tiny_gpt2(tokenizer, n_layer=2, n_embd=64, n_head=2, n_positions=64, seed=0)
    monitor = Monitor(experts, run_dir=scratch / "run", budget=Budget(max_steps=STEPS), forecast=ForecastConfig())
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = random.Random(0)
    saves, started = [], time.perf_counter()
    for step in range(1, STEPS + 1):
        model.train()
        lines = [" ".join(training_text(r) + "." for r in rng.choices(train, k=5))[:WIDTH].ljust(WIDTH)
                 for _ in range(BATCH)]
        batch = torch.tensor([tokenizer(line)["input_ids"] for line in lines])
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % EVERY == 0:
            m = monitor.step(model, step=step, tokens_seen=step * BATCH * WIDTH, train={"loss": loss.item()}).metrics

            def get(name: str, group: str = "mc_add", m: dict = m) -> float:
                return m.get(metric_name(group, name), math.nan)
            saves.append({"step": step, "acc": get("acc"), "acc_norm": get("acc_norm"), "mc_prob": get("mc_prob"),
                          "mc_margin_per_byte": get("mc_margin_per_byte"), "forecast_final": get("forecast_final"),
                          "forecast_lo80": get("forecast_lo80"), "forecast_hi80": get("forecast_hi80"),
                          "forward_seconds": get("forward_seconds", "cost"),
                          "tokens_processed": get("tokens_processed", "cost")})
            print(json.dumps(saves[-1]))
    final = saves[-1]["acc"]

    def at(fraction: float) -> dict:
        save = min(saves, key=lambda s: abs(s["step"] - fraction * STEPS))
        return {"step": save["step"], "forecast": save["forecast_final"], "lo80": save["forecast_lo80"],
                "hi80": save["forecast_hi80"], "abs_error": abs(save["forecast_final"] - final),
                "last_measured": save["acc"], "last_value_abs_error": abs(save["acc"] - final)}

    with_interval = [s for s in saves[:-1] if math.isfinite(s["forecast_lo80"])]
    result = {
        "setup": {"steps": STEPS, "every": EVERY, "questions": QUESTIONS, "choices": 4, "chance": 0.25,
                  "model": "char GPT-2, 2 layers x 64", "tuned": False},
        "final_acc": final, "final_acc_norm": saves[-1]["acc_norm"],
        "forecast_at_50pct": at(0.5), "forecast_at_75pct": at(0.75),
        "coverage80": (sum(s["forecast_lo80"] <= final <= s["forecast_hi80"] for s in with_interval)
                       / len(with_interval)) if with_interval else math.nan,
        "saves_with_forecast": sum(math.isfinite(s["forecast_final"]) for s in saves),
        "forward_seconds_per_save": sum(s["forward_seconds"] for s in saves) / len(saves),
        "tokens_processed_per_question": saves[-1]["tokens_processed"] / QUESTIONS,
        "wall_seconds": time.perf_counter() - started, "saves": saves,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "mc_forecast.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "saves"}, indent=1))


if __name__ == "__main__":
    main()
