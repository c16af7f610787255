"""The ``evalcast`` command line: ``demo``, ``score``, ``check``, ``report``, ``forecast``, ``cache``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace


def _demo(args: argparse.Namespace) -> int:
    from evalcast.demo import DemoConfig, run_demo

    overrides = {k: v for k, v in {"steps": args.steps, "save_every": args.save_every, "seed": args.seed}.items()
                 if v is not None}
    run_demo(args.out, replace(DemoConfig(), **overrides))
    return 0


def _cache(args: argparse.Namespace) -> int:
    from transformers import AutoTokenizer

    from evalcast.data import ExpertSet, TokenizeConfig

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    experts = ExpertSet.from_file(args.experts, tokenizer, fields=args.fields, cache_dir=args.cache_dir,
                                  config=TokenizeConfig(max_length=args.max_length), on_invalid=args.on_invalid)
    print(f"{experts!r}\n{experts.report.summary()}\ncache: {experts.cache_path}")
    for line in experts.report.skipped[:20]:
        print(f"  skipped: {line}")
    return 0


def _score(args: argparse.Namespace) -> int:
    from transformers import AutoTokenizer

    from evalcast.data import ExpertSet, PromptConfig, TokenizeConfig
    from evalcast.generate import DecodeConfig
    from evalcast.offline import score_checkpoints

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.checkpoints[0])
    fmt = PromptConfig(separator=_unescape(args.separator))
    experts = ExpertSet.from_file(args.experts, tokenizer, fields=args.fields, on_invalid=args.on_invalid,
                                  config=TokenizeConfig(prompt_format=fmt, max_length=args.max_length),
                                  evaluation=args.evaluation or ())
    decode = DecodeConfig(max_new_tokens=args.max_new_tokens, stop=tuple(args.stop or ()),
                          batch_size=args.batch_size, progress=False)
    monitor = score_checkpoints(args.checkpoints, experts, args.run_dir, generate=args.generate,
                                questions=args.questions, decode=decode, device=args.device, scorer=args.scorer)
    for record in monitor.history():
        line = f"step {record.step:>8}  {record.status:<7}  nll {record.value('all', 'nll'):.4f}"
        if record.has("all", "pass@1_anchor"):
            line += f"  pass@1 {record.value('all', 'pass@1_anchor'):.3f}"
        print(line)
    print(f"run directory: {monitor.run_dir}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from evalcast.check import check_experts
    from evalcast.data import PromptConfig, TokenizeConfig
    from evalcast.generate import DecodeConfig

    fmt = PromptConfig(separator=_unescape(args.separator), chat_template=args.chat_template)
    report = check_experts(args.experts, args.model, tokenizer_dir=args.tokenizer, questions=args.questions,
                           fields=args.fields, config=TokenizeConfig(prompt_format=fmt, max_length=args.max_length),
                           scorer=args.scorer, device=args.device,
                           decode=DecodeConfig(max_new_tokens=args.max_new_tokens, stop=tuple(args.stop or ()),
                                               progress=False))
    print(report.render())
    return 0 if report.ok else 1


def _unescape(text: str) -> str:
    """A separator given with escapes on the command line (``\\n`` is a newline)."""
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape")


def field_mapping(text: str) -> dict[str, str]:
    """``--fields prompt=question,solution=answer`` as a mapping (an argparse ``type``)."""
    pairs = [item.partition("=") for item in text.split(",") if item.strip()]
    bad = [key + sep + value for key, sep, value in pairs if not (key.strip() and sep and value.strip())]
    if bad or not pairs:
        raise argparse.ArgumentTypeError(f"{bad[0] if bad else text!r} is not FIELD=COLUMN; give pairs separated by "
                                         "commas, e.g. prompt=question,solution=answer")
    return {key.strip(): value.strip() for key, _, value in pairs}


def _add_input_options(parser: argparse.ArgumentParser, scorer_help: str | None = None) -> None:
    """``--fields`` (every command that reads an expert file) and, with ``scorer_help``, ``--scorer``."""
    parser.add_argument("--fields", type=field_mapping, metavar="FIELD=COLUMN,...",
                        help="field mapping, e.g. prompt=question,solution=answer")
    if scorer_help is not None:
        parser.add_argument("--scorer", action="append", metavar="[TASK=]SPEC", help=scorer_help)


def _parse_scorer_option(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Replace the repeated ``--scorer`` texts by one scorer spec, or exit with argparse's usage error."""
    from evalcast.cli.scorers import parse_scorers

    try:
        args.scorer = parse_scorers(args.scorer)
    except ValueError as exc:
        parser.error(str(exc))


def _report(args: argparse.Namespace) -> int:
    from evalcast.report import write_report

    try:
        path = write_report(args.run_dir, args.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"evalcast report: {exc}", file=sys.stderr)
        return 2
    print(f"report: {path}\nfigures: {path.parent}")
    return 0


