"""Deterministic chest-like phantoms, so demos and tests run without the dataset.

A phantom is a frontal (PA) chest radiograph drawn from a few analytic
shapes, each contributing its projected thickness (an ellipsoid's chord,
``sqrt(1 - r**2)``) to an attenuation map: the trunk, neck and shoulders, two
air-filled lungs above domed hemidiaphragms, the heart and mediastinum, the
spine with its vertebrae, two clavicles, and posterior and anterior ribs drawn
as families of parallel arcs (one phase computation for all ribs, no per-rib
loop). The map is blurred slightly (:func:`scipy.ndimage.gaussian_filter`),
exposed and given noise. Like ChestX-ray8 images it uses the whole intensity
range: many dark pixels (background, lungs) and many bright ones (spine,
mediastinum, heart, abdomen), with soft, realistic edges.

The anatomy depends on the patient id only. Each follow-up moves the patient
a few pixels and rotates them by about a degree, changes the exposure, grows a
small opacity in one lung and draws new noise, as a patient's follow-up X-rays
do.

Reproducibility: the random numbers come from :class:`numpy.random.Generator`
with :class:`numpy.random.PCG64`, seeded from ``(patient_id, follow_up)``, and
every whole-image operation is an IEEE-exact one (``+ - * /``, ``sqrt``,
``floor``, comparisons) or the Gaussian filter, so the same arguments give a
bit-identical array on any machine with the same NumPy and SciPy.
"""

from __future__ import annotations

import operator
import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from ..errors import InputError

__all__ = [
    "clear_phantoms",
    "MAX_FOLLOW_UP",
    "MAX_PATIENT_ID",
    "MIN_SIDE",
    "phantom",
    "phantom_name",
    "write_phantoms",
]

MAX_PATIENT_ID = 99_999_999
"""The largest patient id an 8-digit ChestX-ray8 name can hold."""
MAX_FOLLOW_UP = 999
"""The largest follow-up number a 3-digit ChestX-ray8 name can hold."""
MIN_SIDE = 32
"""The smallest phantom height or width, in pixels."""

_F = np.float32
_ANATOMY, _VISIT = 0x5EED_A7, 0x5EED_F0  # stream tags: anatomy vs. one visit's changes


# ---------------------------------------------------------------- validation


def _integer(value, name: str) -> int:
    """``value`` as a Python int, or ValueError naming ``name``; bools are refused."""
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def _check_ids(patient_id, follow_up) -> tuple[int, int]:
    patient_id = _integer(patient_id, "patient_id")
    follow_up = _integer(follow_up, "follow_up")
    if not 0 <= patient_id <= MAX_PATIENT_ID:
        raise ValueError(
            f"patient_id must be in 0..{MAX_PATIENT_ID} (8 digits in the name), got {patient_id}"
        )
    if not 0 <= follow_up <= MAX_FOLLOW_UP:
        raise ValueError(
            f"follow_up must be in 0..{MAX_FOLLOW_UP} (3 digits in the name), got {follow_up}"
        )
    return patient_id, follow_up


def _check_shape(shape) -> tuple[int, int]:
    message = f"shape must be two integers (height, width), each >= {MIN_SIDE}, got {shape!r}"
    try:
        sides = tuple(shape)
    except TypeError:
        raise ValueError(message) from None
    if len(sides) != 2:
        raise ValueError(message)
    try:
        height, width = (_integer(side, "shape") for side in sides)
    except ValueError:
        raise ValueError(message) from None
    if height < MIN_SIDE or width < MIN_SIDE:
        raise ValueError(message)
    return height, width


def _check_bit_depth(bit_depth) -> int:
    if isinstance(bit_depth, bool | np.bool_) or bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    return int(bit_depth)


# ---------------------------------------------------------------- geometry


