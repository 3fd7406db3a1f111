"""Figures from a store: the tutorial's comparison grid, follow-up GIFs, histograms, summaries.

Everything is drawn with matplotlib's object API (:class:`matplotlib.figure.Figure`
on an Agg canvas), never pyplot: nothing opens a window and no global state is
touched. GIF frames are composed with NumPy and Pillow and written by imageio.

What is drawn comes from the store (``filters/*``, ``masks/*``, ``stats/*``,
``index/*``). The original image is not in the store: it is decoded again from
``index/path`` with the run's image shape and pixel dtype. A filter or mask the
run did not keep is recomputed for that one image with the store's
configuration, and its title says "(recomputed)". When the source file is gone
or unreadable, the panels that need it are left out and the notes (and the
figure's title) say so.

:func:`render_store` writes, under ``out_dir``::

    grids/<image>.png          the comparison grid of each selected image
    histograms/<image>.png     its pixel intensity distribution
    gifs/patient_<id>.gif      the selected follow-ups of each patient, in order
    summary/intensity.png      mean and median intensity over the store's ok images
    summary/mask_fraction.png  fraction of pixels above the mask threshold
    summary/failures.png       failed images by reason (only when some failed)

(``.svg`` / ``.pdf`` beside or instead of ``.png`` with ``formats``.)
"""

from __future__ import annotations

import math
import os
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import imageio.v3 as iio
import matplotlib
import numpy as np
import zarr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from .compat import TUTORIAL_FILTERS, TUTORIAL_MASKS
from .config import Config, load_config
from .decode import DecodedImage, decode_image
from .filters import FILTERS, MASKS
from .store import STATUS_FAILED, STATUS_OK, STATUS_PENDING, open_store, store_attrs

__all__ = [
    "DEFAULT_PANELS",
    "FORMATS",
    "SOURCES",
    "GifResult",
    "Panel",
    "RenderReport",
    "Selection",
    "SelectionError",
    "failure_reason",
    "failures_figure",
    "grid_figure",
    "histogram_figure",
    "intensity_summary_figure",
    "mask_fraction_figure",
    "render_gif",
    "render_grid",
    "parse_panel",
    "render_store",
    "save_figure",
    "select_images",
]

FORMATS = ("png", "svg", "pdf")
"""File formats a figure can be written in."""

SOURCES = ("original", *FILTERS, *MASKS)
"""What a panel can show: the re-decoded original, a filter map or a mask."""

DEFAULT_SAMPLE = 4
"""Images selected when nothing is asked for: the store's first ok ones."""

_GIF_BACKGROUND = 0
_GIF_TEXT = 255


class Panel(NamedTuple):
    """One panel of the comparison grid.

    Attributes
    ----------
    source : str
        ``"original"``, a filter name (:data:`xray_scale.filters.FILTERS`) or a
        mask name (:data:`xray_scale.filters.MASKS`).
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
    Panel("laplace_gaussian", "gray", "Laplace-Gaussian (edges)"),
    Panel("gaussian_gradient_magnitude", "gray", "Gaussian gradient (edges)"),
    Panel("sobel", "gray", "Sobel (edges) - grayscale"),
    Panel("sobel", "hot", "Sobel (edges) - hot"),
    Panel("tutorial_canny", "prism", "Canny (edges) - prism"),
    Panel("tutorial_canny", "nipy_spectral", "Canny (edges) - nipy_spectral"),
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
    return _check_panels([panel])[0]


class SelectionError(ValueError):
    """The images asked for are not in the store; the message says which."""


class Selection(NamedTuple):
    """The images to render, and those left out of the request.

    Attributes
    ----------
    indices : list of int
        Store indices of ``ok`` images, ascending.
    excluded : list of (int, str)
        ``(index, reason)`` of each requested image that is not ``ok``
        (its ``index/error``, or that it is still pending).
    """

    indices: list[int]
    excluded: list[tuple[int, str]]


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


@dataclass
class RenderReport:
    """Everything :func:`render_store` wrote, and what it could not.

    Attributes
    ----------
    store, out_dir : Path
        Where it read and wrote.
    selected : list of int
        Store indices of the rendered images.
    excluded : list of (int, str)
        Requested images that are not ``ok``, with the reason.
    grids, histograms, gifs, summaries : list of Path
        Files written, by kind (every format of every figure).
    notes : list of str
        One line per thing left out (an image, a panel, a frame, a plot).
    """

    store: Path
    out_dir: Path
    selected: list[int] = field(default_factory=list)
    excluded: list[tuple[int, str]] = field(default_factory=list)
    grids: list[Path] = field(default_factory=list)
    histograms: list[Path] = field(default_factory=list)
    gifs: list[Path] = field(default_factory=list)
    summaries: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        """Every file written: grids, histograms, GIFs, then summaries."""
        return [*self.grids, *self.histograms, *self.gifs, *self.summaries]


# -- the store ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RunFormat:
    """What re-decoding and recomputing need from the store's attributes."""

    shape: tuple[int, int]
    pixel_dtype: str
    config: Config
    compat: str | None


