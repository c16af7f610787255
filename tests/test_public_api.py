"""The public API: ``evalcast`` exports what a user writes, each name documented in ``docs/api.md``,
and importing the package loads no framework."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import evalcast

API = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text(encoding="utf-8")


def test_every_exported_name_resolves_and_is_documented() -> None:
    documented = set(re.findall(r"`([A-Za-z_]+)[(`]", API))
    for name in evalcast.__all__:
        if name != "__version__":
            assert getattr(evalcast, name) is not None
            assert name in documented, f"{name} is exported but not in docs/api.md"


def test_importing_evalcast_loads_no_framework() -> None:
    code = ("import sys, evalcast; print([m for m in ('torch', 'transformers', 'lightning', 'matplotlib', "
            "'wandb', 'mlflow', 'sklearn') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
