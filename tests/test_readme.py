"""The README tells the truth: every ```python block runs as shown (each in a fresh interpreter, in
an empty temporary directory), every ``carousel`` command it shows exists (``--help`` exits 0),
and every command the CLI has is shown in it.

A block may opt out only with a visible comment in it, ``# readme-test: skip (WHY)``; the reason
is then the skip's reason (for example a block that needs a GPU)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from carousel.cli import app

README = Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
OPT_OUT = re.compile(r"#\s*readme-test:\s*skip\b\s*(.*)")


def blocks(language: str) -> list[tuple[int, str]]:
    """``(line number, code)`` of every fenced block of ``language`` ("" for a plain block)."""
    return [(TEXT.count("\n", 0, m.start()) + 1, m.group(2)) for m in FENCE.finditer(TEXT) if m.group(1) == language]


PYTHON = blocks("python")


def test_the_readme_has_python_blocks_to_run():
    assert len(PYTHON) >= 4, "the block pattern found too few: it no longer matches the README's fences"


@pytest.mark.parametrize("line,code", PYTHON, ids=[f"line{line}" for line, _ in PYTHON])
def test_python_block_runs_as_shown(line, code, tmp_path):
    opt_out = OPT_OUT.search(code)
    if opt_out:
        reason = opt_out.group(1).strip(" ()")
        assert reason, f"README line {line}: an opt-out must say why (# readme-test: skip (WHY))"
        pytest.skip(f"README block at line {line} opts out: {reason}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"README block at line {line} failed:\n{done.stderr[-3000:]}"


def shown_commands() -> set[tuple[str, ...]]:
    """Every ``carousel CMD`` (and ``carousel CMD SUB`` for a command group) in the README's plain code
    blocks and inline code."""
    lines = [ln for _, code in blocks("") for ln in code.splitlines()]
    lines += re.findall(r"`(carousel [^`]*)`", TEXT)
    root = typer.main.get_command(app)
    found: set[tuple[str, ...]] = set()
    for ln in lines:
        words = ln.split("#")[0].split()
        if len(words) < 2 or words[0] != "carousel" or words[1].startswith("-"):
            continue
        command = root.commands.get(words[1])  # type: ignore[attr-defined]
        if hasattr(command, "commands") and len(words) > 2 and not words[2].startswith("-") and not words[2].isupper():  # TASK: a placeholder
            found.add((words[1], words[2]))
        else:
            found.add((words[1],))
    return found


def test_every_command_the_readme_shows_exists():
    found = shown_commands()
    assert {("train", "adding"), ("eval",), ("resume",), ("demo",)} <= found  # the scan works
    runner = CliRunner()
    for words in sorted(found):
        result = runner.invoke(app, [*words, "--help"])
        assert result.exit_code == 0, f"README shows `carousel {' '.join(words)}`, but --help exits {result.exit_code}: {result.output[-500:]}"


def test_every_command_the_cli_has_is_in_the_readme():
    root = typer.main.get_command(app)
    shown = {words[0] for words in shown_commands()}
    missing = sorted(set(root.commands) - shown)
    assert not missing, f"commands the README does not show: {missing}"
