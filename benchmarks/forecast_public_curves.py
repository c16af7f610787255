"""The transferred multi-power law on public loss curves (training loss, 25M–400M, one LR per schedule).

    OMP_NUM_THREADS=1 python benchmarks/forecast_public_curves.py --data DIR

``DIR`` holds the ``csv_25/``, ``csv_100/`` and ``csv_400/`` folders of ``loss_curve_repo`` in the
thu-yao-01-luo/MultiPowerLaw repository (columns step, lr, loss; peak LR 3e-4, 2,160 linear warm-up
steps). The decay shape and B/A are fitted jointly on one size's 24k-step runs (cosine, a two-stage
constant run and a WSD run with a geometric cool-down; the constant run has no decay and is left out of
the shape), then ``(L0, A, α)`` of a 72k-step cosine run of a size ≥ it are fitted on its first 10%,
25% and 50% and its final loss is forecast, against the last value. Writes
``benchmarks/results/forecast_public_curves.json``. This checks the proxy law alone, on real curves;
the accuracy link is not involved.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from evalcast.forecast.multipower import schedule_terms
from evalcast.forecast.shapefit import LawSeries, fit_shared_shape
from evalcast.forecast.transfer import AlphaPrior, fit_transfer

RESULTS = Path(__file__).resolve().parent / "results"
PEAK, END, WARMUP = 3e-4, 3e-5, 2160
REFERENCES = ("cosine_24000", "wsdcon_9", "wsd_20000_24000")


def schedule(name: str) -> np.ndarray:
    """The LR per step of each public run (linear warm-up to 3e-4, then the named schedule)."""
    total = 16000 if name.startswith("wsdcon") else int(name.split("_")[-1])
    s = np.arange(total, dtype=float)
    lr = np.full(total, PEAK)
    if name.startswith("cosine"):
        lr = END + 0.5 * (PEAK - END) * (1 + np.cos(np.pi * (s - WARMUP) / (total - WARMUP)))
    elif name.startswith("wsdcon"):
        lr = np.where(s < 8000, PEAK, int(name.split("_")[1]) * 1e-5)
    elif name.startswith("wsd_"):
        decay = 20000
        frac = np.clip((s - decay) / (total - decay), 0.0, 1.0)
        lr = PEAK ** (1 - frac) * END**frac
    lr[:WARMUP] = np.linspace(0.0, PEAK, WARMUP)
    return lr


def load(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = np.genfromtxt(folder / f"{name}.csv", delimiter=",", skip_header=1)
    lr = schedule(name)
    step, loss = data[:, 0].astype(int), data[:, 2]
    keep = (step < lr.size) & (step > WARMUP)
    return lr, step[keep], loss[keep]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True, help="folder holding csv_25/, csv_100/, csv_400/")
    args = parser.parse_args()
    cases = []
    for ref_size, target_size in ((25, 25), (25, 100), (25, 400), (100, 100), (100, 400), (400, 400)):
        series = []
        for name in REFERENCES:
            lr, step, loss = load(args.data / f"csv_{ref_size}", name)
            series.append(LawSeries(name, loss[::4], schedule_terms(lr, step[::4])))
        shared = fit_shared_shape(series)
        if shared is None:
            continue
        prior = AlphaPrior(float(np.mean(shared.run_params[:, 2])), 0.05)
        lr, step, loss = load(args.data / f"csv_{target_size}", "cosine_72000")
        for fraction in (0.1, 0.25, 0.5):
            seen = step <= fraction * 72000
            tf = fit_transfer(loss[seen], schedule_terms(lr, step[seen]), schedule_terms(lr, step[-1:]), shared.shape,
                              shared.spread, shared.spread_scale, prior, float(np.median(shared.sigma)), 200,
                              np.random.default_rng(0))
            if tf is None:
                continue
            lo, hi = np.nanpercentile(tf.replicates[:, -1], [10, 90])
            case = {"references": f"{ref_size}M 24k", "target": f"{target_size}M cosine 72k", "from": fraction,
                    "truth": float(loss[-1]), "forecast": float(tf.point[-1]), "error": float(tf.point[-1] - loss[-1]),
                    "interval80": [float(lo), float(hi)], "last_value_error": float(loss[seen][-1] - loss[-1])}
            cases.append(case)
            print(f"{case['references']} -> {case['target']} from {fraction:.0%}: error {case['error']:+.4f} "
                  f"(80% [{lo:.3f}, {hi:.3f}], truth {loss[-1]:.3f}), last value {case['last_value_error']:+.3f}")
    RESULTS.mkdir(exist_ok=True)
    out = {"benchmark": "forecast_public_curves", "source": "thu-yao-01-luo/MultiPowerLaw loss_curve_repo",
           "cases": cases,
           "mae_by_fraction": {f"{f:g}": float(np.mean([abs(c["error"]) for c in cases if c["from"] == f]))
                               for f in (0.1, 0.25, 0.5)},
           "last_value_mae_by_fraction": {f"{f:g}": float(np.mean([abs(c["last_value_error"]) for c in cases
                                                                    if c["from"] == f])) for f in (0.1, 0.25, 0.5)}}
    (RESULTS / "forecast_public_curves.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {RESULTS / 'forecast_public_curves.json'}")


if __name__ == "__main__":
    main()
