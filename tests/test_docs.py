"""The docs site: it builds with ``mkdocs build --strict``, and its runnable blocks run.

Which blocks run is marked in the markdown (``<!-- docs-test: run -->``, see
:mod:`doc_blocks`); README.md's marked blocks run here too.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys

import pytest
from doc_blocks import ROOT, Block, all_marked_blocks, marked_blocks, pages, run_block

BLOCKS = all_marked_blocks()


def test_mkdocs_build_strict_builds_every_page_and_the_api_reference(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip('mkdocs is not installed: pip install -e ".[docs]"')
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet"]
        + ["--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for page in (ROOT / "docs").glob("*.md"):
        folder = site if page.stem == "index" else site / page.stem
        assert (folder / "index.html").is_file(), page.name
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("run", "open_dataset", "ImageDataset", "XrayScaleError", "StoreError"):
        assert f'id="xray_scale.{name}"' in api, name
    assert "retry_failed" in api  # xray_scale.run is the function, documented with its parameters
    assert "Parameters" in api  # the numpydoc sections were parsed, not shown as text


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = set(re.findall(r"^  - [^:]+: (\S+\.md)$", config, flags=re.MULTILINE))
    assert nav == {page.name for page in (ROOT / "docs").glob("*.md")}


EXAMPLE_MODULES = {"xray_scale/io/formats/rawg.py"}
"""Modules the pages show as examples to write, not as code of the repository."""


def repository_files() -> set[str]:
    """Every Python file of the repository, relative to its root (no virtual environment)."""
    return {
        path.relative_to(ROOT).as_posix()
        for folder in ("xray_scale", "tests", "benchmarks")
        for path in (ROOT / folder).rglob("*.py")
    }


def test_every_python_file_the_pages_name_exists():
    files = repository_files()
    missing = set()
    for page in pages():
        text = page.read_text(encoding="utf-8")
        for name in re.findall(r"`((?:[a-z_]+/)*[a-z_0-9]+\.py)", text):
            found = any(f == name or f.endswith("/" + name) for f in files)
            if not found and name not in EXAMPLE_MODULES:
                missing.add(f"{page.relative_to(ROOT).as_posix()}: {name}")
    assert sorted(missing) == []


def test_readme_is_short_and_links_to_every_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    for page in (ROOT / "docs").glob("*.md"):
        if page.stem != "index":
            assert f"(docs/{page.name}" in readme, page.name


def test_markers_are_found_on_the_pages_that_have_runnable_blocks():
    marked = {block.page for block in BLOCKS}
    assert {"README.md", "docs/getting-started.md", "docs/store.md"} <= marked
    assert all(marked_blocks(page) is not None for page in pages())


def test_a_marker_mentioned_in_running_text_is_not_a_marker(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Mark it with `<!-- docs-test: run -->` above the fence.\n", encoding="utf-8")
    assert marked_blocks(page, root=tmp_path) == []


def test_a_marker_with_a_typo_or_without_its_block_is_an_error(tmp_path):
    page = tmp_path / "page.md"
    for text in (
        "<!-- docs-test: runn -->\n```bash\ntrue\n```\n",
        "<!-- docs-test: run -->\n\n```bash\ntrue\n```\n",
        "<!-- docs-test: run -->\n```toml\nx = 1\n```\n",
        "<!-- docs-test: run -->\n```bash\ntrue\n",
    ):
        page.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match="docs-test marker|never closes"):
            marked_blocks(page, root=tmp_path)


def test_the_api_page_names_every_filter_mask_and_engine_of_the_registries():
    import xray_scale

    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    for name in [*xray_scale.FILTERS, *xray_scale.MASKS, *xray_scale.ENGINES]:
        assert f"`{name}`" in text, name


READING = "## Reading the store"


def test_the_store_page_reads_with_xarray_arrow_tensorstore_and_a_training_loop():
    text = (ROOT / "docs" / "store.md").read_text(encoding="utf-8")
    start = text.index(READING)
    end = text.index("\n## ", start + len(READING))
    first, last = text[:start].count("\n") + 1, text[:end].count("\n") + 1
    reading = [b for b in BLOCKS if b.page == "docs/store.md" and first < b.line < last]
    assert [b.with_store for b in reading] == [True] * 4
    for block, name in zip(reading, ["xarray", "arrow", "tensorstore", "torch"], strict=True):
        assert name in block.code


def needs(block: Block) -> list[str]:
    """The optional modules ``block`` imports that are not installed here."""
    return [
        module
        for module in ("xarray", "tensorstore", "torch")
        if f"import {module}" in block.code and importlib.util.find_spec(module) is None
    ]


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(b, id=b.id, marks=[pytest.mark.slow] if b.language == "bash" else [])
        for b in BLOCKS
    ],
)
def test_each_marked_block_runs(block, labelled_store, tmp_path):
    missing = needs(block)
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: {block.id} needs it")
    if block.with_store:
        shutil.copytree(labelled_store, tmp_path / "out.zarr")
    result = run_block(block, tmp_path)
    assert result.returncode == 0, f"{block.id}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    assert "Warning" not in without_torch_worker_advice(result.stderr), result.stderr


def without_torch_worker_advice(stderr: str) -> str:
    """``stderr`` less torch's advice on ``num_workers`` when fewer CPUs are usable.

    The training-loop block uses two DataLoader workers; on one usable core (``taskset -c
    0``) torch warns that this may be slow. That is advice about the machine, not a fault of
    the block or of the store, so only that warning and the source line it quotes are dropped.
    """
    lines = stderr.splitlines()
    kept = []
    for number, line in enumerate(lines):
        advice = "suggested max number of worker" in line
        quoted = number > 0 and "suggested max number of worker" in lines[number - 1]
        if not (advice or quoted):
            kept.append(line)
    return "\n".join(kept)
