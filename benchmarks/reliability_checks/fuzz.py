"""Malformed input fuzzing: expert files, configurations, run directories.

A seeded generator (no extra dependency) writes:

* expert files (``.jsonl`` and ``.json``): a few valid rows, then 1–3 defects among bad JSON, wrong
  types, empty and huge fields, invalid UTF-8, lone surrogates, NaN/inf/negative weights, duplicate ids,
  mixed tasks, malformed negatives, rows that are not objects, bad domains, empty files. Each goes
  through ``load_records`` and ``ExpertSet``.
* configurations: every ``*Config`` class built with 1–3 fields set to out-of-range or wrong-typed values.
* run directories: a valid run, then a defect among truncated or torn JSONL, a damaged line, wrong or
  missing ``format_version``, wrong field types, damaged ``meta.json`` or arrays, a foreign expert-set
  fingerprint. Each is read (history, meta, arrays) and reopened by a ``Monitor``.

A case is *expected* when it succeeds (valid input, or a documented tolerance such as a torn last line)
or raises a ``ValueError``-family error (a config: ``ValueError``/``TypeError``) whose message names the
file (expert files and run directories; building an ``ExpertSet`` from loaded rows names the row id). Anything
else is *unexpected*; a case running over
``CASE_TIMEOUT_S`` is a *hang*.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import math
import pkgutil
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

import evalcast
from benchmarks.reliability_checks.common import tiny_setup
from evalcast import Monitor
from evalcast.data import ExpertSet, load_records
from evalcast.runs import Record, RunStore

CASE_TIMEOUT_S = 20


class Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise Hang()


# ------------------------------------------------------------------------------------------- expert files
def _row(i: int, task: str = "add") -> dict[str, Any]:
    return {
        "id": f"r{i}",
        "task": task,
        "prompt": f"what is {i}+1?",
        "solution": f"{i}+1={i + 1}\n#### {i + 1}",
        "domain": "math/add",
        "negatives": [{"text": f"{i}+1={i + 2}", "category": "wrong_answer"}],
    }


WRONG = [None, 3, 2.5, True, [], ["a"], {}, {"x": 1}, "", "   ", "\x00", "\ud800", "x" * 200_000]
FIELDS = ["prompt", "solution", "answer", "task", "domain", "id", "negatives", "weight", "meta"]
BAD_NEGATIVES = [
    "oops",
    3,
    {"text": "a"},
    [3],
    [{"text": 3}],
    [{"text": ""}],
    [{}],
    [None],
    [{"category": "x"}],
    [["a"]],
    [{"text": "a", "category": 5}],
]
BAD_WEIGHTS = [math.nan, math.inf, -math.inf, -1, "1", True, 1e309, None, [1]]


def _defect(rng: random.Random, rows: list[Any]) -> Callable[[list[bytes]], list[bytes]] | None:
    """Change ``rows`` in place (JSON level) or return a change of the encoded lines (byte level)."""
    kind = rng.choice(
        [
            "type",
            "type",
            "negatives",
            "weight",
            "dup",
            "mixed",
            "notobj",
            "domain",
            "drop",
            "badjson",
            "utf8",
            "truncate",
            "bom",
            "blank",
            "extra",
        ]
    )
    i = rng.randrange(len(rows))
    row = rows[i] if isinstance(rows[i], dict) else {}
    if kind == "type":
        row[rng.choice(FIELDS)] = rng.choice(WRONG)
    elif kind == "negatives":
        row["negatives"] = rng.choice(BAD_NEGATIVES)
    elif kind == "weight":
        row["weight"] = rng.choice(BAD_WEIGHTS)
    elif kind == "dup":
        row["id"] = rows[0]["id"] if isinstance(rows[0], dict) else "r0"
    elif kind == "mixed":
        row["task"] = rng.choice(["sub", "code", "x" * 300, "a/b", "ü"])
    elif kind == "notobj":
        rows[i] = rng.choice([[1, 2], 3, "row", None, True])
    elif kind == "domain":
        row["domain"] = rng.choice(["/", "//", "a//b", "", "/a/", 3])
    elif kind == "drop":
        row.pop(rng.choice(["prompt", "solution"]), None)
    elif kind == "extra":
        row[rng.choice(["unknown", "", "prompt "])] = rng.choice(WRONG)
    else:

        def lines(encoded: list[bytes]) -> list[bytes]:
            j = rng.randrange(len(encoded))
            if kind == "badjson":
                encoded[j] = rng.choice(
                    [
                        encoded[j][: rng.randrange(1, max(2, len(encoded[j])))],
                        b"{",
                        b"}",
                        b"[1,",
                        b"{'a': 1}",
                        b"NaN",
                        encoded[j] + b"x",
                    ]
                )
            elif kind == "utf8":
                cut = rng.randrange(max(1, len(encoded[j])))
                encoded[j] = (
                    encoded[j][:cut] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"]) + encoded[j][cut:]
                )
            elif kind == "truncate":
                encoded[j] = encoded[j][: rng.randrange(max(1, len(encoded[j])))]
                del encoded[j + 1 :]
            elif kind == "bom":
                encoded[0] = b"\xef\xbb\xbf" + encoded[0]
            else:
                encoded.insert(j, rng.choice([b"", b"   ", b"\t"]))
            return encoded

        return lines
    return None


def expert_case(rng: random.Random, work: Path, tok: Any, number: int) -> Callable[[], Any]:
    rows: list[Any] = [_row(i, rng.choice(["add", "sub"])) for i in range(rng.randint(1, 5))]
    changes = [c for c in (_defect(rng, rows) for _ in range(rng.randint(1, 3))) if c is not None]
    as_json = rng.random() < 0.2
    if as_json:
        path = work / f"case{number}.json"
        data = json.dumps(rng.choice([rows, {"data": rows}, {"rows": rows}, 3]) if rng.random() < 0.2 else rows)
        encoded = [data.encode("utf-8", "surrogatepass")]
    else:
        path = work / f"case{number}.jsonl"
        encoded = [json.dumps(r).encode("utf-8", "surrogatepass") for r in rows]
    for change in changes:
        encoded = change(encoded) or [b""]
    if rng.random() < 0.02:
        encoded = []
    path.write_bytes(b"\n".join(encoded))

    def case() -> Any:
        records = load_records(path)
        return ExpertSet(records, tok, cache_dir=work / "cache", progress=False)

    case.names = str(path)  # type: ignore[attr-defined]
    return case


# ------------------------------------------------------------------------------------------- configs
def config_classes() -> list[type]:
    found = {}
    for info in pkgutil.walk_packages(evalcast.__path__, "evalcast."):
        if info.name.endswith("_sandbox_child"):
            continue
        module = importlib.import_module(info.name)
        for name, cls in vars(module).items():
            if (
                inspect.isclass(cls)
                and dataclasses.is_dataclass(cls)
                and name.endswith("Config")
                and cls.__module__ == module.__name__
            ):
                try:
                    cls()
                except Exception:
                    continue
                found[f"{cls.__module__}.{name}"] = cls
    return [found[k] for k in sorted(found)]


CONFIG_VALUES = [
    -1,
    0,
    -1e9,
    math.nan,
    math.inf,
    -math.inf,
    "",
    "x",
    None,
    [],
    {},
    True,
    10**30,
    1e-300,
    (1, 2),
    ("a",),
    {"a": "b"},
    object(),
    b"x",
]


def config_case(rng: random.Random, classes: list[type]) -> Callable[[], Any]:
    cls = rng.choice(classes)
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {name: rng.choice(CONFIG_VALUES) for name in rng.sample(fields, min(len(fields), rng.randint(1, 3)))}

    def case() -> Any:
        return cls(**kwargs)

    case.config = True  # type: ignore[attr-defined]
    return case


# ------------------------------------------------------------------------------------------- run directories
def valid_run(path: Path, experts: ExpertSet) -> None:
    store = RunStore(path)
    store.write_meta({"expert_set": experts.fingerprint, "rows": len(experts)})
    for step in (2, 4, 6):
        store.save_arrays(step, "examples", {"nll": np.arange(4, dtype=np.float32) + step})
        store.append(
            Record(
                step=step, tokens_seen=100 * step, train={"loss": 1.0 / step}, metrics={"evalcast/all/nll": 2.0 / step}
            )
        )
    store.rewind(4)
    store.append(Record(step=6, status="skipped", reason="test"))


LINE_CHANGES: list[Callable[[dict[str, Any], random.Random], Any]] = [
    lambda d, r: d.update(format_version=r.choice([2, 0, "1", None, 1.5, [1]])),
    lambda d, r: d.update(step=r.choice(["abc", None, [], {}, 1.5, "7"])),
    lambda d, r: d.update(metrics=r.choice([[], "x", 3, [["a", 1]], {"evalcast/all/nll": "x"}])),
    lambda d, r: d.update(train=r.choice([[], "x", 3])),
    lambda d, r: d.update(status=r.choice(["bad", 3, None])),
    lambda d, r: d.update(anchor=r.choice([{"questions": 1}, {"questions": "x", "per_question": {}}, [1], "x"])),
    lambda d, r: d.update(probe=r.choice([{"status": "ok", "bogus": 1}, [1], "x", {"reason": 3}])),
    lambda d, r: d.update(forecasts=r.choice([{"all": 3}, {"all": {}}, [1], "x", {"all": {"status": 1}}])),
    lambda d, r: d.update(alerts=r.choice([[1], [{}], "x", [{"rule": "r"}], 3])),
    lambda d, r: d.update(errors=r.choice([[1], "x", 3])),
    lambda d, r: d.update(time=r.choice(["x", [], {}])),
    lambda d, r: d.update(tokens_seen=r.choice(["x", [], -1])),
    lambda d, r: d.pop("step", None),
    lambda d, r: d.clear() or d.update(rewind_to=r.choice(["x", None, [], 2.5])),
]


def run_dir_case(
    rng: random.Random, work: Path, template: Path, experts: ExpertSet, other: str, number: int
) -> Callable[[], Any]:
    path = work / f"run{number}"
    shutil.copytree(template, path)
    history, meta = path / "history.jsonl", path / "meta.json"
    lines = history.read_bytes().split(b"\n")[:-1]
    kind = rng.choice(["truncate", "bytes", "line", "line", "line", "meta", "arrays", "foreign", "notobj", "utf8"])
    j = rng.randrange(len(lines))
    if kind == "truncate":
        data = history.read_bytes()
        history.write_bytes(data[: rng.randrange(len(data))])
    elif kind == "bytes":
        structural = [k for k, c in enumerate(lines[j]) if chr(c) in '{}[]":,']
        k = rng.choice(structural)
        lines[j] = lines[j][:k] + lines[j][k + 1 :]
        history.write_bytes(b"\n".join(lines) + b"\n")
    elif kind == "line":
        d = json.loads(lines[j])
        rng.choice(LINE_CHANGES)(d, rng)
        lines[j] = json.dumps(d).encode()
        history.write_bytes(b"\n".join(lines) + b"\n")
    elif kind == "notobj":
        lines[j] = rng.choice([b"[1, 2]", b"3", b'"x"', b"null", b"true"])
        history.write_bytes(b"\n".join(lines) + b"\n")
    elif kind == "utf8":
        lines[j] = lines[j][:5] + b"\xff\xfe" + lines[j][5:]
        history.write_bytes(b"\n".join(lines) + b"\n")
    elif kind == "meta":
        data = json.loads(meta.read_text())
        choice = rng.randrange(5)
        if choice == 0:
            meta.write_bytes(meta.read_bytes()[: rng.randrange(1, 20)])
        elif choice == 1:
            meta.write_text(json.dumps(rng.choice([[1], 3, "x", None])))
        elif choice == 2:
            meta.write_text(json.dumps({**data, "format_version": rng.choice([2, "x", None])}))
        elif choice == 3:
            meta.write_bytes(b"\xff\xfe{}")
        else:
            meta.write_text(json.dumps({**data, "expert_set": rng.choice([3, None, [], ""])}))
    elif kind == "arrays":
        target = rng.choice(sorted((path / "examples").glob("*.npz")))
        data = target.read_bytes()
        target.write_bytes(rng.choice([data[: rng.randrange(len(data))], b"", b"garbage", data[::-1]]))
    else:
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "expert_set": other}))

    def case() -> Any:
        store = RunStore(path)
        store.read_meta()
        for record in store.history():
            store.load_arrays(record.step, "examples")
        return Monitor(experts, run_dir=path, forecast=None)

    case.names = str(path)  # type: ignore[attr-defined]
    return case


# ------------------------------------------------------------------------------------------- the driver
def _shape(exc: BaseException) -> str:
    """The message without its numbers and paths, so that one bug counts as one kind."""
    return re.sub(r"\d+|/\S+", "#", str(exc))[:160]


def classify(case: Callable[[], Any]) -> str:
    """``ok``, ``expected`` (a clear error), ``unexpected:<Type>`` or ``hang``."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_TIMEOUT_S)
    try:
        case()
        return "ok"
    except Hang:
        return "hang"
    except (ValueError, TypeError) as exc:
        if getattr(case, "config", False):
            return "expected"
        names = getattr(case, "names", "")
        where = (names, "expert set row", "row ")  # ExpertSet knows rows, not files: it names the row
        if isinstance(exc, ValueError) and (not names or any(w in str(exc) for w in where)):
            return "expected"
        return f"unexpected:{type(exc).__name__}: {_shape(exc)}"
    except Exception as exc:
        return f"unexpected:{type(exc).__name__}: {_shape(exc)}"
    finally:
        signal.alarm(0)


