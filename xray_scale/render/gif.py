"""Follow-up GIFs of one patient: frames composed with NumPy and Pillow, written by imageio."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import imageio.v3 as iio
import matplotlib
import numpy as np
import zarr
from PIL import Image, ImageDraw, ImageFont

from ..store.layout import STATUS_OK
from .panels import Original, check_panels, panel_data
from .selection import normalise_patient
from .stored import as_group, image_name, index_strings, run_format

__all__ = [
    "GifResult",
    "render_gif",
]

_GIF_BACKGROUND = 0
_GIF_TEXT = 255


class GifResult(NamedTuple):
    """What :func:`render_gif` wrote.

    Attributes
    ----------
    path : Path or None
        The GIF, or None when fewer than two frames could be made.
    labels : list of str
        The label drawn into each frame, in frame order.
    notes : list of str
        Frames left out and why.
    """

    path: Path | None
    labels: list[str]
    notes: list[str]


def _to_gray8(pixels: np.ndarray) -> np.ndarray:
    """uint8 as is (the tutorial's GIF); anything else scaled min..max to 0..255."""
    if pixels.dtype == np.uint8:
        return pixels
    values = pixels.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8)


def _coloured(values: np.ndarray, cmap: str) -> np.ndarray:
    """A map as RGB uint8 through ``cmap``, scaled min..max like imshow."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    rgba = matplotlib.colormaps[cmap](np.nan_to_num(scaled), bytes=True)
    return np.ascontiguousarray(rgba[..., :3])


def _downscale(image: np.ndarray, max_size: int | None) -> np.ndarray:
    height, width = image.shape[:2]
    if max_size is None or max(height, width) <= max_size:
        return image
    factor = max_size / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType: the small bitmap font
        return ImageFont.load_default()


def _label_frames(contents: list[np.ndarray], labels: list[str]) -> list[np.ndarray]:
    """Put each label in a black band above its content; all frames one size."""
    content_h, content_w = contents[0].shape[:2]
    font = _font(int(np.clip(content_w // 32, 10, 28)))
    pad = max(2, font.size // 3) if hasattr(font, "size") else 3
    boxes = [font.getbbox(label) for label in labels]
    text_w = max(box[2] for box in boxes)
    text_h = max(box[3] for box in boxes)
    band = text_h + 2 * pad
    width = max(content_w, text_w + 2 * pad)
    left = (width - content_w) // 2
    frames = []
    for content, label in zip(contents, labels, strict=True):
        shape = (band + content_h, width, *content.shape[2:])
        frame = np.full(shape, _GIF_BACKGROUND, dtype=np.uint8)
        frame[band:, left : left + content_w] = content
        image = Image.fromarray(frame)
        fill = _GIF_TEXT if image.mode == "L" else (_GIF_TEXT,) * 3
        ImageDraw.Draw(image).text((pad, pad), label, fill=fill, font=font)
        frames.append(np.asarray(image))
    return frames


def render_gif(
    group: zarr.Group | str | os.PathLike,
    patient: str | int,
    path: str | os.PathLike,
    *,
    indices: Iterable[int] | None = None,
    duration_ms: int = 1000,
    beside: str | None = None,
    beside_cmap: str = "gray",
    max_size: int | None = 512,
) -> GifResult:
    """An animated GIF of one patient's follow-ups, like the tutorial's ``xray_image.gif``.

    Frames are the patient's ``ok`` images ordered by ``index/follow_up``.
    Each has a band on top naming the image and its follow-up number.

    Parameters
    ----------
    group : zarr.Group or path
    patient : str or int
        Patient id as in ``index/patient_id``.
    path : path-like
        The GIF to write (folders are created).
    indices : iterable of int, optional
        Only these store indices (e.g. a selection); default: all the patient's.
    duration_ms : int
        Display time of each frame in milliseconds (the tutorial: 1000). GIF
        stores hundredths of a second, so it is rounded to 10 ms.
    beside : str, optional
        A filter or mask (a :data:`SOURCES` name) shown to the right of the
        original, from the store or recomputed.
    beside_cmap : str
        Colormap of ``beside``.
    max_size : int or None
        Each image is downscaled so that its longer side is at most this
        many pixels; None keeps full resolution.

    Returns
    -------
    GifResult
        ``path`` is None (nothing written) when fewer than two frames could be made.

    Raises
    ------
    ValueError
        For a bad ``duration_ms``, ``beside``, ``beside_cmap`` or ``max_size``.
    """
    group = as_group(group)
    if (
        isinstance(duration_ms, bool)
        or not isinstance(duration_ms, int | float)
        or duration_ms <= 0
    ):
        raise ValueError(f"duration_ms must be a number > 0, got {duration_ms!r}")
    if beside is not None:
        check_panels([(beside, beside_cmap, "")])
    if max_size is not None and (not isinstance(max_size, int) or max_size < 8):
        raise ValueError(f"max_size must be None or an integer >= 8, got {max_size!r}")
    run = run_format(group)
    wanted = normalise_patient(patient)
    patient_ids = index_strings(group, "patient_id")
    status = index_strings(group, "status")
    members = np.flatnonzero((patient_ids == wanted) & (status == STATUS_OK))
    if indices is not None:
        members = np.intersect1d(members, np.fromiter(indices, dtype=np.int64))
    follow_ups = group["index/follow_up"].get_coordinate_selection(members) if members.size else []
    order = sorted(zip(np.asarray(follow_ups).tolist(), members.tolist(), strict=True))
    contents, labels, notes = [], [], []
    for follow_up, index in order:
        original = Original(group, index, run)
        pixels, error = original.get()
        name = image_name(group, index)
        if pixels is None:
            notes.append(f"GIF of patient {wanted}: left out {name}: {error}")
            continue
        notes.extend(filter(None, [original.changed()]))
        content = _downscale(_to_gray8(pixels), max_size)
        label = f"{name}  follow-up {follow_up}"
        if beside is not None:
            values, recomputed, _ = panel_data(group, index, beside, run, original)
            right = _downscale(_coloured(values, beside_cmap), max_size)
            gap = np.zeros((content.shape[0], 4, 3), dtype=np.uint8)
            content = np.concatenate([np.repeat(content[..., None], 3, axis=2), gap, right], 1)
            label += f"   original | {beside}" + (" (recomputed)" if recomputed else "")
        contents.append(content)
        labels.append(label)
    if len(contents) < 2:
        notes.append(f"no GIF for patient {wanted}: {len(contents)} usable image(s), a GIF needs 2")
        return GifResult(None, labels, notes)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.stack(_label_frames(contents, labels))
    iio.imwrite(path, frames, extension=".gif", duration=duration_ms, loop=0)
    return GifResult(path, labels, notes)
