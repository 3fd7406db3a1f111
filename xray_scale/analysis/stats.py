"""Per-image statistics from one exact histogram.

Every statistic comes from the image's value counts (all 256 levels of a uint8
image, all 65,536 levels of a uint16 one), so they are exact, not binned
estimates. The sums behind ``mean`` and ``std`` are exact integers (sum of
count x value and of count x value squared, in int64 and Python int), followed
by one correctly rounded division and square root: the same bits on every CPU,
BLAS kernel and thread count, whatever the summation order. Counting a
1024 x 1024 uint8 image takes ~0.4 ms with OpenCV's ``calcHist``
(``np.bincount`` first widens every pixel to int64: ~1.3 ms; ``np.median``
alone takes ~25 ms). Percentiles follow ``np.percentile``'s default
("linear") definition; ``median`` equals ``np.median``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..records import STAT_FIELDS

__all__ = ["STAT_FIELDS", "histogram256", "image_stats", "stats_from_counts", "value_counts"]


_EXACT_FLOAT32_COUNTS = 1 << 24
"""``calcHist`` counts in float32, exact below 2**24: larger images use ``np.bincount``."""


def value_counts(image: np.ndarray) -> np.ndarray:
    """Count every possible value of a uint8 or uint16 image.

    Parameters
    ----------
    image : ndarray
        uint8 or uint16 array.

    Returns
    -------
    ndarray
        int64 counts, length 256 (uint8) or 65536 (uint16).

    Examples
    --------
    >>> value_counts(np.array([0, 0, 255], dtype=np.uint8))[[0, 1, 255]]
    array([2, 0, 1])
    """
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"image must be uint8 or uint16, got {image.dtype}")
    levels = np.iinfo(image.dtype).max + 1
    if image.dtype == np.uint8 and 0 < image.size < _EXACT_FLOAT32_COUNTS:
        pixels = np.ascontiguousarray(image).reshape(-1)  # any shape: one column of values
        counts = cv2.calcHist([pixels], [0], None, [levels], [0, levels])
        return counts.ravel().astype(np.int64)
    return np.bincount(image.ravel(), minlength=levels)


def histogram256(image: np.ndarray) -> np.ndarray:
    """256-bin histogram over the dtype's full range.

    Bin ``i`` counts values in ``[i * w, (i + 1) * w)`` with ``w = 1`` for
    uint8 (one bin per level, exact) and ``w = 256`` for uint16. This equals
    ``scipy.ndimage.histogram(image, 0, levels, 256)`` where ``levels`` is 256
    or 65536.

    Examples
    --------
    >>> h = histogram256(np.array([0, 1, 1, 255], dtype=np.uint8))
    >>> h.shape, int(h[1]), int(h.sum())
    ((256,), 2, 4)
    """
    return _histogram256_from_counts(value_counts(image))


def _histogram256_from_counts(counts: np.ndarray) -> np.ndarray:
    return counts.reshape(256, -1).sum(axis=1)


def _sorted_value(cumulative: np.ndarray, rank: int) -> int:
    """The value at 0-based position ``rank`` of the sorted pixels."""
    return int(np.searchsorted(cumulative, rank, side="right"))


def _percentile(cumulative: np.ndarray, q: float) -> float:
    """np.percentile(..., method="linear") from cumulative value counts."""
    count = int(cumulative[-1])
    position = (q / 100.0) * (count - 1)
    below = int(np.floor(position))
    above = min(below + 1, count - 1)
    low = _sorted_value(cumulative, below)
    high = _sorted_value(cumulative, above)
    fraction = position - below
    if fraction >= 0.5:  # the same two-sided lerp numpy uses
        return float(high - (high - low) * (1.0 - fraction))
    return float(low + (high - low) * fraction)


def _exact_moments(counts: np.ndarray, count: int) -> tuple[float, float]:
    """Mean and population variance of the values ``counts`` counts, correctly rounded.

    ``S1 = sum(c * v)`` and ``S2 = sum(c * v**2)`` are exact in int64 (below
    2**63 for any image under 2**31 pixels of 16 bits); the variance
    ``(n * S2 - S1**2) / n**2`` is exact in Python ints until its one division.

    Examples
    --------
    >>> _exact_moments(np.array([1, 0, 3]), 4)
    (1.5, 0.75)
    """
    levels = np.arange(counts.size, dtype=np.int64)
    weighted = counts.astype(np.int64, copy=False) * levels
    first = int(weighted.sum())
    second = int((weighted * levels).sum())
    return first / count, (count * second - first * first) / (count * count)


def image_stats(image: np.ndarray, *, threshold: float) -> tuple[dict[str, float], np.ndarray]:
    """Statistics of one image and its 256-bin histogram.

    Parameters
    ----------
    image : ndarray
        A uint8 or uint16 image (any shape; usually 2-D).
    threshold : float
        Pixels strictly above it count towards ``mask_fraction`` (the
        tutorial's ``x > 150``).

    Returns
    -------
    stats : dict
        ``min``, ``max``, ``mean``, ``std`` (population, like ``np.std``),
        ``median``, ``p01``, ``p99`` (``np.percentile`` semantics) and
        ``mask_fraction`` (fraction of pixels above ``threshold``), as floats.
    histogram : ndarray
        :func:`histogram256` of the image.

    Examples
    --------
    >>> stats, hist = image_stats(np.array([[0, 100, 200, 250]], dtype=np.uint8), threshold=150)
    >>> stats["median"], stats["mask_fraction"], int(hist.sum())
    (150.0, 0.5, 4)
    """
    return stats_from_counts(value_counts(image), threshold=threshold)


def stats_from_counts(
    counts: np.ndarray, *, threshold: float
) -> tuple[dict[str, float], np.ndarray]:
    """:func:`image_stats` of an image given by its :func:`value_counts`.

    The GPU engine counts on the device and sends back only these counts.

    Examples
    --------
    >>> counts = value_counts(np.array([[0, 100, 200, 250]], dtype=np.uint8))
    >>> stats, hist = stats_from_counts(counts, threshold=150)
    >>> stats["median"], stats["max"]
    (150.0, 250.0)
    """
    count = int(counts.sum())
    if count == 0:
        raise ValueError("image has no pixels")
    present = np.flatnonzero(counts)
    mean, variance = _exact_moments(counts, count)
    cumulative = np.cumsum(counts)
    first_above = int(np.floor(threshold)) + 1
    stats = {
        "min": float(present[0]),
        "max": float(present[-1]),
        "mean": mean,
        "std": math.sqrt(variance),
        "median": _percentile(cumulative, 50.0),
        "p01": _percentile(cumulative, 1.0),
        "p99": _percentile(cumulative, 99.0),
        "mask_fraction": float(counts[max(first_above, 0) :].sum() / count),
    }
    return stats, _histogram256_from_counts(counts)