@lru_cache(maxsize=16)
def _axes(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre offsets from the image centre: a column (rows) and a row (columns)."""
    rows = (np.arange(height, dtype=np.float64) - (height - 1) / 2).reshape(-1, 1)
    cols = (np.arange(width, dtype=np.float64) - (width - 1) / 2).reshape(1, -1)
    rows.flags.writeable = False
    cols.flags.writeable = False
    return rows, cols


class _Canvas:
    """Normalised, rotated and shifted coordinates plus the attenuation map.

    ``u`` runs across the patient (0 on the midline, +-0.5 at the image's left
    and right edges), ``v`` down the patient (0 at the top edge, 1 at the
    bottom), both in the patient's frame: the visit's shift and rotation are
    folded into them, so every feature drawn with them moves together.
    """

    def __init__(self, shape: tuple[int, int], shift: tuple[float, float], tilt: float):
        self.height, self.width = shape
        rows, cols = _axes(*shape)
        # Rotation by the rational parametrisation (t = tan(angle / 2)): exact arithmetic only.
        cos, sin = (1 - tilt * tilt) / (1 + tilt * tilt), 2 * tilt / (1 + tilt * tilt)
        # How far a patient-frame point can be from its pixel: the rotation moves a point at
        # distance d from the centre by ~|sin| d, the shift adds itself; +2 pixels of slack.
        reach = max(abs(shift[0]), abs(shift[1]))
        self.margin = abs(sin) * (np.hypot(*shape) / 2 + reach) + reach + 2
        rows = rows - shift[0]
        cols = cols - shift[1]
        self.u = ((cos / self.width) * cols + (sin / self.width) * rows).astype(_F)
        self.v = ((cos / self.height) * rows - (sin / self.height) * cols + 0.5).astype(_F)
        self.attenuation = np.zeros(shape, dtype=_F)

    def box(self, u0: float, u1: float, v0: float, v1: float) -> tuple[slice, slice]:
        """The pixel window that holds patient-frame region [u0, u1] x [v0, v1], any visit."""
        r0 = int(np.floor(v0 * self.height - self.margin))
        r1 = int(np.ceil(v1 * self.height + self.margin)) + 1
        c0 = int(np.floor((u0 + 0.5) * self.width - self.margin))
        c1 = int(np.ceil((u1 + 0.5) * self.width + self.margin)) + 1
        return (
            slice(min(max(r0, 0), self.height), min(max(r1, 0), self.height)),
            slice(min(max(c0, 0), self.width), min(max(c1, 0), self.width)),
        )

    def ellipsoid(self, cu: float, cv: float, ru: float, rv: float) -> tuple[tuple, np.ndarray]:
        """Projected thickness of an ellipsoid (1 at its centre, 0 at and beyond its rim)."""
        window = self.box(cu - ru, cu + ru, cv - rv, cv + rv)
        du = (self.u[window] - _F(cu)) * _F(1 / ru)
        dv = (self.v[window] - _F(cv)) * _F(1 / rv)
        du *= du
        dv *= dv
        du += dv
        np.subtract(_F(1), du, out=du)
        np.maximum(du, _F(0), out=du)
        return window, np.sqrt(du, out=du)

    def add_ellipsoid(self, weight: float, cu: float, cv: float, ru: float, rv: float) -> None:
        window, thickness = self.ellipsoid(cu, cv, ru, rv)
        thickness *= _F(weight)
        self.attenuation[window] += thickness


def _draw_anatomy(canvas: _Canvas, rng: np.random.Generator) -> dict[str, float]:
    """Add one patient's anatomy to ``canvas.attenuation``; return where the lesion goes."""
    uniform = rng.uniform

    # Soft tissue: the union (not the sum) of a boxy trunk with rounded shoulders and the
    # neck, bright where thick.
    body_half, body_v = uniform(0.42, 0.47), uniform(0.8, 0.86)
    body_rv = body_v - uniform(0.06, 0.09)
    window = canvas.box(-body_half, body_half, body_v - body_rv, 1.0)
    du = canvas.u[window] * _F(1 / body_half)
    dv = (canvas.v[window] - _F(body_v)) * _F(1 / body_rv)
    du *= du
    dv *= dv
    dv *= dv  # a superellipse: |dv| ** 4 keeps the flanks straight and the shoulders round
    du += dv
    np.subtract(_F(1), du, out=du)
    np.maximum(du, _F(0), out=du)
    canvas.attenuation[window] = np.sqrt(du, out=du)
    neck_window, neck = canvas.ellipsoid(0.0, 0.0, uniform(0.08, 0.095), 0.25)
    neck *= _F(0.8)
    np.maximum(canvas.attenuation[neck_window], neck, out=canvas.attenuation[neck_window])
    canvas.attenuation *= _F(0.8)

    # Lungs: air removes attenuation; domed hemidiaphragms (the right one higher); the
    # heart, in front of the left lung's lower medial part, displaces the air there.
    lung_v, lung_rv = uniform(0.43, 0.46), uniform(0.27, 0.31)
    lung_ru, lung_gap = uniform(0.135, 0.16), uniform(0.045, 0.06)
    dome_top = lung_v + lung_rv * uniform(0.66, 0.76)
    heart_ru, heart_rv = uniform(0.12, 0.15), uniform(0.14, 0.17)
    heart_u, heart_v = 0.035 + heart_ru * 0.3, dome_top - heart_rv * 0.55
    for side in (-1, 1):  # -1: image left = patient's right
        cu = side * (lung_gap + lung_ru)
        window, air = canvas.ellipsoid(cu, lung_v, lung_ru, lung_rv)
        dome = canvas.u[window] - _F(cu)
        dome *= dome
        dome *= _F(0.45 / lung_ru)  # the diaphragm's dome, v below which there is no lung
        dome += _F(dome_top + (0.025 if side > 0 else 0.0))
        dome -= canvas.v[window]
        dome *= _F(1 / 0.01)  # a soft edge, 1% of the height
        np.clip(dome, _F(0), _F(1), out=dome)
        air *= dome
        du = (canvas.u[window] - _F(heart_u)) * _F(1 / heart_ru)
        dv = (canvas.v[window] - _F(heart_v)) * _F(1 / heart_rv)
        du *= du
        dv *= dv
        du += dv  # < 1 inside the heart's outline
        du -= _F(0.9)
        du *= _F(8)
        np.clip(du, _F(0), _F(1), out=du)
        air *= du
        air *= _F(-0.6)
        canvas.attenuation[window] += air

    # Spine: a column of vertebrae separated by darker disc spaces.
    spine_ru = uniform(0.038, 0.045)
    window, column = canvas.ellipsoid(0.0, 0.5, spine_ru, 1e6)  # a cylinder, top to bottom
    phase = canvas.v[window] * _F(1 / uniform(0.034, 0.04))
    phase -= np.floor(phase)
    phase -= _F(0.5)
    phase *= phase
    np.subtract(_F(1.3), phase, out=phase)  # 1.05 at the disc spaces, 1.3 mid-vertebra
    column *= phase
    column *= _F(0.14)
    canvas.attenuation[window] += column

    # Clavicles: shallow S-curves from the sternal notch to the shoulders.
    notch_v, rise = uniform(0.19, 0.22), uniform(0.2, 0.26)
    half_thick = 0.013
    for side in (-1, 1):
        window = canvas.box(
            min(0, side * 0.36), max(0, side * 0.36), notch_v - 0.14, notch_v + 0.03
        )
        lateral = canvas.u[window] * _F(side) - _F(0.03)  # distance from the notch
        inside = (lateral > 0) & (lateral < _F(0.3))
        curve = lateral * _F(-rise) + _F(notch_v)
        curve += lateral * lateral * _F(0.45)  # bends back down at the shoulder
        curve -= canvas.v[window]
        curve *= _F(1 / half_thick)
        curve *= curve
        np.subtract(_F(1), curve, out=curve)
        np.maximum(curve, _F(0), out=curve)
        np.sqrt(curve, out=curve)
        curve *= _F(0.2)
        curve *= inside
        within_body = canvas.attenuation[window] * _F(5)  # fade out at the skin
        np.minimum(within_body, _F(1), out=within_body)
        curve *= within_body
        canvas.attenuation[window] += curve

    # Ribs: posterior (bright, arching) and anterior (faint, sloping down medially) arcs,
    # one family each: ``phase`` counts ribs down the thorax, its fractional part
    # says where across a rib a pixel is.
    thorax_ru, thorax_rv = lung_gap + 2 * lung_ru + 0.035, lung_rv + 0.02
    window, cage = canvas.ellipsoid(0.0, lung_v - 0.015, thorax_ru, thorax_rv)
    cage *= _F(4)
    np.minimum(cage, _F(1), out=cage)
    across = np.abs(canvas.u[window])
    beside_spine = np.clip((across - _F(spine_ru * 0.6)) * _F(40), _F(0), _F(1))
    cage *= beside_spine
    below = across - _F(lung_gap + lung_ru)  # fainter below the diaphragm
    below *= below
    below *= _F(0.45 / lung_ru)
    below += _F(dome_top + 0.02)
    below -= canvas.v[window]
    below *= _F(1 / 0.03)
    below += _F(1)
    cage *= np.clip(below, _F(0.3), _F(1), out=below)
    spacing = (lung_rv * 2) / uniform(10.2, 11)
    posterior_top = lung_v - lung_rv - 0.02
    families = (
        (0.15, posterior_top, 2.0, -0.1, 0.45, 11),  # weight, top, curvature, turn, width, count
        (0.05, posterior_top + 0.1, -0.8, 0.42, 0.35, 7),
    )
    for weight, top, curvature, turn, width, count in families:
        phase = across - _F(abs(turn))
        phase *= phase
        phase *= _F(-curvature)
        if turn > 0:  # anterior ribs: lower towards the midline
            phase += (_F(turn) - across) * _F(0.25)
        phase += canvas.v[window]
        phase -= _F(top)
        phase *= _F(1 / spacing)
        valid = (phase >= 0) & (phase < _F(count))
        phase -= np.floor(phase)
        phase *= _F(1 / width)  # 0..1 across the rib, > 1 in the gap below it
        bone = _F(1) - phase
        bone *= phase
        np.maximum(bone, _F(0), out=bone)
        np.sqrt(bone, out=bone)  # denser cortex at both edges of a rib
        bone *= valid
        bone *= cage
        bone *= _F(weight * 2)
        if turn > 0:
            bone *= np.clip((across - _F(0.12)) * _F(20), _F(0), _F(1))
        canvas.attenuation[window] += bone

    # Where a lesion will appear: in the middle or upper part of one lung, clear of the heart.
    lesion_side = -1 if rng.random() < 0.5 else 1
    return {
        "u": lesion_side * (lung_gap + lung_ru * uniform(0.8, 1.4)),
        "v": lung_v + lung_rv * uniform(-0.5, 0.1),
    }


def phantom(
    patient_id: int,
    follow_up: int = 0,
    *,
    shape: tuple[int, int] = (1024, 1024),
    bit_depth: int = 8,
) -> np.ndarray:
    """One chest-like phantom radiograph, deterministic in its arguments.

    Parameters
    ----------
    patient_id : int
        0 to 99,999,999 (the 8 digits of a ChestX-ray8 name). It alone fixes the
        anatomy: body outline, lungs, heart, spine, clavicles and ribs.
    follow_up : int, optional
        0 to 999 (the 3 digits of the name). Each follow-up of a patient shifts
        and rotates the patient slightly (a few pixels, about a degree),
        changes the exposure, grows a small opacity in one lung and draws new
        noise; the images of one patient stay highly correlated.
    shape : (int, int), optional
        ``(height, width)``, each at least 32; the anatomy scales with it.
    bit_depth : {8, 16}, optional
        8 gives ``uint8``; 16 gives ``uint16`` using the whole 16-bit range
        (computed at 16-bit precision, not 8-bit values times 256).

    Returns
    -------
    numpy.ndarray
        A new 2-D ``uint8`` or ``uint16`` array of ``shape``. The same
        arguments give a bit-identical array on any machine (random numbers
        from ``numpy.random.Generator(PCG64)`` seeded from the ids).

    Raises
    ------
    ValueError
        If an argument is out of range; the message names the parameter.

    Examples
    --------
    >>> image = phantom(11, 2, shape=(64, 64))
    >>> image.dtype, image.shape
    (dtype('uint8'), (64, 64))
    >>> bool(np.array_equal(image, phantom(11, 2, shape=(64, 64))))
    True
    >>> int(image.min()) <= 20 and int(image.max()) >= 200
    True
    """
    patient_id, follow_up = _check_ids(patient_id, follow_up)
    shape = _check_shape(shape)
    bit_depth = _check_bit_depth(bit_depth)
    height, width = shape
    anatomy = np.random.Generator(np.random.PCG64([_ANATOMY, patient_id]))
    visit = np.random.Generator(np.random.PCG64([_VISIT, patient_id, follow_up]))

    # The visit: where the patient stands, the exposure, the noise.
    shift = tuple(np.clip(visit.normal(0.0, 0.0035, 2), -0.008, 0.008) * (height, width))
    tilt = float(np.clip(visit.normal(0.0, 0.006), -0.015, 0.015))  # tan(angle / 2)
    gain = 1.0 + float(np.clip(visit.normal(0.0, 0.035), -0.08, 0.08))
    offset = float(np.clip(visit.normal(0.0, 0.008), -0.02, 0.02))

    canvas = _Canvas(shape, shift, tilt)
    lesion = _draw_anatomy(canvas, anatomy)
    radius = 0.009 + 0.0035 * min(follow_up, 12)  # grows with each follow-up
    aspect = height / width
    canvas.add_ellipsoid(0.3, lesion["u"], lesion["v"], radius * aspect, radius)

    image = ndimage.gaussian_filter(
        canvas.attenuation, sigma=max(0.6, 0.0022 * min(shape)), truncate=3.0, mode="nearest"
    )
    # Exposure, a soft shoulder near white (film-like), then quantum noise.
    image *= _F(gain * 0.97)
    image += _F(offset + 0.035)
    excess = image - _F(0.8)  # above 0.8, compress: 0.8 + e / (1 + 3 e), monotonic
    np.maximum(excess, _F(0), out=excess)
    image -= excess
    excess /= excess * _F(3) + _F(1)
    image += excess
    noise = visit.standard_normal(shape, dtype=_F)
    noise *= _F(0.011)
    image += noise
    top = 255 if bit_depth == 8 else 65535
    image *= _F(top)
    np.clip(image, _F(0), _F(top), out=image)
    np.rint(image, out=image)
    return image.astype(np.uint8 if bit_depth == 8 else np.uint16)


def phantom_name(patient_id: int, follow_up: int) -> str:
    """The ChestX-ray8 file name of one image of one patient.

    Parameters
    ----------
    patient_id : int
        0 to 99,999,999, written as 8 digits.
    follow_up : int
        0 to 999, written as 3 digits.

    Returns
    -------
    str
        ``'PPPPPPPP_FFF.png'``.

    Raises
    ------
    ValueError
        If an id is negative or too large for its digits; the message names it.

    Examples
    --------
    >>> phantom_name(11, 3)
    '00000011_003.png'
    """
    patient_id, follow_up = _check_ids(patient_id, follow_up)
    return f"{patient_id:08d}_{follow_up:03d}.png"


def write_phantoms(
    directory: str | os.PathLike[str],
    *,
    patients: int = 1,
    follow_ups: int = 9,
    shape: tuple[int, int] = (1024, 1024),
    first_patient_id: int = 90000001,
    bit_depth: int = 8,
) -> list[Path]:
    """Write ``patients`` x ``follow_ups`` phantom PNGs, named like ChestX-ray8.

    Parameters
    ----------
    directory : str or path-like
        Folder for the files; created (with its parents) if needed.
    patients : int, optional
        How many patients (>= 1): ids ``first_patient_id``, ``first_patient_id + 1``, ...
    follow_ups : int, optional
        Images per patient (1 to 1000): follow-ups ``0 .. follow_ups - 1``.
    shape : (int, int), optional
        ``(height, width)`` of every image, as for :func:`phantom`.
    first_patient_id : int, optional
        The first patient's id; all ids must fit 8 digits.
    bit_depth : {8, 16}, optional
        8 writes 8-bit grayscale PNGs (Pillow mode ``'L'``), 16 writes 16-bit
        grayscale PNGs (mode ``'I;16'``), which read back as ``uint16``.

    Returns
    -------
    list of pathlib.Path
        The written files, sorted. Each holds exactly
        ``phantom(patient_id, follow_up, shape=shape, bit_depth=bit_depth)``.

    Raises
    ------
    ValueError
        If an argument is out of range (before anything is written); the
        message names the parameter.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     [p.name for p in write_phantoms(folder, follow_ups=2, shape=(32, 32))]
    ['90000001_000.png', '90000001_001.png']
    """
    patients = _integer(patients, "patients")
    follow_ups = _integer(follow_ups, "follow_ups")
    first_patient_id = _integer(first_patient_id, "first_patient_id")
    if patients < 1:
        raise ValueError(f"patients must be >= 1, got {patients}")
    if not 1 <= follow_ups <= MAX_FOLLOW_UP + 1:
        raise ValueError(f"follow_ups must be in 1..{MAX_FOLLOW_UP + 1}, got {follow_ups}")
    if not 0 <= first_patient_id <= MAX_PATIENT_ID - patients + 1:
        raise ValueError(
            f"first_patient_id must be in 0..{MAX_PATIENT_ID - patients + 1} so that "
            f"{patients} patient id(s) fit 8 digits, got {first_patient_id}"
        )
    shape = _check_shape(shape)
    bit_depth = _check_bit_depth(bit_depth)

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for patient_id in range(first_patient_id, first_patient_id + patients):
        for follow_up in range(follow_ups):
            pixels = phantom(patient_id, follow_up, shape=shape, bit_depth=bit_depth)
            path = directory / phantom_name(patient_id, follow_up)
            partial = path.with_name(f".{path.name}.partial")
            try:
                Image.fromarray(pixels).save(partial, format="PNG")  # mode 'L' or 'I;16'
                os.replace(partial, path)  # never a half-written PNG under the final name
            finally:
                partial.unlink(missing_ok=True)
            paths.append(path)
    return sorted(paths)


def clear_phantoms(folder: str | os.PathLike) -> None:
    """Delete the phantoms an earlier ``xray-scale demo`` wrote into ``folder``, to start afresh.

    Only files named as :func:`write_phantoms` names the demo's
    (``9PPPPPPP_FFF.png``: patient ids from 90000001, which ChestX-ray8 never
    uses) and its ``.NAME.partial`` leftovers are deleted.

    Raises
    ------
    InputError
        If ``folder`` holds anything else (nothing is deleted then).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    phantom = re.compile(r"9\d{7}_\d{3}\.png|\.9\d{7}_\d{3}\.png\.partial")
    entries = sorted(folder.iterdir())
    for entry in entries:
        if not (entry.is_file() and phantom.fullmatch(entry.name)):
            raise InputError(
                f"{folder} holds {entry.name!r}, which the demo did not write; the demo replaces "
                "its phantoms there, so move it away or choose another --out folder"
            )
    for entry in entries:
        entry.unlink()
