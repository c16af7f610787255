"""The run record and its storage: a run directory written before the record had a type (and a format
version) is still read, continued and reported; a later format version is refused with a message naming it.

``data/run_format1.tar.gz`` was written by evalcast at commit 1a326be (before ``evalcast.runs``): a plain loop
over 20 steps of a 1-layer GPT-2 on 8 ``add`` questions, evaluated every 5 steps with anchors every other
evaluation, a budget (so forecasts were attempted) and two alert rules; then a second monitor (a resumed
process) rewound to step 10, failed to evaluate step 15 (a model without an output layer) and evaluated
step 20 again. Its anchor arrays of the lost step 15 are still on disk, as a real resume leaves them.
"""

from __future__ import annotations

import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from evalcast import AnchorConfig, Budget, ExpertSet, Monitor, MonitorConfig
from evalcast.alerts import Regression, TargetReached
from evalcast.forecast import TaskForecast
from evalcast.generate import DecodeConfig
from evalcast.report import write_report
from evalcast.runs import FORMAT_VERSION, Alert, Record, RecordFormatError, RunHistory, RunStore, run_axis, series

FIXTURE = Path(__file__).parent / "data" / "run_format1.tar.gz"


@pytest.fixture
def old_run(tmp_path: Path) -> Path:
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(tmp_path, filter="data")
    return tmp_path / "run"


def test_records_written_before_the_version_field_are_read_with_their_parts(old_run: Path) -> None:
    lines = [json.loads(line) for line in (old_run / "history.jsonl").read_text().splitlines()]
    assert all("format_version" not in line for line in lines)  # the premise: an unversioned history
    history = RunStore(old_run).history()
    assert [(r.step, r.status) for r in history] == [(5, "ok"), (10, "ok"), (15, "skipped"), (20, "ok")]
    first, skipped, last = history[0], history[2], history[3]
    assert "ModelMismatchError" in skipped.reason and skipped.metrics == {} and skipped.anchor is None
    assert first.anchor is not None and first.anchor.questions == len(first.anchor.per_question) == 8
    assert first.anchor.seconds > 0 and all(p in (0.0, 1.0) for p in first.anchor.per_question.values())
    assert last.anchor is None and last.probe is not None and last.probe.reason == "too_few_questions"
    assert set(last.forecasts) == {"all", "add"} and all(isinstance(f, TaskForecast) for f in last.forecasts.values())
    assert last.forecasts["all"].status == "refused" and last.forecasts["all"].reason == "too_few_points"
    assert [a.rule for a in last.alerts] == ["target_reached:all/nll"] and isinstance(last.alerts[0], Alert)
    assert last.session == skipped.session != first.session  # the resumed process wrote 15 and 20
    assert last.value("all", "nll") == lines[-1]["metrics"]["evalcast/all/nll"]
    assert math.isnan(last.value("all", "no_such_metric")) and not last.has("all", "no_such_metric")
    assert last.train_value("lr") == 3e-3 and math.isnan(last.train_value("val_loss"))
    ok = [r for r in history if r.ok]
    assert run_axis(ok)[1] == "tokens seen" and np.array_equal(series(ok, "all", "nll"),
                                                               [r.metrics["evalcast/all/nll"] for r in ok])


def test_a_record_survives_its_json_round_trip(old_run: Path) -> None:
    for record in RunStore(old_run).history():
        again = Record.from_json(json.loads(json.dumps(record.to_json())))
        assert again.to_json() == record.to_json()
        assert record.to_json()["format_version"] == FORMAT_VERSION


def test_a_later_format_version_is_refused_naming_it_and_the_line(old_run: Path) -> None:
    line = len((old_run / "history.jsonl").read_text().splitlines()) + 1
    with open(old_run / "history.jsonl", "a") as fh:
        fh.write(json.dumps({"format_version": 7, "step": 25, "status": "ok"}) + "\n")
        fh.write(json.dumps({"step": 30, "status": "ok"}) + "\n")
    with pytest.raises(RecordFormatError, match=rf"history.jsonl:{line}: record format version 7: this evalcast "
                                                r"reads version 1 \(a later evalcast wrote it\); upgrade evalcast"):
        RunStore(old_run).history()
    meta = json.loads((old_run / "meta.json").read_text())
    (old_run / "meta.json").write_text(json.dumps({**meta, "format_version": 2}))
    with pytest.raises(RecordFormatError, match="run directory format version 2"):
        RunStore(old_run).read_meta()


def test_an_old_run_directory_is_continued_and_reported(old_run: Path, tmp_path: Path) -> None:
    """The same expert set reopens the old run: the probe is rebuilt from its anchors, a new checkpoint is
    appended in the current format, and the report reads old and new records together."""
    from evalcast.tasks import CHARSET, get_task
    from evalcast.toy import char_tokenizer, tiny_gpt2

    tok = char_tokenizer(CHARSET)
    experts = ExpertSet(get_task("add").sample(8, seed=0, difficulties=(1, 2)), tok, cache_dir=tmp_path / "cache",
                        progress=False)
    anchors = AnchorConfig(every=2, questions=12, decode=DecodeConfig(max_new_tokens=24, batch_size=16,
                                                                      progress=False))
    monitor = Monitor(experts, run_dir=old_run, config=MonitorConfig(pad_multiple=16, strict=True), anchors=anchors,
                      budget=Budget(max_steps=40), alerts=[TargetReached("all", 2.9, metric="nll"),
                                                           Regression("all", patience=1)])
    assert monitor.probe is not None and monitor.history()[-1].step == 20
    torch.manual_seed(0)
    evaluation = monitor.step(tiny_gpt2(tok, n_layer=1, n_embd=32, n_head=2, n_positions=64, seed=0), step=25,
                              every=5, tokens_seen=9000)
    assert evaluation is not None and evaluation.ok and evaluation.record is not None
    # the probe was rebuilt from the anchor the history holds (5), not from the lost step 15's left on disk,
    # then learnt from the new anchor at 25
    assert monitor.probe.live.trainer.steps == (5, 25)
    history = monitor.history()
    assert [r.step for r in history] == [5, 10, 15, 20, 25] and history[-1].anchor is not None
    assert json.loads((old_run / "history.jsonl").read_text().splitlines()[-1])["format_version"] == FORMAT_VERSION
    assert write_report(old_run).is_file()


def test_the_run_history_loads_once_and_rebuilds_after_a_rewind(old_run: Path) -> None:
    loads: list[int] = []
    history = RunHistory(RunStore(old_run), on_load=[lambda h: loads.append(len(h.records()))])
    assert [r.step for r in history.before(20)] == [5, 10, 15] and loads == [4]
    history.append(Record(step=25, metrics={"evalcast/all/nll": 1.0}))
    assert [r.step for r in history.records()] == [5, 10, 15, 20, 25] and loads == [4]  # kept in view
    history.rewind(10)
    assert [r.step for r in history.records()] == [5, 10] and loads == [4, 2]
    assert [r.step for r in RunStore(old_run).history()] == [5, 10]
