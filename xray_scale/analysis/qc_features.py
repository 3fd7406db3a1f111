"""Per-image QC measurements in exact arithmetic: the downscale, and the outlier features.

Every value here is computed from integer sums of the pixels (or of their
256-bin histogram), with at most a few correctly rounded float operations at
the end (a conversion, a division, a square root), so it has the same bits on
every CPU, SIMD path, BLAS and thread count (no float reduction whose order
could change).

- :func:`block_sums`: the ``32 x 32`` block sums of an image, exact.
- :func:`concentration`: how concentrated the histogram is on few grey levels.
- :func:`chest_correlation`: how much the image's layout looks like a frontal
  chest film shown normally (+1), or as a negative (-1).
- :func:`fine_detail`: the mean absolute second difference along rows.
"""

from __future__ import annotations

import math
import operator

import cv2
import numpy as np

__all__ = [
    "CHEST_TEMPLATE",
    "SMALL",
    "block_sums",
    "chest_correlation",
    "concentration",
    "fine_detail",
]

SMALL = 32
"""Side of the downscale (:func:`block_sums`)."""
_DETAIL_ROW_STEP = 8
""":func:`fine_detail` reads every 8th row."""

CHEST_TEMPLATE = np.array(
    [
        [-169, -145, -105, -1, 9, -94, -133, -154],
        [-11, -2, -61, -30, -13, -72, -7, -5],
        [36, 8, -107, -37, -3, -112, -11, 33],
        [11, -3, -95, 4, 42, -85, -21, 8],
        [-23, -1, -44, 56, 93, -11, -14, -23],
        [-47, 16, 33, 105, 122, 55, 6, -45],
        [-77, 58, 118, 147, 145, 108, 42, -76],
        [-87, 85, 150, 167, 161, 135, 66, -93],
    ],
    dtype=np.int64,
)
"""The ``8 x 8`` layout of an ordinary frontal chest film, x 100.

The mean, over the 100 films of ``../shared/data/chestxray8-calibration/``,
of each film's ``8 x 8`` block means (of its content, inside any frame)
standardised to zero mean and unit standard deviation, rounded to 0.01: dark
corners above the shoulders and dark lungs, a bright mediastinum, spine and
abdomen. ``tests/test_qc_calibration.py`` recomputes it from the films.
"""
_TEMPLATE = CHEST_TEMPLATE.ravel().tolist()
_TEMPLATE_SUM = sum(_TEMPLATE)
_TEMPLATE_SPREAD = len(_TEMPLATE) * sum(t * t for t in _TEMPLATE) - _TEMPLATE_SUM**2


def block_sums(content: np.ndarray) -> tuple[np.ndarray, int]:
    """The ``32 x 32`` block sums of an image and the pixels per block: its exact downscale.

    A uint8 image whose sides are multiples of 32 (a whole 1024 x 1024 film):
    the exact integer sum of each block (``cv2.reduce`` of 32-pixel row
    segments, then sums of 32 rows; ~0.15 ms). Otherwise OpenCV's area resize
    to ``32 x 32`` (rounded to the dtype, half a level at most from the block
    means) with one "pixel" per block.

    Returns
    -------
    sums : ndarray
        ``(32, 32)`` int64.
    count : int
        Pixels per block: ``sums / count`` are the block means.

    Examples
    --------
    >>> sums, count = block_sums(np.full((64, 64), 3, dtype=np.uint8))
    >>> sums.shape, int(sums[0, 0]), count
    ((32, 32), 12, 4)
    """
    height, width = content.shape
    down, across = height // SMALL, width // SMALL
    if content.dtype == np.uint8 and height % SMALL == 0 and width % SMALL == 0:
        segments = np.ascontiguousarray(content).reshape(-1, across)
        row_sums = cv2.reduce(segments, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)
        sums = row_sums.reshape(SMALL, down, SMALL).sum(axis=1, dtype=np.int64)
        return sums, down * across
    if height < SMALL or width < SMALL:  # tiny: grow first
        content = cv2.resize(content, (SMALL, SMALL), interpolation=cv2.INTER_NEAREST)
    small = cv2.resize(content, (SMALL, SMALL), interpolation=cv2.INTER_AREA)
    return small.astype(np.int64), 1


