"""Images of any size to the run's size: ``input.size_policy = "resize"``.

CheXpert's JPEGs are 2,000 to 3,000 pixels a side, each its own size; PadChest's
and the DICOM datasets' vary as much. A run analyses one size, so with
``size_policy = "resize"`` each image of another size is scaled, keeping its
aspect ratio, until its longer side (relative to the run's shape) fills the
run's, with area interpolation (OpenCV's ``INTER_AREA``: each output pixel the
mean of the input pixels it covers, the right filter for shrinking, with no
aliasing), then padded with zeros, centred, to the run's shape. The padding is
recorded as for ``size_policy = "pad"`` (``DecodedImage.padded_from``: the
statistics and QC ignore it), and the image's own size is recorded too
(``DecodedImage.original_size``, stored as ``index/file_height`` and
``index/file_width``).

What this does to the filters: they run at the run's size, so a sigma of
``s`` run pixels is ``s / scale`` pixels of the original, ``scale`` being
:func:`fit_size`'s factor (a 2,828-pixel CheXpert film in a 1,024 run:
``scale = 0.362``, and the Laplace-Gaussian's sigma 1 spans 2.8 original
pixels). Films of different sizes are therefore filtered at different
physical scales unless their pixel spacings compensate. Area averaging is itself
a low-pass filter of one run pixel's width (a standard deviation of about 0.29
run pixels), small beside every default sigma.

The statistics (``stats/*``) and QC are of the resized image's own pixels (its
padding excluded), the same pixels the maps and masks are computed from, so
that every value of one store describes one image. Area averaging keeps the
mean (to rounding) and narrows the tails: minimum, maximum, the extreme
percentiles and the standard deviation move towards the mean. A study of the
films' own intensities should run with ``size_policy = "fail"`` at each native
size.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["fit_size", "resize_to_fit"]


def fit_size(inner: tuple[int, int], outer: tuple[int, int]) -> tuple[int, int]:
    """The size ``inner`` scales to, keeping its aspect ratio, to fit ``outer`` exactly.

    The side that limits the scale fills ``outer``'s; the other is rounded to
    the nearest pixel (at least 1).

    Examples
    --------
    >>> fit_size((2828, 2320), (1024, 1024))
    (1024, 840)
    >>> fit_size((300, 600), (1024, 1024)), fit_size((512, 512), (1024, 1024))
    ((512, 1024), (1024, 1024))
    """
    (height, width), (out_height, out_width) = inner, outer
    if height * out_width >= width * out_height:  # height limits: height / H >= width / W
        return out_height, max(1, min(out_width, round(width * out_height / height)))
    return max(1, min(out_height, round(height * out_width / width))), out_width


def resize_to_fit(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``pixels`` scaled with area interpolation to :func:`fit_size` of ``shape``.

    Parameters
    ----------
    pixels : ndarray
        2-D uint8 or uint16.
    shape : (int, int)
        The run's (height, width).

    Returns
    -------
    ndarray
        Same dtype, of :func:`fit_size`'s size (``pixels`` itself when that is its size).

    Examples
    --------
    >>> resize_to_fit(np.array([[0, 2, 4, 6], [2, 4, 6, 8]], dtype=np.uint8), (4, 2))
    array([[2, 6]], dtype=uint8)
    """
    size = fit_size(pixels.shape, shape)
    if size == pixels.shape:
        return pixels
    return cv2.resize(pixels, (size[1], size[0]), interpolation=cv2.INTER_AREA)
