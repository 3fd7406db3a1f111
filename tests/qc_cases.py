"""A labelled set for the QC flags: clean films and copies of them with injected defects.

The clean films are phantoms (:func:`xray_scale.synth.phantom`, one per patient)
and, when present, the real ChestX-ray8 sample. Each film gets: black frames
(exact zeros and a noisy near-black) and white frames of several widths, an
inverted copy, a low-contrast and a saturated copy, a byte copy under another
name, a PNG re-encoded with other settings (same pixels), copies with +-1 noise
and through JPEG, shifted by a few pixels and rescaled by 5 %. Blank images
(constant, or constant plus faint noise) are added. Every file is written as a
PNG; :func:`write_cases` returns each file's truth.

Truth: ``framed``, ``inverted``, ``blank``, ``low_contrast``, ``saturated`` as
injected; ``duplicate`` when another file has identical pixels (compared
directly); ``near_duplicate`` when another file shows the same film with the
same polarity: a byte copy, a re-encoded PNG, +-1 noise, JPEG, a shift, a
rescale, a frame around it, a low-contrast or saturated copy. An inverted copy
is a film of its own (its detail is the film's, negated), and so is each
phantom patient.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from xray_scale.io.phantoms import phantom

REAL_SAMPLE = Path("/work/shared/data/chestxray8-sample")
LABELS = ("framed", "inverted", "blank", "low_contrast", "saturated", "duplicate", "near_duplicate")
BLACK_FRAMES = (0.04, 0.08, 0.15, 0.25)
"""Frame widths, as a fraction of each side, on each of the four edges."""
WHITE_FRAMES = (0.05, 0.12, 0.2)


@dataclass
class Case:
    """One labelled file."""

    path: Path
    film: str | None  # the film it shows (None for blank); same film + polarity => near copies
    polarity: int
    labels: dict[str, bool] = field(default_factory=dict)
    frame_fraction: float = 0.0


def _png(path: Path, pixels: np.ndarray, compress_level: int = 1) -> Path:
    Image.fromarray(pixels).save(path, format="PNG", compress_level=compress_level)
    return path


def _framed(pixels: np.ndarray, width: float, value: int, noise: int, rng) -> np.ndarray:
    """The film shrunk into the middle of a frame ``width`` of each side wide."""
    height, wide = pixels.shape
    top, left = round(height * width), round(wide * width)
    inner = cv2.resize(pixels, (wide - 2 * left, height - 2 * top), interpolation=cv2.INTER_AREA)
    out = np.full(pixels.shape, value, dtype=np.int32)
    if noise:
        out += rng.integers(-noise, noise + 1, pixels.shape)
    out[top : height - top, left : wide - left] = inner
    return np.clip(out, 0, 255).astype(np.uint8)


def _jpeg(pixels: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())))


def _shift(pixels: np.ndarray, dy: int, dx: int) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    size = pixels.shape[::-1]
    return cv2.warpAffine(pixels, matrix, size, borderMode=cv2.BORDER_REPLICATE)


def _rescale(pixels: np.ndarray, factor: float) -> np.ndarray:
    height, width = pixels.shape
    size = (round(width * factor), round(height * factor))
    method = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return cv2.resize(pixels, size, interpolation=method)


def films(*, phantoms: int, shape: tuple[int, int], real: bool) -> dict[str, np.ndarray]:
    """The clean films by name: phantoms of ``phantoms`` patients, then the real sample."""
    out = {f"phantom{p}": phantom(p, 0, shape=shape) for p in range(1, phantoms + 1)}
    if real and REAL_SAMPLE.is_dir():
        for path in sorted(REAL_SAMPLE.glob("*.png")):
            out[f"real{path.stem}"] = np.asarray(Image.open(path).convert("L"))
    return out


def write_cases(
    folder: Path,
    *,
    phantoms: int = 4,
    lone: int = 4,
    shape: tuple[int, int] = (1024, 1024),
    real: bool = True,
    larger: bool = True,
    seed: int = 0,
) -> list[Case]:
    """Write the labelled set into ``folder`` and return its cases (sorted by path).

    ``lone`` phantoms of other patients are added without any copy or defect.
    ``larger=False`` leaves out the copies rescaled up by 5 % (a run whose size
    is the films' own refuses larger images).
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def add(name: str, pixels, film, polarity=1, **labels) -> Case:
        case = Case(_png(folder / f"{name}.png", pixels), film, polarity, dict(labels))
        cases.append(case)
        return case

    for name, film in films(phantoms=phantoms, shape=shape, real=real).items():
        clean = add(f"{name}", film, name)
        for width in BLACK_FRAMES:
            noise = 2 if width in (0.08, 0.25) else 0
            case = add(
                f"{name}_black{width}", _framed(film, width, 0, noise, rng), name, framed=True
            )
            case.frame_fraction = 1 - (1 - 2 * width) ** 2
        for width in WHITE_FRAMES:
            value, noise = (255, 0) if width != 0.12 else (250, 2)
            case = add(
                f"{name}_white{width}", _framed(film, width, value, noise, rng), name, framed=True
            )
            case.frame_fraction = 1 - (1 - 2 * width) ** 2
        add(f"{name}_inverted", 255 - film, name, -1, inverted=True)
        low = 100 + film.astype(np.float64) * (40 / 255)
        add(f"{name}_low_contrast", np.rint(low).astype(np.uint8), name, low_contrast=True)
        gain = 255.0 / max(1.0, float(np.percentile(film, 75)))
        bright = np.clip(np.rint(film * gain), 0, 255).astype(np.uint8)
        add(f"{name}_saturated", bright, name, saturated=True)
        copy = folder / f"{name}_copy.png"
        shutil.copyfile(clean.path, copy)
        cases.append(Case(copy, name, 1, {}))
        reencoded = _png(folder / f"{name}_reencoded.png", film, compress_level=6)
        cases.append(Case(reencoded, name, 1, {}))  # other PNG settings, the same pixels
        noisy = np.clip(film.astype(np.int16) + rng.integers(-1, 2, film.shape), 0, 255)
        add(f"{name}_noise", noisy.astype(np.uint8), name)
        add(f"{name}_jpeg", _jpeg(film), name)
        add(f"{name}_shift", _shift(film, 2, -1), name)
        add(f"{name}_smaller", _rescale(film, 0.95), name)
        if larger:
            add(f"{name}_larger", _rescale(film, 1.05), name)
    for patient in range(phantoms + 1, phantoms + 1 + lone):  # films without any copy
        add(f"lone_phantom{patient}", phantom(patient, 0, shape=shape), f"lone{patient}")
    for value in (0, 128, 255):
        add(f"blank_{value}", np.full(shape, value, dtype=np.uint8), None, blank=True)
    for value in (40, 200):
        faint = value + rng.integers(-2, 3, shape)
        add(f"blank_noisy_{value}", faint.astype(np.uint8), None, blank=True)
    _label_copies(cases)
    return sorted(cases, key=lambda case: case.path.name)


def _label_copies(cases: list[Case]) -> None:
    """Fill ``duplicate`` (identical pixels) and ``near_duplicate`` (same film and polarity)."""
    pixels = [np.asarray(Image.open(case.path)) for case in cases]
    keys = [(p.shape, p.tobytes()) for p in pixels]
    films: dict[tuple, int] = {}
    for case in cases:
        if case.film is not None:
            films[(case.film, case.polarity)] = films.get((case.film, case.polarity), 0) + 1
    for k, case in enumerate(cases):
        case.labels["duplicate"] = keys.count(keys[k]) > 1
        same = films.get((case.film, case.polarity), 0) if case.film is not None else 0
        case.labels["near_duplicate"] = same > 1
        for label in LABELS:
            case.labels.setdefault(label, False)


def precision_recall(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float, int]:
    """Precision, recall and the number of positives (1.0 when there is nothing to find)."""
    truth, predicted = np.asarray(truth, bool), np.asarray(predicted, bool)
    hits = int(np.count_nonzero(truth & predicted))
    precision = hits / max(1, int(predicted.sum())) if predicted.any() else 1.0
    recall = hits / int(truth.sum()) if truth.any() else 1.0
    return precision, recall, int(truth.sum())
