"""``evalcast check`` on a saved tiny model: the issue's silent mistakes become errors with their fix, and
the corrected settings pass with examples, a length histogram and a trial anchor."""

from __future__ import annotations

import json
import re

import pytest
import torch

from evalcast.cli.main import main
from evalcast.toy import char_tokenizer, tiny_gpt2

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 ?=+.:"  # a character tokenizer with no newline


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("check")
    tok = char_tokenizer(ALPHABET)
    with torch.random.fork_rng():
        tiny_gpt2(tok, n_layer=1, n_embd=32, n_head=2, n_positions=128, seed=0).save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    rows = [{"id": f"q{i}", "prompt": f"what is {i}+{i}?", "solution": f"{i}+{i}={2 * i}. answer: {2 * i}",
             "answer": str(2 * i)} for i in range(10)]
    path = root / "reasoning.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_check_names_the_issues_mistakes_and_exits_nonzero(saved, capsys, monkeypatch) -> None:
    monkeypatch.setenv("EVALCAST_CACHE", str(saved / "cache"))
    code = main(["check", str(saved / "reasoning.jsonl"), "--model", str(saved / "model"), "--questions", "2",
                 "--max-new-tokens", "4"])
    out = capsys.readouterr().out
    assert code == 1
    assert "ERROR: the prompt separator does not survive this tokenizer" in out and 'separator=""' in out
    assert "10 unknown tokens" in out and "(10 unknown token(s) in all)" in out
    assert "the scorer judges 10 of 10 expert solution(s) wrong" in out  # answers are not in '#### N' form
    assert "anchor on 2 question(s)" in out


def test_check_passes_with_the_right_separator_and_scorer(saved, capsys, monkeypatch) -> None:
    monkeypatch.setenv("EVALCAST_CACHE", str(saved / "cache"))
    code = main(["check", str(saved / "reasoning.jsonl"), "--model", str(saved / "model"), "--separator", "",
                 "--scorer", r"numeric:answer: (\d+)", "--max-new-tokens", "4"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "rows: 10 loaded, 0 skipped, 0 truncated, 0 unknown tokens" in out
    assert "expert solutions judged by the scorer: correct 10" in out
    assert "'what is 0+0?' | '0+0=0. answer: 0'" in out  # rendered examples show the boundary
    assert "sequence length (tokens" in out and "#" in out
    assert "anchor on 8 question(s)" in out
    assert "ERROR" not in out


def test_score_cli_takes_a_scorer_and_a_separator(saved, capsys, monkeypatch, tmp_path) -> None:
    import shutil

    monkeypatch.setenv("EVALCAST_CACHE", str(saved / "cache"))
    checkpoint = tmp_path / "checkpoint-5"
    shutil.copytree(saved / "model", checkpoint)
    args = ["score", str(checkpoint), "--experts", str(saved / "reasoning.jsonl"), "--generate", "--questions", "3",
            "--max-new-tokens", "4", "--separator", "", "--run-dir", str(tmp_path / "run")]
    assert main([*args, "--scorer", "reasoning=numeric:answer: (\\d+)"]) == 0
    assert "step        5  ok" in capsys.readouterr().out
    preview = json.loads((tmp_path / "run" / "format_preview.json").read_text())
    assert preview["rows"][0]["prompt"].startswith("what is") and len(preview["rows"]) == 3
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['nosuchtask'\]"):
        main([*args[:-1], str(tmp_path / "run2"), "--scorer", "nosuchtask=numeric"])


@pytest.mark.parametrize("option, message", [
    (["--fields", "prompt"], r"'prompt' is not FIELD=COLUMN"),
    (["--fields", "prompt=question,=answer"], r"'=answer' is not FIELD=COLUMN"),
    (["--scorer", "nosuchkind:"], r"--scorer 'nosuchkind:': use exact"),
    (["--scorer", "exact", "--scorer", "numeric"], r"either one scorer for every task or TASK=SPEC"),
])
def test_malformed_input_options_are_usage_errors_before_anything_runs(option, message, capsys, tmp_path) -> None:
    """A malformed --fields or --scorer stops at argument parsing (exit 2, the option named), for every command
    that takes it, before a model or expert file is opened (none exists here)."""
    for command in (["check", "x.jsonl", "--model", str(tmp_path)], ["score", str(tmp_path), "--experts", "x.jsonl"],
                    ["cache", "x.jsonl", "--tokenizer", str(tmp_path)]):
        if command[0] == "cache" and option[0] == "--scorer":
            continue
        with pytest.raises(SystemExit) as exit_info:
            main([*command, *option])
        assert exit_info.value.code == 2
        assert re.search(message, capsys.readouterr().err)
