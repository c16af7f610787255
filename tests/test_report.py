"""The HTML report: written from a run directory alone, self-contained, and rendered by headless Chromium.

Two run directories: a real (short) plain-loop run with anchors, a probe, alerts, a skipped save and
forecasts refused for lack of a budget; and one whose forecasts come from the real forecaster on a
simulated run long enough to publish them (fan charts, the forecast's evolution, baselines).
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from evalcast import AnchorConfig, ExpertSet, Monitor, MonitorConfig
from evalcast.alerts import TargetReached
from evalcast.cli.main import main
from evalcast.report import plot_proxies, write_report
from evalcast.runs import Record, RunStore

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
DECODED = """<script>window.addEventListener("load", () => {
  const out = document.createElement("pre"); out.id = "decoded";
  out.textContent = JSON.stringify(Array.from(document.images, i => [i.complete, i.naturalWidth, i.naturalHeight]));
  document.body.appendChild(out); });</script>"""


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 plain-loop steps on add/sort/chain, evaluated every 10 (anchors every other one), one failed save."""
    from evalcast.generate import DecodeConfig
    from evalcast.monitor import TrainingContext
    from evalcast.tasks import CHARSET, get_task, training_batch
    from evalcast.toy import TextDataset, char_tokenizer, tiny_gpt2

    root = tmp_path_factory.mktemp("real")
    tok = char_tokenizer(CHARSET)
    mix = {"add": 1.0, "sort": 1.0, "chain": 1.0}
    experts = ExpertSet([r for t in mix for r in get_task(t).sample(12, seed=0, difficulties=(1, 2))], tok,
                        cache_dir=root / "cache", progress=False)
    anchors = AnchorConfig(every=2, questions=24, decode=DecodeConfig(max_new_tokens=32, batch_size=24, progress=False))
    monitor = Monitor(experts, run_dir=root / "run", config=MonitorConfig(pad_multiple=16), anchors=anchors,
                      alerts=[TargetReached("all", 2.0, metric="nll")])
    model = tiny_gpt2(tok, n_layer=2, n_embd=64, n_head=4, n_positions=64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    tokens = 0
    for step in range(1, 61):
        batch = TextDataset(tok, training_batch(mix, step, 16, difficulties=(1, 2)), 64)
        loss = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        tokens += int(batch.attention_mask.sum())
        monitor.step(model, step=step, every=10, tokens_seen=tokens, train={"loss": loss.item()})
        if step == 35:  # a save whose evaluation fails: the monitor records it as skipped
            monitor.evaluate(torch.nn.Linear(2, 2), TrainingContext(step=35, tokens_seen=tokens))
    return root / "run"


@pytest.fixture(scope="module")
def simulated_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory whose forecasts the real forecaster made, every third checkpoint, on a simulated run
    (recorded as the monitor records them)."""
    from evalcast.forecast import ClusterConfig, ForecastConfig, forecast_task
    from evalcast.forecast.simulate import SimSpec, simulate_run
    from evalcast.monitor.forecast_step import forecast_metrics

    run = simulate_run(SimSpec(schedule="constant", seed=11, n_checkpoints=16))
    ck = run.inputs.checkpoints
    config = ForecastConfig(n_bootstrap=60, clusters=ClusterConfig(enabled=False))
    anchors = {a.index: a.accuracy for a in run.inputs.anchors}
    store = RunStore(tmp_path_factory.mktemp("sim") / "run")
    for i, (x, step) in enumerate(zip(np.asarray(ck.x), np.asarray(ck.step))):
        metrics = {f"evalcast/all/{name}": float(v[i]) for name, v in run.inputs.proxies.items()}
        metrics.update({"evalcast/all/pass@1_probe": float(run.inputs.probe_accuracy[i]), "evalcast/cost/seconds": 1.5,
                        "evalcast/cost/forward_seconds": 1.0})
        if i in anchors:
            metrics["evalcast/all/pass@1_anchor"] = anchors[i]
        record = Record(step=int(step), tokens_seen=int(x), time=1.7e9 + 60 * i, metrics=metrics)
        if i % 3 == 2:
            forecast = forecast_task(replace(run.at(float(x / ck.x_end)), name="all"), config)
            metrics.update(forecast_metrics("all", forecast))
            record.forecasts = {"all": forecast}
        store.append(record)
    return store.path


def embedded_pngs(html: str) -> list[bytes]:
    sources = re.findall(r'<img [^>]*src="([^"]*)"', html)
    assert all(s.startswith("data:image/png;base64,") for s in sources), "every image is an embedded PNG"
    return [base64.b64decode(s.split(",", 1)[1]) for s in sources]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed; the report test renders the page in it: apt-get install -y chromium")
    return found


def render(html_path: Path, tmp_path: Path, *extra: str) -> str:
    """Chromium's DOM of the page after load, with each image's (complete, naturalWidth, naturalHeight)."""
    page = tmp_path / f"probe_{html_path.parent.name}.html"
    page.write_text(html_path.read_text(encoding="utf-8").replace("</body>", DECODED + "</body>"), encoding="utf-8")
    done = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}", *extra,
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_report_of_a_real_run_is_self_contained(real_run: Path, tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    history = RunStore(real_run).history()
    assert [r.status for r in history].count("skipped") == 1 and any(r.alerts for r in history)
    path = write_report(real_run)
    assert path == real_run / "report" / "report.html"
    html = path.read_text(encoding="utf-8")
    assert plt.get_fignums() == []  # headless: pyplot untouched
    pngs = embedded_pngs(html)
    written = sorted(p.name for p in path.parent.glob("*.png"))
    assert written == ["alerts.png", "cost.png", "domains.png", "forecast_status.png", "probe.png", "proxies.png"]
    assert sorted(pngs) == sorted((path.parent / name).read_bytes() for name in written)
    assert not re.search(r"(href|src)=\"(?!data:)", html) and "<link" not in html and "<script" not in html
    for heading in ("Proxy metrics over training", "Per-domain proxies", "Forecasts of pass@1", "Probe quality",
                    "Alerts", "Cost of evaluation", "Skipped checkpoints and errors"):
        assert f"<h2>{heading}" in html
    assert "the training budget is unknown" in html  # why no forecast: the run-level refusal, in words
    assert "all: nll reached 2" in html  # the alert table
    assert "rank 0: ModelMismatchError: Linear has no output layer" in html  # the skipped save and why
    assert "no forecast was published in this run" in html


def test_report_of_published_forecasts(simulated_run: Path, tmp_path: Path) -> None:
    path = write_report(simulated_run, tmp_path / "out")
    html = path.read_text(encoding="utf-8")
    names = {p.name for p in path.parent.glob("*.png")}
    assert {"forecast_all.png", "forecast_evolution_all.png", "forecast_status.png", "proxies.png", "probe.png",
            "cost.png"} <= names
    assert "The expert set has no domains" in html and "No alert was raised" in html
    history = RunStore(simulated_run).history()
    published = [r for r in history if r.value("all", "forecast_status") == 1.0]
    assert published, "the simulated run publishes forecasts"
    last = published[-1].metrics
    assert f"{last['evalcast/all/forecast_final']:.3f} (80%: {last['evalcast/all/forecast_lo80']:.3f}" in html


def test_chromium_renders_every_figure(real_run: Path, simulated_run: Path, tmp_path: Path) -> None:
    from PIL import Image

    for run_dir in (real_run, simulated_run):
        path = write_report(run_dir, tmp_path / run_dir.parent.name)
        dom = render(path, tmp_path)
        found = re.search(r'<pre id="decoded">([^<]*)</pre>', dom)
        assert found, dom[-2000:]
        images = json.loads(found.group(1))
        pngs = embedded_pngs(path.read_text(encoding="utf-8"))
        assert len(images) == len(pngs) >= 5
        for (complete, width, height), data in zip(images, pngs):
            assert complete and (width, height) == Image.open(io.BytesIO(data)).size  # decoded, full size
    shot = tmp_path / "shot.png"
    done = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}",
                           "--window-size=1200,2400", f"--screenshot={shot}", path.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2400, 1200) and pixels.std() > 20  # not a blank page: text and plots drawn


def test_plot_proxies_and_the_cli(real_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    figure = plot_proxies(RunStore(real_run).history(), ["all", "add"], tmp_path / "p" / "proxies.png")
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert main(["report", str(real_run), "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "report.html").is_file() and "report:" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "is not an evalcast run directory: it has no history.jsonl" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()  # a wrong path is not created