def _as_group(store: zarr.Group | str | os.PathLike) -> zarr.Group:
    return store if isinstance(store, zarr.Group) else open_store(store)


def _run_format(group: zarr.Group) -> _RunFormat:
    attrs = store_attrs(group)
    return _RunFormat(
        shape=tuple(int(n) for n in attrs["image_shape"]),
        pixel_dtype=str(attrs["pixel_dtype"]),
        config=load_config(attrs["config"]),
        compat=attrs.get("compat"),
    )


def _index_value(group: zarr.Group, name: str, index: int):
    value = group[f"index/{name}"][int(index)]
    return value.item() if isinstance(value, np.ndarray) else value


def _strings(group: zarr.Group, name: str) -> np.ndarray:
    """A whole ``index/<name>`` string array, as Python strings (object dtype)."""
    return np.asarray(group[f"index/{name}"][:]).astype(object)


def _stem(path: str) -> str:
    name = Path(str(path)).name
    return name[:-4] if name.lower().endswith(".png") else name


def _image_name(group: zarr.Group, index: int) -> str:
    return _stem(_index_value(group, "path", index))


def _describe(group: zarr.Group, index: int) -> str:
    """``00000011_001 (patient 11, follow-up 1)``, or just the name."""
    patient = str(_index_value(group, "patient_id", index))
    follow_up = int(_index_value(group, "follow_up", index))
    name = _image_name(group, index)
    return f"{name} (patient {patient}, follow-up {follow_up})" if patient else name


def _threshold_text(config: Config) -> str:
    return f"{config.threshold:g}"


# -- selection ---------------------------------------------------------------------------------


def _normalise_patient(patient: str | int) -> str:
    text = str(patient).strip()
    return str(int(text)) if text.isdigit() else text


def _examples(values: Iterable[str], count: int = 3) -> str:
    unique = sorted({v for v in values if v}, key=lambda v: (len(v), v))
    shown = ", ".join(unique[:count])
    return shown + (", ..." if len(unique) > count else "")


def _reasons(group: zarr.Group, status: np.ndarray, indices: np.ndarray) -> list[tuple[int, str]]:
    if indices.size == 0:
        return []
    errors = group["index/error"].get_coordinate_selection(indices)
    reasons = []
    for index, error in zip(indices.tolist(), errors.tolist(), strict=True):
        if status[index] == STATUS_PENDING:
            reasons.append((index, "pending: not processed yet; resume the run"))
        else:
            reasons.append((index, f"{status[index]}: {error}" if error else str(status[index])))
    return reasons


