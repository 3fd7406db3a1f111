"""Deterministic chest-like phantoms, so demos and tests run without the dataset.

A phantom is a frontal chest radiograph drawn from a few analytic shapes: a
dark background, the body's soft tissue, two darker lungs crossed by bright rib
arcs, a bright mediastinum, heart and spine, and clavicles, then smoothed and
given noise. Like ChestX-ray8 images it uses the whole intensity range, with
many dark pixels and many bright ones. The anatomy depends on the patient id
only; each follow-up shifts the patient slightly, changes the exposure, grows a
small opacity in one lung and draws new noise, as follow-up X-rays do.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

__all__ = ["phantom", "phantom_name", "write_phantoms"]


def _check(patient_id: int, follow_up: int, shape: tuple[int, int], bit_depth: int) -> None:
    if not 0 <= patient_id <= 99_999_999:
        raise ValueError(f"patient_id must be in 0..99999999 (8 digits), got {patient_id}")
    if not 0 <= follow_up <= 999:
        raise ValueError(f"follow_up must be in 0..999 (3 digits), got {follow_up}")
    if len(shape) != 2 or any(not isinstance(n, int) or n < 32 for n in shape):
        raise ValueError(f"shape must be two integers >= 32, got {shape!r}")
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")


def _ellipse(y, x, centre, radii) -> np.ndarray:
    return ((y - centre[0]) / radii[0]) ** 2 + ((x - centre[1]) / radii[1]) ** 2 <= 1.0


def phantom(
    patient_id: int,
    follow_up: int = 0,
    *,
    shape: tuple[int, int] = (1024, 1024),
    bit_depth: int = 8,
) -> np.ndarray:
    """One chest-like phantom radiograph.

    Parameters
    ----------
    patient_id : int
        0..99,999,999; fixes the anatomy.
    follow_up : int
        0..999; small changes between a patient's images.
    shape : (int, int)
        (height, width), each >= 32.
    bit_depth : {8, 16}
        uint8, or uint16 using the whole 16-bit range.

    Returns
    -------
    ndarray
        2-D uint8 or uint16; the same arguments give the same array everywhere.

    Examples
    --------
    >>> image = phantom(11, 2, shape=(64, 64))
    >>> image.dtype, image.shape, bool(np.array_equal(image, phantom(11, 2, shape=(64, 64))))
    (dtype('uint8'), (64, 64), True)
    """
    _check(patient_id, follow_up, shape, bit_depth)
    anatomy = np.random.default_rng([patient_id, 0])
    visit = np.random.default_rng([patient_id, follow_up + 1])
    height, width = shape
    scale = np.array([height, width], dtype=np.float64)
    shift = visit.normal(0, 0.006, 2) * scale
    y, x = np.ogrid[0:height, 0:width]
    y = y - shift[0]
    x = x - shift[1]

    def at(fy: float, fx: float) -> tuple[float, float]:
        return fy * height, fx * width

    body = _ellipse(y, x, at(0.55, 0.5), at(0.55, anatomy.uniform(0.40, 0.46)))
    density = np.where(body, 0.55, 0.02)
    lung_gap = anatomy.uniform(0.07, 0.1)
    lung_radii = at(anatomy.uniform(0.27, 0.32), anatomy.uniform(0.15, 0.18))
    for side in (-1, 1):
        centre = at(0.45, 0.5 + side * (lung_gap + lung_radii[1] / width))
        density = np.where(_ellipse(y, x, centre, lung_radii), 0.12, density)
    ribs = np.zeros(shape, dtype=bool)
    spacing = anatomy.uniform(0.055, 0.065) * height
    thickness = 0.012 * height
    for k in range(9):
        top = 0.2 * height + k * spacing
        curve = top + 0.25 * height * ((x - 0.5 * width) / (0.5 * width)) ** 2
        ribs |= np.abs(y - curve) < thickness
    density = np.where(ribs & body, density + 0.3, density)
    spine = np.abs(x - 0.5 * width) < 0.05 * width
    density = np.where(spine & body, 0.85, density)
    heart = _ellipse(y, x, at(0.62, 0.54), at(0.16, anatomy.uniform(0.14, 0.18)))
    density = np.where(heart, np.maximum(density, 0.8), density)
    for side in (-1, 1):
        clavicle = np.abs(y - (0.16 * height + side * 0.08 * (x - 0.5 * width))) < 0.012 * height
        density = np.where(clavicle & body, density + 0.35, density)
    opacity_size = 0.015 + 0.006 * min(follow_up, 10)
    opacity = _ellipse(y, x, at(0.5, 0.32), at(opacity_size, opacity_size))
    density = np.where(opacity, density + 0.25, density)

    density = ndimage.gaussian_filter(density, sigma=0.004 * min(shape))
    exposure = 1.0 + visit.normal(0, 0.03)
    density = density * exposure + visit.normal(0, 0.02, shape)
    top = np.iinfo(np.uint8 if bit_depth == 8 else np.uint16).max
    values = np.clip(density, 0.0, 1.0) * top
    return np.rint(values).astype(np.uint8 if bit_depth == 8 else np.uint16)


def phantom_name(patient_id: int, follow_up: int) -> str:
    """The ChestX-ray8 file name of an image.

    Examples
    --------
    >>> phantom_name(11, 3)
    '00000011_003.png'
    """
    _check(patient_id, follow_up, (32, 32), 8)
    return f"{patient_id:08d}_{follow_up:03d}.png"


def write_phantoms(
    directory: str | os.PathLike,
    *,
    patients: int = 1,
    follow_ups: int = 9,
    shape: tuple[int, int] = (1024, 1024),
    first_patient_id: int = 90000001,
    bit_depth: int = 8,
) -> list[Path]:
    """Write ``patients`` x ``follow_ups`` phantom PNGs named like ChestX-ray8.

    Parameters
    ----------
    directory : path-like
        Created if needed.
    patients, follow_ups : int
        How many patients, and images per patient (>= 1 each).
    shape, bit_depth
        As for :func:`phantom`.
    first_patient_id : int
        Id of the first patient; the others follow.

    Returns
    -------
    list of Path
        The files, sorted.
    """
    if patients < 1 or follow_ups < 1:
        raise ValueError(f"patients and follow_ups must be >= 1, got {patients}, {follow_ups}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for patient_id in range(first_patient_id, first_patient_id + patients):
        for follow_up in range(follow_ups):
            pixels = phantom(patient_id, follow_up, shape=shape, bit_depth=bit_depth)
            path = directory / phantom_name(patient_id, follow_up)
            Image.fromarray(pixels).save(path, format="PNG")
            paths.append(path)
    return sorted(paths)
