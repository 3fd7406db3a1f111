"""The figures: the comparison grid, an image's histogram, the store's summaries and failures.

Everything is drawn with matplotlib's object API (:class:`matplotlib.figure.Figure`
on an Agg canvas), never pyplot: nothing opens a window and no global state is
touched.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import zarr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..store.describe import failure_reason
from ..store.layout import STATUS_FAILED, STATUS_OK
from .panels import DEFAULT_PANELS, Original, Panel, check_panels, panel_data
from .stored import (
    RunFormat,
    as_group,
    describe_image,
    image_name,
    index_strings,
    index_value,
    run_format,
    threshold_text,
)

__all__ = [
    "FORMATS",
    "check_formats",
    "failures_figure",
    "grid_figure",
    "histogram_figure",
    "intensity_summary_figure",
    "mask_fraction_figure",
    "new_figure",
    "render_grid",
    "save_figure",
]

FORMATS = ("png", "svg", "pdf")
"""File formats a figure can be written in."""


def new_figure(figsize: tuple[float, float], dpi: float) -> Figure:
    """An empty figure on an Agg canvas (no pyplot, no window); ValueError for a bad size or dpi."""
    if dpi <= 0:
        raise ValueError(f"dpi must be > 0, got {dpi}")
    if len(figsize) != 2 or min(figsize) <= 0:
        raise ValueError(f"figsize must be (width, height) in inches, both > 0; got {figsize}")
    figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def check_formats(formats: Iterable[str]) -> list[str]:
    """``formats`` lower-cased, without dots or repeats; ValueError unless each is in FORMATS."""
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
    for fmt in check_formats(formats):
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
    group = as_group(group)
    panels = check_panels(panels)
    index = int(index)
    status = str(index_value(group, "status", index))
    if status != STATUS_OK:
        error = index_value(group, "error", index)
        raise ValueError(f"image {image_name(group, index)} is {status}: {error or 'no data'}")
    run = run_format(group)
    original = Original(group, index, run)
    threshold = threshold_text(run.config)
    drawn, missing, reasons = [], [], []
    for panel in panels:
        values, recomputed, why = panel_data(group, index, panel.source, run, original)
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
    figure = new_figure(figsize, dpi)
    title = describe_image(group, index)
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


def _histogram_x(group: zarr.Group, index: int, run: RunFormat) -> tuple[np.ndarray, str]:
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
    group = as_group(group)
    run = run_format(group)
    index = int(index)
    counts = np.asarray(group["stats/histogram"][index])
    x, label = _histogram_x(group, index, run)
    figure = new_figure(figsize, dpi)
    ax = figure.subplots()
    ax.plot(x, counts)
    ax.axvline(
        run.config.threshold,
        color="tab:red",
        linestyle="--",
        linewidth=1,
        label=f"mask threshold ({threshold_text(run.config)})",
    )
    ax.set_title("Pixel intensity distribution")
    ax.set_xlabel(label)
    ax.set_ylabel("pixels")
    ax.legend(loc="upper center", fontsize="small")
    figure.suptitle(describe_image(group, index), fontsize="medium")
    return figure


def _ok_values(group: zarr.Group, field_name: str) -> np.ndarray:
    status = index_strings(group, "status")
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
    group = as_group(group)
    means, medians = _ok_values(group, "mean"), _ok_values(group, "median")
    if means.size == 0:
        return None
    figure = new_figure(figsize, dpi)
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
    group = as_group(group)
    fractions = _ok_values(group, "mask_fraction") * 100
    if fractions.size == 0:
        return None
    threshold = threshold_text(run_format(group).config)
    figure = new_figure(figsize, dpi)
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
    group = as_group(group)
    status = index_strings(group, "status")
    failed = np.flatnonzero(status == STATUS_FAILED)
    if failed.size == 0:
        return None
    errors = group["index/error"].get_coordinate_selection(failed).tolist()
    counts = Counter(failure_reason(str(e)) for e in errors).most_common()
    if len(counts) > top:
        counts = [*counts[: top - 1], ("other reasons", sum(n for _, n in counts[top - 1 :]))]
    labels = [reason for reason, _ in counts][::-1]
    values = [n for _, n in counts][::-1]
    figure = new_figure(figsize or (8.0, 1.4 + 0.4 * len(counts)), dpi)
    ax = figure.subplots()
    bars = ax.barh(labels, values, color="tab:red")
    ax.bar_label(bars, padding=3)
    ax.set_title(f"{failed.size} failed of {status.size} images, by reason")
    ax.set_xlabel("images")
    ax.set_xlim(0, max(values) * 1.15)
    return figure
