"""The ``opencv`` engine: the registry's filters from scipy's own kernels, applied by OpenCV.

Every scipy.ndimage filter used here is separable: a 1-D correlation along
axis 0 and one along axis 1. ``cv2.sepFilter2D(src, CV_32F, kernelX, kernelY,
borderType=BORDER_REFLECT)`` computes exactly that, with ``kernelX`` along
axis 1 (within a row) and ``kernelY`` along axis 0, and OpenCV's
``BORDER_REFLECT`` (``fedcba|abcdef``) is scipy's default mode ``reflect``.
The 1-D kernels are scipy's:

- Gaussian derivatives of order 0, 1, 2: ``scipy.ndimage._gaussian_kernel1d``
  with radius ``int(4 * sigma + 0.5)``, reversed, as ``gaussian_filter1d``
  does before it correlates;
- Sobel: ``[-1, 0, 1]`` along the derivative axis, ``[1, 2, 1]`` along the other;
  Prewitt: ``[-1, 0, 1]`` and ``[1, 1, 1]``.

``fourier_gaussian`` applied to a real (spatial) image multiplies it by a
weight map that depends only on the shape and sigma, so the map is computed
once per (shape, sigma) and reused. Results match the scipy engine within
1e-4 of each output's range (``tests/test_engines.py``, ``tests/test_opencv_filters.py``).
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy import ndimage
from scipy.ndimage._filters import _gaussian_kernel1d

from .filters import as_float32, normalise_to_255

try:
    import cv2
except ImportError as error:  # pragma: no cover - exercised only without OpenCV
    raise ImportError(
        "the opencv engine needs opencv-python-headless: pip install opencv-python-headless"
    ) from error

__all__ = ["gaussian_gradient_magnitude", "laplace_gaussian", "sobel", "tutorial_canny"]

# The pipeline runs one image per thread already; OpenCV's own thread pool on top
# of that only oversubscribes the cores.
cv2.setNumThreads(1)

_DIFFERENCE = np.array([-1.0, 0.0, 1.0], dtype=np.float32)
_SOBEL_SMOOTH = np.array([1.0, 2.0, 1.0], dtype=np.float32)
_PREWITT_SMOOTH = np.array([1.0, 1.0, 1.0], dtype=np.float32)


@cache
def _gaussian(sigma: float, order: int) -> np.ndarray:
    """scipy's correlation kernel of ``gaussian_filter1d(sigma, order, truncate=4)``."""
    radius = int(4.0 * float(sigma) + 0.5)
    return np.ascontiguousarray(_gaussian_kernel1d(sigma, order, radius)[::-1], dtype=np.float32)


def _separable(image: np.ndarray, along_axis0: np.ndarray, along_axis1: np.ndarray) -> np.ndarray:
    # Intel IPP's sepFilter2D gives last-bit differences when two threads call it at
    # once, so results would depend on scheduling; OpenCV's own code is deterministic.
    # The switch is per thread, hence set on every call.
    cv2.ipp.setUseIPP(False)
    return cv2.sepFilter2D(
        image, cv2.CV_32F, along_axis1, along_axis0, borderType=cv2.BORDER_REFLECT
    )


def laplace_gaussian(image: np.ndarray, *, sigma: float = 1.0) -> np.ndarray:
    """``scipy.ndimage.gaussian_laplace`` in float32.

    See :func:`xray_scale.filters.laplace_gaussian`.

    Examples
    --------
    >>> impulse = np.zeros((5, 5), dtype=np.uint8); impulse[2, 2] = 100
    >>> float(laplace_gaussian(impulse)[2, 2]) < 0
    True
    """
    image = as_float32(image)
    smooth, second = _gaussian(sigma, 0), _gaussian(sigma, 2)
    result = _separable(image, second, smooth)
    result += _separable(image, smooth, second)
    return result


def gaussian_gradient_magnitude(image: np.ndarray, *, sigma: float = 2.0) -> np.ndarray:
    """``scipy.ndimage.gaussian_gradient_magnitude`` in float32.

    Examples
    --------
    >>> float(gaussian_gradient_magnitude(np.full((8, 8), 7, np.uint8)).max()) < 1e-6
    True
    """
    image = as_float32(image)
    smooth, first = _gaussian(sigma, 0), _gaussian(sigma, 1)
    return cv2.magnitude(_separable(image, first, smooth), _separable(image, smooth, first))


def _magnitude_to_255(image: np.ndarray, smooth: np.ndarray) -> np.ndarray:
    along_rows = _separable(image, _DIFFERENCE, smooth)
    along_columns = _separable(image, smooth, _DIFFERENCE)
    return normalise_to_255(cv2.magnitude(along_rows, along_columns))


def sobel(image: np.ndarray) -> np.ndarray:
    """Sobel magnitude scaled to 0..255; see :func:`xray_scale.filters.sobel`.

    Examples
    --------
    >>> step = np.zeros((4, 4), dtype=np.uint8); step[:, 2:] = 10
    >>> float(sobel(step).max())
    255.0
    """
    return _magnitude_to_255(as_float32(image), _SOBEL_SMOOTH)


@cache
def _fourier_gaussian_weights(shape: tuple[int, int], sigma: float) -> np.ndarray:
    weights = ndimage.fourier_gaussian(np.ones(shape, dtype=np.float64), sigma=sigma)
    weights = weights.astype(np.float32)
    weights.flags.writeable = False
    return weights


def tutorial_canny(image: np.ndarray, *, sigma: float = 0.05) -> np.ndarray:
    """The tutorial's "Canny"; see :func:`xray_scale.filters.tutorial_canny`.

    Examples
    --------
    >>> float(tutorial_canny(np.zeros((4, 4), dtype=np.uint8)).max())
    0.0
    """
    image = as_float32(image)
    weighted = image * _fourier_gaussian_weights(image.shape, float(sigma))
    return _magnitude_to_255(weighted, _PREWITT_SMOOTH)
