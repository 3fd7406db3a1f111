"""The reference filters and masks: scipy's, each a pure function of one 2-D image.

Every filter here is defined on a single 2-D image. A batch of images is
filtered image by image (:func:`xray_scale.filters.registry.apply_to_batch`),
never as a 3-D stack: scipy's ``gaussian_laplace(stack, sigma=(0, 1, 1))``
skips the filter along an axis whose sigma is 0, so the term meant to be the
second derivative along the stack axis is the image itself, smoothed: every
map gets a smoothed copy of its image added. ``sobel(stack, axis=1)`` smooths
across the stack axis with ``[1, 2, 1]``, mixing in the neighbouring images.
See docs/architecture.md, "Correctness traps".

Dtype policy: integer images (uint8, uint16) are converted to float32 once, by
:func:`as_float32`, and every continuous filter map is float32. The real Canny
edge map is boolean.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
from scipy import ndimage

__all__ = [
    "as_float32",
    "canny",
    "fourier_gaussian_weights",
    "gaussian_gradient_magnitude",
    "laplace_gaussian",
    "mask_binary",
    "mask_values",
    "normalise_to_255",
    "sobel",
    "tutorial_canny",
]


def as_float32(image: np.ndarray) -> np.ndarray:
    """Return a 2-D image as float32, the dtype every filter computes in.

    Parameters
    ----------
    image : ndarray
        A 2-D array of any real dtype.

    Returns
    -------
    ndarray
        ``image`` as float32 (the same object if it already is).

    Raises
    ------
    ValueError
        If ``image`` is not 2-D.

    Examples
    --------
    >>> as_float32(np.array([[0, 255]], dtype=np.uint8))
    array([[  0., 255.]], dtype=float32)
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(
            f"image must be 2-D (height, width), got shape {image.shape}; "
            "filter a stack image by image with apply_to_batch"
        )
    return image.astype(np.float32, copy=False)


def normalise_to_255(magnitude: np.ndarray) -> np.ndarray:
    """Scale a non-negative map in place so that its maximum is 255.

    This is the tutorial's ``x *= 255.0 / np.max(x)``, with the all-zero case
    defined: a map whose maximum is 0 stays all zeros instead of becoming 0/0.

    Parameters
    ----------
    magnitude : ndarray
        A float array with non-negative values; modified in place.

    Returns
    -------
    ndarray
        ``magnitude`` itself.

    Examples
    --------
    >>> normalise_to_255(np.array([0.0, 1.0, 2.0], dtype=np.float32))
    array([  0. , 127.5, 255. ], dtype=float32)
    >>> normalise_to_255(np.zeros(2, dtype=np.float32))
    array([0., 0.], dtype=float32)
    """
    peak = magnitude.max()
    if peak > 0:
        magnitude *= magnitude.dtype.type(255.0 / peak)
    return magnitude


def laplace_gaussian(image: np.ndarray, *, sigma: float = 1.0) -> np.ndarray:
    """Laplace filter with Gaussian second derivatives (the tutorial's first filter).

    Parameters
    ----------
    image : ndarray
        A 2-D image.
    sigma : float
        Standard deviation of the Gaussian, in pixels, on both axes.

    Returns
    -------
    ndarray
        float32 map, signed.

    Examples
    --------
    >>> impulse = np.zeros((5, 5), dtype=np.uint8); impulse[2, 2] = 100
    >>> float(laplace_gaussian(impulse, sigma=1.0)[2, 2]) < 0
    True
    """
    return ndimage.gaussian_laplace(as_float32(image), sigma=sigma)


def gaussian_gradient_magnitude(image: np.ndarray, *, sigma: float = 2.0) -> np.ndarray:
    """Gradient magnitude with Gaussian derivatives.

    Parameters
    ----------
    image : ndarray
        A 2-D image.
    sigma : float
        Standard deviation of the Gaussian, in pixels, on both axes.

    Returns
    -------
    ndarray
        float32 map, non-negative.

    Examples
    --------
    >>> float(gaussian_gradient_magnitude(np.full((4, 4), 7, np.uint8)).max())
    0.0
    """
    return ndimage.gaussian_gradient_magnitude(as_float32(image), sigma=sigma)


def _gradient_magnitude(image: np.ndarray, derivative: Callable) -> np.ndarray:
    """hypot of a 3x3 derivative along both axes, normalised to 0..255."""
    along_rows = derivative(image, axis=0)
    along_columns = derivative(image, axis=1)
    return normalise_to_255(np.hypot(along_rows, along_columns))


