"""The examples users copy run as documented (one process; the torchrun ones are in test_distributed.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from evalcast.runs import RunStore

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(EXAMPLES / script), "--out", str(out), *args], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-6000:]
    return done


def test_lightning_example_evaluates_every_checkpoint_and_writes_a_report(tmp_path):
    done = _run("lightning_module.py", tmp_path, "--steps", "60")
    records = RunStore(tmp_path / "evalcast").history()
    assert [(r.step, r.status) for r in records] == [(20, "ok"), (40, "ok"), (60, "ok")]
    assert records[0].anchor is not None and records[1].anchor is None  # anchors every 3rd save
    assert (tmp_path / "evalcast" / "report" / "report.html").exists() and "report:" in done.stdout


def test_hf_trainer_example_evaluates_every_checkpoint_and_writes_a_report(tmp_path):
    done = _run("hf_trainer.py", tmp_path, "--steps", "40")
    records = RunStore(tmp_path / "evalcast").history()
    assert [(r.step, r.status) for r in records] == [(20, "ok"), (40, "ok")]
    assert records[-1].metrics["evalcast/all/nll"] < records[0].metrics["evalcast/all/nll"]
    assert (tmp_path / "evalcast" / "report" / "report.html").exists() and "report:" in done.stdout
