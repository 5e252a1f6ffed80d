"""``python -m benchmarks.demo_curves [--minutes 6] [--widths 128,256,384,512,768] [--out build/demo_curves.json]``

The measurements behind the demo's chooser (``carousel.studies.sizing.CURVES``): for each width, a
character-level LSTM (embedding 64, batch 32 x 100 characters, Adam 3e-3 at a constant rate) trains on
the Penn Treebank for ``--minutes`` of wall time, one width after the other; its training bits per
character (means of 25 steps) against the characters seen are fitted by

    bpc_H(c) = a_H + b_H * (c / 1e6) ** -alpha      (alpha shared by every width)

least squares: for each alpha on a grid, a_H and b_H are linear in the data. Prints the table to paste
into ``CURVES`` and writes the raw curves to ``--out``. Run it alone on the machine (it takes about
``minutes`` times the number of widths), and prefix it with ``ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2`` to measure as an AVX2-only CPU would.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from carousel.runners import describe_cpu
from carousel.studies.sizing import BATCH, BPTT, EMBED
from carousel.train import TrainConfig, Trainer, WallClockLimit
from carousel.train.tasks.charlm import CharLMOptions, CharLMTask


def curve(hidden: int, minutes: float, precision: str) -> dict:
    task = CharLMTask(CharLMOptions(corpus="ptb", hidden=hidden, embed=EMBED, bptt=BPTT, precision=precision))
    config = TrainConfig(steps=10**9, batch_size=BATCH, lr=3e-3, schedule="constant", eval_every=0,
                         checkpoint_every=10**9, progress=False, seed=0)
    trainer = Trainer(task, config, hooks=[WallClockLimit(60 * minutes)])
    trainer.fit()
    trainer.model.eval()
    with torch.no_grad():
        valid = task.evaluate(trainer.model, "valid")["bpc"]
    return {"hidden": hidden, "valid": valid, "bpc": [r["bpc"] for r in trainer.history], "chars_per_step": BATCH * BPTT}


def fit(curves: list[dict], group: int = 25, min_chars: float = 3e5) -> tuple[float, dict[int, tuple[float, float]]]:
    """The shared exponent and each width's (a, b), by least squares over a grid of exponents."""
    data = {}
    for c in curves:
        bpc = np.asarray(c["bpc"], dtype=float)
        n = len(bpc) // group
        chars = (np.arange(n * group) + 1).reshape(n, group).mean(1) * c["chars_per_step"]
        mean = bpc[: n * group].reshape(n, group).mean(1)
        keep = chars > min_chars
        data[c["hidden"]] = (chars[keep] / 1e6, mean[keep])
    best = None
    for alpha in np.linspace(0.2, 1.0, 161):
        total, params = 0.0, {}
        for h, (x, y) in data.items():
            design = np.stack([np.ones_like(x), x ** -alpha], axis=1)
            (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
            total += float(((design @ np.array([a, b]) - y) ** 2).sum())
            params[h] = (float(a), float(b))
        if best is None or total < best[0]:
            best = (total, float(alpha), params)
    return best[1], best[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--widths", default="128,256,384,512,768")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--out", default="build/demo_curves.json")
    args = parser.parse_args()
    print(f"CPU: {describe_cpu()}; {args.minutes:g} min per width, {args.precision}")
    curves = []
    for hidden in (int(w) for w in args.widths.split(",")):
        curves.append(curve(hidden, args.minutes, args.precision))
        c = curves[-1]
        print(f"  LSTM {hidden}: {len(c['bpc'])} steps, {len(c['bpc']) * c['chars_per_step'] / 1e6:.1f} M characters, "
              f"valid {c['valid']:.3f} bpc", flush=True)
    alpha, params = fit(curves)
    print(f"alpha = {alpha:.3f}")
    for h, (a, b) in params.items():
        print(f"    {h}: ({a:.3f}, {b:.3f}, {alpha:.3f}),")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"alpha": alpha, "params": params, "curves": curves}))


if __name__ == "__main__":
    main()
