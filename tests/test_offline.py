"""``evalcast score``: saved checkpoints scored after the fact equal what the callback saw live."""

from __future__ import annotations

import pytest

from evalcast import ExpertSet, Monitor
from evalcast.callbacks.transformers import TransformersCallback
from evalcast.cli.main import main
from evalcast.data import write_jsonl
from evalcast.offline import read_checkpoint
from evalcast.runs import RunStore
from evalcast.toy import arithmetic_records, tiny_gpt2
from tests.hf_utils import make_trainer


def test_score_cli_matches_the_live_callback(tok, tmp_path, capsys):
    experts_file = write_jsonl(arithmetic_records(), tmp_path / "experts.jsonl")
    live = Monitor(ExpertSet.from_file(experts_file, tok, cache_dir=tmp_path / "cache", progress=False),
                   run_dir=tmp_path / "live")
    trainer = make_trainer(tiny_gpt2(tok, n_embd=32, n_positions=64), tok, tmp_path / "out",
                           callbacks=[TransformersCallback(live)], include_num_input_tokens_seen="non_padding")
    trainer.train()
    tok.save_pretrained(tmp_path / "out" / "checkpoint-12")
    checkpoints = [str(tmp_path / "out" / f"checkpoint-{s}") for s in (12, 4, 8)]  # any order
    assert main(["score", *checkpoints, "--experts", str(experts_file), "--run-dir", str(tmp_path / "offline"),
                 "--tokenizer", str(tmp_path / "out" / "checkpoint-12"), "--generate", "--questions", "6",
                 "--max-new-tokens", "12"]) == 0
    assert "pass@1" in capsys.readouterr().out
    offline, online = RunStore(tmp_path / "offline").history(), RunStore(tmp_path / "live").history()
    assert [r.step for r in offline] == [r.step for r in online] == [4, 8, 12]
    for got, want in zip(offline, online):
        assert got.tokens_seen == want.tokens_seen > 0
        for key in ("evalcast/all/nll", "evalcast/add/top1", "evalcast/domain/math/sub/log_rank.rarity"):
            assert got.metrics[key] == pytest.approx(want.metrics[key], rel=1e-6)
        assert 0.0 <= got.metrics["evalcast/all/pass@1_anchor"] <= 1.0
        assert got.anchor.questions == 6


def test_unreadable_checkpoints_are_refused(tmp_path):
    final = tmp_path / "final"
    final.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        read_checkpoint(final)
    (final / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="cannot tell the training step"):
        read_checkpoint(final)
