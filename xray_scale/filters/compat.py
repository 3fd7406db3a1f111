"""``--compat tutorial``: the NumPy tutorial's arrays, bit for bit, dtypes included.

The tutorial runs scipy filters directly on the uint8 image, and scipy writes
its output in the input dtype. So its Laplace-Gaussian and Gaussian gradient
maps are uint8 (negative and large values wrap around), its Sobel map is the
``np.hypot`` of two wrapped uint8 arrays, which NumPy computes in float16, and
its binary mask is ``np.where(x > t, 1, 0)``, an int64 array. This module
reproduces exactly that, for people who need to compare with the tutorial; the
default filters (:mod:`xray_scale.filters`) compute in float32 instead, which
is what the tutorial meant.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

__all__ = ["TUTORIAL_FILTERS", "TUTORIAL_MASKS", "tutorial_histogram"]


def _laplace_gaussian(image: np.ndarray, *, sigma: float) -> np.ndarray:
    return ndimage.gaussian_laplace(image, sigma=sigma)


def _gaussian_gradient_magnitude(image: np.ndarray, *, sigma: float) -> np.ndarray:
    return ndimage.gaussian_gradient_magnitude(image, sigma=sigma)


def _sobel(image: np.ndarray) -> np.ndarray:
    x_sobel = ndimage.sobel(image, axis=0)
    y_sobel = ndimage.sobel(image, axis=1)
    xray_image_sobel = np.hypot(x_sobel, y_sobel)
    xray_image_sobel *= 255.0 / np.max(xray_image_sobel)
    return xray_image_sobel.astype("float32")


def _tutorial_canny(image: np.ndarray, *, sigma: float) -> np.ndarray:
    fourier_gaussian = ndimage.fourier_gaussian(image, sigma=sigma)
    x_prewitt = ndimage.prewitt(fourier_gaussian, axis=0)
    y_prewitt = ndimage.prewitt(fourier_gaussian, axis=1)
    xray_image_canny = np.hypot(x_prewitt, y_prewitt)
    xray_image_canny *= 255.0 / np.max(xray_image_canny)
    return xray_image_canny


def _mask_values(image: np.ndarray, threshold: float) -> np.ndarray:
    return np.where(image > threshold, image, 0)


def _mask_binary(image: np.ndarray, threshold: float) -> np.ndarray:
    return np.where(image > threshold, 1, 0)


TUTORIAL_FILTERS: dict[str, Callable[..., np.ndarray]] = {
    "laplace_gaussian": _laplace_gaussian,
    "gaussian_gradient_magnitude": _gaussian_gradient_magnitude,
    "sobel": _sobel,
    "tutorial_canny": _tutorial_canny,
}
"""The tutorial's code for each filter it has, by registry name (no real Canny)."""

TUTORIAL_MASKS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "mask_values": _mask_values,
    "mask_binary": _mask_binary,
}
"""The tutorial's ``np.where`` masks, by registry name."""


def tutorial_histogram(image: np.ndarray) -> np.ndarray:
    """The tutorial's pixel-intensity histogram.

    ``ndimage.histogram(image, min=image.min(), max=image.max(), bins=256)``:
    256 equal bins spanning the image's own range, so bin ``i`` of two images
    covers different values unless both use the full 0..255 range. The
    default histogram (:func:`xray_scale.analysis.stats.histogram256`) bins the dtype's
    range instead, so histograms of different images are comparable.

    Parameters
    ----------
    image : ndarray
        A 2-D integer image.

    Returns
    -------
    ndarray
        int64 counts, shape (256,).

    Examples
    --------
    >>> int(tutorial_histogram(np.array([[0, 10, 10]], dtype=np.uint8))[-1])
    2
    """
    counts = ndimage.histogram(image, min=np.min(image), max=np.max(image), bins=256)
    return np.asarray(counts, dtype=np.int64)
