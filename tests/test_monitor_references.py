"""Reference runs given to a Monitor as run directories, and ``evalcast forecast`` on a saved run.

A simulated family (shared link and decay shape, ``evalcast.forecast.simfamily``) is written as evalcast
run directories: its task is the expert set's ``add`` and its anchor questions are the monitor's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalcast import ExpertSet, Monitor
from evalcast.cli.main import main
from evalcast.forecast import ClusterConfig, ForecastConfig
from evalcast.forecast.simfamily import FamilyRun, SimFamily, default_runs, simulate_family
from evalcast.monitor import AnchorConfig, Budget, Decision, Evaluation, TrainingContext
from evalcast.monitor.saved import forecast_meta, read_run
from evalcast.proxy import metric_name
from evalcast.runs import AnchorSummary, Record, RunStore
from evalcast.toy import arithmetic_records

FAST = ForecastConfig(n_bootstrap=60, clusters=ClusterConfig(enabled=False), proxies=("nll", "prob"))
QUESTIONS = 400
CUT = 0.3


@pytest.fixture(scope="module")
def big_experts(tok, tmp_path_factory) -> ExpertSet:
    return ExpertSet(arithmetic_records(QUESTIONS), tok, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


@pytest.fixture(scope="module")
def add_ids(big_experts) -> list[str]:
    return [r.id for r in big_experts.records if r.task == "add"]


@pytest.fixture(scope="module")
def family(add_ids) -> list[FamilyRun]:
    return simulate_family(SimFamily(task="add", n_questions=len(add_ids)), default_runs(0))


def budget_of(run: FamilyRun) -> Budget:
    return Budget(max_steps=run.spec.steps, lr=[float(v) for v in run.inputs.checkpoints.schedule.lr])


def records_of(run: FamilyRun, ids: list[str], upto: float = 1.0) -> list[Record]:
    """The simulated run as evalcast records (proxies of ``add``, anchors on its questions)."""
    inputs, out = run.inputs, []
    anchors = {a.index: a for a in inputs.anchors}
    for i, (x, step) in enumerate(zip(inputs.checkpoints.x, inputs.checkpoints.step)):
        if step > upto * run.spec.steps + 1e-9:
            break
        metrics = {metric_name("add", p): float(inputs.proxies[p][i]) for p in ("nll", "prob")}
        record = Record(step=int(step), tokens_seen=int(x), metrics=metrics, train={"val_loss": 1.0})
        if i in anchors:
            per_question = {ids[int(q[1:])]: v for q, v in anchors[i].per_question.items()}
            record.anchor = AnchorSummary(questions=len(per_question), per_question=per_question)
            record.metrics[metric_name("add", "pass@1_anchor")] = anchors[i].accuracy
        out.append(record)
    return out


def write_run(path: Path, run: FamilyRun, ids: list[str], fingerprint: str) -> Path:
    store = RunStore(path)
    store.write_meta({"expert_set": fingerprint, "tasks": ["add", "sub"],
                      **forecast_meta(budget_of(run), run.spec.n_params, {q: ["all", "add"] for q in ids},
                                      ["all", "add"], FAST)})
    for record in records_of(run, ids):
        store.append(record)
    return path


@pytest.fixture(scope="module")
def reference_dirs(family, add_ids, big_experts, tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("refs")
    return [write_run(root / r.spec.name, r, add_ids, big_experts.fingerprint) for r in family[:3] + family[4:]]


@pytest.fixture(scope="module")
def monitored(family, add_ids, big_experts, reference_dirs, tmp_path_factory) -> tuple[Monitor, Record]:
    """The target run's monitor (references given as run directories) after its forecast at ``CUT``."""
    target = family[3]
    run_dir = tmp_path_factory.mktemp("target")
    records = records_of(target, add_ids, CUT)
    for record in records[:-1]:
        RunStore(run_dir).append(record)
    monitor = Monitor(big_experts, run_dir=run_dir, budget=budget_of(target), forecast=FAST,
                      anchors=AnchorConfig(questions=QUESTIONS), references=reference_dirs,
                      n_params=int(target.spec.n_params))
    evaluation = Evaluation(Decision(ok=True), record=records[-1])
    monitor.forecast.run(evaluation, monitor.rank_zero.history, monitor.budget, monitor.n_params)
    monitor.rank_zero.commit(evaluation, TrainingContext(step=records[-1].step, tokens_seen=records[-1].tokens_seen),
                             monitor.budget, monitor.n_params)
    return monitor, evaluation.record


