"""UCR/UEA classification with carousel's classifiers against the bake-off's published accuracies.

For every dataset and seed: ``carousel train ucr --dataset NAME <settings> --seed S`` (run in this
process through ``carousel.train.train_run``), then the best checkpoint (chosen on the held-out part
of the training file) scored on the official test file (``evaluate_run``). The settings are those of
``carousel.train.tasks.ucr.RECOMMENDED`` (``--model recommended``, the default), of the recurrent
classifier (``--model gru``: ``RECOMMENDED_GRU``) or of LSTM-FCN (``--model fcn``: ``RECOMMENDED_FCN``),
changed by ``--set OPTION=VALUE`` (repeatable; ``--set shuffle=false`` drops a flag) and by
``--steps`` / ``--minutes`` (the trainer's wall-clock budget per run). Writes a markdown table:
mean +- standard deviation (sample, ddof=1) of the test accuracy over the seeds, the published 1-NN
DTW (full window ``DTW_R1_1NN`` and cross-validated window ``DTW_Rn_1NN``) and COTE of Bagnall et
al. 2017 ("The great time series classification bake off", the single-split table shipped with
tslearn), the minutes each dataset took (training and scoring, summed over the seeds) and the
command, and the test accuracy of the seeds' ensemble (``ensemble_accuracy``: the mean of their
class probabilities, one model made of all the runs, as COTE is made of many classifiers; a
different thing from the mean over the seeds, which is the table's figure). The JSON beside it
also keeps every seed's validation accuracy and loss (what a choice between settings may look at;
the test may not). With ``--reuse`` a seed already run with exactly
these settings (its ``config.json`` equal, its ``table-seed.json`` written) is read, not rerun, and
one that was interrupted (killed, or the session ended) goes on from its last checkpoint, exactly as
if it had not stopped (``resume_run``); its minutes include the time trained before. Each run uses
one torch thread, so that seeds split over processes (``--first-seed``) run side by side;
``--threads N`` lets a run that has the machine to itself use N threads.

``--cv K`` chooses instead of testing: it runs the K stratified folds of the training file (fold k
held out as ``valid``, trained on the rest with seed k: ``--folds K --fold k``) and tables the mean
validation accuracy and loss over the folds; the test file is never scored. Settings chosen this way
see the training file only, as the bake-off's cross-validated DTW window does.

    OMP_NUM_THREADS=1 .venv/bin/python examples/ucr_table.py [--datasets GunPoint,ArrowHead] [--seeds 5]
        [--model recommended|gru|fcn] [--set shuffle=false] [--steps N] [--minutes M] [--reuse] [--first-seed N]
        [--threads 1] [--out runs/ucr-table/table.md] [--runs runs/ucr-table] [--cv K]
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
from carousel.train import (RunConfig, RunFinished, TrainConfig, build_config, latest_checkpoint, load_checkpoint,
                             resume_run, train_run)
from carousel.train.config import option_fields
from carousel.train.run import evaluate_run, load_run_config, load_run_model
from carousel.train.tasks.ucr import RECOMMENDED, RECOMMENDED_FCN, RECOMMENDED_GRU, UCROptions

NOT_PUBLISHED = "not published in that table"
TABLES = {"recommended": RECOMMENDED, "gru": RECOMMENDED_GRU, "fcn": RECOMMENDED_FCN}
FALSE = ("false", "0", "no", "off")
FLAGS = {name for cls in (UCROptions, TrainConfig) for name, (_, kind) in option_fields(cls).items() if kind is bool}


def parse_args(args: list[str]) -> dict[str, str]:
    """Command-line settings as {option: value} in their order; a flag (``--bidirectional``) is "true"."""
    values = {}
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            given = i + 1 < len(args) and not args[i + 1].startswith("--")
            values[arg[2:].replace("-", "_")] = args[i + 1] if given else "true"
    return values


def settings(dataset: str, model: str = "recommended", overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The settings of ``dataset`` in ``TABLES[model]`` with ``overrides`` applied, as {option: value}
    (flags as "true"; an override of a flag to "false" removes it)."""
    values = {**parse_args(TABLES[model][dataset]), **(overrides or {})}
    return {k: v for k, v in values.items() if not (v.lower() in FALSE and _is_flag(k))}


def _is_flag(name: str) -> bool:
    return name in FLAGS


def command(dataset: str, values: dict[str, str]) -> str:
    """The command line of one run (S: the seed)."""
    args = []
    for k, v in values.items():
        args += [f"--{k.replace('_', '-')}"] if _is_flag(k) else [f"--{k.replace('_', '-')}", v]
    return " ".join(["carousel train ucr --dataset", dataset, *args, "--seed S"])


