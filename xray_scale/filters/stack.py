"""The registry's filters over a ``(K, H, W)`` stack, each image filtered on its own.

``scipy.ndimage.gaussian_laplace(stack, sigma=(0, s, s))`` is *not* per-image
filtering: scipy skips the axis whose sigma is 0, so the term meant to be the
second derivative along the stack axis is a smoothed copy of every image,
added to its map (docs/architecture.md, "Correctness traps"). These functions
apply scipy's own definition of each filter, 1-D pass by 1-D pass, along the
two image axes of the stack only, in scipy's order and dtype, so image ``k``
of the result is the reference filter of image ``k``. They take the ndimage module as a parameter:
``cupyx.scipy.ndimage`` runs them on a GPU (the ``cupy`` engine, one kernel per
pass for a whole batch), and ``scipy.ndimage`` runs the same code on the CPU,
which is how the tests check it where no GPU exists.

Every filter is ``function(stack, *, xp, ndimage, **params)``: ``xp`` is the
array module (``numpy`` or ``cupy``) and ``ndimage`` its scipy.ndimage; float32
stacks in, float32 stacks out.
"""

from __future__ import annotations

from functools import lru_cache
from types import ModuleType

import numpy as np
from scipy import ndimage as scipy_ndimage

from .reference import fourier_gaussian_weights

__all__ = [
    "area_means",
    "fourier_weights_on",
    "gaussian_gradient_magnitude",
    "gaussian_weights",
    "laplace_gaussian",
    "normalise_each_to_255",
    "scale_to_uint8",
    "sobel",
    "to_storage_dtype",
    "tutorial_canny",
    "value_counts",
]

_IMAGE_AXES = (1, 2)
_TRUNCATE = 4.0  # scipy's default, as in the reference


@lru_cache(maxsize=32)
def gaussian_weights(sigma: float, order: int) -> tuple[float, ...]:
    """The correlation weights ``scipy.ndimage.gaussian_filter1d(sigma, order)`` uses.

    Read off scipy itself: the filter's response to an impulse (every other term
    of each sum is zero, so the values are exact), reversed.

    Examples
    --------
    >>> [round(w, 4) for w in gaussian_weights(0.5, 1)]
    [-0.0021, -0.4258, 0.0, 0.4258, 0.0021]
    """
    radius = int(_TRUNCATE * float(sigma) + 0.5)
    impulse = np.zeros(2 * radius + 1)
    impulse[radius] = 1.0
    response = scipy_ndimage.gaussian_filter1d(
        impulse, sigma, order=order, mode="constant", truncate=_TRUNCATE
    )
    return tuple(response[::-1].tolist())


@lru_cache(maxsize=64)
def _on(xp: ModuleType, weights: tuple[float, ...]):
    """``weights`` as a float64 array of ``xp``, made once per process (one GPU each).

    On a GPU, an upload from pageable host memory first waits for the whole stream.
    """
    return xp.asarray(weights, dtype=np.float64)


def _gaussian(stack, xp: ModuleType, ndimage: ModuleType, sigma: float, orders: tuple[int, int]):
    """``gaussian_filter(image, sigma, order=orders)`` of every image: axis 0, then axis 1."""
    for axis, order in zip(_IMAGE_AXES, orders, strict=True):
        weights = _on(xp, gaussian_weights(float(sigma), order))
        stack = ndimage.correlate1d(stack, weights, axis=axis, mode="reflect")
    return stack


def laplace_gaussian(stack, *, xp: ModuleType, ndimage: ModuleType, sigma: float = 1.0):
    """``scipy.ndimage.gaussian_laplace(image, sigma)`` of every image of a float32 stack.

    Examples
    --------
    >>> from scipy import ndimage
    >>> impulse = np.zeros((2, 5, 5), dtype=np.float32); impulse[1, 2, 2] = 100
    >>> result = laplace_gaussian(impulse, xp=np, ndimage=ndimage)
    >>> float(abs(result[0]).max()), float(result[1, 2, 2]) < 0
    (0.0, True)
    """
    result = _gaussian(stack, xp, ndimage, sigma, (2, 0))
    result += _gaussian(stack, xp, ndimage, sigma, (0, 2))
    return result


