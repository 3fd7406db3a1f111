"""opencv engine: each filter equals scipy's within 1e-4 of the output's range, borders included."""

from __future__ import annotations

import importlib
import re
import sys
import threading

import imageio.v3 as iio
import numpy as np
import pytest
from conftest import REAL_NAMES, REAL_SAMPLE, needs_real_sample, structured_image
from scipy import ndimage

from xray_scale.filters import reference

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is not installed")
opencv_filters = importlib.import_module("xray_scale.engines.opencv")

NAMES = ["laplace_gaussian", "gaussian_gradient_magnitude", "sobel", "tutorial_canny"]
DEFAULT_SIGMA = {
    "laplace_gaussian": 1.0,
    "gaussian_gradient_magnitude": 2.0,
    "sobel": None,
    "tutorial_canny": 0.05,
}
CASES = [
    *DEFAULT_SIGMA.items(),
    ("laplace_gaussian", 0.5),
    ("laplace_gaussian", 3.0),
    ("gaussian_gradient_magnitude", 0.5),
    ("gaussian_gradient_magnitude", 3.0),
    ("tutorial_canny", 0.2),
]
CASE_IDS = [f"{name}-{sigma}" for name, sigma in CASES]


def float64_reference(name: str, image: np.ndarray, sigma: float | None) -> np.ndarray:
    """scipy in float64: the ground truth both engines are held to."""
    wide = image.astype(np.float64)
    if name == "laplace_gaussian":
        return ndimage.gaussian_laplace(wide, sigma=sigma)
    if name == "gaussian_gradient_magnitude":
        return ndimage.gaussian_gradient_magnitude(wide, sigma=sigma)
    if name == "tutorial_canny":
        wide = ndimage.fourier_gaussian(wide, sigma=sigma)
        derivative = ndimage.prewitt
    else:
        derivative = ndimage.sobel
    magnitude = np.hypot(derivative(wide, axis=0), derivative(wide, axis=1))
    peak = magnitude.max()
    return magnitude * (255.0 / peak) if peak > 0 else magnitude


def check(name: str, sigma: float | None, image: np.ndarray) -> None:
    """The opencv result against float64 scipy and the float32 scipy engine, whole arrays."""
    params = {} if sigma is None else {"sigma": sigma}
    fast = getattr(opencv_filters, name)(image, **params)
    assert fast.dtype == np.float32
    assert fast.shape == image.shape
    truth = float64_reference(name, image, sigma)
    tolerance = 1e-4 * np.ptp(truth)
    assert tolerance > 0, "the test image is too flat to compare on"
    error = np.abs(fast - truth).max()
    assert error <= tolerance, f"{name}: |opencv - float64 scipy| = {error / np.ptp(truth):.2e}"
    slow = getattr(reference, name)(image, **params)
    error = np.abs(fast - slow).max()
    assert error <= tolerance, f"{name}: |opencv - scipy engine| = {error / np.ptp(truth):.2e}"


@pytest.mark.parametrize(("name", "sigma"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("shape", [(64, 64), (65, 97), (256, 256)], ids=str)
def test_random_and_structured_images(name, sigma, shape):
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    check(name, sigma, rng.integers(0, 256, shape, dtype=np.uint8))
    check(name, sigma, structured_image(3, shape=shape))


@pytest.mark.parametrize(("name", "sigma"), CASES, ids=CASE_IDS)
def test_16_bit_and_float_images(name, sigma):
    check(name, sigma, structured_image(5, shape=(80, 72), dtype=np.uint16))
    check(name, sigma, structured_image(6, shape=(72, 80)).astype(np.float64) / 255.0)


@pytest.mark.parametrize(("name", "sigma"), CASES, ids=CASE_IDS)
def test_synthetic_phantoms_8_and_16_bit(name, sigma):
    synth = pytest.importorskip(
        "xray_scale.io.phantoms", reason="xray_scale.io.phantoms is missing"
    )
    check(name, sigma, synth.phantom(4, 2, shape=(192, 160)))
    check(name, sigma, synth.phantom(4, 2, shape=(96, 96), bit_depth=16))


@needs_real_sample
@pytest.mark.real_data
@pytest.mark.parametrize("image_name", REAL_NAMES)
def test_real_images(image_name):
    """Each real 1024x1024 image through one filter in turn: every filter sees 2 or 3."""
    name = NAMES[REAL_NAMES.index(image_name) % len(NAMES)]
    check(name, DEFAULT_SIGMA[name], iio.imread(REAL_SAMPLE / image_name))


def test_tiny_image_smaller_than_the_kernel():
    """Reflection repeats past the border like scipy's when the kernel outgrows the image."""
    image = structured_image(8, shape=(7, 5))
    check("laplace_gaussian", 3.0, image)
    check("gaussian_gradient_magnitude", 3.0, image)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_flat_images_give_zeros_not_nan(dtype):
    constant = opencv_filters.sobel(np.full((32, 48), 9, dtype))
    assert not np.isnan(constant).any() and not constant.any()
    blank = opencv_filters.tutorial_canny(np.zeros((32, 48), dtype))
    assert not np.isnan(blank).any() and not blank.any()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_mask_values_equals_the_reference_bit_for_bit(dtype):
    image = structured_image(
        12, shape=(48, 40), dtype=np.uint16 if dtype == np.uint16 else np.uint8
    )
    image = image.astype(dtype)
    top = 65535.0 if dtype == np.uint16 else 255.0
    for threshold in (150.0, 150.5, 149.9, 0.0, -0.5, -1e12, top - 0.5, top, 1e12, np.inf):
        fast = opencv_filters.mask_values(image, threshold)
        expected = reference.mask_values(image, threshold)
        assert fast.dtype == expected.dtype, threshold
        assert np.array_equal(fast, expected), threshold


def test_float32_input_is_not_modified():
    image = structured_image(9, shape=(40, 40)).astype(np.float32)
    before = image.copy()
    for name in NAMES:
        getattr(opencv_filters, name)(image)
    assert np.array_equal(image, before)


def test_results_do_not_depend_on_buffers_or_threads():
    """Repeated and concurrent calls give the bits of a lone call (IPP's magnitude did not)."""
    image = structured_image(6, shape=(256, 256))
    alone = {name: getattr(opencv_filters, name)(image) for name in NAMES}
    differing = set()

    def filter_repeatedly():
        for _ in range(20):
            for name in NAMES:
                if not np.array_equal(getattr(opencv_filters, name)(image.copy()), alone[name]):
                    differing.add(name)

    threads = [threading.Thread(target=filter_repeatedly) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not differing


def test_the_callers_ipp_setting_is_restored():
    before = cv2.ipp.useIPP()
    try:
        for use_ipp in (True, False):
            cv2.ipp.setUseIPP(use_ipp)
            expected = cv2.ipp.useIPP()  # stays False where OpenCV was built without IPP
            opencv_filters.sobel(structured_image(2, shape=(16, 16)))
            assert cv2.ipp.useIPP() == expected
    finally:
        cv2.ipp.setUseIPP(before)


def test_opencv_runs_single_threaded():
    assert cv2.getNumThreads() == 1


def test_missing_opencv_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` raise ImportError
    monkeypatch.delitem(sys.modules, "xray_scale.engines.opencv")
    message = (
        "the opencv engine needs opencv-python-headless, a dependency of xray-scale: "
        "pip install opencv-python-headless"
    )
    with pytest.raises(ImportError, match=re.escape(message)):
        importlib.import_module("xray_scale.engines.opencv")
