"""Expert-set rows: loaders, field mapping and errors that name file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalcast.data import ExpertRecord, ExpertSetError, load_records, write_jsonl
from evalcast.data.files import LoadReport

GSM8K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsm8k" / "test.jsonl"


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_gsm8k_loads_with_one_line_mapping():
    records = load_records(GSM8K, fields={"prompt": "question", "solution": "answer"})
    assert len(records) == 1319
    first = records[0]
    assert first.task == "test" and first.answer == "18" and first.solution.endswith("#### 18")
    assert first.prompt.startswith("Janet")


def test_roundtrip_jsonl_parquet_json_and_dataset(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [ExpertRecord(prompt=f"p{i}", solution=f"s{i}\n#### {i}", task="t", domain="math/algebra", id=f"r{i}",
                         weight=0.5 + i, meta={"difficulty": i}) for i in range(3)]
    jsonl = write_jsonl(rows, tmp_path / "rows.jsonl")
    assert load_records(jsonl) == rows
    table = pa.Table.from_pylist([r.to_json() for r in rows])
    pq.write_table(table, tmp_path / "rows.parquet")
    assert load_records(tmp_path / "rows.parquet") == rows
    (tmp_path / "rows.json").write_text(json.dumps([r.to_json() for r in rows]))
    assert load_records(tmp_path / "rows.json") == rows
    ds = datasets.Dataset.from_list([r.to_json() for r in rows])
    assert load_records(ds) == rows
    with pytest.raises(ValueError, match="split"):
        load_records(datasets.DatasetDict({"test": ds}))
    assert load_records(datasets.DatasetDict({"test": ds}), split="test") == rows


@pytest.mark.parametrize("line, field, message", [
    ('{"prompt": "a", "solution": "b"', None, "malformed JSON"),
    ('{"prompt": "a"}', "solution", "missing"),
    ('{"prompt": "a", "solution": "   "}', "solution", "empty solution"),
    ('{"prompt": "a", "solution": 3}', "solution", "must be a string"),
    ('{"prompt": "a", "solution": "b", "weight": -1}', "weight", "finite number"),
    ('{"prompt": "a", "solution": "b", "domain": "math//x"}', "domain", "invalid domain"),
    ('{"prompt": "a", "solution": "b", "negatives": [""]}', "negatives", "empty"),
    ('[1, 2]', None, "JSON object"),
])
def test_bad_rows_name_file_line_and_field(tmp_path, line, field, message):
    path = write_lines(tmp_path / "bad.jsonl", ['{"prompt": "ok", "solution": "fine"}', line])
    with pytest.raises(ExpertSetError) as info:
        load_records(path)
    text = str(info.value)
    assert f"{path}:2" in text and message in text
    assert info.value.line == 2
    if field:
        assert f"field '{field}'" in text


def test_duplicate_ids_are_refused(tmp_path):
    path = write_lines(tmp_path / "dup.jsonl", ['{"id": 1, "prompt": "a", "solution": "b"}',
                                                '{"id": 1, "prompt": "c", "solution": "d"}'])
    with pytest.raises(ExpertSetError, match=r"duplicate id '1' \(first at .*dup.jsonl:1\)"):
        load_records(path)


def test_skip_mode_counts_and_keeps_good_rows(tmp_path):
    rows = ['{"prompt": "a", "solution": "b"}', "{oops", '{"prompt": "c", "solution": ""}',
            '{"prompt": "d", "solution": "e"}']
    path = write_lines(tmp_path / "mixed.jsonl", rows)
    report = LoadReport()
    records = load_records(path, on_invalid="skip", report=report)
    assert [r.prompt for r in records] == ["a", "d"]
    assert report.loaded == 2 and len(report.skipped) == 2
    assert "mixed.jsonl:3" in report.skipped[1]


def test_unknown_mapping_field_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="unknown expert-set field"):
        load_records(GSM8K, fields={"question": "prompt"})
    with pytest.raises(FileNotFoundError):
        load_records(tmp_path / "nope.jsonl")
    with pytest.raises(ExpertSetError, match="no valid rows"):
        load_records(write_lines(tmp_path / "empty.jsonl", ["{\"prompt\": \"a\", \"solution\": \"\"}"]),
                     on_invalid="skip")
