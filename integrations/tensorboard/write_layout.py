"""Write evalcast's TensorBoard custom-scalars layout into a run directory.

    python integrations/tensorboard/write_layout.py RUN_DIR --task gsm8k --task humaneval

Needed only for runs whose evalcast scalars did not go through ``TensorBoardTracker`` (which writes the
layout itself), e.g. a Lightning ``CSVLogger`` run converted later, or to add forecast charts. Each
``--task`` adds a Margin chart of ``evalcast/<task>/forecast_final`` with its ``_lo80``/``_hi80`` band;
each ``--curve NAME`` one of ``NAME/final`` (the end of a logged forecast curve).
"""

from __future__ import annotations

import argparse

from evalcast.trackers.tb_layout import MARGIN_BAND, evalcast_layout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="the TensorBoard run directory (where the event files are)")
    parser.add_argument("--task", action="append", default=[], help="task with a forecast_final scalar")
    parser.add_argument("--curve", action="append", default=[], help="name of a logged forecast curve")
    args = parser.parse_args(argv)

    from torch.utils.tensorboard import SummaryWriter

    lo, hi = MARGIN_BAND
    values = [f"evalcast/{task}/forecast_final" for task in args.task] + [f"{c}/final" for c in args.curve]
    writer = SummaryWriter(log_dir=args.run_dir)
    writer.add_custom_scalars(evalcast_layout({v: (v, v + lo, v + hi) for v in values}))
    writer.close()
    print(f"wrote the evalcast layout to {args.run_dir}; open TensorBoard's CUSTOM SCALARS tab")


if __name__ == "__main__":
    main()
