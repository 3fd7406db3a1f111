"""The ``opencv`` engine: the registry's filters from scipy's own kernels, applied by OpenCV.

Every scipy.ndimage filter used here is separable: a 1-D correlation along
axis 0 and one along axis 1. ``cv2.sepFilter2D(src, CV_32F, kernelX,
kernelY, borderType=BORDER_REFLECT)`` computes exactly that, with ``kernelX``
along axis 1 (within a row) and ``kernelY`` along axis 0; like scipy it
correlates (it does not flip the kernels), keeps a float32 intermediate, and
always filters directly (never through a DFT). OpenCV's ``BORDER_REFLECT``
(``fedcba|abcdef``) is scipy's default mode ``reflect``. A uint8 or uint16 image
goes into ``sepFilter2D`` as it is: OpenCV converts each row to float32 as it
filters it, which saves a pass over the image (its sums may then round in another
order than on a float32 copy: a few 1e-7 of the range, well inside the tolerance).

The 1-D kernels are scipy's own:

- Gaussian derivative of order 0, 1 or 2: ``scipy.ndimage._filters._gaussian_kernel1d``
  with radius ``int(4.0 * sigma + 0.5)`` (``truncate=4.0``), reversed, as
  ``gaussian_filter1d`` reverses it before it correlates;
- ``gaussian_laplace``: order 2 along one axis and order 0 along the other,
  summed over both choices of the axis;
- ``gaussian_gradient_magnitude``: order 1 along one axis and order 0 along the
  other, the square root of the sum of squares over both choices;
- ``sobel(axis=a)``: ``[-1, 0, 1]`` along ``a``, ``[1, 2, 1]`` along the other axis;
  ``prewitt(axis=a)``: ``[-1, 0, 1]`` along ``a``, ``[1, 1, 1]`` along the other.

``fourier_gaussian`` applied to a real, spatial image only multiplies it by a
weight map that depends on the shape and sigma, so the map is computed once per
(shape, sigma) and reused. Each filter matches the scipy engine within 1e-4 of
its output's range (``tests/test_opencv_filters.py``). The real ``canny`` is not
implemented here: the scikit-image reference runs for it.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.ndimage._filters import _gaussian_kernel1d

from ..filters.reference import as_float32, fourier_gaussian_weights, normalise_to_255
from ..filters.reference import mask_values as reference_mask_values
from .base import Engine

try:
    import cv2
except ImportError as error:
    raise ImportError(
        "the opencv engine needs opencv-python-headless, a dependency of xray-scale: "
        "pip install opencv-python-headless"
    ) from error

__all__ = [
    "ENGINE",
    "gaussian_gradient_magnitude",
    "laplace_gaussian",
    "mask_values",
    "sobel",
    "tutorial_canny",
]

# The pipeline parallelises across images with its own threads, each calling these
# filters (cv2 releases the GIL). OpenCV's own thread pool inside every call would
# only oversubscribe the cores, so OpenCV runs single-threaded (a process-wide setting).
cv2.setNumThreads(1)

_TRUNCATE = 4.0
_DIFFERENCE = np.array([-1.0, 0.0, 1.0], dtype=np.float32)
_SOBEL_SMOOTH = np.array([1.0, 2.0, 1.0], dtype=np.float32)
_PREWITT_SMOOTH = np.array([1.0, 1.0, 1.0], dtype=np.float32)


@cache
def _gaussian(sigma: float, order: int) -> np.ndarray:
    """scipy's correlation kernel for ``gaussian_filter1d(sigma, order, truncate=4.0)``."""
    sigma = float(sigma)
    radius = int(_TRUNCATE * sigma + 0.5)
    kernel = np.ascontiguousarray(_gaussian_kernel1d(sigma, order, radius)[::-1], np.float32)
    kernel.flags.writeable = False
    return kernel


def _filter_input(image: np.ndarray) -> np.ndarray:
    """A 2-D image as ``sepFilter2D`` takes it: uint8, uint16 and float32 as they are."""
    image = np.asarray(image)
    if image.dtype in (np.uint8, np.uint16) and image.ndim == 2:
        return image
    return as_float32(image)


def _separable(image: np.ndarray, along_axis0: np.ndarray, along_axis1: np.ndarray) -> np.ndarray:
    """Correlate with ``along_axis0`` down the columns and ``along_axis1`` along the rows."""
    return cv2.sepFilter2D(
        image, cv2.CV_32F, along_axis1, along_axis0, borderType=cv2.BORDER_REFLECT
    )


def _magnitude(along_rows: np.ndarray, along_columns: np.ndarray) -> np.ndarray:
    """``hypot`` of two float32 maps, with Intel IPP off for the call.

    IPP's ``magnitude`` rounds differently depending on the output buffer's memory
    alignment, so the same image could give different last bits from one call to the
    next; OpenCV's own code does not. The switch is per thread and is restored.
    """
    use_ipp = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(False)
    try:
        return cv2.magnitude(along_rows, along_columns)
    finally:
        cv2.ipp.setUseIPP(use_ipp)


