"""The notebooks: stored without outputs, and they run top to bottom without an error.

Each notebook is executed in memory (the file in the repository is never written) by a
``python3`` kernel that runs this interpreter, with ``notebooks/`` as its working directory.
Running them needs ``nbclient``, ``nbformat`` and ``ipykernel`` (and ``pandas`` for
``dataset.ipynb``, ``xarray`` for ``reading.ipynb``); without them those tests skip and say
what to install.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import REAL_NAMES, REAL_SAMPLE

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOK_NAMES = ("tutorial.ipynb", "dataset.ipynb", "reading.ipynb")
HAS_REAL_SAMPLE = all((REAL_SAMPLE / name).is_file() for name in REAL_NAMES)


def _require(*modules: str) -> None:
    """Skip, naming what to install, unless every module can be imported."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed: pip install {' '.join(missing)} "
            "to execute the notebooks"
        )


def _runs_this_python(argv0: str) -> bool:
    """Whether a kernel spec's ``argv[0]`` starts this interpreter (this environment's python).

    jupyter_client replaces ``python``, ``python3`` and ``python3.X`` by ``sys.executable``.
    Paths are compared without resolving symlinks: every virtual environment's python links to
    the same base interpreter, but only this one's has this environment's packages.
    """
    major, minor = sys.version_info[:2]
    if argv0 in {"python", f"python{major}", f"python{major}.{minor}"}:
        return True
    found = shutil.which(argv0)
    if found is None:
        return False
    here = Path(os.path.abspath(sys.executable))
    there = Path(os.path.abspath(found))
    return there == here or (there.parent == here.parent and there.name.startswith("python"))


@pytest.fixture
def python3_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The name of a kernel spec that runs this interpreter: ``python3``.

    ipykernel installs (or, when none is installed, provides) a ``python3`` spec whose argv
    starts with ``python``, which jupyter_client runs as ``sys.executable``. If the ``python3``
    spec found first belongs to another environment (a user-level install, say), one that runs
    ``sys.executable -m ipykernel_launcher`` is written to a temporary folder put first on
    ``JUPYTER_PATH``.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv = KernelSpecManager().get_kernel_spec("python3").argv
    except NoSuchKernel:
        argv = []
    if argv and _runs_this_python(argv[0]):
        return "python3"
    data_dir = tmp_path / "jupyter"
    spec_dir = data_dir / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (this environment)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    paths = [str(data_dir), *filter(None, os.environ.get("JUPYTER_PATH", "").split(os.pathsep))]
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(paths))
    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable
    return "python3"


def _execute(name: str, kernel_name: str, tmp_path: Path):
    """Run a copy of ``notebooks/<name>`` and return it with its outputs."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    # Kept for a look after a failure; never written back to the repository.
    nbformat.write(notebook, tmp_path / name)
    return notebook


def _outputs(notebook) -> list[dict]:
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    return [output for cell in code_cells for output in cell.outputs]


def _text(notebook) -> str:
    """Everything the notebook printed or returned as text, stdout first then results."""
    parts = []
    for output in _outputs(notebook):
        if output.output_type == "stream" and output.name == "stdout":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def _count(notebook, mime: str) -> int:
    return sum(
        mime in output.get("data", {})
        for output in _outputs(notebook)
        if output.output_type in ("execute_result", "display_data")
    )


def _check_clean_run(notebook) -> None:
    errors = [output for output in _outputs(notebook) if output.output_type == "error"]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]
    stderr = [
        output.text
        for output in _outputs(notebook)
        if output.output_type == "stream" and output.name == "stderr"
    ]
    assert not stderr, f"the notebook wrote to stderr (warnings?): {stderr}"


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebook_is_stored_without_outputs(name: str) -> None:
    notebook = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code_cells
    for number, cell in enumerate(code_cells):
        assert cell["outputs"] == [], f"code cell {number} of {name} has outputs: strip them"
        assert cell["execution_count"] is None, f"code cell {number} of {name} has a count"


@pytest.mark.slow
@pytest.mark.parametrize("data", ["auto", "phantoms"])
def test_tutorial_notebook_runs(
    data: str, python3_kernel: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require("nbclient", "nbformat", "ipykernel")
    if data == "phantoms":
        if not HAS_REAL_SAMPLE:
            pytest.skip("without the real sample the 'auto' run already uses the phantoms")
        monkeypatch.setenv("XRAY_SCALE_NOTEBOOK_DATA", "phantoms")
    else:
        monkeypatch.delenv("XRAY_SCALE_NOTEBOOK_DATA", raising=False)

    notebook = _execute("tutorial.ipynb", python3_kernel, tmp_path)

    _check_clean_run(notebook)
    text = _text(notebook)
    if data == "auto" and HAS_REAL_SAMPLE:
        assert "Data source: real ChestX-ray8 sample, 9 images" in text
    else:
        assert "Data source: synthetic phantoms" in text
    assert "(1024, 1024)\nuint8" in text
    assert "chunks: ((3, 3, 3), (1024,), (1024,))" in text
    assert "the uint8 map has none (its minimum is 0)" in text
    assert "9 ok, 0 failed, 0 pending" in text
    assert "notes: none" in text
    # --compat tutorial: every stored array equals the tutorial's own code, on all 9 images
    assert text.count("identical on 9/9 images") == 7, text
    assert "Done with the" in text
    assert _count(notebook, "image/png") >= 12
    assert _count(notebook, "image/gif") == 1


@pytest.mark.slow
def test_dataset_notebook_runs(python3_kernel: str, tmp_path: Path) -> None:
    _require("nbclient", "nbformat", "ipykernel", "pandas")

    notebook = _execute("dataset.ipynb", python3_kernel, tmp_path)

    _check_clean_run(notebook)
    text = _text(notebook)
    assert "Data source: synthetic phantoms, 15 images" in text
    assert "16 images: 15 ok, 1 failed, 0 pending" in text
    assert "failed: 90000099_000.png - truncated PNG" in text
    assert "lowest mean intensity" in text and "highest mask fraction" in text
    assert "a failed image's map is all zeros: True" in text
    assert "Done in" in text
    assert _count(notebook, "text/html") >= 3  # the DataFrames
    assert _count(notebook, "image/png") >= 6  # two grids, a histogram, three summaries, a map


@pytest.mark.slow
def test_reading_notebook_runs(python3_kernel: str, tmp_path: Path) -> None:
    _require("nbclient", "nbformat", "ipykernel", "xarray")

    notebook = _execute("reading.ipynb", python3_kernel, tmp_path)

    _check_clean_run(notebook)
    text = _text(notebook)
    assert "20 images: 20 ok, 0 failed" in text
    assert "image: ['90000001_000.png', '90000001_001.png', '90000001_002.png'] ..." in text
    assert "findings: ['Cardiomegaly', 'Effusion', 'Mass', 'No Finding']" in text
    assert "previews are lazy: True" in text and "Effusion images: 12" in text
    assert "mean intensity, Cardiomegaly:" in text and "view_position" in text
    assert "ImageDataset(" in text and "13 images" in text
    assert "labels: ('Cardiomegaly', 'Effusion', 'Mass')" in text
    assert "batch: (8, 64, 64) uint8 | labels: (8, 3) float32" in text
    assert "Done in" in text
    assert _count(notebook, "text/html") >= 1  # the tree
    assert _count(notebook, "image/png") >= 1  # the previews of one image
