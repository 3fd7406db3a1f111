"""The ``xray-scale`` command: a thin typer layer over the library.

Exit codes (every command):

- 0: done; for ``run`` and ``demo``, every image is ``ok``.
- 1: the run finished but some images failed (``xray-scale info STORE`` lists them).
- 2: nothing was done: bad command line, input, config or store (one-line error).
- 3: the run stopped on an I/O error (disk full, store unwritable); unfinished
  batches stay ``pending`` and re-running the same command resumes.
- 130: interrupted (Ctrl-C); finished batches are kept, re-running resumes.

one piece: every command's options and exit codes in one place, read as one page
(``run``'s batch-job options are typed in :mod:`xray_scale.cli_cluster`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from . import cli_cluster as hpc
from .allocator import tune_malloc
from .cli_help import ClickHelpCommand
from .console import RunProgress, print_description, print_notes, print_summary, progress_bar
from .engines.registry import DECODERS, ENGINES
from .errors import ConfigError, EngineError, XrayScaleError
from .runner.schedulers import SCHEDULERS

if TYPE_CHECKING:
    from .runner.pipeline import RunSummary

# Every command imports what it needs when it runs: --help, --version and a
# mistyped option must answer without loading zarr, dask, SciPy or OpenCV
# (tests/test_startup.py).

__all__ = ["app", "console_script", "main"]

EXIT_OK, EXIT_FAILED_IMAGES, EXIT_USAGE, EXIT_IO, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

app = typer.Typer(
    help="The NumPy X-ray tutorial's filters, masks and statistics over whole datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # The command's own --help is an option of _root: typer checks the value of its
    # built-in one (None when not given) with pydantic, ~0.2 s of imports before any
    # subcommand, --version or usage error.
    add_help_option=False,
    # Plain help text: rich's formatting imports ~0.1-0.2 s of modules (measured: help
    # 30 % faster), and --help must answer in well under half a second.
    rich_markup_mode=None,
)


Where = Annotated[
    str | None,
    typer.Option(help="Only rows where this pandas condition holds, e.g. 'mean < 90'."),
]
Sort = Annotated[str | None, typer.Option(help="Order by this column (missing values last).")]
Descending = Annotated[bool, typer.Option("--descending", help="With --sort: largest first.")]
Limit = Annotated[int | None, typer.Option(min=1, help="Only the first N (after --sort).")]
StorageOptions = Annotated[
    list[str] | None,
    typer.Option("--storage-option", help="KEY=VALUE for every URL opened (endpoint_url=...)."),
]


class Compat(StrEnum):
    """Compatibility modes for ``--compat``."""

    tutorial = "tutorial"


Engine = StrEnum("Engine", {name: name for name in ENGINES})
Decoder = StrEnum("Decoder", {name: name for name in DECODERS})
Scheduler = StrEnum("Scheduler", {name: name for name in SCHEDULERS})


def _run_and_report(inputs, out, *, progress: bool, summary: bool, **options) -> RunSummary:
    from .runner.pipeline import run

    bar = RunProgress(quiet=not progress)
    try:
        result = run(inputs, out, on_start=bar.start, on_batch=bar.batch, **options)
    except KeyboardInterrupt:
        bar.stop()
        _say_error("interrupted; finished batches are kept, re-run the same command to resume")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except OSError as error:
        bar.stop()
        _say_error(f"{_describe_os_error(error)}; fix it and re-run the same command to resume")
        raise typer.Exit(EXIT_IO) from None
    finally:
        bar.stop()
    if summary:
        print_summary(result)
    return result


def _exit_code(summary: RunSummary) -> int:
    return EXIT_OK if summary.failed == 0 and summary.pending == 0 else EXIT_FAILED_IMAGES


@app.command("run", cls=ClickHelpCommand)
def run_command(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Directories (searched for *.png), globs, .txt lists of paths, or PNGs."
        ),
    ],
    out: Annotated[str, typer.Option("--out", "-o", help="The store: a folder or s3://... URL.")],
    config: Annotated[
        Path | None, typer.Option(help="TOML config (default: the tutorial's bank).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Threads, processes or local workers (default: CPUs).")
    ] = None,
    scheduler: Annotated[
        Scheduler,
        typer.Option(
            help="threads | processes | distributed (a LocalCluster) | cuda (one worker per GPU)."
        ),
    ] = Scheduler.threads,
    address: Annotated[
        str | None, typer.Option(help="tcp://HOST:PORT of a running dask.distributed scheduler.")
    ] = None,
    cluster: hpc.ClusterSystem = None,
    jobs: hpc.Jobs = 1,
    cores: hpc.Cores = None,
    memory: hpc.Memory = None,
    queue: hpc.Queue = None,
    walltime: hpc.Walltime = None,
    account: hpc.Account = None,
    job_extra: hpc.JobExtra = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Images per task and per zarr shard.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N inputs.")] = None,
    manifest: Annotated[
        list[str] | None,  # paths or URLs (a Path would fold s3:// into s3:/)
        typer.Option(help="Data_Entry_2017.csv (selects), or a dataset's metadata; repeatable."),
    ] = None,
    compat: Annotated[
        Compat | None, typer.Option(help="'tutorial': the tutorial's arrays bit for bit.")
    ] = None,
    engine: Annotated[
        Engine, typer.Option(help="Filter implementation; auto: the fastest installed.")
    ] = Engine.auto,
    decoder: Annotated[
        Decoder, typer.Option(help="Where PNGs are decoded: cpu | gpu (cupy engine) | auto.")
    ] = Decoder.cpu,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing store (only one written by xray-scale).")
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option(help="When resuming, process the failed images' batches again too.")
    ] = False,
    storage_option: StorageOptions = None,
    input_option: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE for URL inputs, instead of the above.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary.")] = False,
) -> None:
    """Filter, mask and measure every input image into a zarr v3 store.

    Re-running the same command on the same store resumes it.
    """
    summary = _run_and_report(
        inputs,
        out,
        progress=not quiet,
        summary=not quiet,
        config=config,
        workers=workers,
        batch_size=batch_size,
        limit=limit,
        manifest=manifest or None,
        compat=compat.value if compat else None,
        engine=engine.value,
        decoder=decoder.value,
        scheduler=scheduler.value,
        address=address,
        cluster=hpc.job_queue(
            cluster,
            jobs=jobs,
            cores=cores,
            memory=memory,
            queue=queue,
            walltime=walltime,
            account=account,
            job_extra=job_extra,
        ),
        overwrite=overwrite,
        retry_failed=retry_failed,
        storage_options=storage_option,
        input_options=input_option,
    )
    raise typer.Exit(_exit_code(summary))


@app.command(cls=ClickHelpCommand)
def info(
    store: Annotated[str, typer.Argument(help="A store written by 'xray-scale run', or its URL.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print everything as JSON.")] = False,
    failures: Annotated[
        bool, typer.Option("--failures", help="List every failed image with its error.")
    ] = False,
    failures_to: Annotated[
        Path | None,
        typer.Option(help="Write every failed image to this file: path<TAB>error, one a line."),
    ] = None,
    storage_option: StorageOptions = None,
) -> None:
    """Counts by status, failures by reason, the config and the throughput of a store."""
    from .console import write_failures
    from .store.describe import describe_store
    from .store.location import store_location

    details = describe_store(store_location(store, storage_option))
    if failures_to is not None:
        write_failures(details, failures_to)
    if as_json:
        typer.echo(json.dumps(details, indent=2))
        return
    print_description(details, every_failure=failures, hint=f"xray-scale info {store} --failures")


@app.command(cls=ClickHelpCommand)
def plan(
    inputs: Annotated[list[str], typer.Argument(help="The inputs 'run' would get.")],
    config: Annotated[Path | None, typer.Option(help="TOML config.")] = None,
    engine: Annotated[Engine, typer.Option(help="Filter implementation.")] = Engine.auto,
    workers: Annotated[int | None, typer.Option(min=1, help="Threads (default: CPUs).")] = None,
    manifest: Annotated[list[str] | None, typer.Option(help="As for run.")] = None,
    sample: Annotated[
        int | None, typer.Option(min=1, help="Images in the measured sample run.")
    ] = None,
    storage_option: StorageOptions = None,
) -> None:
    """Before a run: image count, output size per array and in total, and expected time.

    Measured by running the first few inputs into a temporary store.
    """
    from .console import print_plan
    from .runner.plan import plan_run

    estimate = plan_run(
        inputs,
        config=config,
        engine=engine.value,
        workers=workers,
        manifest=manifest or None,
        sample=sample,
        storage_options=storage_option,
    )
    print_plan(estimate)


@app.command(cls=ClickHelpCommand)
def bench(
    source: Annotated[
        Path | None,
        typer.Argument(
            help="Folder of PNGs to repeat (default: the real sample beside the repository, "
            "else phantoms).",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    images: Annotated[int, typer.Option(min=1, help="Image files benchmarked.")] = 72,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Threads of every parallel item (default: CPUs).")
    ] = None,
    config: Annotated[
        list[Path] | None,
        typer.Option(help="TOML config to run (repeatable; default: the built-in default)."),
    ] = None,
    engine: Annotated[
        list[str] | None,
        typer.Option(
            help="Engine to run: scipy, opencv, cupy (repeatable; default: every one here)."
        ),
    ] = None,
    tutorial_images: Annotated[
        int | None,
        typer.Option(min=1, help="Images given to the one-thread tutorial loop (default: all)."),
    ] = None,
    dask_image_images: Annotated[
        int, typer.Option(min=0, help="Images given to naive dask-image (0: skip it).")
    ] = 24,
    rounds: Annotated[
        int, typer.Option(min=1, help="Rounds of the tutorial loop and of each run; best kept.")
    ] = 2,
    scheduler: Annotated[
        list[Scheduler] | None,
        typer.Option(
            help="Also run on this scheduler (repeatable), beside threads, and print the "
            "ratio: e.g. distributed (a LocalCluster of --workers processes)."
        ),
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option(help="JSON record to write (default: xray-scale-bench-<time>.json here)."),
    ] = None,
) -> None:
    """Images/s of the tutorial loop, naive dask-image and each engine and config, in one run.

    Also the stage ceilings (decode, filter bank, compute, write) measured on the same
    images, so the pipeline's efficiency is a printed ratio. Compare ratios, not img/s.
    """
    from .bench.benchmark import BenchConfig, format_table, run_bench
    from .config import load_config

    configs = [BenchConfig(path.stem, load_config(path)) for path in config or []]
    labels = [bench.label for bench in configs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"two --config files share the name {labels}; rename one")
    for name in engine or []:
        if name == "auto" or name not in ENGINES:
            concrete = ", ".join(e for e in ENGINES if e != "auto")
            raise EngineError(f"--engine must be one of {concrete}; got {name!r}")
    result = run_bench(
        source=source,
        images=images,
        workers=workers or os.cpu_count() or 1,
        configs=configs or None,
        engines=engine or None,
        tutorial_images=tutorial_images,
        dask_image_images=dask_image_images,
        rounds=rounds,
        schedulers=[s.value for s in scheduler or []],
        log=typer.echo,
    )
    typer.echo("")
    typer.echo(format_table(result))
    written = result.save(record or Path(f"xray-scale-bench-{time.strftime('%Y%m%d-%H%M%S')}.json"))
    typer.echo(f"record: {written}")


@app.command(cls=ClickHelpCommand)
def export(
    store: Annotated[str, typer.Argument(help="A store written by 'xray-scale run', or its URL.")],
    to: Annotated[Path, typer.Option("--to", help="Output file: stats.parquet or stats.csv.")],
    histogram: Annotated[
        bool, typer.Option(help="Add the 256 histogram counts as columns.")
    ] = False,
    where: Where = None,
    sample: Annotated[
        int | None, typer.Option(min=1, help="N rows drawn at random (see --seed).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --sample draw.")] = 0,
    sort: Sort = None,
    descending: Descending = False,
    limit: Limit = None,
    storage_option: StorageOptions = None,
) -> None:
    """One row per image: index, manifest metadata, statistics and QC, as Parquet or CSV.

    --where, --sample, --sort and --limit keep some rows, in that order.
    """
    from .store.export import export_table
    from .store.location import store_location
    from .store.query import RowQuery

    query = RowQuery(
        where=where, sample=sample, seed=seed, sort=sort, descending=descending, limit=limit
    )
    store = store_location(store, storage_option)
    written, rows = export_table(store, to, histogram=histogram, query=query)
    typer.echo(f"wrote {written} ({rows:,} rows)")


@app.command(cls=ClickHelpCommand)
def synth(
    directory: Annotated[Path, typer.Argument(help="Folder to write the PNGs into.")],
    patients: Annotated[int, typer.Option(min=1, help="Number of patients.")] = 1,
    follow_ups: Annotated[int, typer.Option(min=1, help="Images per patient.")] = 9,
    size: Annotated[int, typer.Option(min=32, help="Width and height in pixels.")] = 1024,
    bit_depth: Annotated[int, typer.Option(help="8 or 16.")] = 8,
) -> None:
    """Write deterministic chest-like phantom PNGs (ChestX-ray8 naming)."""
    from .io.phantoms import write_phantoms

    if bit_depth not in (8, 16):
        raise typer.BadParameter(f"must be 8 or 16, got {bit_depth}", param_hint="--bit-depth")

    paths = write_phantoms(
        directory, patients=patients, follow_ups=follow_ups, shape=(size, size), bit_depth=bit_depth
    )
    typer.echo(f"wrote {len(paths)} phantoms to {directory}")


@app.command(cls=ClickHelpCommand)
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for phantoms and store.")] = Path(
        "xray-scale-demo"
    ),
    patients: Annotated[int, typer.Option(min=1, help="Phantom patients.")] = 2,
    follow_ups: Annotated[int, typer.Option(min=1, help="Images per patient.")] = 6,
    size: Annotated[int, typer.Option(min=32, help="Image width and height.")] = 1024,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Generate phantoms, run the tutorial's bank on them, and report the store.

    Re-running it into the same folder replaces the phantoms and the store.
    """
    from .demo import STORE, demo_figures, write_demo_phantoms

    phantoms, paths = write_demo_phantoms(out, patients=patients, follow_ups=follow_ups, size=size)
    typer.echo(f"wrote {len(paths)} chest phantoms ({size}x{size}) to {phantoms}")
    store = out / STORE
    summary = _run_and_report([phantoms], store, progress=not quiet, summary=True, overwrite=True)
    figures = demo_figures(store, out / "figures")
    typer.echo(
        f"store: {store} (arrays: {', '.join(figures.arrays)}; stats/* and index/* per image)"
    )
    if figures.grid is None:
        typer.echo("comparison grid and follow-up GIF: none (no image is ok)")
        raise typer.Exit(_exit_code(summary))
    typer.echo(f"comparison grid: {figures.grid}")
    typer.echo(f"follow-up GIF: {figures.gif or f'none ({figures.gif_note})'}")
    typer.echo(f"inspect the store with: xray-scale info {store}")
    raise typer.Exit(_exit_code(summary))


