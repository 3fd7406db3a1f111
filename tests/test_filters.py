"""filters: per-image definitions, the stack trap, dtypes, the all-zero case."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import structured_image
from scipy import ndimage

from xray_scale.filters import (
    FILTERS,
    MASKS,
    apply_to_batch,
    as_float32,
    canny,
    mask_binary,
    mask_values,
    normalise_to_255,
)


@pytest.fixture
def batch() -> np.ndarray:
    return np.stack([structured_image(k) for k in range(4)])


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_a_batch_equals_filtering_each_image(name, batch):
    spec = FILTERS[name]
    result = apply_to_batch(spec, batch, **spec.defaults())
    assert result.dtype == np.dtype(spec.output_dtype)
    for k, image in enumerate(batch):
        assert np.array_equal(result[k], spec.function(image, **spec.defaults()))


def test_filtering_the_stack_is_not_filtering_each_image(batch):
    """The trap in design.md section 2, which dask-image's ndfilters inherit."""
    per_image = apply_to_batch(FILTERS["laplace_gaussian"], batch, sigma=1.0)
    stack = ndimage.gaussian_laplace(batch.astype(np.float32), sigma=(0, 1, 1))
    assert np.abs(stack - per_image).max() > 10  # scipy adds a smoothed copy of each image
    sobel_stack = ndimage.sobel(batch.astype(np.float32), axis=1)
    sobel_one = ndimage.sobel(batch[1].astype(np.float32), axis=0)
    assert not np.allclose(sobel_stack[1], sobel_one)  # smoothed across neighbouring images


@pytest.mark.parametrize("name", ["laplace_gaussian", "gaussian_gradient_magnitude"])
def test_float32_matches_float64_scipy(name):
    image = structured_image(5, shape=(96, 80))
    sigma = FILTERS[name].defaults()["sigma"]
    reference = getattr(ndimage, name.replace("laplace_gaussian", "gaussian_laplace"))(
        image.astype(np.float64), sigma=sigma
    )
    result = FILTERS[name].function(image, sigma=sigma)
    assert result.dtype == np.float32
    assert np.abs(result - reference).max() <= 1e-4 * np.ptp(reference)


def test_sobel_is_the_normalised_float_magnitude():
    image = structured_image(6)
    wide = image.astype(np.float64)
    magnitude = np.hypot(ndimage.sobel(wide, axis=0), ndimage.sobel(wide, axis=1))
    expected = magnitude * 255.0 / magnitude.max()
    result = FILTERS["sobel"].function(image)
    assert result.max() == pytest.approx(255.0)
    assert np.abs(result - expected).max() <= 1e-4 * 255


@pytest.mark.parametrize("name", ["sobel", "tutorial_canny"])
def test_all_zero_images_give_zeros_not_nan(name):
    result = FILTERS[name].function(np.zeros((16, 16), np.uint8), **FILTERS[name].defaults())
    assert not np.isnan(result).any() and not result.any()


def test_normalise_to_255():
    values = np.array([0.0, 2.0, 4.0], np.float32)
    assert normalise_to_255(values) is values
    assert values.tolist() == [0.0, 127.5, 255.0]


def test_canny_thresholds_are_fractions_of_full_scale():
    square = np.zeros((32, 32), np.uint8)
    square[8:24, 8:24] = 200
    edges8 = canny(square)
    edges16 = canny(square.astype(np.uint16) * 257)
    assert edges8.dtype == bool and edges8.any()
    assert np.array_equal(edges8, edges16)
    faint = (square // 40).astype(np.uint8)  # a step of 5 levels: below the default thresholds
    assert not canny(faint).any()
    assert canny(faint, low_threshold=0.001, high_threshold=0.002).any()


def test_masks_are_the_tutorials_np_where():
    image = np.array([[100, 150, 151, 255]], np.uint8)
    assert mask_values(image, 150).tolist() == [[0, 0, 151, 255]]
    assert mask_values(image, 150).dtype == np.uint8
    assert mask_binary(image, 150).tolist() == [[False, False, True, True]]
    assert set(MASKS) == {"mask_values", "mask_binary"}


def test_filters_refuse_stacks():
    with pytest.raises(ValueError, match="image must be 2-D"):
        as_float32(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="batch must be 3-D"):
        apply_to_batch(FILTERS["sobel"], np.zeros((4, 4)))