def concentration(histogram: np.ndarray) -> float:
    """How concentrated a histogram is: ``sqrt(sum(p ** 2))`` of its bin fractions ``p``.

    ``1 / sqrt(L)`` for pixels spread evenly over ``L`` bins, 1 for a constant
    image. Ordinary 8-bit chest films: 0.06 to 0.12; a frame, clipping, a
    narrow window or a blank image concentrate pixels on few levels and raise it.

    Examples
    --------
    >>> concentration(np.array([5, 5, 5, 5])), concentration(np.array([0, 9, 0]))
    (0.5, 1.0)
    """
    counts = np.asarray(histogram, dtype=np.int64).ravel()
    total = int(counts.sum())
    if total == 0:
        return math.nan
    if total < 1 << 31:  # every square, and their sum, fits int64 exactly
        squares = int((counts * counts).sum())
    else:
        squares = sum(c * c for c in counts.tolist())
    return math.sqrt(squares) / total


def chest_correlation(sums: np.ndarray) -> float:
    """Correlation of an image's ``8 x 8`` block means with :data:`CHEST_TEMPLATE` (-1..1).

    Computed from the integer :func:`block_sums` in exact integer arithmetic,
    one float division and square root at the end. Ordinary frontal films
    correlate 0.5 to 0.95; a negative of one correlates as much, negatively;
    other pictures lie around 0. 0 for a uniform image.

    Examples
    --------
    >>> film = np.kron(CHEST_TEMPLATE + 200, np.ones((4, 4), dtype=np.int64))
    >>> round(chest_correlation(film), 6), round(chest_correlation(-film), 6)
    (1.0, -1.0)
    """
    blocks = np.asarray(sums, dtype=np.int64).reshape(8, SMALL // 8, 8, SMALL // 8)
    values = blocks.sum(axis=(1, 3)).ravel().tolist()
    total = sum(values)
    spread = len(values) * sum(map(operator.mul, values, values)) - total * total
    if spread == 0:
        return 0.0
    covariance = len(values) * sum(map(operator.mul, values, _TEMPLATE)) - total * _TEMPLATE_SUM
    return covariance / math.sqrt(spread * _TEMPLATE_SPREAD)


_SECOND_DIFFERENCE = np.array([[1.0, -2.0, 1.0]], dtype=np.float32)


def fine_detail(content: np.ndarray) -> float:
    """Mean ``|x[j-1] - 2 x[j] + x[j+1]|`` along every 8th row, in 8-bit grey levels.

    The finest detail and noise of an image: 1.5 to 3.7 on ordinary ChestX-ray8
    films; lower for a blurred or low-contrast image, higher for a noisy or
    synthetic one. A uint16 image's value is divided by 257 (its 8-bit scale).
    0 for an image narrower than 3 pixels.

    Examples
    --------
    >>> fine_detail(np.tile(np.array([0, 10], dtype=np.uint8), (4, 4)))
    20.0
    """
    rows = content[::_DETAIL_ROW_STEP]
    if rows.shape[1] < 3:
        return 0.0
    if rows.dtype == np.uint8:  # exact: integer values in float32, |d| <= 510 in int16
        second = cv2.filter2D(rows, cv2.CV_16S, _SECOND_DIFFERENCE, borderType=cv2.BORDER_ISOLATED)
        total = int(cv2.norm(second[:, 1:-1], cv2.NORM_L1))
    else:
        wide = rows.astype(np.int64)
        second = wide[:, :-2] + wide[:, 2:] - 2 * wide[:, 1:-1]
        total = int(np.abs(second).sum())
    count = rows.shape[0] * (rows.shape[1] - 2)
    scale = 1 if content.dtype == np.uint8 else 257
    return total / (count * scale)
