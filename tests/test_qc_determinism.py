"""Every stored QC number has the same bits on every BLAS kernel, SIMD level and thread count.

tests/qc_bits.py computes them in a fresh process under each setting below: OpenBLAS
forced to other CPUs' kernels, NumPy and OpenCV held to their baseline SIMD, one thread.
On real films when the calibration set is here, else on phantoms.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from qc_calibration import CALIBRATION, calibration_films

from xray_scale.io.phantoms import phantom

SETTINGS = {
    "default": {},
    "openblas Haswell": {"OPENBLAS_CORETYPE": "Haswell"},
    "openblas SkylakeX": {"OPENBLAS_CORETYPE": "SkylakeX"},
    "openblas Zen": {"OPENBLAS_CORETYPE": "Zen"},
    "openblas Prescott": {"OPENBLAS_CORETYPE": "Prescott"},
    "numpy baseline SIMD": {"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL"},
    "opencv baseline SIMD": {
        "OPENCV_CPU_DISABLE": "AVX512-SKX,AVX512-CLX,AVX2,FMA3,FP16,AVX,SSE4.2,SSE4.1,POPCNT,SSSE3"
    },
    "one thread": {
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OPENCV_FOR_THREADS_NUM": "1",
    },
}
SCRIPT = Path(__file__).with_name("qc_bits.py")
SIGILL = -4
"""A forced kernel this CPU lacks: the setting cannot be tried here."""


@pytest.fixture(scope="module")
def qc_images(tmp_path_factory) -> Path:
    if CALIBRATION.is_dir():
        stack = np.stack([pixels for _, pixels in calibration_films()[:40]])
    else:
        stack = np.stack([phantom(p, f, shape=(1024, 1024)) for p in (1, 2) for f in range(4)])
    path = tmp_path_factory.mktemp("qc_bits") / "images.npy"
    np.save(path, stack)
    return path


def _numbers(images: Path, out: Path, setting: dict[str, str]) -> dict[str, np.ndarray] | None:
    environment = {**os.environ, **setting}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(images), str(out)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode == SIGILL or "not supported by the running machine" in done.stderr:
        return None
    assert done.returncode == 0, done.stderr[-2000:]
    with np.load(out) as stored:
        return {name: stored[name] for name in stored.files}


def test_qc_numbers_are_bit_identical_under_every_setting(qc_images, tmp_path):
    reference = _numbers(qc_images, tmp_path / "default.npz", SETTINGS["default"])
    assert reference is not None
    tried = []
    for name, setting in list(SETTINGS.items())[1:]:
        numbers = _numbers(qc_images, tmp_path / f"{len(tried)}.npz", setting)
        if numbers is None:
            continue
        tried.append(name)
        assert numbers.keys() == reference.keys()
        for key, values in reference.items():
            assert values.dtype == numbers[key].dtype, (name, key)
            same = values.tobytes() == numbers[key].tobytes()
            assert same, f"qc {key} differs under {name}"
    print("bit-identical under", ", ".join(tried))
    assert len(tried) >= 3
