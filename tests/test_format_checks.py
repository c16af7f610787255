"""Format checks when an expert set is built: unknown tokens and lost characters fail loudly with a row and
the fix; a prompt that tokenizes differently alone warns. The issue's case: a character tokenizer without a
newline and the default separator ``"\\n"`` put an unknown token between every prompt and its solution."""

from __future__ import annotations

import json
import logging

import pytest

from evalcast.data import ExpertRecord, ExpertSet, ExpertSetError, PromptConfig, TokenizeConfig
from evalcast.toy import char_tokenizer

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 ?=+.:"  # no newline
ROWS = [{"id": f"q{i}", "prompt": f"what is {i}+1?", "solution": f"{i}+1={i + 1}. answer: {i + 1}",
         "answer": str(i + 1)} for i in range(6)]


@pytest.fixture(scope="module")
def chars():
    return char_tokenizer(ALPHABET)


def _file(tmp_path, rows=ROWS):
    path = tmp_path / "reasoning.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_issues_case_raises_naming_the_row_and_separator_fix(chars, tmp_path) -> None:
    with pytest.raises(ExpertSetError) as info:
        ExpertSet.from_file(_file(tmp_path), chars, cache_dir=tmp_path / "c", progress=False)
    text = str(info.value)
    assert "prompt separator does not survive this tokenizer" in text
    assert 'separator=""' in text
    assert "6 row(s) put it between prompt and solution (6 unknown token(s) in all)" in text
    assert f"{tmp_path / 'reasoning.jsonl'}:1 (row id 'q0')" in text
    assert "map to the tokenizer's unknown token" not in text  # the separator was the only unknown text


def test_companion_the_right_separator_builds_cleanly(chars, tmp_path, caplog) -> None:
    config = TokenizeConfig(prompt_format=PromptConfig(separator=""))
    with caplog.at_level(logging.WARNING):
        experts = ExpertSet.from_file(_file(tmp_path), chars, config=config, cache_dir=tmp_path / "c", progress=False)
    assert experts.report.format.unknown_tokens == 0 and experts.report.format.errors() == []
    assert not [r for r in caplog.records if "evalcast expert set" in r.getMessage()]


def test_unknown_characters_in_the_data_and_on_unknown_warn(chars, tmp_path, caplog) -> None:
    rows = [*ROWS, {"id": "accent", "prompt": "what is café?", "solution": "café is coffee", "answer": "coffee"}]
    config = TokenizeConfig(prompt_format=PromptConfig(separator=" "))
    with pytest.raises(ExpertSetError, match=r"2 token\(s\) in 1 sequence\(s\).*\['é'\].*reasoning.jsonl:7"):
        ExpertSet.from_file(_file(tmp_path, rows), chars, config=config, cache_dir=tmp_path / "c", progress=False)
    with caplog.at_level(logging.WARNING):
        experts = ExpertSet.from_file(_file(tmp_path, rows), chars, config=config, cache_dir=tmp_path / "c",
                                      progress=False, on_unknown="warn")
    assert experts.report.format.unknown_tokens == 2
    assert any("unknown token" in r.getMessage() for r in caplog.records)
    # the cached table remembers the problem: a later strict build from the cache still refuses
    with pytest.raises(ExpertSetError, match="unknown token"):
        ExpertSet.from_file(_file(tmp_path, rows), chars, config=config, cache_dir=tmp_path / "c", progress=False)


def test_characters_a_tokenizer_drops_silently_are_caught(tmp_path) -> None:
    tok = char_tokenizer(ALPHABET)
    tok.backend_tokenizer.model.unk_token = None  # no unknown token: unseen characters vanish
    tok.unk_token = None
    records = [ExpertRecord(prompt="what is 2+2?", solution="4!", answer="4", id="bang")]
    with pytest.raises(ExpertSetError, match=r"1 sequence\(s\) lose characters through encode -> decode"):
        ExpertSet(records, tok, config=TokenizeConfig(prompt_format=PromptConfig(separator="")),
                  cache_dir=tmp_path / "c", progress=False)


def test_a_prompt_that_tokenizes_differently_alone_warns(tmp_path, caplog) -> None:
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<unk>", *ALPHABET, "? "])}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[("?", " ")], unk_token="<unk>"))
    backend.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    records = [ExpertRecord(prompt="what is 2+2", solution=" 4", answer="4", id="merge")]  # "?" + " " merge
    with caplog.at_level(logging.WARNING):
        experts = ExpertSet(records, tok, config=TokenizeConfig(prompt_format=PromptConfig(separator="?")),
                            cache_dir=tmp_path / "c", progress=False)
    assert experts.report.format.boundary_rows == 1
    assert any("tokenize differently alone" in r.getMessage() for r in caplog.records)


def test_on_unknown_is_checked(chars, tmp_path) -> None:
    with pytest.raises(ValueError, match="on_unknown='ignore'"):
        ExpertSet([ExpertRecord(prompt="a", solution="b")], chars, on_unknown="ignore", cache_dir=tmp_path)
