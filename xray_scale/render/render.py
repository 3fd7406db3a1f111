"""``render_store``: the grids, histograms, GIFs and summaries of a store, and what was left out.

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

import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import zarr

from ..store.access import open_store
from ..store.encoding import read_index
from ..store.location import StoreLocation, store_location
from ..store.query import RowQuery
from .figures import (
    check_formats,
    failures_figure,
    histogram_figure,
    intensity_summary_figure,
    mask_fraction_figure,
    render_grid,
    save_figure,
)
from .gif import render_gif
from .panels import DEFAULT_PANELS, Panel, check_panels
from .selection import select_images
from .stored import image_name

__all__ = [
    "RenderReport",
    "render_store",
]


@dataclass
class RenderReport:
    """Everything :func:`render_store` wrote, and what it could not.

    Attributes
    ----------
    store : StoreLocation
        Where it read: the store's folder or URL.
    out_dir : Path
        Where it wrote.
    selected : list of int
        Store indices of the rendered images.
    excluded : list of (int, str)
        Requested images that are not ``ok``, with the reason.
    grids, histograms, gifs, summaries : list of Path
        Files written, by kind (every format of every figure).
    notes : list of str
        One line per thing left out (an image, a panel, a frame, a plot).
    """

    store: StoreLocation
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


def _unique_stems(group: zarr.Group, indices: list[int]) -> dict[int, str]:
    stems = {index: image_name(group, index) for index in indices}
    repeated = {stem for stem, n in Counter(stems.values()).items() if n > 1}
    return {i: f"{s}_{i}" if s in repeated else s for i, s in stems.items()}


def render_store(
    store_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    names: Sequence[str] = (),
    patient: str | int | None = None,
    query: RowQuery | None = None,
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
    store_path : path-like, str or StoreLocation
        A store written by :func:`xray_scale.run`: its folder or URL. Images
        whose inputs are URLs are read again with the options of the
        enclosing :func:`xray_scale.io.sources.urls.url_options`.
    out_dir : path-like
        Folder for the figures (created); layout in the module docstring.
    names, patient, query
        The selection, as for :func:`select_images` (``query``: a
        :class:`xray_scale.store.query.RowQuery`).
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
    formats = check_formats(formats)
    panels = check_panels(panels)
    if dpi <= 0:
        raise ValueError(f"dpi must be > 0, got {dpi}")
    if gif_beside is not None:
        check_panels([(gif_beside, "gray", "")])
    group = open_store(store_path)
    selection = select_images(
        group,
        names=names,
        patient=patient,
        query=query,
    )
    out = Path(out_dir)
    report = RenderReport(store_location(store_path), out, selection.indices, selection.excluded)
    for index, reason in selection.excluded:
        report.notes.append(f"excluded {image_name(group, index)}: {reason}")
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
        patient_ids = read_index(group, "patient_id", list(selection.indices))
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
