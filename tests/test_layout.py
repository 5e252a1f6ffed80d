"""The house's layout holds: packages import only downward (import-linter's layers contract, which
an upward import breaks), imports inside functions are only for optional or heavy dependencies,
runners ask cells instead of probing them, and ``import carousel`` stays light."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import carousel

SRC = Path(carousel.__file__).parent
ROOT = SRC.parent.parent
LINT = Path(sys.executable).with_name("lint-imports")
# what may be imported inside a function: plotting and logging back ends that are optional extras,
# scikit-learn's metrics and baselines, which only an evaluation needs (imported with the task
# registry, it would add a second to every command), and the readers and scorers of the real-data
# tasks (Biopython, sacrebleu, rapidfuzz: the 'real' extra)
LAZY = {"matplotlib", "matplotlib.figure", "matplotlib.pyplot", "torch.utils.tensorboard", "sklearn.feature_extraction",
        "sklearn.feature_extraction.text", "sklearn.linear_model", "sklearn.metrics", "sklearn.pipeline",
        "sklearn.neighbors", "Bio", "Bio.SeqIO", "sacrebleu", "rapidfuzz.distance",
        "torch.utils", "ninja",  # torch.utils.cpp_extension (imports setuptools) and ninja: only to build carousel's kernels
        ".triton_scan"}  # imports triton, which only GPU machines have: the device scan's kernels


def lint(pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([str(LINT), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_packages_import_only_downward():
    result = lint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    copy = tmp_path / "src" / "carousel"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    base = copy / "cells" / "base.py"
    base.write_text(base.read_text() + "\nfrom ..train import Trainer  # an upward import, on purpose\n")
    result = lint(tmp_path / "src")
    assert result.returncode != 0
    assert "carousel.cells.base -> carousel.train" in result.stdout and "1 broken" in result.stdout


def _imports_inside_functions(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import):
                    found += [(inner.lineno, alias.name) for alias in inner.names]
                elif isinstance(inner, ast.ImportFrom):
                    found.append((inner.lineno, "." * inner.level + (inner.module or "")))
    return found


def test_imports_inside_functions_are_only_for_optional_or_heavy_dependencies():
    lazy = {f"{path.relative_to(SRC)}:{line} {name}" for path in SRC.rglob("*.py") for line, name in _imports_inside_functions(path)}
    assert lazy, "the scan found nothing: the plots import matplotlib lazily"
    assert [entry for entry in sorted(lazy) if entry.split()[-1] not in LAZY] == []


def test_runners_ask_cells_and_never_probe_them():
    for path in (SRC / "runners").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert not calls & {"getattr", "hasattr"}, f"{path.name} probes with {calls & {'getattr', 'hasattr'}}"
        modules = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not any("regularize" in m for m in modules), f"{path.name} knows a regulariser"


def assert_prints_ok(code: str) -> None:
    """Run ``code`` in a fresh interpreter (nothing imported yet) and check it printed ``ok``."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_import_carousel_stays_light_and_names_are_single():
    code = (
        "import sys, carousel, carousel.runners.fused\n"
        "heavy = [m for m in ('matplotlib', 'tensorboard', 'typer', 'carousel.train', 'carousel.cli') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert callable(carousel.run) and carousel.run is carousel.runners.run\n"
        "print('ok')\n"
    )
    assert_prints_ok(code)


def test_listing_the_tasks_imports_no_optional_or_heavy_library():
    code = (
        "import sys\n"
        "from carousel.train import task_names\n"
        "assert {'codename', 'charlm', 'adding'} <= set(task_names())\n"
        "heavy = [m for m in ('matplotlib', 'tensorboard', 'sklearn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('ok')\n"
    )
    assert_prints_ok(code)
