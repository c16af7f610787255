"""The model-ladder benchmark: the smoke preset end to end (every results section there, numbers finite, every
save recorded), and the full preset's design (sizes, seeds, schedules, split, probe questions) without training."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.ladder.config import TASKS, Preset, full, smoke, split_problems  # noqa: E402
from benchmarks.ladder.data import common_validation_texts, mix_validation_texts, questions  # noqa: E402
from benchmarks.ladder.headline import KEYS as HEADLINE_KEYS  # noqa: E402
from benchmarks.ladder.proxies import PROXIES  # noqa: E402
from benchmarks.ladder.train import validation_loss  # noqa: E402
from evalcast.data import ExpertSet  # noqa: E402
from evalcast.monitor.anchors import anchor_questions  # noqa: E402
from evalcast.probe import heldout_mask  # noqa: E402
from evalcast.tasks import CHARSET, is_heldout  # noqa: E402
from evalcast.toy import TextDataset, char_tokenizer, tiny_gpt2  # noqa: E402


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def test_smoke_preset_writes_every_section(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "ladder" / "run.py"), "--smoke", "--work",
                    str(tmp_path / "runs"), "--results", str(tmp_path / "results")], check=True, env=env, cwd=REPO,
                   timeout=400)
    n_runs = len(smoke().runs)
    summary = json.loads((tmp_path / "runs" / "summary.json").read_text())
    assert summary["missing_runs"] == [] and summary["incomplete_runs"] == []
    assert {r["role"] for r in summary["runs"]} == {"tuning", "heldout"}
    assert all(_finite(r["cpu_s"]) and r["cpu_s"] > 0 for r in summary["runs"])
    out = json.loads((tmp_path / "results" / "ladder.json").read_text())
    assert set(out) >= {"runs", "proxies", "dropped_task", "probe", "alerts", "forecasts", "headline",
                        "headline_context", "timing"}
    assert len(out["runs"]) == n_runs and all(r["saves"] == 20 for r in out["runs"].values())
    headline = out["headline"]
    assert set(headline) == {*HEADLINE_KEYS, "notes"}
    assert sorted(headline["heldout_runs"] + headline["tuning_runs"]) == sorted(r.name for r in smoke().runs)
    assert set(headline["heldout_runs"]) == {r.name for r in smoke().role("heldout")}
    for key in HEADLINE_KEYS[:-3]:  # a number, or null with a note naming it
        assert _finite(headline[key]) or any(n.split(":")[0].rstrip("*") in key for n in headline["notes"]), key
    assert headline["forecast"] is not None or any(n.startswith("forecast") for n in headline["notes"])
    proxies = out["proxies"]
    assert _finite(proxies["within_run"]["mean_heldout"]["all"]["nll"])
    matched = proxies["matched_compute"]
    assert len(matched["heldout"]["compute"]) == 3
    assert matched["best_proxy"] in PROXIES or any(n.startswith("ranking_") for n in headline["notes"])
    assert set(matched["heldout"]["runs"]).isdisjoint(matched["tuning"]["runs"])
    used = matched["heldout"]["points_used"]["all"]
    assert headline["ranking_points"] == used
    assert all(_finite(v) for v in matched["heldout"]["mean"]["all"].values()) or used == 0  # never NaN-dropped
    drop = out["dropped_task"]
    assert drop["heldout_runs"] and drop["tuning_runs"]
    assert all(_finite(d["true_pass_before"]) for d in drop["runs"].values())
    speed = proxies["speed"]
    assert all(_finite(speed[k]) and speed[k] > 0 for k in ("proxy_s", "generate_s", "speedup"))
    for protocol in ("rolling", "first_third"):
        assert set(out["probe"][protocol]["runs"]) == set(out["runs"])
    assert all(_finite(c["generative_s"]) for c in out["probe"]["cost"].values())
    alerts = out["alerts"]
    assert alerts["plateau"] and alerts["data_mix"] and alerts["healthy_runs"]
    assert set(alerts["false_stops"]) == {"heldout", "tuning"}
    assert all((tmp_path / "results" / f"ladder_{name}.png").exists()
               for name in ("curves", "selection", "drop", "plateau", "probe"))
    rows = subprocess.run([sys.executable, str(REPO / "benchmarks" / "ladder" / "readme_table.py"),
                           str(tmp_path / "results" / "ladder.json")], check=True, env=env, cwd=REPO,
                          capture_output=True, text=True).stdout.splitlines()
    assert rows[0].startswith("| figure |") and any("probe AUROC" in r for r in rows)


def test_full_preset_design() -> None:
    """Issue 11's requirements on the runs, checked on the preset itself."""
    preset = full()
    runs = preset.runs
    assert len(runs) >= 16
    sizes = {r.size.n_nonembedding for r in runs}
    assert len(sizes) >= 4 and max(sizes) / min(sizes) >= 10
    configs: dict[tuple[object, ...], set[int]] = {}
    for r in runs:
        configs.setdefault((r.size, r.mix, r.schedule, r.drop), set()).add(r.seed)
    assert sum(len(seeds) >= 2 for seeds in configs.values()) >= 2
    assert {"cosine", "wsd", "constant"} <= {r.schedule for r in runs}
    assert {r.mix.filler > 0 for r in runs} == {True, False}
    assert any(r.drop for r in runs) and any(r.schedule == "plateau" for r in runs)
    assert preset.saves >= 20 and all(r.steps % preset.saves == 0 for r in runs)
    assert split_problems(preset) == []


