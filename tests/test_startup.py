"""Start-up: the command line and the package import nothing heavy until a command needs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import xray_scale

HEAVY = (
    "scipy",
    "dask.array",
    "zarr",
    "cv2",
    "matplotlib",
    "pandas",
    "distributed",
    "pydantic",
    "xarray",
    "torch",
)


def _imported_after(code: str, modules: tuple[str, ...] = HEAVY) -> list[str]:
    """The ``modules`` a fresh interpreter has imported after running ``code``."""
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps([m for m in {modules!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "code",
    [
        "import xray_scale.cli",
        "import xray_scale",
        "from xray_scale.cli import main; main(['--help'])",
        "from xray_scale.cli import main; main(['--version'])",
        "from xray_scale.cli import main; main(['info', '--jsn'])",
        "from xray_scale.cli import main; main(['run', '--help'])",
    ],
)
def test_the_command_line_imports_nothing_heavy(code):
    assert _imported_after(code) == []


@pytest.mark.parametrize(
    "code",
    [
        "from xray_scale.cli import main; main(['--help'])",
        "from xray_scale.cli import main; main(['run', '--help'])",
    ],
)
def test_help_imports_no_numpy_and_no_asyncio(code):
    # The io split once made --help import NumPy through the cluster code: 0.13 -> 0.30 s
    assert _imported_after(code, ("numpy", "asyncio")) == []


@pytest.mark.parametrize("module", ["xray_scale.config", "xray_scale.records"])
def test_the_configuration_and_the_shared_types_import_no_cv2_scipy_or_dask(module):
    assert _imported_after(f"import {module}", ("cv2", "scipy", "dask")) == []
    assert _imported_after(f"import {module}") == []


def test_the_readers_import_xarray_when_called_and_never_torch():
    code = "import xray_scale; xray_scale.open_dataset; xray_scale.ImageDataset"
    assert not {"xarray", "torch"} & set(_imported_after(code))


def test_the_heavy_modules_are_detected_when_imported():
    assert _imported_after("import xray_scale.runner.pipeline") != []


def test_every_public_name_is_still_there():
    for name in xray_scale.__all__:
        assert getattr(xray_scale, name) is not None
    assert set(xray_scale.__all__) <= set(dir(xray_scale))
    assert xray_scale.run.__module__.startswith("xray_scale.")
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        xray_scale.nonexistent  # noqa: B018


def test_version_prints_the_package_version():
    from xray_scale.cli import main

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from xray_scale.cli import console_script; console_script()",
            "--version",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"xray-scale {xray_scale.__version__}"
    assert main(["--version"]) == 0