def seed_dir(runs: Path, dataset: str, seed: int, cv: int = 0) -> Path:
    """The run directory of one seed (or, with ``cv`` K, of fold ``seed`` of K)."""
    return runs / (f"{dataset}-fold{seed}of{cv}" if cv else f"{dataset}-{seed}")


def _ran_with(run_dir: Path, config: RunConfig) -> bool:
    """Whether ``run_dir`` holds a run of exactly ``config`` (options added since it ran: their
    defaults); False for a directory that is not a readable run."""
    try:
        return load_run_config(run_dir).to_dict() == config.to_dict()
    except ValueError:
        return False


def one_seed(dataset: str, seed: int, runs: Path, values: dict[str, str], reuse: bool, cv: int = 0) -> dict:
    """Train and score one seed, or, with ``reuse``, read the result of an earlier run of exactly this
    configuration from ``RUN_DIR/table-seed.json`` (or finish it from its last checkpoint, when it was
    interrupted). Returns {"test", "valid", "minutes"}. With ``cv`` K, ``seed`` is also the fold held
    out of K, and "test" is None (the test file is not scored)."""
    run_dir = seed_dir(runs, dataset, seed, cv)
    folds = {"folds": str(cv), "fold": str(seed)} if cv else {}
    config = build_config("ucr", {"dataset": dataset, **values, **folds, "progress": "false", "seed": str(seed)})
    saved = run_dir / "table-seed.json"
    same = reuse and _ran_with(run_dir, config)
    if same and saved.is_file():
        return json.loads(saved.read_text(encoding="utf-8"))
    t0, latest = time.perf_counter(), latest_checkpoint(run_dir / "checkpoints") if same else None
    if latest is not None:  # interrupted (or trained but not scored): go on from its last checkpoint
        t0 -= float(load_checkpoint(latest)[1].get("trained_seconds", 0.0))
        try:
            resume_run(run_dir)
        except RunFinished:
            pass
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
        train_run(config, run_dir)
    result = evaluate_run(run_dir, split="valid" if cv else None)["splits"]
    out = {"test": None if cv else result["test"]["accuracy"], "valid": {"accuracy": result["valid"]["accuracy"], "loss": result["valid"]["loss"]},
           "minutes": (time.perf_counter() - t0) / 60}
    saved.write_text(json.dumps(out) + "\n", encoding="utf-8")
    return out


def ensemble_accuracy(run_dirs: list[Path], split: str = "test") -> float:
    """Accuracy on ``split`` of the ensemble of the best checkpoints in ``run_dirs``: each series gets
    the class of largest mean softmax probability over the runs (Ismail Fawaz et al. 2019, "Deep neural
    network ensembles for time series classification": equal weights)."""
    total, labels = None, None
    for run_dir in run_dirs:
        task, model, _, _ = load_run_model(run_dir, "best")
        with torch.no_grad():
            probabilities = task.logits(model, split).softmax(-1)
        total = probabilities if total is None else total + probabilities
        labels = task.split_tensors(split)[2]
    return float((total.argmax(-1) == labels).double().mean())


def run_dataset(dataset: str, seeds: int, runs: Path, values: dict[str, str], reuse: bool = False, cv: int = 0,
                first_seed: int = 0) -> dict:
    """Every seed (or, with ``cv`` K, every fold) of ``dataset`` with ``values``: the test (or
    validation) accuracies, every run's validation accuracy and loss, minutes, published figures
    and the command."""
    scores, valid, minutes = [], [], 0.0
    for seed in range(cv) if cv else range(first_seed, first_seed + seeds):
        r = one_seed(dataset, seed, runs, values, reuse, cv)
        scores.append(r["valid"]["accuracy"] if cv else r["test"])
        valid.append(r["valid"])
        minutes += r["minutes"]
        scored = "" if cv else f", test accuracy {r['test']:.4f}"
        print(f"{dataset} {'fold' if cv else 'seed'} {seed}: valid accuracy {r['valid']['accuracy']:.4f} loss {r['valid']['loss']:.4f}"
              f"{scored} ({r['minutes']:.1f} min)", flush=True)
    try:
        published = published_accuracies(dataset)
    except KeyError:
        published = {}
    shown = {**values, "folds": str(cv), "fold": "K"} if cv else values
    seed_dirs = [] if cv else [seed_dir(runs, dataset, seed) for seed in range(first_seed, first_seed + seeds)]
    return {"dataset": dataset, "scores": scores, "valid": valid, "minutes": minutes, "published": published,
            "command": command(dataset, shown).replace("--fold K --seed S", "--fold k --seed k"), "cv": cv,
            "ensemble": ensemble_accuracy(seed_dirs) if seed_dirs else None}


