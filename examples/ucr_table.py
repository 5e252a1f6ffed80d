"""UCR/UEA classification with carousel's SequenceClassifier against the bake-off's published accuracies.

For every dataset and seed: ``carousel train ucr --dataset NAME <RECOMMENDED[NAME]> --seed S`` (run
in this process through ``carousel.train.train_run``), then the best checkpoint (chosen on the
held-out part of the training file) scored on the official test file (``evaluate_run``). Writes a
markdown table: mean +- standard deviation (sample, ddof=1) of the test accuracy over the seeds,
the published 1-NN DTW (full window ``DTW_R1_1NN`` and cross-validated window ``DTW_Rn_1NN``) and
COTE of Bagnall et al. 2017 ("The great time series classification bake off", the single-split
table shipped with tslearn), the command and the minutes each dataset took.

    OMP_NUM_THREADS=1 .venv/bin/python examples/ucr_table.py [--datasets GunPoint,ArrowHead] [--seeds 5]
        [--out runs/ucr-table/table.md] [--runs runs/ucr-table] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import torch

from carousel.data.ucr import UCR_DATASETS, published_accuracies
from carousel.train import build_config, train_run
from carousel.train.run import evaluate_run
from carousel.train.tasks.ucr import RECOMMENDED

NOT_PUBLISHED = "not published in that table"


def settings(dataset: str, steps: int | None = None) -> dict[str, str]:
    """The recommended command-line settings of ``dataset`` as {option: value}."""
    args, values = RECOMMENDED[dataset], {}
    for i, arg in enumerate(args):
        if arg.startswith("--"):  # an option with its value, or a flag (--bidirectional) without one
            given = i + 1 < len(args) and not args[i + 1].startswith("--")
            values[arg[2:].replace("-", "_")] = args[i + 1] if given else "true"
    if steps is not None:
        values["steps"] = str(steps)
    return {"dataset": dataset, **values, "progress": "false"}


def command(dataset: str, steps: int | None = None) -> str:
    """The command line of one run (S: the seed)."""
    steps_args = [] if steps is None else ["--steps", str(steps)]
    args = RECOMMENDED[dataset] if steps is None else [a for i, a in enumerate(RECOMMENDED[dataset]) if "--steps" not in RECOMMENDED[dataset][max(0, i - 1):i + 1]]
    return " ".join(["carousel train ucr --dataset", dataset, *args, *steps_args, "--seed S"])


def run_dataset(dataset: str, seeds: int, runs: Path, steps: int | None) -> dict:
    started, scores = time.perf_counter(), []
    for seed in range(seeds):
        run_dir = runs / f"{dataset}-{seed}"
        shutil.rmtree(run_dir, ignore_errors=True)
        train_run(build_config("ucr", {**settings(dataset, steps), "seed": str(seed)}), run_dir)
        test = evaluate_run(run_dir, split="test")["splits"]["test"]["accuracy"]
        scores.append(test)
        print(f"{dataset} seed {seed}: test accuracy {test:.4f}", flush=True)
    minutes = (time.perf_counter() - started) / 60
    try:
        published = published_accuracies(dataset)
    except KeyError:
        published = {}
    return {"dataset": dataset, "scores": scores, "minutes": minutes, "published": published, "command": command(dataset, steps)}


def cell(published: dict, name: str) -> str:
    return f"{published[name]:.3f}" if name in published else NOT_PUBLISHED


def table(rows: list[dict]) -> str:
    lines = ["| dataset | carousel (mean ± std, 5 seeds) | 1-NN DTW full window | 1-NN DTW CV window | COTE | minutes | command |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["scores"]
        spread = statistics.stdev(s) if len(s) > 1 else 0.0
        p = r["published"]
        lines.append(f"| {r['dataset']} | {statistics.mean(s):.3f} ± {spread:.3f} (n={len(s)}) | {cell(p, 'DTW_R1_1NN')} | "
                     f"{cell(p, 'DTW_Rn_1NN')} | {cell(p, 'COTE')} | {r['minutes']:.1f} | `{r['command']}` |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(UCR_DATASETS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("runs/ucr-table/table.md"))
    parser.add_argument("--runs", type=Path, default=Path("runs/ucr-table"))
    parser.add_argument("--steps", type=int, default=None, help="override every dataset's steps (quick checks)")
    a = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    a.out.parent.mkdir(parents=True, exist_ok=True)
    for dataset in a.datasets.split(","):
        if dataset not in UCR_DATASETS:
            parser.error(f"unknown dataset {dataset!r}; expected some of: {', '.join(UCR_DATASETS)}")
        rows.append(run_dataset(dataset, a.seeds, a.runs, a.steps))
        a.out.write_text(table(rows), encoding="utf-8")  # after every dataset: a partial table survives an interruption
        a.out.with_suffix(".json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print(table(rows))


if __name__ == "__main__":
    main()
