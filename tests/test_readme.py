"""README's two set-up commands (CI runs exactly the test command), and its store-reading code."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.startswith("python3 -m venv .venv")]


def test_readme_opens_with_two_set_up_commands_and_ci_runs_the_test_one():
    demo, tests = commands()[:2]
    assert demo.endswith("xray-scale demo")
    assert tests.endswith("-m pytest")
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests in ci_lines


READING = "### Reading the store"


def reading_blocks() -> list[str]:
    """The Python blocks of README's "Reading the store" section, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(READING) :]
    section = section[: section.index("\n#", len(READING))]
    return [block.split("\n", 1)[1] for block in section.split("```python")[1:]]


def test_the_reading_section_shows_xarray_arrow_tensorstore_and_a_training_loop():
    blocks = reading_blocks()
    assert len(blocks) == 4
    for block, name in zip(blocks, ["xarray", "arrow", "tensorstore", "torch"], strict=True):
        assert name in block.split("```")[0]


@pytest.mark.parametrize("number", range(4), ids=["xarray", "arrow", "tensorstore", "torch"])
def test_each_reading_block_runs_on_a_store(number, labelled_store, tmp_path):
    code = reading_blocks()[number].split("```")[0]
    for module in ("xarray", "tensorstore", "torch"):
        if f"import {module}" in code and importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: the README's block needs it")
    shutil.copytree(labelled_store, tmp_path / "out.zarr")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in without_torch_worker_advice(result.stderr), result.stderr


def without_torch_worker_advice(stderr: str) -> str:
    """``stderr`` less torch's advice on ``num_workers`` when fewer CPUs are usable.

    The block uses two DataLoader workers; on one usable core (``taskset -c 0``) torch
    warns that this may be slow. That is advice about the machine, not a fault of the
    block or of the store, so only that warning and the source line it quotes are dropped.
    """
    lines = stderr.splitlines()
    kept = []
    for number, line in enumerate(lines):
        advice = "suggested max number of worker" in line
        quoted = number > 0 and "suggested max number of worker" in lines[number - 1]
        if not (advice or quoted):
            kept.append(line)
    return "\n".join(kept)
