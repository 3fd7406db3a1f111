"""README's two set-up commands: the demo one, and the test one that CI runs exactly.

README's marked blocks (its tour) run in ``tests/test_docs.py`` with the docs pages' blocks.
"""

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


def test_the_getting_started_page_shows_the_same_two_commands():
    page = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8").splitlines()
    assert [line for line in page if line.startswith("python3 -m venv .venv")] == commands()[:2]
