"""filters.stack: each image of a stack filtered on its own, as the reference filters it."""

from __future__ import annotations

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
from conftest import REAL_NAMES, REAL_SAMPLE, needs_real_sample, structured_image
from scipy import ndimage

from xray_scale import filters
from xray_scale.analysis.maps import to_storage_dtype
from xray_scale.analysis.previews import to_preview
from xray_scale.analysis.stats import value_counts
from xray_scale.filters import HOST_ONLY
from xray_scale.filters import stack as stack_filters
from xray_scale.io.phantoms import phantom

STACKED = [name for name, spec in filters.FILTERS.items() if spec.stack is not HOST_ONLY]
"""Every registered filter with a stack version, from the registry itself."""


def stack_filter(name: str, stack: np.ndarray) -> np.ndarray:
    spec = filters.FILTERS[name]
    images = stack.astype(np.float32)
    return spec.stack(images, xp=np, ndimage=ndimage, **spec.defaults())


def assert_each_image_is_the_reference(name: str, stack: np.ndarray) -> None:
    result = stack_filter(name, stack)
    assert result.dtype == np.float32 and result.shape == stack.shape
    params = filters.FILTERS[name].defaults()
    for k, image in enumerate(stack):
        expected = filters.FILTERS[name].function(image, **params)
        assert np.abs(result[k] - expected).max() <= 1e-4 * max(np.ptp(expected), 1e-30), (name, k)


@pytest.mark.parametrize("name", STACKED)
def test_structured_8_and_16_bit(name):
    for dtype in (np.uint8, np.uint16):
        stack = np.stack([structured_image(s, shape=(48, 72), dtype=dtype) for s in range(3)])
        assert_each_image_is_the_reference(name, stack)


@pytest.mark.parametrize("name", STACKED)
def test_phantoms(name):
    stack = np.stack([phantom(3, k, shape=(128, 128)) for k in range(2)])
    assert_each_image_is_the_reference(name, stack)


@needs_real_sample
@pytest.mark.real_data
@pytest.mark.parametrize("name", STACKED)
def test_real_images(name):
    stack = np.stack([iio.imread(REAL_SAMPLE / n) for n in REAL_NAMES[:2]])
    assert_each_image_is_the_reference(name, stack)


@pytest.mark.parametrize("name", STACKED)
def test_neighbours_do_not_leak_into_an_image(name):
    """The dask-image trap: filtering the stack must not mix images along its first axis."""
    image = structured_image(1, shape=(40, 40))
    with_dark = stack_filter(name, np.stack([np.zeros_like(image), image, np.zeros_like(image)]))
    with_bright = stack_filter(name, np.stack([np.full_like(image, 255), image, image[::-1]]))
    np.testing.assert_array_equal(with_dark[1], with_bright[1])


def test_zero_images_give_zeros_and_flat_ones_no_nan():
    stack = np.stack([np.zeros((16, 16), np.uint8), np.full((16, 16), 9, np.uint8)])
    for name in STACKED:
        result = stack_filter(name, stack)
        assert not result[0].any() and np.isfinite(result).all(), name
        expected = filters.FILTERS[name].function(stack[1], **filters.FILTERS[name].defaults())
        tolerance = 1e-4 * max(float(np.ptp(expected)), 1.0)
        np.testing.assert_allclose(result[1], expected, rtol=0, atol=tolerance, err_msg=name)


@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
def test_storage_dtype_is_the_per_image_conversion(dtype):
    maps = stack_filter("laplace_gaussian", np.stack([structured_image(s) for s in range(3)]))
    maps[2] = 5.0  # a constant map
    result = stack_filters.to_storage_dtype(maps, dtype, np)
    for k in range(3):
        np.testing.assert_array_equal(result[k], to_storage_dtype(maps[k], dtype))


@pytest.mark.parametrize(("sigma", "order"), [(1.0, 0), (1.0, 2), (2.0, 1), (0.05, 0), (3.3, 2)])
def test_gaussian_weights_are_scipys_own(sigma, order):
    values = np.random.default_rng(3).normal(size=(40, 50)).astype(np.float32)
    weights = np.asarray(stack_filters.gaussian_weights(sigma, order))
    expected = ndimage.gaussian_filter1d(values, sigma, axis=0, order=order)
    np.testing.assert_array_equal(ndimage.correlate1d(values, weights, axis=0), expected)


def test_previews_within_one_level_of_opencv_area_averaging():
    stack = np.stack([structured_image(s, shape=(64, 96), dtype=np.uint16) for s in range(3)])
    maps = stack_filter("gaussian_gradient_magnitude", stack)
    for values in (stack, maps):
        result = stack_filters.scale_to_uint8(stack_filters.area_means(values, (16, 24)), np)
        for k in range(3):
            expected = to_preview(values[k], (16, 24))
            assert np.abs(result[k].astype(int) - expected).max() <= 1


def test_previews_refuse_a_fractional_factor():
    with pytest.raises(ValueError, match="a 64x64 stack is not a whole multiple of 24x24"):
        stack_filters.area_means(np.zeros((1, 64, 64), np.float32), (24, 24))


def test_previews_of_every_map_at_once_scale_each_image_alone():
    rng = np.random.default_rng(7)
    small = rng.normal(size=(2, 3, 8, 8)).astype(np.float32) * [[[[1.0]], [[50.0]], [[1e-3]]]]
    small = small.astype(np.float32)
    small[1, 2] = 4.0  # a constant image gives zeros
    result = stack_filters.scale_to_uint8(small, np)
    for k in range(2):
        for m in range(3):
            expected = cv2.normalize(small[k, m], None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)
            np.testing.assert_array_equal(result[k, m], expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_value_counts_per_image(dtype):
    stack = np.stack([structured_image(s, shape=(30, 20), dtype=dtype) for s in range(4)])
    counts = stack_filters.value_counts(stack, np)
    for k in range(4):
        np.testing.assert_array_equal(counts[k], value_counts(stack[k]))