def test_a_monitor_with_reference_run_directories_publishes_the_cross_run_forecast(monitored, family) -> None:
    _, record = monitored
    tf = record.forecasts["add"]
    assert tf.status == "ok", tf.message
    assert tf.data.law.startswith("multipower:")
    assert not any(f.startswith("references:fallback") for f in tf.forecast.flags)
    assert {"prior_only", "pilot_ratio", "within_run", "last_value"} <= set(tf.baselines)
    truth = family[3].final
    assert abs(tf.forecast.final - truth) < 0.1 < abs(tf.baselines["last_value"].final - truth)


def test_the_monitor_records_what_references_need(monitored, family) -> None:
    monitor, _ = monitored
    run = read_run(monitor.run_dir)
    assert run.budget.max_steps == family[3].spec.steps and len(run.budget.lr) == family[3].spec.steps + 1
    assert run.n_params == family[3].spec.n_params and "add" in run.groups
    assert run.meta["forecast"]["n_bootstrap"] == FAST.n_bootstrap


def test_references_on_another_expert_set_fail_at_construction(big_experts, family, add_ids, tmp_path) -> None:
    foreign = write_run(tmp_path / "foreign", family[0], add_ids, "0" * 64)
    with pytest.raises(ValueError, match="another expert set"):
        Monitor(big_experts, run_dir=tmp_path / "run", references=[foreign])


def test_a_run_directory_without_a_recorded_budget_is_refused_with_the_file_named(big_experts, tmp_path) -> None:
    RunStore(tmp_path / "old").write_meta({"expert_set": big_experts.fingerprint})
    with pytest.raises(ValueError, match=r"meta.json: no training budget recorded"):
        Monitor(big_experts, run_dir=tmp_path / "run", references=[tmp_path / "old"])


def test_cli_forecast_at_step_equals_what_the_monitor_logged(monitored, reference_dirs, capsys) -> None:
    monitor, record = monitored
    code = main(["forecast", str(monitor.run_dir), "--references", *map(str, reference_dirs),
                 "--at-step", str(record.step + 1), "--json"])  # a step between checkpoints: the one before
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["step"] == record.step
    logged = monitor.history()[-1].forecasts
    for group, tf in logged.items():
        got = out["groups"][group]
        assert got["status"] == tf.forecast.status and got["reason"] == tf.forecast.reason
        if tf.forecast.ok:
            assert got["final"] == tf.forecast.final and got["interval80"] == list(tf.forecast.interval80)
        for name, b in tf.baselines.items():
            assert got["baselines"][name]["final"] == (b.final if b.ok else None), name
    assert out["groups"]["add"]["status"] == "ok"


def test_cli_forecast_earlier_differs_and_a_table_is_printed(monitored, reference_dirs, capsys) -> None:
    monitor, record = monitored
    assert main(["forecast", str(monitor.run_dir), "--at-step", str(record.step // 2)]) == 0
    text = capsys.readouterr().out
    assert "add" in text and "last_value" in text and "up to step " in text
    assert main(["forecast", str(monitor.run_dir / "missing")]) == 2
    assert "not an evalcast run directory" in capsys.readouterr().err


def test_non_embedding_parameters_leave_out_a_tied_head(model) -> None:
    from evalcast.monitor.monitor import non_embedding_parameters

    d = model.config.n_embd
    expected = model.config.n_layer * (12 * d * d + 13 * d) + 2 * d
    assert non_embedding_parameters(model) == expected
