"""stats: exact statistics from value counts equal numpy's."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import structured_image
from scipy import ndimage

from xray_scale.analysis.stats import STAT_FIELDS, histogram256, image_stats, value_counts


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stats_equal_numpy(dtype, seed):
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    image = rng.integers(0, top, size=(37, 53), endpoint=True).astype(dtype)
    stats, _ = image_stats(image, threshold=top * 0.6)
    assert set(stats) == set(STAT_FIELDS)
    assert stats["min"] == image.min() and stats["max"] == image.max()
    assert stats["mean"] == np.mean(image)
    assert stats["median"] == np.median(image)
    assert stats["std"] == pytest.approx(np.std(image), rel=1e-12)
    assert stats["p01"] == pytest.approx(np.percentile(image, 1), abs=1e-9)
    assert stats["p99"] == pytest.approx(np.percentile(image, 99), abs=1e-9)
    assert stats["mask_fraction"] == np.mean(image > top * 0.6)


def test_even_count_median_and_tiny_images():
    stats, _ = image_stats(np.array([[1, 2, 3, 10]], np.uint8), threshold=2)
    assert stats["median"] == 2.5 and stats["mask_fraction"] == 0.5
    stats, _ = image_stats(np.array([[7]], np.uint8), threshold=150)
    assert (stats["p01"], stats["p99"], stats["std"]) == (7.0, 7.0, 0.0)


def test_histogram_is_ndimage_histogram_over_the_dtype_range():
    image8 = structured_image(3)
    assert np.array_equal(histogram256(image8), ndimage.histogram(image8, 0, 256, 256))
    image16 = structured_image(4, dtype=np.uint16)
    assert np.array_equal(histogram256(image16), ndimage.histogram(image16, 0, 65536, 256))
    assert histogram256(image16).sum() == image16.size


@pytest.mark.parametrize(
    "image",
    [
        np.arange(300, dtype=np.uint64).astype(np.uint8),  # 1-D
        structured_image(5, shape=(33, 17)),
        structured_image(6, shape=(40, 40))[:, ::3],  # not contiguous
        np.stack([structured_image(7), structured_image(8)]),  # 3-D: every pixel, not a channel
        np.full((16, 16), 255, np.uint8),
    ],
    ids=["1d", "2d", "strided", "3d", "constant"],
)
def test_uint8_counts_equal_bincount_for_any_layout(image):
    counts = value_counts(image)
    assert counts.dtype == np.int64
    assert np.array_equal(counts, np.bincount(image.ravel(), minlength=256))


def test_rejects_float_images():
    with pytest.raises(TypeError, match="uint8 or uint16"):
        image_stats(np.zeros((2, 2), np.float32), threshold=1)
