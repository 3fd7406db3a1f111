"""The code blocks of README.md and docs/*.md that the suite runs, and how it runs them.

A page opts a fenced block in with an HTML comment on the line just above its opening fence
(invisible on GitHub and on the site)::

    <!-- docs-test: run -->              the block runs in an empty folder
    <!-- docs-test: run with-store -->   ... in a folder holding ``out.zarr``, a store made with
                                          a manifest (the ``labelled_store`` fixture)

``bash`` blocks run with ``bash -e -o pipefail``, the virtual environment's ``bin`` first on
``PATH`` (so ``xray-scale`` and ``python`` are this environment's); ``python`` blocks run with
this interpreter. Every other block is shown, not run: most name data only a user has
(``/data/nih/...``, a bucket, a cluster).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!--\s*docs-test:(?P<options>[^>]*)-->")
OPTIONS = {"run", "with-store"}
LANGUAGES = {"bash", "python"}


@dataclass(frozen=True)
class Block:
    """One marked code block: where it is, its language, its code and where it runs."""

    page: str
    line: int
    language: str
    code: str
    with_store: bool

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    """README.md and every page of the docs site, in a stable order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def marked_blocks(path: Path, root: Path = ROOT) -> list[Block]:
    """The blocks of ``path`` opted in by a ``docs-test`` marker, in page order.

    Each block is named by its page's path relative to ``root`` and its first line of code.

    Raises
    ------
    ValueError
        If a marker has an unknown option, is not followed at once by a ``bash`` or ``python``
        fence, or its block never closes: a typo must fail, not silently stop a block running.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(root).as_posix()
    blocks = []
    for number, line in enumerate(lines):
        found = MARKER.fullmatch(line.strip())  # alone on its line: not a mention in text
        if not found:
            continue
        where = f"{page}:{number + 1}"
        options = set(found["options"].split())
        if "run" not in options or not options <= OPTIONS:
            raise ValueError(f"{where}: a docs-test marker takes 'run' and optionally 'with-store'")
        fence = lines[number + 1] if number + 1 < len(lines) else ""
        language = fence.removeprefix("```").strip()
        if not fence.startswith("```") or language not in LANGUAGES:
            message = "a docs-test marker must sit just above a bash or python fence"
            raise ValueError(f"{where}: {message}")
        try:
            end = lines.index("```", number + 2)
        except ValueError:
            raise ValueError(f"{where}: the block after the marker never closes") from None
        code = "\n".join(lines[number + 2 : end]) + "\n"
        blocks.append(Block(page, number + 2, language, code, "with-store" in options))
    return blocks


def all_marked_blocks() -> list[Block]:
    """Every marked block of every page."""
    return [block for path in pages() for block in marked_blocks(path)]


def run_block(block: Block, folder: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``block`` in ``folder``; return the finished process (output captured as text)."""
    environment = dict(os.environ)
    environment["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environment["PATH"]])
    if block.language == "bash":
        command = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    else:
        command = [sys.executable, "-c", block.code]
    return subprocess.run(
        command,
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