def _forecast(args: argparse.Namespace) -> int:
    import json

    from evalcast.cli.forecast import forecast_saved_run, forecast_table

    try:
        step, results = forecast_saved_run(args.run_dir, args.references or (), args.at_step)
    except (FileNotFoundError, ValueError) as exc:
        print(f"evalcast forecast: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"step": step, "groups": results}, indent=1, allow_nan=False, default=str))
    else:
        print(forecast_table(step, results))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evalcast", description="Forecast downstream accuracy while an LLM trains.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="train a tiny model on CPU with evalcast attached; writes a run directory")
    demo.add_argument("--out", default="evalcast-demo", help="output directory (default: ./evalcast-demo)")
    demo.add_argument("--steps", type=int, help="training steps (default: 1200)")
    demo.add_argument("--save-every", type=int, help="checkpoint (and evaluation) interval (default: 60)")
    demo.add_argument("--seed", type=int)
    demo.set_defaults(run=_demo)

    score = commands.add_parser("score", help="score saved checkpoints (from_pretrained dirs) into a run directory")
    score.add_argument("checkpoints", nargs="+", help="checkpoint directories (ordered by training step)")
    score.add_argument("--experts", required=True, help="expert set file (.jsonl, .json, .parquet)")
    _add_input_options(score, scorer_help=(
        "how --generate judges completions: exact, exact:REGEX, numeric, numeric:REGEX, code, MODULE:NAME or "
        "FILE.py:NAME (a Scorer or a function (record, completion) -> bool); TASK=SPEC per task, repeatable "
        "(default: code tests, else the row's answer_pattern, else GSM8K '#### answer')"))
    score.add_argument("--run-dir", default="evalcast_scores", help="run directory (default: ./evalcast_scores)")
    score.add_argument("--tokenizer", help="tokenizer directory (default: the first checkpoint's)")
    score.add_argument("--generate", action="store_true", help="also run the generative evaluation (pass@1)")
    score.add_argument("--evaluation", help="evaluation questions (prompt + answer per row) that --generate runs on "
                                            "instead of the expert rows")
    score.add_argument("--questions", type=int, default=256, help="questions for --generate (default 256)")
    score.add_argument("--max-new-tokens", type=int, default=256)
    score.add_argument("--stop", action="append", help="stop string for generation (repeatable)")
    score.add_argument("--batch-size", type=int, default=16, help="generation batch size")
    score.add_argument("--separator", default="\\n",
                       help="text between prompt and solution, with escapes (default '\\n'; '' for none)")
    score.add_argument("--max-length", type=int, default=None)
    score.add_argument("--device", default="cpu")
    score.add_argument("--on-invalid", choices=["error", "skip"], default="error")
    score.set_defaults(run=_score)

    check = commands.add_parser("check", help="validate an expert file against a saved model before training")
    check.add_argument("experts", help="expert set file (.jsonl, .json, .parquet)")
    check.add_argument("--model", required=True, help="saved model directory (from_pretrained)")
    check.add_argument("--tokenizer", help="tokenizer directory (default: the model's)")
    check.add_argument("--questions", type=int, default=8, help="questions for the trial anchor (default 8)")
    _add_input_options(check, scorer_help="as for 'evalcast score'")
    check.add_argument("--separator", default="\\n",
                       help="text between prompt and solution, with escapes (default '\\n'; '' for none)")
    check.add_argument("--chat-template", action="store_true", help="render prompts with the chat template")
    check.add_argument("--max-length", type=int, default=None)
    check.add_argument("--max-new-tokens", type=int, default=128)
    check.add_argument("--stop", action="append", help="stop string for generation (repeatable)")
    check.add_argument("--device", default="cpu")
    check.set_defaults(run=_check)

    report = commands.add_parser("report", help="write a self-contained HTML report (and PNG figures) of a run")
    report.add_argument("run_dir", help="the run directory the Monitor wrote (holds history.jsonl)")
    report.add_argument("--out", default=None, help="output directory (default: RUN_DIR/report)")
    report.set_defaults(run=_report)

    forecast = commands.add_parser("forecast", help="re-forecast a run from its history cut at a step")
    forecast.add_argument("run_dir", help="the run directory the Monitor wrote (finished or not)")
    forecast.add_argument("--references", nargs="+", metavar="DIR", help="run directories of reference runs "
                          "(the same expert set)")
    forecast.add_argument("--at-step", type=int, default=None, help="forecast from the checkpoints up to this "
                          "step (default: all of them)")
    forecast.add_argument("--json", action="store_true", help="print JSON instead of a table")
    forecast.set_defaults(run=_forecast)

    cache = commands.add_parser("cache", help="tokenize an expert set once and cache it")
    cache.add_argument("experts", help="expert set file (.jsonl, .json, .parquet)")
    cache.add_argument("--tokenizer", required=True, help="tokenizer directory (from_pretrained)")
    _add_input_options(cache)
    cache.add_argument("--max-length", type=int, default=None)
    cache.add_argument("--cache-dir", default=None)
    cache.add_argument("--on-invalid", choices=["error", "skip"], default="error")
    cache.set_defaults(run=_cache)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "scorer", None) is not None:
        _parse_scorer_option(parser, args)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
