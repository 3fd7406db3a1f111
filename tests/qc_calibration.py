"""Real films with injected defects: the QC's calibration set, built in memory.

The clean films are the 100 real ChestX-ray8 films of 100 patients in
``../shared/data/chestxray8-calibration/`` (SOURCE.md there; they are never
copied into the repository). Each gets injected copies: an inversion
(``255 - film``), a low-contrast copy (40 levels), a saturated copy (gain
``255 / p75``: a quarter of it clipped white), black frames of 4, 8 (+-2
noise) and 25 % of each side, white frames of 5 % (255) and 12 % (250 +- 2);
and there is one blank image per film (a level + faint noise). Non-chest
images: phantoms of :func:`xray_scale.io.phantoms.phantom` and photographs from
``skimage.data``, resized to 1024 x 1024.

Each image's truth is the flags it should get (:attr:`Injected.flags`): its
injected defect, and what it keeps of its film. Two of the films are framed
(:data:`REAL_FRAMES`), and so are their copies; the inversion of a film with
more than 5 % of its pixels at 0 (none in a frame) has them at 255, saturated by definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import skimage.data

from xray_scale.io.decode import decode_image
from xray_scale.io.phantoms import phantom

CALIBRATION = Path(__file__).resolve().parents[2] / "shared" / "data" / "chestxray8-calibration"
SHAPE = (1024, 1024)
FRAMES = (("black", 0.04, 0, 0), ("black", 0.08, 0, 2), ("black", 0.25, 0, 0))
FRAMES += (("white", 0.05, 255, 0), ("white", 0.12, 250, 2))
"""(colour, width as a fraction of each side, level, noise) of each injected frame."""
DEFECTS = ("inverted", "low_contrast", "saturated", "framed", "blank")
PHOTOS = ("camera", "astronaut", "coffee", "chelsea", "coins", "moon", "page", "text", "brick")
PHOTOS += ("grass", "gravel")
"""``skimage.data`` pictures; ``rocket`` is left out: a bright vertical rocket on a dark sky
has the layout of a chest film (docs/qc.md, "On real films": what the outlier flag misses)."""
REAL_FRAMES = frozenset({"00021163_000.png", "00022753_000.png"})
"""The calibration films that are framed: narrow films on a black plate, their black side
bands 16 % and 12 % of the area (looked at)."""


@dataclass
class Injected:
    """One image: its pixels, the defect injected (None: a clean film), the flags it should get."""

    name: str
    pixels: np.ndarray
    defect: str | None
    flags: frozenset[str] = frozenset()


def clean(films: list[tuple[str, np.ndarray]]) -> list[Injected]:
    """The films themselves, with their truth (two are framed)."""
    return [Injected(n, p, None, frozenset({"framed"} & _kept(n))) for n, p in films]


def _kept(name: str) -> set[str]:
    """What a copy of film ``name`` keeps of it, whatever is injected (but a blank)."""
    return {"framed"} if name in REAL_FRAMES else set()


def calibration_films() -> list[tuple[str, np.ndarray]]:
    """``(file name, pixels)`` of each calibration film, decoded as a run decodes it."""
    films = []
    for path in sorted(CALIBRATION.glob("*.png")):
        decoded = decode_image(path, shape=SHAPE)
        assert not decoded.error, (path, decoded.error)
        films.append((path.name, decoded.pixels))
    return films


def framed(film: np.ndarray, width: float, level: int, noise: int, rng) -> np.ndarray:
    """The film shrunk into the middle of a frame ``width`` of each side wide."""
    height, wide = film.shape
    top, left = round(height * width), round(wide * width)
    inner = cv2.resize(film, (wide - 2 * left, height - 2 * top), interpolation=cv2.INTER_AREA)
    out = np.full(film.shape, level, dtype=np.int32)
    if noise:
        out += rng.integers(-noise, noise + 1, film.shape)
    out[top : height - top, left : wide - left] = inner
    return np.clip(out, 0, 255).astype(np.uint8)


def injected(films: list[tuple[str, np.ndarray]], seed: int = 0) -> list[Injected]:
    """The injected copies of every film (module docstring), film by film."""
    rng = np.random.default_rng(seed)
    out = []
    for name, film in films:
        kept = _kept(name)
        at_zero = np.count_nonzero(film == 0) > 0.05 * film.size  # (a frame is not content)
        clipped_black = {"saturated"} if at_zero and not kept else set()
        out.append(Injected(f"{name} inverted", 255 - film, "inverted"))
        out[-1].flags = frozenset({"inverted"} | kept | clipped_black)
        low = np.rint(100 + film.astype(np.float64) * (40 / 255)).astype(np.uint8)
        out.append(Injected(f"{name} low contrast", low, "low_contrast"))
        gain = 255.0 / max(1.0, float(np.percentile(film, 75)))
        bright = np.clip(np.rint(film * gain), 0, 255).astype(np.uint8)
        out.append(Injected(f"{name} saturated", bright, "saturated"))
        for colour, width, level, noise in FRAMES:
            pixels = framed(film, width, level, noise, rng)
            out.append(Injected(f"{name} {colour} frame {width}", pixels, "framed"))
        level = int(rng.integers(20, 236))
        blank = np.clip(level + rng.integers(-2, 3, film.shape), 0, 255).astype(np.uint8)
        out.append(Injected(f"blank {level} for {name}", blank, "blank", frozenset({"blank"})))
        for case in out[-8:-1]:  # the copies of the film: its defect, and what they keep
            case.flags = case.flags or frozenset({case.defect} | kept)
    return out


def not_chest() -> list[Injected]:
    """Phantoms of 10 patients and the photographs of :data:`PHOTOS`, 1024 x 1024 grey."""
    out = [Injected(f"phantom {p}", phantom(p, 0, shape=SHAPE), "phantom") for p in range(1, 11)]
    for name in PHOTOS:
        picture = getattr(skimage.data, name)()
        if picture.ndim == 3:
            picture = cv2.cvtColor(picture[..., :3], cv2.COLOR_RGB2GRAY)
        grey = cv2.resize(picture, SHAPE[::-1], interpolation=cv2.INTER_LINEAR)
        out.append(Injected(f"photo {name}", grey, "photo"))
    return out
