"""Previews: small uint8 images of the original and of each map, for browsing a store."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["preview_shape", "to_preview"]


def preview_shape(shape: tuple[int, int], size: int) -> tuple[int, int]:
    """(height, width) of a preview whose longer side is ``size`` (never larger than ``shape``).

    Examples
    --------
    >>> preview_shape((1024, 1024), 256), preview_shape((600, 300), 100)
    ((256, 256), (100, 50))
    >>> preview_shape((64, 64), 256)
    (64, 64)
    """
    height, width = shape
    scale = min(1.0, size / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def to_preview(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A small uint8 image of a map, for browsing.

    The map is shrunk by area averaging (``cv2.INTER_AREA``) in float32, then
    scaled per image so that its minimum is 0 and its maximum 255, rounded
    (``cv2.normalize``, ``NORM_MINMAX``; a constant map gives zeros): previews
    show structure, not comparable values.

    Examples
    --------
    >>> to_preview(np.arange(16, dtype=np.float32).reshape(4, 4), (2, 2))  # 2x2 means 2.5..12.5
    array([[  0,  51],
           [204, 255]], dtype=uint8)
    >>> int(to_preview(np.full((4, 4), 7, dtype=np.uint8), (2, 2)).max())
    0
    """
    small = cv2.resize(
        np.asarray(values, dtype=np.float32), shape[::-1], interpolation=cv2.INTER_AREA
    )
    return cv2.normalize(small, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)
