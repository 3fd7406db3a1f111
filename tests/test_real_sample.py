"""The 9 real ChestX-ray8 images: --compat tutorial is bit for bit, float32 is within 1e-4."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import zarr
from conftest import REAL_NAMES, REAL_SAMPLE, needs_real_sample
from scipy import ndimage

import xray_scale

pytestmark = [needs_real_sample, pytest.mark.real_data]


def tutorial_outputs(xray_image: np.ndarray) -> dict[str, np.ndarray]:
    """The tutorial's own code, copied from seed-tutorial.md, for one image."""
    xray_image_laplace_gaussian = ndimage.gaussian_laplace(xray_image, sigma=1)
    x_ray_image_gaussian_gradient = ndimage.gaussian_gradient_magnitude(xray_image, sigma=2)
    x_sobel = ndimage.sobel(xray_image, axis=0)
    y_sobel = ndimage.sobel(xray_image, axis=1)
    xray_image_sobel = np.hypot(x_sobel, y_sobel)
    xray_image_sobel *= 255.0 / np.max(xray_image_sobel)
    xray_image_sobel = xray_image_sobel.astype("float32")
    fourier_gaussian = ndimage.fourier_gaussian(xray_image, sigma=0.05)
    x_prewitt = ndimage.prewitt(fourier_gaussian, axis=0)
    y_prewitt = ndimage.prewitt(fourier_gaussian, axis=1)
    xray_image_canny = np.hypot(x_prewitt, y_prewitt)
    xray_image_canny *= 255.0 / np.max(xray_image_canny)
    pixel_intensity_distribution = ndimage.histogram(
        xray_image, min=np.min(xray_image), max=np.max(xray_image), bins=256
    )
    return {
        "filters/laplace_gaussian": xray_image_laplace_gaussian,
        "filters/gaussian_gradient_magnitude": x_ray_image_gaussian_gradient,
        "filters/sobel": xray_image_sobel,
        "filters/tutorial_canny": xray_image_canny,
        "masks/mask_values": np.where(xray_image > 150, xray_image, 0),
        "masks/mask_binary": np.where(xray_image > 150, 1, 0),
        "stats/histogram": pixel_intensity_distribution,
        "stats/min": np.min(xray_image),
        "stats/max": np.max(xray_image),
        "stats/mean": np.mean(xray_image),
        "stats/median": np.median(xray_image),
    }


@pytest.fixture(scope="module")
def compat_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("compat") / "tutorial.zarr"
    summary = xray_scale.run([REAL_SAMPLE], out, compat="tutorial", workers=2, batch_size=4)
    assert summary.ok == 9
    return zarr.open_group(out, mode="r")


@pytest.fixture(scope="module")
def default_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("default") / "default.zarr"
    assert xray_scale.run([REAL_SAMPLE], out, workers=2).ok == 9
    return zarr.open_group(out, mode="r")


@pytest.mark.slow
def test_compat_tutorial_is_bit_for_bit_for_all_images_and_outputs(compat_store):
    for index, name in enumerate(REAL_NAMES):
        expected = tutorial_outputs(iio.imread(REAL_SAMPLE / name))
        for key, values in expected.items():
            stored = compat_store[key][index]
            if key.startswith(("filters/", "masks/")):
                assert stored.dtype == values.dtype, (key, stored.dtype, values.dtype)
            assert np.array_equal(stored, values), (name, key)
    dtypes = compat_store.attrs["xray_scale"]["map_dtypes"]
    assert dtypes["filters/laplace_gaussian"] == "uint8"  # the tutorial's wrap-around
    assert dtypes["filters/tutorial_canny"] == "float64"
    assert dtypes["masks/mask_binary"] == "int64"


@pytest.mark.slow
def test_default_float32_matches_scipy_float64_within_1e_4_of_the_range(default_store):
    for index, name in enumerate(REAL_NAMES):
        image = iio.imread(REAL_SAMPLE / name).astype(np.float64)
        sobel = np.hypot(ndimage.sobel(image, axis=0), ndimage.sobel(image, axis=1))
        prewitt_input = ndimage.fourier_gaussian(image, sigma=0.05)
        canny = np.hypot(
            ndimage.prewitt(prewitt_input, axis=0), ndimage.prewitt(prewitt_input, axis=1)
        )
        references = {
            "filters/laplace_gaussian": ndimage.gaussian_laplace(image, sigma=1),
            "filters/gaussian_gradient_magnitude": ndimage.gaussian_gradient_magnitude(
                image, sigma=2
            ),
            "filters/sobel": sobel * 255.0 / sobel.max(),
            "filters/tutorial_canny": canny * 255.0 / canny.max(),
        }
        for key, reference in references.items():
            stored = default_store[key][index]
            assert stored.dtype == np.float32
            error = np.abs(stored.astype(np.float64) - reference).max()
            assert error <= 1e-4 * np.ptp(reference), (name, key, error)


def test_default_differs_from_the_tutorials_wrapped_uint8(default_store, compat_store):
    wrapped = compat_store["filters/laplace_gaussian"][0].astype(np.float64)
    correct = default_store["filters/laplace_gaussian"][0]
    assert correct.min() < 0  # the Laplacian is signed; uint8 cannot hold that
    assert np.abs(wrapped - correct).max() > 100


def test_stats_of_real_images(default_store):
    for index, name in enumerate(REAL_NAMES):
        image = iio.imread(REAL_SAMPLE / name)
        assert default_store["stats/median"][index] == np.median(image)
        assert default_store["stats/p99"][index] == pytest.approx(np.percentile(image, 99))
        assert default_store["stats/mask_fraction"][index] == np.mean(image > 150)
        assert np.array_equal(
            default_store["stats/histogram"][index], np.bincount(image.ravel(), minlength=256)
        )