def test_split_problems_catch_a_broken_split() -> None:
    """Companion of the design test: the split checks do fail when the held-out set misses what they require."""
    preset = full()
    no_largest = dataclasses.replace(preset, runs=tuple(
        dataclasses.replace(r, role="tuning") if r.size.name == "L" else r for r in preset.runs))
    assert "no held-out run of the largest size" in split_problems(no_largest)
    no_wsd = dataclasses.replace(preset, runs=tuple(
        dataclasses.replace(r, role="tuning") if r.schedule == "wsd" else r for r in preset.runs))
    assert any("held-out run with schedule(s) ['wsd']" in p for p in split_problems(no_wsd))
    lonely = dataclasses.replace(preset, runs=tuple(r for r in preset.runs if r.group != "drop" or r.role == "heldout"))
    assert any("no tuning run in group drop" in p for p in split_problems(lonely))


@pytest.mark.parametrize("make", [full, smoke])
def test_probe_keeps_enough_questions_it_never_trains_on(make: Callable[[], Preset]) -> None:
    """The monitor's probe questions (chosen by evalcast) minus those its held-out split keeps: what remains
    never gets a label. Full preset: at least 50 questions and 30% of all ground-truth questions."""
    preset = make()
    records = questions(preset)
    experts = ExpertSet(records, char_tokenizer(CHARSET), progress=False)
    rows = anchor_questions(experts, preset.anchor_questions)
    ids = [experts.records[experts.table.record_index[i]].id for i in rows]
    never = int(heldout_mask(ids, preset.probe_heldout, 0).sum())
    if preset.name == "full":
        assert never >= 50 and never >= 0.3 * len(records)
    assert 0 < never < len(ids)


def test_common_validation_text_is_shared_task_text_outside_the_ground_truth() -> None:
    preset = full()
    texts = common_validation_texts(preset)
    assert len(texts) == preset.val_texts and len(set(texts)) == len(texts)
    prompts = [t.split("\n", 1)[0] for t in texts]
    truth = {r.prompt for r in questions(preset)}
    assert not truth & set(prompts)
    share = preset.val_texts // len(TASKS)  # task by task, in TASKS order
    assert all(is_heldout(task, p) for i, task in enumerate(TASKS) for p in prompts[i * share:(i + 1) * share])
    assert not any(t.startswith("count ") for t in texts)  # no filler, whatever the mix
    mix_b = next(r for r in preset.runs if r.mix.filler > 0)
    assert any(t.startswith("count ") for t in mix_validation_texts(mix_b, preset))  # the old, own-mix text


def test_validation_loss_is_the_token_mean_and_leaves_training_alone() -> None:
    """``val_loss_mix``: the mean NLL over every predicted token, batch size free; the model's mode, gradients
    and the global RNG (dropout's stream) are as before, so the training run does not depend on it."""
    tokenizer = char_tokenizer(CHARSET)
    model = tiny_gpt2(tokenizer, n_layer=1, n_embd=32, n_positions=96)
    dataset = TextDataset(tokenizer, common_validation_texts(smoke()) + ["count 1 2 3 4 5 6 7"] * 5, 96)
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=dataset.input_ids, attention_mask=dataset.attention_mask).logits[:, :-1]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2).double(), dataset.labels[:, 1:],
                                                ignore_index=-100, reduction="sum")
    expected = float(nll) / int((dataset.labels[:, 1:] != -100).sum())
    model.train()
    rng = torch.get_rng_state()
    for batch_size in (1, 8, 29):
        assert validation_loss(model, dataset, batch_size) == pytest.approx(expected, rel=1e-5)  # float32 logits
    assert model.training and torch.is_grad_enabled() and torch.equal(torch.get_rng_state(), rng)
    next(iter(torch.utils.data.DataLoader(dataset, batch_size=8)))  # what the Trainer's own evaluation does:
    assert not torch.equal(torch.get_rng_state(), rng)  # the check above would catch a DataLoader
