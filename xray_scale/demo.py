"""What ``xray-scale demo`` does besides printing: phantoms to run on, and the figures of the run.

:func:`write_demo_phantoms` replaces the phantoms in ``OUT/phantoms``; the
command then runs the tutorial's bank on them into ``OUT/demo.zarr``
(:func:`xray_scale.run`, with the command line's progress bar), and
:func:`demo_figures` draws the comparison grid of the first ok image and the
follow-up GIF of its patient into ``OUT/figures``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["PHANTOMS", "STORE", "DemoFigures", "demo_figures", "write_demo_phantoms"]

PHANTOMS = "phantoms"
"""The folder of the demo's phantoms, under its output folder."""
STORE = "demo.zarr"
"""The demo's store, under its output folder."""


def write_demo_phantoms(
    out: str | Path, *, patients: int, follow_ups: int, size: int
) -> tuple[Path, list[Path]]:
    """Replace the phantoms of a demo folder: ``patients`` x ``follow_ups`` chest phantoms.

    Parameters
    ----------
    out : path-like
        The demo's folder; the phantoms go to ``out/phantoms`` (emptied first).
    patients, follow_ups : int
        Phantom patients, and images per patient.
    size : int
        Width and height of every phantom, in pixels.

    Returns
    -------
    (Path, list of Path)
        The phantoms' folder and the files written.
    """
    from .io.phantoms import clear_phantoms, write_phantoms

    folder = Path(out) / PHANTOMS
    clear_phantoms(folder)
    paths = write_phantoms(folder, patients=patients, follow_ups=follow_ups, shape=(size, size))
    return folder, paths


@dataclass(frozen=True)
class DemoFigures:
    """What :func:`demo_figures` found and drew.

    Attributes
    ----------
    arrays : list of str
        The store's image arrays (``filters/...``, ``masks/...``).
    grid : Path or None
        The comparison grid of the first ok image; None when no image is ok.
    gif : Path or None
        The follow-up GIF of that image's patient; None when there is none.
    gif_note : str or None
        Why there is no GIF, when there is none.
    """

    arrays: list[str]
    grid: Path | None
    gif: Path | None
    gif_note: str | None


def demo_figures(store: str | Path, out: str | Path, *, dpi: int = 80) -> DemoFigures:
    """The comparison grid of a store's first ok image and the follow-up GIF of its patient.

    Parameters
    ----------
    store : path-like
        The demo's store.
    out : path-like
        Folder for ``comparison_grid.png`` and ``patient_<id>.gif`` (created).
    dpi : int
        Resolution of the grid.

    Returns
    -------
    DemoFigures
    """
    import zarr

    from .render import render_gif, render_grid
    from .store.describe import describe_store
    from .store.encoding import read_index
    from .store.layout import STATUS_OK

    arrays = list(describe_store(store)["arrays"])
    group = zarr.open_group(store, mode="r")
    ok = [index for index, status in enumerate(read_index(group, "status")) if status == STATUS_OK]
    if not ok:
        return DemoFigures(arrays, None, None, "no image is ok")
    folder = Path(out)
    grid, _ = render_grid(group, ok[0], folder / "comparison_grid", dpi=dpi)
    patient = str(read_index(group, "patient_id", ok[0]))
    gif = render_gif(group, patient, folder / f"patient_{patient}.gif")
    return DemoFigures(arrays, Path(grid[0]), gif.path, None if gif.path else gif.notes[-1])
