"""The cupy engine on a real GPU; without one (CI), only its refusal is tested.

Every GPU test skips with the reason CuPy gives when no usable GPU exists.
"""

from __future__ import annotations

import importlib.util

import imageio.v3 as iio
import numpy as np
import pytest
import zarr
from conftest import REAL_NAMES, REAL_SAMPLE, needs_real_sample, structured_image
from stack_parity import ALL_FILTERS, CONFIGS, assert_backend_matches_reference

import xray_scale
from xray_scale.engines.registry import engine_filters, resolve_engine
from xray_scale.errors import ConfigError, EngineError
from xray_scale.filters import FILTERS
from xray_scale.io.phantoms import phantom


def _why_no_gpu() -> str | None:
    try:
        resolve_engine("cupy")
    except EngineError as error:
        return str(error)
    return None


NO_GPU = _why_no_gpu()


def needs_gpu(test):
    """A test on a real GPU: marked ``gpu``, and skipped without one, saying why."""
    skip = pytest.mark.skipif(NO_GPU is not None, reason=f"no usable GPU: {NO_GPU}")
    return pytest.mark.gpu(skip(test))


@pytest.mark.skipif(NO_GPU is None, reason="a GPU is usable here: the refusal cannot be tested")
def test_without_a_gpu_the_engine_says_why_and_auto_falls_back():
    with pytest.raises(EngineError, match="the cupy engine cannot run: ") as raised:
        resolve_engine("cupy")
    message = str(raised.value)
    assert "pip install 'xray-scale[gpu]'" in message or "CuPy cannot use a GPU here" in message
    assert resolve_engine("auto") in ("opencv", "scipy")


def _backend():
    from xray_scale.engines.cupy import BACKEND

    return BACKEND


@needs_gpu
@pytest.mark.parametrize("overrides", CONFIGS.values(), ids=CONFIGS.keys())
def test_gpu_batch_matches_the_scipy_engine(overrides):
    if "canny" in str(overrides) and "canny" in _backend().device_filters:
        pytest.skip("cuCIM's Canny is compared in test_cucim_canny_agrees_with_scikit_image")
    block = np.stack([structured_image(seed, shape=(64, 80)) for seed in range(3)])
    assert_backend_matches_reference(block, overrides, _backend(), failed=(1,))


@needs_gpu
def test_gpu_batch_16_bit_phantoms():
    block = np.stack([phantom(5, k, shape=(256, 256), bit_depth=16) for k in range(3)])
    assert_backend_matches_reference(block, {"store": {"preview_size": 64}}, _backend())


@needs_gpu
@needs_real_sample
@pytest.mark.real_data
def test_gpu_batch_real_images():
    block = np.stack([iio.imread(REAL_SAMPLE / name) for name in REAL_NAMES[:4]])
    assert_backend_matches_reference(block, {"store": {"preview_size": 256}}, _backend())


@needs_gpu
def test_gpu_per_image_filters_match_the_reference():
    image = structured_image(11, shape=(96, 112))
    reference, gpu = engine_filters("scipy"), engine_filters("cupy")
    for name in ALL_FILTERS:
        params = FILTERS[name].defaults()
        expected = reference[name](image, **params)
        result = gpu[name](image, **params)
        assert result.dtype == expected.dtype
        assert np.abs(result - expected).max() <= 1e-4 * np.ptp(expected), name


@needs_gpu
def test_cucim_canny_agrees_with_scikit_image():
    if "canny" not in _backend().device_filters:
        pytest.skip("cuCIM is not installed: the cupy engine runs scikit-image's Canny")
    image = phantom(7, 0, shape=(512, 512))
    params = FILTERS["canny"].defaults()
    expected = engine_filters("scipy")["canny"](image, **params)
    result = engine_filters("cupy")["canny"](image, **params)
    disagreement = float(np.mean(result != expected))
    print(f"cuCIM vs scikit-image Canny: {disagreement:.2e} of pixels differ")
    assert disagreement <= 1e-3  # ties on equal gradient magnitudes only


@needs_gpu
def test_gpu_run_matches_the_scipy_run(phantom_folder, tmp_path):
    stores = {}
    for engine in ("scipy", "cupy"):
        stores[engine] = tmp_path / f"{engine}.zarr"
        xray_scale.run([phantom_folder], stores[engine], engine=engine, workers=2)
    cpu, gpu = (zarr.open_group(stores[e]) for e in ("scipy", "cupy"))
    assert gpu.attrs["xray_scale"]["engine"] == "cupy"
    np.testing.assert_array_equal(gpu["stats/histogram"][:], cpu["stats/histogram"][:])
    np.testing.assert_array_equal(gpu["stats/median"][:], cpu["stats/median"][:])
    for name in ("filters/laplace_gaussian", "filters/sobel"):
        expected, result = cpu[name][:], gpu[name][:]
        assert np.abs(result - expected).max() <= 1e-4 * np.ptp(expected), name


@pytest.mark.cluster
@needs_gpu
@pytest.mark.skipif(
    importlib.util.find_spec("dask_cuda") is None, reason="dask-cuda is not installed here"
)
def test_cuda_scheduler_run_matches_the_threaded_gpu_run(phantom_folder, tmp_path):
    threaded, cuda = tmp_path / "threads.zarr", tmp_path / "cuda.zarr"
    xray_scale.run([phantom_folder], threaded, engine="cupy", workers=2)
    summary = xray_scale.run([phantom_folder], cuda, engine="cupy", scheduler="cuda", workers=1)
    assert summary.failed == 0
    one, other = zarr.open_group(threaded), zarr.open_group(cuda)
    for name in ("stats/histogram", "stats/mean", "filters/sobel"):
        np.testing.assert_array_equal(other[name][:], one[name][:], err_msg=name)


@needs_gpu
def test_worker_processes_are_refused_before_any_work(phantom_folder, tmp_path):
    store = tmp_path / "out.zarr"
    with pytest.raises(ConfigError, match="--scheduler cuda"):
        xray_scale.run([phantom_folder], store, engine="cupy", scheduler="processes")
    assert not store.exists()
