"""``xray-scale render`` and ``xray-scale report``: figures and the report page of a store.

Thin like every command (:mod:`xray_scale.cli` registers them on its app): parse,
call :mod:`xray_scale.render`, print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["render", "report"]

_stderr = Console(stderr=True, highlight=False)


def _print_notes(notes: list[str]) -> None:
    """The first ten notes on stderr, then how many more."""
    for note in notes[:10]:
        _stderr.print(f"note: {note}", markup=False, soft_wrap=True)
    if len(notes) > 10:
        _stderr.print(f"note: ... and {len(notes) - 10} more", markup=False)


def render(
    store: Annotated[Path, typer.Argument(help="A store written by 'xray-scale run'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the figures.")],
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Images such as 00000011_001 (default: the first 4 ok ones)."),
    ] = None,
    patient: Annotated[str | None, typer.Option(help="Every image of this patient (11).")] = None,
    sample: Annotated[
        int | None, typer.Option(min=1, help="N images drawn at random (see --seed).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --sample draw.")] = 0,
    formats: Annotated[
        list[str] | None,
        typer.Option("--format", help="png, svg or pdf; repeat for several (default: png)."),
    ] = None,
    dpi: Annotated[int, typer.Option(min=1, help="Dots per inch of every figure.")] = 100,
    gif: Annotated[
        bool, typer.Option(help="A follow-up GIF per patient with 2+ selected images.")
    ] = True,
    gif_ms: Annotated[int, typer.Option(min=1, help="Milliseconds per GIF frame.")] = 1000,
    gif_beside: Annotated[
        str | None, typer.Option(help="A filter or mask shown beside the original in GIFs.")
    ] = None,
    panels: Annotated[
        list[str] | None,
        typer.Option(
            "--panel",
            help="SOURCE:CMAP[:TITLE], repeatable, e.g. sobel:CMRmap tutorial_canny:terrain "
            "(default: the tutorial's 9 panels).",
        ),
    ] = None,
    grid_size: Annotated[
        tuple[float, float] | None,
        typer.Option(help="Width and height of each grid, in inches (with --dpi: pixels)."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or notes (paths still printed).")
    ] = False,
) -> None:
    """The tutorial's figures for images of a store: grids, histograms, GIFs, summaries.

    Prints the files written, one per line.
    """
    from .render import DEFAULT_PANELS, FORMATS, parse_panel, render_store

    for fmt in formats or ():
        if fmt.lower() not in FORMATS:
            allowed = ", ".join(repr(f) for f in FORMATS)
            raise typer.BadParameter(f"{fmt!r} is not one of {allowed}", param_hint="'--format'")
    bar = None
    if not quiet:
        bar = Progress(
            TextColumn("[bold]rendering"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=_stderr,
        )
    task = None

    def advance(done: int, total: int) -> None:
        nonlocal task
        if bar is not None:
            if task is None:
                bar.start()
                task = bar.add_task("render", total=total)
            bar.update(task, completed=done)

    try:
        report = render_store(
            store,
            out,
            panels=[parse_panel(text) for text in panels] if panels else DEFAULT_PANELS,
            grid_figsize=grid_size,
            gif_beside=gif_beside,
            names=tuple(names or ()),
            patient=patient,
            sample=sample,
            seed=seed,
            formats=tuple(formats or ("png",)),
            dpi=dpi,
            gif=gif,
            gif_ms=gif_ms,
            progress=advance,
        )
    except ValueError as error:  # a selection, panel or size the store cannot satisfy
        raise typer.BadParameter(str(error)) from None
    finally:
        if task is not None:
            bar.stop()
    if not quiet:
        _print_notes(report.notes)
    for path in report.paths:
        typer.echo(path)


def report(
    store: Annotated[Path, typer.Argument(help="A store written by 'xray-scale run'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for index.html and its files.")],
    gallery: Annotated[
        int, typer.Option(min=0, help="Thumbnails per QC flag (the CSVs list every image).")
    ] = 12,
    groups: Annotated[
        int, typer.Option(min=0, help="Duplicate and near-duplicate groups shown, largest first.")
    ] = 8,
    gifs: Annotated[int, typer.Option(min=0, help="Patients shown as follow-up GIFs.")] = 3,
) -> None:
    """One HTML page of a run: the run, failures, plots, QC galleries, copies, GIFs.

    Opens from the disk with no server and no network. Prints the page's path.
    """
    from .render.page import write_report

    result = write_report(store, out, gallery=gallery, groups=groups, gifs=gifs)
    _print_notes(result.notes)
    typer.echo(result.page)