def gaussian_gradient_magnitude(stack, *, xp: ModuleType, ndimage: ModuleType, sigma: float = 2.0):
    """``scipy.ndimage.gaussian_gradient_magnitude(image, sigma)`` of every image.

    Examples
    --------
    >>> from scipy import ndimage
    >>> flat = np.full((1, 8, 8), 7, dtype=np.float32)
    >>> float(gaussian_gradient_magnitude(flat, xp=np, ndimage=ndimage).max()) < 1e-5
    True
    """
    result = _gaussian(stack, xp, ndimage, sigma, (1, 0))
    result *= result
    along_columns = _gaussian(stack, xp, ndimage, sigma, (0, 1))
    along_columns *= along_columns
    result += along_columns
    return xp.sqrt(result, out=result)


def _derivative_magnitude(stack, xp: ModuleType, ndimage: ModuleType, smooth: tuple[float, ...]):
    """``hypot`` of scipy's ``sobel``/``prewitt`` of both axes: ``[-1, 0, 1]``, then ``smooth``."""
    difference = _on(xp, (-1.0, 0.0, 1.0))
    smooth = _on(xp, smooth)
    along_rows = ndimage.correlate1d(stack, difference, axis=1, mode="reflect")
    along_rows = ndimage.correlate1d(along_rows, smooth, axis=2, mode="reflect")
    along_columns = ndimage.correlate1d(stack, difference, axis=2, mode="reflect")
    along_columns = ndimage.correlate1d(along_columns, smooth, axis=1, mode="reflect")
    along_rows *= along_rows
    along_columns *= along_columns
    along_rows += along_columns
    return xp.sqrt(along_rows, out=along_rows)


def _factor_to_255(span):
    """Per image, the float32 factor taking ``span`` to 255; 0 where ``span`` is not positive."""
    span = span.astype(np.float64)
    return (255.0 / (span + (span <= 0)) * (span > 0)).astype(np.float32)


def normalise_each_to_255(stack):
    """Scale each non-negative image in place so that its maximum is 255 (all-zero stays 0).

    Per image, :func:`xray_scale.filters.reference.normalise_to_255`.

    Examples
    --------
    >>> normalise_each_to_255(np.array([[[0, 1]], [[0, 0]]], dtype=np.float32)).tolist()
    [[[0.0, 255.0]], [[0.0, 0.0]]]
    """
    stack *= _factor_to_255(stack.max(axis=_IMAGE_AXES, keepdims=True))
    return stack


def sobel(stack, *, xp: ModuleType, ndimage: ModuleType):
    """The reference ``sobel`` (gradient magnitude scaled so that its maximum is 255), per image.

    Examples
    --------
    >>> from scipy import ndimage
    >>> step = np.zeros((1, 4, 4), dtype=np.float32); step[0, :, 2:] = 10
    >>> float(sobel(step, xp=np, ndimage=ndimage).max())
    255.0
    """
    return normalise_each_to_255(_derivative_magnitude(stack, xp, ndimage, (1.0, 2.0, 1.0)))


@lru_cache(maxsize=16)
def fourier_weights_on(xp: ModuleType, shape: tuple[int, int], sigma: float):
    """``fourier_gaussian``'s weight map as an array of ``xp``, made once per (shape, sigma).

    See :func:`xray_scale.filters.reference.fourier_gaussian_weights`.
    """
    return xp.asarray(fourier_gaussian_weights(tuple(shape), float(sigma)))


def tutorial_canny(stack, *, xp: ModuleType, ndimage: ModuleType, sigma: float = 0.05):
    """The tutorial's "Canny" of every image: ``stack * weights``, then Prewitt magnitude to 0..255.

    Parameters
    ----------
    stack : float32 array
        ``(K, H, W)``.
    xp, ndimage : module
    sigma : float
        Of ``fourier_gaussian``, which on a spatial image only multiplies it by
        a weight map (:func:`fourier_weights_on`).

    Examples
    --------
    >>> from scipy import ndimage
    >>> float(tutorial_canny(np.zeros((1, 4, 4), np.float32), xp=np, ndimage=ndimage).max())
    0.0
    """
    weighted = stack * fourier_weights_on(xp, tuple(stack.shape[1:]), float(sigma))
    return normalise_each_to_255(_derivative_magnitude(weighted, xp, ndimage, (1.0, 1.0, 1.0)))


