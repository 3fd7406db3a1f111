"""The comparison grid's panels and their data: a stored map, or one recomputed for one image.

The original image is not in the store: it is decoded again from ``index/path``
with the run's image shape and pixel dtype. A filter or mask the run did not
keep is recomputed for that one image by the run's own map dispatch
(:func:`xray_scale.analysis.image.map_function`: the run's configuration,
storage dtype and engine), and its title says "(recomputed)".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import matplotlib
import numpy as np
import zarr

from ..analysis.image import map_function
from ..filters import FILTERS, MASKS
from ..io.decode import DecodedImage, decode_image
from ..store.layout import FILTER_GROUP, MASK_GROUP, map_name
from .stored import RunFormat, image_name, index_value

__all__ = [
    "DEFAULT_PANELS",
    "SOURCES",
    "Original",
    "Panel",
    "check_panels",
    "displayable",
    "panel_data",
    "parse_panel",
]


SOURCES = ("original", *FILTERS, *MASKS)
"""What a panel can show: the re-decoded original, a filter map or a mask."""


class Panel(NamedTuple):
    """One panel of the comparison grid.

    Attributes
    ----------
    source : str
        ``"original"``, a filter name (:data:`xray_scale.filters.registry.FILTERS`) or a
        mask name (:data:`xray_scale.filters.registry.MASKS`).
    cmap : str
        A matplotlib colormap name (``"gray"``, ``"hot"``, ``"CMRmap"``...).
    title : str
        Panel title; ``{threshold}`` is replaced by the store's mask threshold.
    """

    source: str
    cmap: str
    title: str


DEFAULT_PANELS: tuple[Panel, ...] = (
    Panel("original", "gray", "Original"),
    Panel("laplace_gaussian", "gray", FILTERS["laplace_gaussian"].title),
    Panel("gaussian_gradient_magnitude", "gray", FILTERS["gaussian_gradient_magnitude"].title),
    Panel("sobel", "gray", f"{FILTERS['sobel'].title} - grayscale"),
    Panel("sobel", "hot", f"{FILTERS['sobel'].title} - hot"),
    Panel("tutorial_canny", "prism", f"{FILTERS['tutorial_canny'].title} - prism"),
    Panel("tutorial_canny", "nipy_spectral", f"{FILTERS['tutorial_canny'].title} - nipy_spectral"),
    Panel("mask_values", "gray", "Mask (> {threshold}, noisy)"),
    Panel("mask_binary", "gray", "Mask (> {threshold}, less noisy)"),
)
"""The tutorial's final "Compare the results" figure, panel by panel."""


def parse_panel(text: str) -> Panel:
    """A panel from ``"SOURCE:CMAP"`` or ``"SOURCE:CMAP:TITLE"`` (the CLI's ``--panel``).

    Examples
    --------
    >>> parse_panel("sobel:CMRmap")
    Panel(source='sobel', cmap='CMRmap', title='sobel - CMRmap')
    >>> parse_panel("tutorial_canny:terrain:Canny (edges) - terrain").title
    'Canny (edges) - terrain'
    """
    parts = text.split(":", 2)
    if len(parts) < 2 or not all(parts[:2]):
        raise ValueError(f"panel {text!r} must be SOURCE:CMAP or SOURCE:CMAP:TITLE")
    source, cmap = parts[0], parts[1]
    panel = Panel(source, cmap, parts[2] if len(parts) == 3 else f"{source} - {cmap}")
    return check_panels([panel])[0]


def _decode_original(group: zarr.Group, index: int, run: RunFormat) -> tuple[DecodedImage, str]:
    """The original decoded again, and why it failed (``"source file <path>: file not found"``)."""
    path = str(index_value(group, "path", index))
    decoded = decode_image(
        path,
        shape=run.shape,
        dtype=run.pixel_dtype,
        **run.config.decode_options(),
    )
    return decoded, "" if decoded.ok else f"source file {path}: {decoded.error}"


def _changed_since_run(group: zarr.Group, index: int, decoded: DecodedImage) -> str:
    """A note when the source file's checksum differs from the run's, else ``""``.

    Stores made before ``index/checksum`` existed, and phantoms, have none to compare.
    """
    if "index/checksum" not in group:
        return ""
    stored = int(group["index/checksum"][index])
    if stored in (0, decoded.checksum):
        return ""
    return f"source file of {image_name(group, index)} changed since the run (checksum differs)"


def _map_name(source: str) -> str:
    """The store name of a panel source that is a filter or a mask."""
    return map_name(MASK_GROUP if source in MASKS else FILTER_GROUP, source)


def _recompute(source: str, pixels: np.ndarray, run: RunFormat) -> np.ndarray:
    """One filter or mask of one image, as the run computes it: its dispatch, dtype, engine."""
    function = map_function(_map_name(source), run.config, compat=run.compat, engine=run.engine)
    with np.errstate(all="ignore"):  # the tutorial's own code overflows on purpose
        return function(pixels)


def _stored_map(group: zarr.Group, source: str) -> zarr.Array | None:
    array = group.get(_map_name(source))
    return array if isinstance(array, zarr.Array) else None


def displayable(values: np.ndarray) -> np.ndarray:
    """What imshow draws faithfully: bool as 0/1 and float16 as float32."""
    values = np.asarray(values)
    if values.dtype == bool:
        return values.astype(np.uint8)
    if values.dtype == np.float16:
        return values.astype(np.float32)
    return values


def check_panels(panels: Iterable[Panel | tuple[str, str, str]]) -> list[Panel]:
    """``panels`` as :class:`Panel`; ValueError for an unknown source or colormap, or none."""
    checked = []
    for item in panels:
        panel = Panel(*item)
        if panel.source not in SOURCES:
            raise ValueError(
                f"panel source must be one of {', '.join(SOURCES)}; got {panel.source!r}"
            )
        if panel.cmap not in matplotlib.colormaps:
            raise ValueError(f"panel colormap {panel.cmap!r} is not a matplotlib colormap")
        checked.append(panel)
    if not checked:
        raise ValueError("panels is empty: give at least one (source, cmap, title)")
    return checked


class Original:
    """Decodes the original once, on first use."""

    def __init__(self, group: zarr.Group, index: int, run: RunFormat):
        self._args = (group, index, run)
        self._result: tuple[DecodedImage, str] | None = None

    def get(self) -> tuple[np.ndarray | None, str]:
        """``(pixels, "")`` or ``(None, why)``."""
        if self._result is None:
            self._result = _decode_original(*self._args)
        decoded, why = self._result
        return decoded.pixels, why

    def changed(self) -> str:
        """A note when the file decoded is not the one the run processed, else ``""``."""
        if self._result is None or not self._result[0].ok:
            return ""
        group, index, _ = self._args
        return _changed_since_run(group, index, self._result[0])


def panel_data(
    group: zarr.Group, index: int, source: str, run: RunFormat, original: Original
) -> tuple[np.ndarray | None, bool, str]:
    """(values or None, recomputed, why it is missing)."""
    if source != "original":
        stored = _stored_map(group, source)
        if stored is not None:
            return displayable(stored[index]), False, ""
    pixels, error = original.get()
    if pixels is None:
        return None, source != "original", error
    if source == "original":
        return pixels, False, ""
    return displayable(_recompute(source, pixels, run)), True, ""