def laplace_gaussian(image: np.ndarray, *, sigma: float = 1.0) -> np.ndarray:
    """Laplace filter with Gaussian second derivatives, as ``scipy.ndimage.gaussian_laplace``.

    Same parameters and result as :func:`xray_scale.filters.reference.laplace_gaussian`,
    within 1e-4 of its output's range (measured: below 4e-7).

    Examples
    --------
    >>> impulse = np.zeros((5, 5), dtype=np.uint8); impulse[2, 2] = 100
    >>> float(laplace_gaussian(impulse, sigma=1.0)[2, 2]) < 0
    True
    """
    image = _filter_input(image)
    smooth, second = _gaussian(sigma, 0), _gaussian(sigma, 2)
    result = _separable(image, second, smooth)
    result += _separable(image, smooth, second)
    return result


def gaussian_gradient_magnitude(image: np.ndarray, *, sigma: float = 2.0) -> np.ndarray:
    """Gradient magnitude with Gaussian derivatives, as scipy's.

    Same parameters and result as :func:`xray_scale.filters.reference.gaussian_gradient_magnitude`,
    within 1e-4 of its output's range (measured: below 4e-7).

    Examples
    --------
    >>> float(gaussian_gradient_magnitude(np.full((8, 8), 7, np.uint8)).max()) < 1e-5
    True
    """
    image = _filter_input(image)
    smooth, first = _gaussian(sigma, 0), _gaussian(sigma, 1)
    return _magnitude(_separable(image, first, smooth), _separable(image, smooth, first))


def _magnitude_to_255(image: np.ndarray, smooth: np.ndarray) -> np.ndarray:
    """3x3 derivative (``[-1, 0, 1]`` by ``smooth``) magnitude, normalised to 0..255."""
    along_rows = _separable(image, _DIFFERENCE, smooth)
    along_columns = _separable(image, smooth, _DIFFERENCE)
    return normalise_to_255(_magnitude(along_rows, along_columns))


def sobel(image: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude, normalised so that its maximum is 255.

    Same parameters and result as :func:`xray_scale.filters.reference.sobel`,
    within 1e-4 of its output's range (measured: below 4e-7).

    Examples
    --------
    >>> step = np.zeros((4, 4), dtype=np.uint8); step[:, 2:] = 10
    >>> float(sobel(step).max())
    255.0
    """
    return _magnitude_to_255(_filter_input(image), _SOBEL_SMOOTH)


def tutorial_canny(image: np.ndarray, *, sigma: float = 0.05) -> np.ndarray:
    """The tutorial's "Canny": ``fourier_gaussian`` then Prewitt magnitude, to 0..255.

    Same parameters and result as :func:`xray_scale.filters.reference.tutorial_canny` (which
    explains why it is not a Canny edge detector), within 1e-4 of its output's range
    (measured: below 4e-7).

    Examples
    --------
    >>> float(tutorial_canny(np.zeros((4, 4), dtype=np.uint8)).max())
    0.0
    """
    image = _filter_input(image)
    weighted = image * fourier_gaussian_weights(image.shape, float(sigma))
    return _magnitude_to_255(weighted, _PREWITT_SMOOTH)


def mask_values(image: np.ndarray, threshold: float) -> np.ndarray:
    """The tutorial's noisy mask, ``np.where(image > threshold, image, 0)``, exactly.

    OpenCV's ``threshold(..., THRESH_TOZERO)`` computes ``image if image >
    threshold else 0`` in one pass over a uint8 or uint16 image (NumPy's
    ``where`` makes three); any other image goes to
    :func:`xray_scale.filters.reference.mask_values`.

    Examples
    --------
    >>> mask_values(np.array([[100, 150, 151]], dtype=np.uint8), 150.0)
    array([[  0,   0, 151]], dtype=uint8)
    """
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16) or image.ndim != 2 or np.isnan(threshold):
        return reference_mask_values(image, threshold)
    # OpenCV floors the threshold to an integer, which keeps "> threshold" exact for
    # integer pixels; clamping keeps the floor inside the int range for any threshold.
    limit = float(np.iinfo(image.dtype).max)
    clamped = min(max(float(threshold), -1.0), limit)
    return cv2.threshold(image, clamped, 0, cv2.THRESH_TOZERO)[1]


ENGINE = Engine(
    name="opencv",
    filters={
        "laplace_gaussian": laplace_gaussian,
        "gaussian_gradient_magnitude": gaussian_gradient_magnitude,
        "sobel": sobel,
        "tutorial_canny": tutorial_canny,
    },
    masks={"mask_values": mask_values},
)
"""OpenCV's filters and ``mask_values``; ``canny`` and ``mask_binary`` are the reference's."""