def sobel(image: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude, normalised so that its maximum is 255.

    The tutorial's ``np.hypot(sobel(x, axis=0), sobel(x, axis=1))`` scaled by
    ``255 / max``, computed in float32 (the tutorial computes it on uint8 and
    wraps around; see :mod:`xray_scale.filters.compat`).

    Parameters
    ----------
    image : ndarray
        A 2-D image.

    Returns
    -------
    ndarray
        float32 map in [0, 255]; all zeros for a constant image.

    Examples
    --------
    >>> step = np.zeros((4, 4), dtype=np.uint8); step[:, 2:] = 10
    >>> float(sobel(step).max())
    255.0
    """
    return _gradient_magnitude(as_float32(image), ndimage.sobel)


@lru_cache(maxsize=8)
def fourier_gaussian_weights(shape: tuple[int, int], sigma: float) -> np.ndarray:
    """The map ``scipy.ndimage.fourier_gaussian(image, sigma)`` multiplies a real image by.

    On a real, spatial image ``fourier_gaussian`` is an elementwise product with
    a weight map that depends only on the shape and sigma; the fast engines
    compute it once per (shape, sigma) and reuse it.

    Returns
    -------
    ndarray
        Read-only float32 ``shape`` array.

    Examples
    --------
    >>> image = np.arange(12, dtype=np.float32).reshape(3, 4)
    >>> weights = fourier_gaussian_weights((3, 4), 0.5)
    >>> bool(np.allclose(image * weights, ndimage.fourier_gaussian(image, 0.5)))
    True
    """
    weights = ndimage.fourier_gaussian(np.ones(shape, dtype=np.float64), sigma=sigma)
    weights = weights.astype(np.float32)
    weights.flags.writeable = False
    return weights


def tutorial_canny(image: np.ndarray, *, sigma: float = 0.05) -> np.ndarray:
    """The tutorial's "Canny": ``fourier_gaussian`` then Prewitt magnitude, to 0..255.

    This is not a Canny edge detector: it multiplies the *spatial* image by a
    Gaussian weight defined on frequency coordinates (``fourier_gaussian``
    expects an FFT), then takes the Prewitt gradient magnitude. It is kept,
    under an honest name, because it is what the tutorial computes; the real
    detector is :func:`canny`.

    Parameters
    ----------
    image : ndarray
        A 2-D image.
    sigma : float
        ``sigma`` passed to ``scipy.ndimage.fourier_gaussian``.

    Returns
    -------
    ndarray
        float32 map in [0, 255]; all zeros for an all-zero image.

    Examples
    --------
    >>> float(tutorial_canny(np.zeros((4, 4), dtype=np.uint8)).max())
    0.0
    """
    weighted = ndimage.fourier_gaussian(as_float32(image), sigma=sigma)
    return _gradient_magnitude(weighted, ndimage.prewitt)


def canny(
    image: np.ndarray,
    *,
    sigma: float = 1.0,
    low_threshold: float = 0.1,
    high_threshold: float = 0.2,
) -> np.ndarray:
    """A real Canny edge detector (scikit-image ``feature.canny``).

    Thresholds are fractions of the image dtype's full scale (255 for uint8,
    65535 for uint16), so the same configuration means the same thing for 8-
    and 16-bit images; the defaults are scikit-image's.

    Parameters
    ----------
    image : ndarray
        A 2-D uint8 or uint16 image.
    sigma : float
        Standard deviation of the Gaussian smoothing, in pixels.
    low_threshold, high_threshold : float
        Hysteresis thresholds on the gradient magnitude of the image scaled to
        [0, 1] by full scale, ``0 <= low_threshold <= high_threshold``.

    Returns
    -------
    ndarray
        bool edge map.

    Examples
    --------
    >>> square = np.zeros((16, 16), dtype=np.uint8); square[4:12, 4:12] = 200
    >>> bool(canny(square)[4, 8]) and not bool(canny(square)[8, 8])
    True
    """
    from skimage import feature

    image = np.asarray(image)
    full_scale = np.iinfo(image.dtype).max if image.dtype.kind in "ui" else 1.0
    scaled = as_float32(image) / np.float32(full_scale)
    return feature.canny(
        scaled, sigma=sigma, low_threshold=low_threshold, high_threshold=high_threshold
    )


def mask_values(image: np.ndarray, threshold: float) -> np.ndarray:
    """The tutorial's noisy mask: pixel values above ``threshold``, 0 elsewhere.

    Examples
    --------
    >>> mask_values(np.array([[100, 200]], dtype=np.uint8), 150)
    array([[  0, 200]], dtype=uint8)
    """
    image = np.asarray(image)
    return np.where(image > threshold, image, image.dtype.type(0))


def mask_binary(image: np.ndarray, threshold: float) -> np.ndarray:
    """The tutorial's less noisy mask: True where the pixel is above ``threshold``.

    Examples
    --------
    >>> mask_binary(np.array([[100, 200]], dtype=np.uint8), 150)
    array([[False,  True]])
    """
    return np.asarray(image) > threshold