def run(
    experts_n: int = 800, configs_n: int = 300, runs_n: int = 300, seed: int = 0, work: Path | None = None
) -> dict[str, Any]:
    import logging

    logging.disable(logging.WARNING)
    work = Path(work or tempfile.mkdtemp(prefix="evalcast-fuzz-"))
    tok, experts = tiny_setup(work / "cache")
    template = work / "template"
    valid_run(template, experts)
    rng = random.Random(seed)
    classes = config_classes()
    cases: list[tuple[str, Callable[[], Any]]] = []
    cases += [("expert_file", expert_case(rng, work, tok, i)) for i in range(experts_n)]
    cases += [("config", config_case(rng, classes)) for _ in range(configs_n)]
    cases += [("run_dir", run_dir_case(rng, work, template, experts, "f" * 64, i)) for i in range(runs_n)]
    outcomes: Counter[str] = Counter()
    unexpected: Counter[str] = Counter()
    started = time.perf_counter()
    for family, case in cases:
        outcome = classify(case)
        kind = outcome.split(":")[0]
        outcomes[f"{family}/{kind}"] += 1
        if kind == "unexpected":
            unexpected[f"{family}: {outcome[len('unexpected:') :]}"] += 1
    return {
        "fuzz_cases": len(cases),
        "fuzz_unexpected": sum(unexpected.values()),
        "fuzz_hangs": sum(v for k, v in outcomes.items() if k.endswith("/hang")),
        "fuzz_outcomes": dict(sorted(outcomes.items())),
        "fuzz_unexpected_kinds": dict(unexpected.most_common(20)),
        "fuzz_seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(run(seed=args.seed), indent=2))


if __name__ == "__main__":
    main()
