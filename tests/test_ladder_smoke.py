"""The model-ladder benchmark's smoke preset end to end: every results section is there, numbers finite."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def test_smoke_preset_writes_every_section(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "ladder" / "run.py"), "--smoke", "--work",
                    str(tmp_path / "runs"), "--results", str(tmp_path / "results")], check=True, env=env, cwd=REPO,
                   timeout=400)
    out = json.loads((tmp_path / "results" / "ladder.json").read_text())
    assert set(out) >= {"runs", "proxies", "probe", "forecasts", "alerts", "headline", "timing"}
    assert len(out["runs"]) == 7 and all(r["saves"] == 20 for r in out["runs"].values())
    proxies = out["proxies"]
    assert _finite(proxies["within_run"]["mean"]["all"]["nll"])
    assert _finite(proxies["within_run"]["mean"]["all"]["val_loss"])
    assert len(proxies["matched_compute"]["compute"]) == 3 and "val_loss" in proxies["matched_compute"]["mean"]["all"]
    assert _finite(next(iter(proxies["dropped_task"].values()))["val_loss_end"])
    speed = proxies["speed"]
    assert all(_finite(speed[k]) and speed[k] > 0 for k in ("proxy_s", "generate_s", "speedup"))
    assert set(out["probe"]["first_third"]["runs"]) == set(out["runs"]) == set(out["probe"]["rolling"]["runs"])
    assert all(_finite(c["generative_s"]) for c in out["probe"]["cost"].values())
    forecasts = out["forecasts"]
    assert set(forecasts["by_horizon"]) == {"0.1", "0.25", "0.5"}
    assert len(forecasts["cases"]) == 7 * 4 * 3
    for summary in forecasts["by_horizon"].values():
        assert summary["evalcast"]["published"] + summary["evalcast"]["refused"] == summary["cases"]
        assert summary["last_value"]["published"] == summary["cases"]  # always publishes: scored everywhere
        assert _finite(summary["last_value"]["mae"])
    alerts = out["alerts"]
    assert alerts["plateau"] and alerts["data_mix"] and alerts["healthy_runs"]
    assert all((tmp_path / "results" / f"ladder_{name}.png").exists()
               for name in ("curves", "selection", "drop", "plateau", "probe", "forecast_fans", "forecast_errors"))