def select_images(
    group: zarr.Group | str | os.PathLike,
    *,
    names: Sequence[str] = (),
    patient: str | int | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> Selection:
    """Choose the images to render.

    ``names`` and ``patient`` together ask for the union of both; ``sample``
    then draws from what they ask for (or from the whole store). With none of
    them, the store's first :data:`DEFAULT_SAMPLE` ok images are chosen.

    Parameters
    ----------
    group : zarr.Group or path
        A store written by :func:`xray_scale.run`.
    names : sequence of str
        Image names such as ``"00000011_001"`` (a ``.png`` suffix or a folder
        is ignored), matched against the file name of ``index/path``.
    patient : str or int, optional
        A patient id as in ``index/patient_id`` (``"11"``; ``"00000011"`` and
        ``11`` also work).
    sample : int, optional
        Draw this many images, reproducibly, with ``numpy.random.default_rng(seed)``.
    seed : int
        Seed of the draw.

    Returns
    -------
    Selection
        ``(indices, excluded)``: the ``ok`` images, ascending, and each
        requested image that is failed or pending, with its reason.

    Raises
    ------
    SelectionError
        (a ValueError) For an empty store, an unknown image name, a patient
        without images, or a ``sample`` below 1.
    StoreError
        If ``group`` is a path that is not a store.
    """
    group = _as_group(group)
    status = _strings(group, "status")
    if status.size == 0:
        raise SelectionError("the store holds no images")
    if sample is not None and (
        isinstance(sample, bool) or not isinstance(sample, int | np.integer) or sample < 1
    ):
        raise SelectionError(f"sample must be an integer >= 1, got {sample!r}")
    if isinstance(names, str):
        names = (names,)
    ok = status == STATUS_OK
    requested: set[int] = set()
    if names:
        stems: dict[str, list[int]] = {}
        for index, path in enumerate(group["index/path"][:].tolist()):
            stems.setdefault(_stem(path), []).append(index)
        wanted = [_stem(name.strip()) for name in names]
        unknown = [name for name in wanted if name not in stems]
        if unknown:
            listed = ", ".join(repr(name) for name in unknown)
            raise SelectionError(
                f"unknown image name{'s' if len(unknown) > 1 else ''} {listed}: not in the "
                f"store's {status.size} images (names look like {min(stems)})"
            )
        for name in wanted:
            requested.update(stems[name])
    if patient is not None:
        wanted_patient = _normalise_patient(patient)
        patient_ids = _strings(group, "patient_id")
        matches = np.flatnonzero(patient_ids == wanted_patient)
        if matches.size == 0:
            known = _examples(patient_ids.tolist())
            hint = f"patients in the store: {known}" if known else "no file has a patient id"
            raise SelectionError(f"patient {str(patient)!r} has no images in the store ({hint})")
        requested.update(matches.tolist())
    if names or patient is not None:
        candidates = np.array(sorted(requested), dtype=np.int64)
    elif sample is not None:
        candidates = np.arange(status.size)
    else:
        first_ok = np.flatnonzero(ok)[:DEFAULT_SAMPLE]
        last = int(first_ok[-1]) if first_ok.size == DEFAULT_SAMPLE else status.size - 1
        candidates = np.arange(last + 1)
    usable = candidates[ok[candidates]]
    if sample is not None and usable.size > sample:
        usable = np.sort(np.random.default_rng(seed).choice(usable, size=sample, replace=False))
    excluded = _reasons(group, status, candidates[~ok[candidates]])
    return Selection([int(i) for i in usable], excluded)


# -- panel data --------------------------------------------------------------------------------


def _decode_original(group: zarr.Group, index: int, run: _RunFormat) -> tuple[DecodedImage, str]:
    """The original decoded again, and why it failed (``"source file <path>: file not found"``)."""
    path = str(_index_value(group, "path", index))
    decoded = decode_image(
        path,
        shape=run.shape,
        dtype=run.pixel_dtype,
        max_pixels=run.config.max_pixels,
        size_policy=run.config.size_policy,
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
    return f"source file of {_image_name(group, index)} changed since the run (checksum differs)"


def _recompute(source: str, pixels: np.ndarray, run: _RunFormat) -> np.ndarray:
    """One filter or mask of one image, as the run would have computed it."""
    with np.errstate(all="ignore"):  # the tutorial's own code overflows on purpose
        if source in MASKS:
            masks = TUTORIAL_MASKS if run.compat == "tutorial" else MASKS
            return masks[source](pixels, run.config.threshold)
        params = run.config.params(source)
        if run.compat == "tutorial" and source in TUTORIAL_FILTERS:
            return TUTORIAL_FILTERS[source](pixels, **params)
        return FILTERS[source].function(pixels, **params)


def _stored_map(group: zarr.Group, source: str) -> zarr.Array | None:
    kind = "masks" if source in MASKS else "filters"
    array = group.get(f"{kind}/{source}")
    return array if isinstance(array, zarr.Array) else None


def _displayable(values: np.ndarray) -> np.ndarray:
    """What imshow draws faithfully: bool as 0/1 and float16 as float32."""
    values = np.asarray(values)
    if values.dtype == bool:
        return values.astype(np.uint8)
    if values.dtype == np.float16:
        return values.astype(np.float32)
    return values


def _check_panels(panels: Iterable[Panel | tuple[str, str, str]]) -> list[Panel]:
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


class _Original:
    """Decodes the original once, on first use."""

    def __init__(self, group: zarr.Group, index: int, run: _RunFormat):
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


def _panel_data(
    group: zarr.Group, index: int, source: str, run: _RunFormat, original: _Original
) -> tuple[np.ndarray | None, bool, str]:
    """(values or None, recomputed, why it is missing)."""
    if source != "original":
        stored = _stored_map(group, source)
        if stored is not None:
            return _displayable(stored[index]), False, ""
    pixels, error = original.get()
    if pixels is None:
        return None, source != "original", error
    if source == "original":
        return pixels, False, ""
    return _displayable(_recompute(source, pixels, run)), True, ""


# -- figures -----------------------------------------------------------------------------------


def _new_figure(figsize: tuple[float, float], dpi: float) -> Figure:
    if dpi <= 0:
        raise ValueError(f"dpi must be > 0, got {dpi}")
    if len(figsize) != 2 or min(figsize) <= 0:
        raise ValueError(f"figsize must be (width, height) in inches, both > 0; got {figsize}")
    figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _check_formats(formats: Iterable[str]) -> list[str]:
    checked = [str(f).lower().lstrip(".") for f in formats]
    bad = [f for f in checked if f not in FORMATS]
    if bad or not checked:
        raise ValueError(f"formats must be some of {', '.join(FORMATS)}; got {list(formats)!r}")
    return list(dict.fromkeys(checked))


def save_figure(
    figure: Figure, base: str | os.PathLike, formats: Sequence[str] = ("png",)
) -> list[Path]:
    """Write a figure once per format, at the figure's own size and DPI.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
    base : path-like
        The file name without its suffix; ``.png``, ``.svg``, ``.pdf`` are added.
    formats : sequence of {"png", "svg", "pdf"}

    Returns
    -------
    list of Path
        The files written. A PNG is exactly ``figsize * dpi`` pixels.
    """
    paths = []
    base = Path(base)
    base.parent.mkdir(parents=True, exist_ok=True)
    for fmt in _check_formats(formats):
        path = base.with_name(f"{base.name}.{fmt}")
        figure.savefig(path, format=fmt, dpi=figure.dpi)
        paths.append(path)
    return paths


def grid_figure(
    group: zarr.Group | str | os.PathLike,
    index: int,
    *,
    panels: Iterable[Panel | tuple[str, str, str]] = DEFAULT_PANELS,
    ncols: int | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
) -> tuple[Figure, list[str]]:
    """The tutorial's comparison figure for one image of the store.

    Parameters
    ----------
    group : zarr.Group or path
        The store.
    index : int
        Store index of an ``ok`` image.
    panels : iterable of Panel or (source, cmap, title)
        What to show, in order (default: the tutorial's nine panels).
    ncols : int, optional
        Panels per row; default 3 (a 3 x 3 grid for nine panels). Give
        ``len(panels)`` for the tutorial's single row.
    figsize : (float, float), optional
        Width and height in inches; default 3.4 inches per panel plus room
        for the title.
    dpi : float
        Dots per inch; a saved PNG is ``figsize * dpi`` pixels.

    Returns
    -------
    figure : matplotlib.figure.Figure
        One axes per drawn panel, axes off; the title names the image.
    notes : list of str
        Panels left out (their source file is gone or unreadable) and
        warnings; empty when everything was drawn from the store.

    Raises
    ------
    ValueError
        For an unknown panel source or colormap, or an image that is not ok.
    """
    group = _as_group(group)
    panels = _check_panels(panels)
    index = int(index)
    status = str(_index_value(group, "status", index))
    if status != STATUS_OK:
        error = _index_value(group, "error", index)
        raise ValueError(f"image {_image_name(group, index)} is {status}: {error or 'no data'}")
    run = _run_format(group)
    original = _Original(group, index, run)
    threshold = _threshold_text(run.config)
    drawn, missing, reasons = [], [], []
    for panel in panels:
        values, recomputed, why = _panel_data(group, index, panel.source, run, original)
        title = panel.title.replace("{threshold}", threshold)
        if values is None:
            missing.append(title)
            reasons.append(why)
            continue
        drawn.append((values, panel.cmap, title + (" (recomputed)" if recomputed else "")))
    notes = []
    if missing:
        notes.append(f"left out {', '.join(missing)}: {reasons[0]}")
    notes.extend(filter(None, [original.changed()]))

    count = max(len(drawn), 1)
    ncols = min(count, 3) if ncols is None else ncols
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be an integer >= 1, got {ncols!r}")
    ncols = min(ncols, count)
    nrows = math.ceil(count / ncols)
    figsize = figsize or (3.4 * ncols, 3.4 * nrows + 0.8)
    figure = _new_figure(figsize, dpi)
    title = _describe(group, index)
    if notes:
        title += "\n" + textwrap.fill(
            "; ".join(notes),
            width=int(figsize[0] * 12),
            break_long_words=False,
            break_on_hyphens=False,
        )
    figure.suptitle(title, fontsize="large" if not notes else "medium")
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (values, cmap, panel_title) in zip(axes, drawn, strict=False):
        ax.imshow(values, cmap=cmap)
        ax.set_title(panel_title, fontsize="medium")
        ax.axis("off")
    for ax in axes[len(drawn) :]:
        ax.remove()
    if not drawn:
        figure.text(0.5, 0.5, "no panel could be drawn", ha="center", va="center")
    return figure, notes


def render_grid(
    group: zarr.Group | str | os.PathLike,
    index: int,
    base: str | os.PathLike,
    *,
    formats: Sequence[str] = ("png",),
    **options,
) -> tuple[list[Path], list[str]]:
    """Write :func:`grid_figure` of one image to ``base.<format>``.

    Returns
    -------
    paths : list of Path
    notes : list of str
    """
    figure, notes = grid_figure(group, index, **options)
    return save_figure(figure, base, formats), notes


def _histogram_x(group: zarr.Group, index: int, run: _RunFormat) -> tuple[np.ndarray, str]:
    """Bin centres of ``stats/histogram`` in pixel values, and the axis label."""
    bins = np.arange(256, dtype=np.float64)
    if run.compat == "tutorial":  # 256 bins over the image's own min..max
        low = float(group["stats/min"][index])
        high = float(group["stats/max"][index])
        return low + (bins + 0.5) * (high - low) / 256, "pixel value (256 bins over min..max)"
    width = (np.iinfo(run.pixel_dtype).max + 1) / 256
    if width == 1:
        return bins, "pixel value"
    return bins * width + width / 2, f"pixel value (bins of {width:g})"


def histogram_figure(
    group: zarr.Group | str | os.PathLike,
    index: int,
    *,
    figsize: tuple[float, float] = (6.4, 4.0),
    dpi: float = 100,
) -> Figure:
    """The tutorial's "Pixel intensity distribution" plot of one image, from the store.

    The counts are ``stats/histogram``; a dashed line marks the mask threshold.

    Parameters
    ----------
    group : zarr.Group or path
    index : int
        Store index of the image.
    figsize : (float, float)
        Inches.
    dpi : float

    Returns
    -------
    matplotlib.figure.Figure
    """
    group = _as_group(group)
    run = _run_format(group)
    index = int(index)
    counts = np.asarray(group["stats/histogram"][index])
    x, label = _histogram_x(group, index, run)
    figure = _new_figure(figsize, dpi)
    ax = figure.subplots()
    ax.plot(x, counts)
    ax.axvline(
        run.config.threshold,
        color="tab:red",
        linestyle="--",
        linewidth=1,
        label=f"mask threshold ({_threshold_text(run.config)})",
    )
    ax.set_title("Pixel intensity distribution")
    ax.set_xlabel(label)
    ax.set_ylabel("pixels")
    ax.legend(loc="upper center", fontsize="small")
    figure.suptitle(_describe(group, index), fontsize="medium")
    return figure


def _ok_values(group: zarr.Group, field_name: str) -> np.ndarray:
    status = _strings(group, "status")
    values = np.asarray(group[f"stats/{field_name}"][:], dtype=np.float64)
    values = values[status == STATUS_OK]
    return values[np.isfinite(values)]


def _bins(count: int) -> int:
    return int(np.clip(round(math.sqrt(max(count, 1))) * 2, 10, 64))


def intensity_summary_figure(
    group: zarr.Group | str | os.PathLike,
    *,
    figsize: tuple[float, float] = (7.0, 4.2),
    dpi: float = 100,
) -> Figure | None:
    """Distribution of the mean and median intensity of the store's ok images.

    Returns
    -------
    matplotlib.figure.Figure or None
        None when the store has no ok image.
    """
    group = _as_group(group)
    means, medians = _ok_values(group, "mean"), _ok_values(group, "median")
    if means.size == 0:
        return None
    figure = _new_figure(figsize, dpi)
    ax = figure.subplots()
    low = min(means.min(), medians.min())
    high = max(means.max(), medians.max())
    edges = np.linspace(low, high if high > low else low + 1, _bins(means.size) + 1)
    ax.hist(means, bins=edges, alpha=0.6, label=f"mean (average {means.mean():.1f})")
    ax.hist(medians, bins=edges, alpha=0.6, label=f"median (average {medians.mean():.1f})")
    ax.set_title(f"Mean and median pixel intensity of {means.size} images")
    ax.set_xlabel("pixel value")
    ax.set_ylabel("images")
    ax.legend(fontsize="small")
    return figure


def mask_fraction_figure(
    group: zarr.Group | str | os.PathLike,
    *,
    figsize: tuple[float, float] = (7.0, 4.2),
    dpi: float = 100,
) -> Figure | None:
    """Distribution of the fraction of pixels above the mask threshold.

    Returns
    -------
    matplotlib.figure.Figure or None
        None when the store has no ok image.
    """
    group = _as_group(group)
    fractions = _ok_values(group, "mask_fraction") * 100
    if fractions.size == 0:
        return None
    threshold = _threshold_text(_run_format(group).config)
    figure = _new_figure(figsize, dpi)
    ax = figure.subplots()
    ax.hist(fractions, bins=np.linspace(0, 100, _bins(fractions.size) + 1), color="tab:green")
    ax.axvline(float(np.median(fractions)), color="black", linestyle="--", linewidth=1)
    ax.set_title(
        f"Pixels above the mask threshold (> {threshold}), {fractions.size} images; "
        f"median {np.median(fractions):.1f} %",
        fontsize="medium",
    )
    ax.set_xlabel("mask fraction (% of the image)")
    ax.set_ylabel("images")
    ax.set_xlim(0, 100)
    return figure


def failure_reason(error: str, *, width: int = 48) -> str:
    """Short reason of a failure: the text before the first ``:`` or ``;``.

    Parameters
    ----------
    error : str
        An ``index/error`` message.
    width : int
        Longer reasons are cut to this many characters, ending in ``...``.

    Examples
    --------
    >>> failure_reason("truncated PNG: only 12 bytes")
    'truncated PNG'
    >>> failure_reason("file not found")
    'file not found'
    >>> failure_reason("")
    'unknown'
    """
    head = error.split(":", 1)[0].split(";", 1)[0].strip() or "unknown"
    return head if len(head) <= width else head[: width - 3].rstrip() + "..."


def failures_figure(
    group: zarr.Group | str | os.PathLike,
    *,
    top: int = 15,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
) -> Figure | None:
    """Failed images by reason (:func:`failure_reason` of ``index/error``).

    Parameters
    ----------
    group : zarr.Group or path
    top : int
        Most frequent reasons shown; the rest are summed as "other reasons".
    figsize : (float, float), optional
        Default: 8 inches wide, 0.4 inch per bar.
    dpi : float

    Returns
    -------
    matplotlib.figure.Figure or None
        None when no image failed.
    """
    group = _as_group(group)
    status = _strings(group, "status")
    failed = np.flatnonzero(status == STATUS_FAILED)
    if failed.size == 0:
        return None
    errors = group["index/error"].get_coordinate_selection(failed).tolist()
    counts = Counter(failure_reason(str(e)) for e in errors).most_common()
    if len(counts) > top:
        counts = [*counts[: top - 1], ("other reasons", sum(n for _, n in counts[top - 1 :]))]
    labels = [reason for reason, _ in counts][::-1]
    values = [n for _, n in counts][::-1]
    figure = _new_figure(figsize or (8.0, 1.4 + 0.4 * len(counts)), dpi)
    ax = figure.subplots()
    bars = ax.barh(labels, values, color="tab:red")
    ax.bar_label(bars, padding=3)
    ax.set_title(f"{failed.size} failed of {status.size} images, by reason")
    ax.set_xlabel("images")
    ax.set_xlim(0, max(values) * 1.15)
    return figure


# -- GIF ---------------------------------------------------------------------------------------


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
    group = _as_group(group)
    if (
        isinstance(duration_ms, bool)
        or not isinstance(duration_ms, int | float)
        or duration_ms <= 0
    ):
        raise ValueError(f"duration_ms must be a number > 0, got {duration_ms!r}")
    if beside is not None:
        _check_panels([(beside, beside_cmap, "")])
    if max_size is not None and (not isinstance(max_size, int) or max_size < 8):
        raise ValueError(f"max_size must be None or an integer >= 8, got {max_size!r}")
    run = _run_format(group)
    wanted = _normalise_patient(patient)
    patient_ids = _strings(group, "patient_id")
    status = _strings(group, "status")
    members = np.flatnonzero((patient_ids == wanted) & (status == STATUS_OK))
    if indices is not None:
        members = np.intersect1d(members, np.fromiter(indices, dtype=np.int64))
    follow_ups = group["index/follow_up"].get_coordinate_selection(members) if members.size else []
    order = sorted(zip(np.asarray(follow_ups).tolist(), members.tolist(), strict=True))
    contents, labels, notes = [], [], []
    for follow_up, index in order:
        original = _Original(group, index, run)
        pixels, error = original.get()
        name = _image_name(group, index)
        if pixels is None:
            notes.append(f"GIF of patient {wanted}: left out {name}: {error}")
            continue
        notes.extend(filter(None, [original.changed()]))
        content = _downscale(_to_gray8(pixels), max_size)
        label = f"{name}  follow-up {follow_up}"
        if beside is not None:
            values, recomputed, _ = _panel_data(group, index, beside, run, original)
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


# -- everything --------------------------------------------------------------------------------


def _unique_stems(group: zarr.Group, indices: list[int]) -> dict[int, str]:
    stems = {index: _image_name(group, index) for index in indices}
    repeated = {stem for stem, n in Counter(stems.values()).items() if n > 1}
    return {i: f"{s}_{i}" if s in repeated else s for i, s in stems.items()}


def render_store(
    store_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    names: Sequence[str] = (),
    patient: str | int | None = None,
    sample: int | None = None,
    seed: int = 0,
    formats: Sequence[str] = ("png",),
    dpi: float = 100,
    panels: Iterable[Panel | tuple[str, str, str]] = DEFAULT_PANELS,
    ncols: int | None = None,
    grid_figsize: tuple[float, float] | None = None,
    gif: bool = True,
    gif_ms: int = 1000,
    gif_beside: str | None = None,
    gif_max_size: int | None = 512,
    progress: Callable[[int, int], None] | None = None,
) -> RenderReport:
    """Render the grids, histograms, GIFs and summary plots of a store.

    Parameters
    ----------
    store_path : path-like
        A store written by :func:`xray_scale.run`.
    out_dir : path-like
        Folder for the figures (created); layout in the module docstring.
    names, patient, sample, seed
        The selection, as for :func:`select_images`.
    formats : sequence of {"png", "svg", "pdf"}
        Formats of every figure (GIFs are GIFs).
    dpi : float
        Resolution of every figure.
    panels, ncols, grid_figsize
        As ``panels``, ``ncols`` and ``figsize`` of :func:`grid_figure`.
    gif : bool
        Write a GIF for each selected patient with at least two selected ok images.
    gif_ms, gif_beside, gif_max_size
        ``duration_ms``, ``beside`` and ``max_size`` of :func:`render_gif`.
    progress : callable, optional
        Called as ``progress(done, total)`` after each selected image is rendered.

    Returns
    -------
    RenderReport

    Raises
    ------
    StoreError
        If ``store_path`` is not a store.
    SelectionError
        (a ValueError) If the selection names nothing in the store.
    ValueError
        For bad formats, panels or sizes (checked before anything is written).
    """
    formats = _check_formats(formats)
    panels = _check_panels(panels)
    if dpi <= 0:
        raise ValueError(f"dpi must be > 0, got {dpi}")
    if gif_beside is not None:
        _check_panels([(gif_beside, "gray", "")])
    group = open_store(store_path)
    selection = select_images(group, names=names, patient=patient, sample=sample, seed=seed)
    out = Path(out_dir)
    report = RenderReport(Path(store_path), out, selection.indices, selection.excluded)
    for index, reason in selection.excluded:
        report.notes.append(f"excluded {_image_name(group, index)}: {reason}")
    stems = _unique_stems(group, selection.indices)
    total = len(selection.indices)
    for done, index in enumerate(selection.indices, start=1):
        paths, notes = render_grid(
            group,
            index,
            out / "grids" / stems[index],
            formats=formats,
            panels=panels,
            ncols=ncols,
            figsize=grid_figsize,
            dpi=dpi,
        )
        report.grids += paths
        report.notes += [f"{stems[index]}: {note}" for note in notes]
        figure = histogram_figure(group, index, dpi=dpi)
        report.histograms += save_figure(figure, out / "histograms" / stems[index], formats)
        if progress is not None:
            progress(done, total)
    if gif and selection.indices:
        patient_ids = group["index/patient_id"].get_coordinate_selection(selection.indices)
        by_patient: dict[str, list[int]] = {}
        for index, patient_id in zip(selection.indices, patient_ids.tolist(), strict=True):
            if patient_id:
                by_patient.setdefault(str(patient_id), []).append(index)
        for patient_id, members in sorted(by_patient.items(), key=lambda kv: kv[1][0]):
            if len(members) < 2:
                if patient is not None:
                    report.notes.append(f"no GIF for patient {patient_id}: one image selected")
                continue
            result = render_gif(
                group,
                patient_id,
                out / "gifs" / f"patient_{patient_id}.gif",
                indices=members,
                duration_ms=gif_ms,
                beside=gif_beside,
                max_size=gif_max_size,
            )
            report.notes += result.notes
            if result.path is not None:
                report.gifs.append(result.path)
    summaries = {
        "intensity": intensity_summary_figure(group, dpi=dpi),
        "mask_fraction": mask_fraction_figure(group, dpi=dpi),
        "failures": failures_figure(group, dpi=dpi),
    }
    for name, figure in summaries.items():
        if figure is None:
            why = "no image failed" if name == "failures" else "the store has no ok image"
            report.notes.append(f"summary/{name} not written: {why}")
            continue
        report.summaries += save_figure(figure, out / "summary" / name, formats)
    return report
