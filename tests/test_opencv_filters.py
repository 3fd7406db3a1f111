"""opencv engine: each filter equals scipy's within 1e-4 of the output's range."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
from conftest import REAL_NAMES, REAL_SAMPLE, needs_real_sample, structured_image
from scipy import ndimage

from xray_scale import filters as reference
from xray_scale.synth import phantom

opencv_filters = pytest.importorskip("xray_scale.opencv_filters", reason="OpenCV is not installed")


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
    return magnitude * 255.0 / magnitude.max() if magnitude.max() > 0 else magnitude


CASES = [
    ("laplace_gaussian", 1.0),
    ("laplace_gaussian", 0.5),
    ("laplace_gaussian", 3.0),
    ("gaussian_gradient_magnitude", 2.0),
    ("gaussian_gradient_magnitude", 0.7),
    ("sobel", None),
    ("tutorial_canny", 0.05),
    ("tutorial_canny", 0.2),
]


def check(name: str, sigma: float | None, image: np.ndarray) -> None:
    params = {} if sigma is None else {"sigma": sigma}
    fast = getattr(opencv_filters, name)(image, **params)
    truth = float64_reference(name, image, sigma)
    assert fast.dtype == np.float32 and fast.shape == image.shape
    tolerance = 1e-4 * np.ptp(truth)
    assert np.abs(fast - truth).max() <= tolerance, name  # borders included
    slow = getattr(reference, name)(image, **params)
    assert np.abs(fast - slow).max() <= tolerance, name


@pytest.mark.parametrize(("name", "sigma"), CASES)
@pytest.mark.parametrize("shape", [(64, 64), (65, 97), (256, 256)])
def test_random_and_structured_images(name, sigma, shape):
    rng = np.random.default_rng(hash(shape) % 1000)
    check(name, sigma, rng.integers(0, 256, shape).astype(np.uint8))
    check(name, sigma, structured_image(3, shape=shape))


@pytest.mark.parametrize(("name", "sigma"), CASES)
def test_phantoms_8_and_16_bit(name, sigma):
    check(name, sigma, phantom(4, 2, shape=(192, 160)))
    check(name, sigma, phantom(4, 2, shape=(96, 96), bit_depth=16))


@needs_real_sample
@pytest.mark.parametrize(("name", "sigma"), CASES[:1] + CASES[3:4] + CASES[5:7])
def test_real_images(name, sigma):
    for image_name in REAL_NAMES[:2]:
        check(name, sigma, iio.imread(REAL_SAMPLE / image_name))


def test_flat_images_give_zeros_not_nan():
    constant = opencv_filters.sobel(np.full((32, 32), 9, np.uint8))
    assert not np.isnan(constant).any() and not constant.any()
    blank = opencv_filters.tutorial_canny(np.zeros((32, 32), np.uint8))
    assert not np.isnan(blank).any() and not blank.any()


def test_results_do_not_depend_on_concurrent_calls():
    """Two threads filtering at once get the bits a lone call gets (IPP did not)."""
    import threading

    image = phantom(6, 1, shape=(256, 256))
    names = ["laplace_gaussian", "gaussian_gradient_magnitude", "sobel", "tutorial_canny"]
    alone = {name: getattr(opencv_filters, name)(image) for name in names}
    differing = set()

    def filter_repeatedly():
        for _ in range(40):
            for name in names:
                if not np.array_equal(getattr(opencv_filters, name)(image.copy()), alone[name]):
                    differing.add(name)

    threads = [threading.Thread(target=filter_repeatedly) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not differing
