"""README's two set-up commands: CI runs exactly the test command."""

from __future__ import annotations

from pathlib import Path

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
