"""engines: resolution, errors, and every engine giving the reference's results."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import zarr
from conftest import structured_image

import xray_scale
from xray_scale.engines.registry import engine_filters, resolve_engine
from xray_scale.errors import EngineError
from xray_scale.filters import FILTERS

HAS_OPENCV = importlib.util.find_spec("cv2") is not None


def test_auto_picks_opencv_when_installed_else_scipy():
    assert resolve_engine("auto") == ("opencv" if HAS_OPENCV else "scipy")
    assert resolve_engine("scipy") == "scipy"


def test_unknown_engine_lists_the_choices():
    with pytest.raises(
        EngineError, match="unknown engine 'cuda'; choose one of auto, scipy, opencv, cupy"
    ):
        resolve_engine("cuda")


def test_scipy_engine_is_the_registry():
    functions = engine_filters("scipy")
    assert {name: functions[name] for name in FILTERS} == {
        n: s.function for n, s in FILTERS.items()
    }


@pytest.mark.skipif(not HAS_OPENCV, reason="opencv-python-headless is not installed")
def test_opencv_engine_matches_scipy_within_1e_4_of_range():
    image = structured_image(11, shape=(96, 112))
    reference, fast = engine_filters("scipy"), engine_filters("opencv")
    assert fast["canny"] is reference["canny"]  # no OpenCV Canny: the reference runs
    for name, spec in FILTERS.items():
        expected = reference[name](image, **spec.defaults())
        result = fast[name](image, **spec.defaults())
        assert result.dtype == expected.dtype
        if spec.output_dtype == "float32":
            assert np.abs(result - expected).max() <= 1e-4 * np.ptp(expected), name


@pytest.mark.parametrize("engine", ["scipy", "opencv"])
def test_run_records_the_engine(phantom_folder, tmp_path, engine):
    if engine == "opencv" and not HAS_OPENCV:
        pytest.skip("opencv-python-headless is not installed")
    xray_scale.run([phantom_folder], tmp_path / "out.zarr", engine=engine, workers=1, limit=2)
    assert zarr.open_group(tmp_path / "out.zarr").attrs["xray_scale"]["engine"] == engine


def test_changing_engine_on_an_existing_store_is_refused(phantom_folder, tmp_path):
    if not HAS_OPENCV:
        pytest.skip("needs two engines: opencv-python-headless is not installed")
    xray_scale.run([phantom_folder], tmp_path / "out.zarr", engine="scipy", workers=1, limit=2)
    with pytest.raises(xray_scale.StoreError, match="another config"):
        xray_scale.run([phantom_folder], tmp_path / "out.zarr", engine="opencv", limit=2)
