"""The ``evalcast`` command line: ``demo``, ``cache`` (and more as the library grows)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    from evalcast.demo import DemoConfig, run_demo

    config = DemoConfig(steps=args.steps, save_every=args.save_every, seed=args.seed)
    run_demo(args.out, config)
    return 0


def _cache(args: argparse.Namespace) -> int:
    from transformers import AutoTokenizer

    from evalcast.data import ExpertSet, TokenizeSettings

    fields = dict(item.split("=", 1) for item in args.fields.split(",")) if args.fields else None
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    experts = ExpertSet.from_file(args.experts, tokenizer, fields=fields, cache_dir=args.cache_dir,
                                  settings=TokenizeSettings(max_length=args.max_length), on_invalid=args.on_invalid)
    print(f"{experts!r}\n{experts.report.summary()}\ncache: {experts.cache_path}")
    for line in experts.report.skipped[:20]:
        print(f"  skipped: {line}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evalcast", description="Forecast downstream accuracy while an LLM trains.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="train a tiny model on CPU with evalcast attached; writes a run directory")
    demo.add_argument("--out", default="evalcast-demo", help="output directory (default: ./evalcast-demo)")
    demo.add_argument("--steps", type=int, default=600, help="training steps (default: 600)")
    demo.add_argument("--save-every", type=int, default=50, help="checkpoint (and evaluation) interval")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)

    cache = commands.add_parser("cache", help="tokenize an expert set once and cache it")
    cache.add_argument("experts", help="expert set file (.jsonl, .json, .parquet)")
    cache.add_argument("--tokenizer", required=True, help="tokenizer directory (from_pretrained)")
    cache.add_argument("--fields", help="field mapping, e.g. prompt=question,solution=answer")
    cache.add_argument("--max-length", type=int, default=None)
    cache.add_argument("--cache-dir", default=None)
    cache.add_argument("--on-invalid", choices=["error", "skip"], default="error")
    cache.set_defaults(run=_cache)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
