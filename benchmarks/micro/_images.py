"""The image every micro-benchmark runs on, and its size.

The real ChestX-ray8 image ``00000011_000.png`` of ``../shared/data/chestxray8-sample``
(beside the repository) when it is there, else the phantom
``xray_scale.io.phantoms.phantom(11, 0)``: one uint8 chest radiograph of ``SIZE`` x ``SIZE``.
``tests/test_micro_benchmarks.py`` sets ``SIZE`` to 64 to run every benchmark once, fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from xray_scale.io.decode import decode_image
from xray_scale.io.phantoms import phantom

SIZE = 1024
"""Height and width of the benchmark image, in pixels (the ChestX-ray8 size)."""

REAL_IMAGE = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "chestxray8-sample"
    / "00000011_000.png"
)
"""The real image used when it exists (it is 1024 x 1024, 8-bit grayscale)."""


def chest_image() -> np.ndarray:
    """The benchmark image: the real one if present, else the phantom, ``SIZE`` x ``SIZE`` uint8.

    The real image is resized with ``cv2.INTER_AREA`` when ``SIZE`` is not its size.
    """
    if not REAL_IMAGE.is_file():
        return phantom(11, 0, shape=(SIZE, SIZE))
    import cv2

    pixels = decode_image(REAL_IMAGE, shape=(1024, 1024)).pixels
    if pixels.shape != (SIZE, SIZE):
        pixels = cv2.resize(pixels, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return pixels


def chest_png(folder: str | os.PathLike) -> Path:
    """A PNG file of the benchmark image.

    The real file itself when it is there and ``SIZE`` is its size; otherwise
    :func:`chest_image` encoded by OpenCV (8-bit grayscale, its default compression)
    into ``folder``.
    """
    if REAL_IMAGE.is_file() and SIZE == 1024:
        return REAL_IMAGE
    import cv2

    path = Path(folder) / "chest.png"
    ok, data = cv2.imencode(".png", chest_image())
    if not ok:
        raise RuntimeError("OpenCV could not encode the benchmark image as PNG")
    path.write_bytes(data.tobytes())
    return path