@app.command(cls=ClickHelpCommand)
def render(
    store: Annotated[str, typer.Argument(help="A store written by 'xray-scale run', or its URL.")],
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
    where: Where = None,
    sort: Sort = None,
    descending: Descending = False,
    limit: Limit = None,
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
    storage_option: StorageOptions = None,
) -> None:
    """The tutorial's figures for images of a store: grids, histograms, GIFs, summaries.

    Ok images by name, --patient, --where, --sample, --sort, --limit (in that order).
    Prints the files written, one per line.
    """
    from .io.sources.urls import url_options
    from .render import DEFAULT_PANELS, FORMATS, parse_panel, render_store
    from .store.location import parse_storage_options, store_location
    from .store.query import RowQuery

    for fmt in formats or ():
        if fmt.lower() not in FORMATS:
            allowed = ", ".join(repr(f) for f in FORMATS)
            raise typer.BadParameter(f"{fmt!r} is not one of {allowed}", param_hint="'--format'")
    bar = None if quiet else progress_bar("rendering")
    task = None

    def advance(done: int, total: int) -> None:
        nonlocal task
        if bar is not None:
            if task is None:
                bar.start()
                task = bar.add_task("render", total=total)
            bar.update(task, completed=done)

    with url_options(parse_storage_options(storage_option)):  # the originals' URLs
        try:
            report = render_store(
                store_location(store, storage_option),
                out,
                panels=[parse_panel(text) for text in panels] if panels else DEFAULT_PANELS,
                grid_figsize=grid_size,
                gif_beside=gif_beside,
                names=tuple(names or ()),
                patient=patient,
                query=RowQuery(
                    where=where,
                    sample=sample,
                    seed=seed,
                    sort=sort,
                    descending=descending,
                    limit=limit,
                ),
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
        print_notes(report.notes)
    for path in report.paths:
        typer.echo(path)


@app.command(cls=ClickHelpCommand)
def report(
    store: Annotated[Path, typer.Argument(help="A store written by 'xray-scale run'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for index.html and its files.")],
    gallery: Annotated[int, typer.Option(min=0, help="Thumbnails per QC flag and group.")] = 12,
) -> None:
    """One HTML page of a run, opened from the disk: failures, plots, QC, copies, GIFs."""
    from .render.report import write_report

    result = write_report(store, out, gallery=gallery)
    print_notes(result.notes)
    typer.echo(result.page)


@app.callback(invoke_without_command=True)
def _root(
    context: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
    show_help: Annotated[
        bool, typer.Option("--help", is_eager=True, help="Show this message and exit.")
    ] = False,
) -> None:
    if show_help:
        typer.echo(context.get_help())
        raise typer.Exit(EXIT_OK)
    if version:
        from . import __version__

        typer.echo(f"xray-scale {__version__}")
        raise typer.Exit(EXIT_OK)


def _say_error(message: str) -> None:
    typer.echo(f"xray-scale: error: {message}", err=True)


def _error(message: str, code: int) -> int:
    _say_error(message)
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code.

    Errors the user can fix are one line on stderr, never a traceback.
    """
    try:
        # Not standalone: typer returns the code of typer.Exit instead of exiting.
        result = app(args=argv, prog_name="xray-scale", standalone_mode=False)
    except typer.TyperException as error:  # typer's usage errors: bad option, missing argument
        if not error.format_message():  # no arguments at all: typer printed the help
            return EXIT_USAGE
        context = getattr(error, "ctx", None)
        command = f" {context.info_name}" if context is not None and context.parent else ""
        return _error(f"{error.format_message()} (see: xray-scale{command} --help)", EXIT_USAGE)
    except XrayScaleError as error:  # every error the package raises on purpose
        if isinstance(error, OSError):  # a URL unreadable while working: I/O, as below
            return _error(f"{_describe_os_error(error)}; fix it and try again", EXIT_IO)
        return _error(str(error), EXIT_USAGE)
    except OSError as error:
        return _error(f"{_describe_os_error(error)}; fix it and try again", EXIT_IO)
    return result if isinstance(result, int) else EXIT_OK


def _describe_os_error(error: OSError) -> str:
    where = f" ({error.filename})" if error.filename else ""
    return f"{error.strerror or error}{where}"


def console_script() -> None:
    """The ``xray-scale`` executable: :func:`main` with its code as the exit status."""
    tune_malloc()
    sys.exit(main())


if __name__ == "__main__":
    console_script()
