"""Statistics and QC are the same bits on every CPU, BLAS kernel and thread count.

Each run is a real subprocess with its own OpenBLAS kernel (``OPENBLAS_CORETYPE``),
OpenCV SIMD level (``OPENCV_CPU_DISABLE``) and thread counts, as on the machines
of a mixed cluster or a resume on another computer. The filter maps are float32
from OpenCV or SciPy and are left out: across SIMD levels they differ by a few
float32 ulps (docs/store.md, "Exact and tolerant"); what is compared is exact.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import REAL_SAMPLE, array_paths, needs_real_sample

from xray_scale.store.encoding import stored_values

pytestmark = pytest.mark.slow

OPENCV_BASELINE = "AVX512-SKX,AVX512-CLX,AVX512-COMMON,AVX2,FMA3,FP16,AVX,SSE4.2,SSE4.1,POPCNT"
MACHINES = {
    "haswell": {"OPENBLAS_CORETYPE": "Haswell"},
    "skylakex": {"OPENBLAS_CORETYPE": "SkylakeX"},
    "zen": {"OPENBLAS_CORETYPE": "Zen", "OPENBLAS_NUM_THREADS": "1"},
    "prescott-sse-only": {"OPENBLAS_CORETYPE": "Prescott", "OPENCV_CPU_DISABLE": OPENCV_BASELINE},
}
EXACT = ("stats/", "qc/")


def run_in_subprocess(inputs: list[str], out: Path, environment: dict, workers: int) -> None:
    """``xray_scale.run`` in a fresh interpreter with ``environment`` added."""
    code = (
        "import json, sys, xray_scale; a = json.loads(sys.argv[1]); "
        "s = xray_scale.run(a['inputs'], a['out'], workers=a['workers'], batch_size=4); "
        "assert s.pending == 0, s"
    )
    arguments = json.dumps({"inputs": inputs, "out": str(out), "workers": workers})
    env = {**os.environ, **environment}
    done = subprocess.run(
        [sys.executable, "-c", code, arguments], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    if "OPENCV_CPU_DISABLE" in environment:  # a misspelt feature would silently disable nothing
        assert "OPENCV" not in done.stderr or "unknown CPU feature" not in done.stderr


def exact_arrays(store: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(store, mode="r")
    names = [n for n in array_paths(group) if n.startswith(EXACT)]
    assert {"stats/std", "stats/mean", "qc/signature", "qc/near_duplicate_group"} <= set(names)
    return {name: group[name][...] for name in names}


def assert_bit_identical(first: dict, second: dict, what: str) -> None:
    assert list(first) == list(second), what
    for name, values in first.items():
        # bytes, not values: NaN == NaN and -0.0 != 0.0 are what "the same bits" means
        assert values.tobytes() == second[name].tobytes(), f"{name} differs ({what})"


def check_machines(inputs: list[str], tmp_path: Path) -> None:
    stores = {}
    for k, (machine, environment) in enumerate(MACHINES.items()):
        stores[machine] = tmp_path / f"{machine}.zarr"
        run_in_subprocess(inputs, stores[machine], environment, workers=1 + k % 2)
    reference = exact_arrays(stores["haswell"])
    for machine, store in stores.items():
        assert_bit_identical(reference, exact_arrays(store), f"haswell vs {machine}")

    # Half the store made on one machine, the rest on another: no false alarm, same bits.
    moved = tmp_path / "resumed-elsewhere.zarr"
    shutil.copytree(stores["skylakex"], moved)
    group = zarr.open_group(moved, mode="r+")
    count = group["index/status"].shape[0]
    half = count // 2 // 4 * 4
    status = group["index/status"]
    status[half:] = stored_values(status, ["pending"] * (count - half))
    run_in_subprocess(inputs, moved, MACHINES["prescott-sse-only"], workers=2)
    assert_bit_identical(reference, exact_arrays(moved), "resumed on another machine")


def test_phantoms_give_the_same_bits_on_every_machine(tmp_path):
    check_machines(["synth:12x256"], tmp_path)


@needs_real_sample
@pytest.mark.real_data
def test_real_films_give_the_same_bits_on_every_machine(tmp_path):
    check_machines([str(REAL_SAMPLE)], tmp_path)