def to_storage_dtype(stack, dtype: str, xp: ModuleType):
    """Per image, :func:`xray_scale.analysis.maps.to_storage_dtype` of a float32 stack.

    Examples
    --------
    >>> to_storage_dtype(np.array([[[-1.0, 0.0, 1.0]], [[2, 2, 2]]], np.float32), "uint8", np)
    array([[[  0, 128, 255]],
    <BLANKLINE>
           [[  0,   0,   0]]], dtype=uint8)
    """
    if dtype == "float32":
        return stack
    if dtype == "float16":
        return stack.astype(np.float16)
    if dtype != "uint8":
        raise ValueError(f"dtype must be float32, float16 or uint8, got {dtype!r}")
    low = stack.min(axis=_IMAGE_AXES, keepdims=True).astype(np.float64)
    span = stack.max(axis=_IMAGE_AXES, keepdims=True).astype(np.float64) - low
    scaled = (stack - low.astype(np.float32)) * _factor_to_255(span)
    return xp.rint(scaled).astype(np.uint8)


def area_means(stack, shape: tuple[int, int]):
    """Each image of a ``(K, H, W)`` stack shrunk to ``shape`` by averaging whole blocks, float32.

    What OpenCV's ``INTER_AREA`` does for integer factors, the first step of
    :func:`xray_scale.analysis.previews.to_preview`; :func:`scale_to_uint8` is the second.
    Sums in another order than OpenCV's can move a value across a rounding
    boundary: a preview may differ from ``to_preview`` by one level in a few pixels.

    Examples
    --------
    >>> area_means(np.arange(16, dtype=np.float32).reshape(1, 4, 4), (2, 2)).tolist()
    [[[2.5, 4.5], [10.5, 12.5]]]
    """
    count, height, width = stack.shape
    rows, columns = shape
    if height % rows or width % columns:
        raise ValueError(f"a {height}x{width} stack is not a whole multiple of {rows}x{columns}")
    blocks = stack.astype(np.float32, copy=False).reshape(
        count, rows, height // rows, columns, width // columns
    )
    return blocks.mean(axis=(2, 4), dtype=np.float32)


def scale_to_uint8(small, xp: ModuleType):
    """Each image (the last two axes) scaled from its min..max to 0..255, rounded half to even.

    ``cv2.normalize(..., NORM_MINMAX, CV_8U)`` of every image of a float32 array of
    any leading shape, ``(K, h, w)`` or ``(K, M, h, w)``; a constant image gives zeros.

    Examples
    --------
    >>> scale_to_uint8(np.array([[[2.5, 4.5], [10.5, 12.5]]], np.float32), np)
    array([[[  0,  51],
            [204, 255]]], dtype=uint8)
    """
    low = small.min(axis=(-2, -1), keepdims=True)
    span = small.max(axis=(-2, -1), keepdims=True).astype(np.float64) - low
    return xp.clip(xp.rint((small - low) * _factor_to_255(span)), 0, 255).astype(np.uint8)


def value_counts(stack, xp: ModuleType):
    """Per image, :func:`xray_scale.analysis.stats.value_counts` of a uint8 or uint16 stack.

    Returns
    -------
    array
        ``(K, 256)`` or ``(K, 65536)`` int64 counts, in ``xp``.

    Examples
    --------
    >>> value_counts(np.array([[[0, 0, 255]], [[1, 1, 1]]], dtype=np.uint8), np)[:, [0, 1, 255]]
    array([[2, 0, 1],
           [0, 3, 0]])
    """
    if stack.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"stack must be uint8 or uint16, got {stack.dtype}")
    levels = np.iinfo(stack.dtype).max + 1
    count = stack.shape[0]
    offsets = (xp.arange(count, dtype=np.int32) * levels).reshape(count, 1)
    indices = stack.reshape(count, -1).astype(np.int32) + offsets
    counts = xp.bincount(indices.ravel(), minlength=count * levels)
    return counts.reshape(count, levels).astype(np.int64, copy=False)