def cell(published: dict, name: str) -> str:
    return f"{published[name]:.3f}" if name in published else NOT_PUBLISHED


def cv_table(rows: list[dict], model: str) -> str:
    """Markdown: per dataset the cross-validated accuracy (mean ± std over the folds) and loss."""
    lines = [f"| dataset | carousel {model}, cross-validated accuracy (mean ± std over folds) | CV loss (mean) | minutes | command |",
             "|---|---|---|---|---|"]
    for r in rows:
        s = r["scores"]
        spread = statistics.stdev(s) if len(s) > 1 else 0.0
        loss = statistics.mean(v["loss"] for v in r["valid"])
        lines.append(f"| {r['dataset']} | {statistics.mean(s):.3f} ± {spread:.3f} (K={len(s)}) | {loss:.3f} | {r['minutes']:.1f} | "
                     f"`{r['command']}` |")
    return "\n".join(lines) + "\n"


def table(rows: list[dict], model: str) -> str:
    if rows and rows[0].get("cv"):
        return cv_table(rows, model)
    lines = [f"| dataset | carousel {model} (mean ± std) | ensemble of the seeds | valid loss (mean) | 1-NN DTW full window "
             "| 1-NN DTW CV window | COTE | minutes | command |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["scores"]
        spread = statistics.stdev(s) if len(s) > 1 else 0.0
        p = r["published"]
        valid_loss = statistics.mean(v["loss"] for v in r["valid"])
        lines.append(f"| {r['dataset']} | {statistics.mean(s):.3f} ± {spread:.3f} (n={len(s)}) | {r['ensemble']:.3f} | {valid_loss:.3f} | "
                     f"{cell(p, 'DTW_R1_1NN')} | {cell(p, 'DTW_Rn_1NN')} | {cell(p, 'COTE')} | {r['minutes']:.1f} | `{r['command']}` |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(UCR_DATASETS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0, help="run seeds FIRST .. FIRST + SEEDS - 1 (split a table over processes, "
                        "then gather it with --reuse)")
    parser.add_argument("--model", choices=sorted(TABLES), default="recommended", help="which settings table")
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE", help="change one setting (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("runs/ucr-table/table.md"))
    parser.add_argument("--runs", type=Path, default=Path("runs/ucr-table"))
    parser.add_argument("--steps", type=int, default=None, help="override every dataset's steps")
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock budget of every run (the trainer's --minutes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run (default 1: small models, "
                        "runs side by side in processes; 2 or more for one long run alone on the machine)")
    parser.add_argument("--reuse", action="store_true", help="keep the result of a seed already run with exactly these settings")
    parser.add_argument("--cv", type=int, default=0, metavar="K",
                        help="cross-validate on the training file with K stratified folds instead of testing (the test file is never scored)")
    a = parser.parse_args()
    overrides = {}
    for item in a.set:
        if "=" not in item:
            parser.error(f"expected --set OPTION=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key.strip().lstrip("-").replace("-", "_")] = value.strip()
    if a.cv == 1 or a.cv < 0:
        parser.error(f"expected --cv 0 (test) or at least 2 folds, got {a.cv}")
    if a.seeds < 1 or a.first_seed < 0:
        parser.error(f"expected --seeds >= 1 and --first-seed >= 0, got --seeds {a.seeds} --first-seed {a.first_seed}")
    if a.cv and a.first_seed:
        parser.error(f"expected --first-seed only without --cv (the folds use seeds 0..K-1), got --first-seed {a.first_seed} --cv {a.cv}")
    if a.threads < 1:
        parser.error(f"expected --threads >= 1, got {a.threads}")
    if a.steps is not None:
        overrides["steps"] = str(a.steps)
    if a.minutes is not None:
        overrides["minutes"] = str(a.minutes)
    torch.set_num_threads(a.threads)
    rows = []
    a.out.parent.mkdir(parents=True, exist_ok=True)
    for dataset in a.datasets.split(","):
        if dataset not in UCR_DATASETS:
            parser.error(f"unknown dataset {dataset!r}; expected some of: {', '.join(UCR_DATASETS)}")
        values = settings(dataset, a.model, overrides)
        if values.get("minutes") and values.get("schedule", "constant") != "constant":
            values.pop("schedule")  # --minutes brings its own cosine over the clock
        rows.append(run_dataset(dataset, a.seeds, a.runs, values, a.reuse, a.cv, a.first_seed))
        a.out.write_text(table(rows, a.model), encoding="utf-8")  # after every dataset: a partial table survives an interruption
        a.out.with_suffix(".json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print(table(rows, a.model))


if __name__ == "__main__":
    main()
