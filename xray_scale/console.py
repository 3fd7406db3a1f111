"""What the ``xray-scale`` command prints: progress bars, a run's summary, a store's description.

Plain text on stdout through typer, bars and notes on stderr through rich,
imported only when a bar or a note is shown (the command's start-up stays light).
"""

from __future__ import annotations

import functools
import json
import time
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console
    from rich.progress import Progress

    from .records import BatchRecord
    from .runner.pipeline import RunSummary
    from .runner.plan import Plan

__all__ = [
    "REASONS_SHOWN",
    "SUMMARY_FAILURES",
    "RunProgress",
    "print_description",
    "print_notes",
    "print_plan",
    "print_reasons",
    "print_summary",
    "progress_bar",
    "stderr_console",
    "write_failures",
]

REASONS_SHOWN = 10
"""Reasons of failure ``info`` prints (the most frequent); ``--failures`` lists every failure."""
SUMMARY_FAILURES = 10
"""Failures a run's summary lists one by one; more are grouped by reason."""


@functools.cache
def stderr_console() -> Console:
    """The console of progress bars and notes (rich, imported on first use)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def progress_bar(title: str, *fields: str) -> Progress:
    """A progress bar on stderr: done / total, the first of ``fields``, time left, the others."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn(f"[bold]{title}"), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn(field) for field in fields[:1]]
    columns.append(TimeRemainingColumn())
    columns += [TextColumn(field) for field in fields[1:]]
    return Progress(*columns, console=stderr_console())


class RunProgress:
    """A live bar on stderr: images done / total, images/s, ETA, failures."""

    def __init__(self, quiet: bool):
        self._bar = (
            None
            if quiet
            else progress_bar(
                "processing", "{task.fields[rate]:.1f} img/s", "{task.fields[failed]} failed"
            )
        )
        self._task = None
        self._began = time.perf_counter()
        self._done = 0
        self._failed = 0

    def start(self, total: int, already_done: int) -> None:
        if already_done:
            stderr_console().print(f"resuming: {already_done} of {total} images already done")
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task(
                "run", total=total, completed=already_done, rate=0.0, failed=0
            )
        self._began = time.perf_counter()

    def batch(self, report: BatchRecord) -> None:
        self._done += report.size
        self._failed += len(report.failures)
        if self._bar is not None:
            rate = self._done / max(time.perf_counter() - self._began, 1e-9)
            self._bar.update(self._task, advance=report.size, rate=rate, failed=self._failed)

    def stop(self) -> None:
        if self._task is not None:  # started: stopping a bar never started prints a blank line
            self._bar.stop()
        self._bar = self._task = None


def print_summary(summary: RunSummary) -> None:
    """A run's counts, time and rate, then its failures (by reason when there are many)."""
    rate = f", {summary.images_per_s:.1f} img/s" if summary.processed else ""
    typer.echo(
        f"{summary.store}: {summary.total:,} images, {summary.ok:,} ok, {summary.failed:,} failed"
        + (f", {summary.pending:,} pending" if summary.pending else "")
        + f" ({summary.processed:,} processed in {summary.elapsed_s:.1f} s{rate})"
    )
    if summary.manifest_missing:
        typer.echo(
            f"  manifest: {summary.manifest_missing:,} listed images are not in the inputs "
            "(recorded as failed, not processed)"
        )
    if len(summary.failures) <= SUMMARY_FAILURES:
        for path, error in summary.failures:
            typer.echo(f"  failed: {path}: {error}")
        return
    from .store.describe import failures_by_reason

    failures = [{"path": path, "error": error} for path, error in summary.failures]
    print_reasons(failures_by_reason(failures), hint=f"xray-scale info {summary.store} --failures")


def print_description(details: dict, *, every_failure: bool, hint: str) -> None:
    """``info``'s text: counts, format, time, arrays, QC, config, then the failures.

    Parameters
    ----------
    details : dict
        :func:`xray_scale.store.describe.describe_store` of the store.
    every_failure : bool
        List every failed image (``failed: PATH: ERROR``) instead of the reasons.
    hint : str
        The command that lists every failure, printed under the reasons.
    """
    from .store.describe import qc_summary

    height, width = details["image_shape"]
    typer.echo(f"store: {details['store']}")
    typer.echo(
        f"images: {details['total']:,} ({details['ok']:,} ok, {details['failed']:,} failed, "
        f"{details['pending']:,} pending), {height}x{width} {details['pixel_dtype']}"
    )
    typer.echo(
        f"engine: {details['engine']}, compat: {details['compat'] or 'none'}, "
        f"xray-scale {details['version']}, created {details['created']}"
    )
    rate = details["images_per_s"]
    typer.echo(
        f"time: {details['elapsed_s']:.1f} s in {len(details['runs'])} run(s), "
        f"{details['processed']:,} images processed" + (f", {rate:.1f} img/s" if rate else "")
    )
    typer.echo("arrays: " + ", ".join(f"{k} ({v})" for k, v in details["arrays"].items()))
    typer.echo(qc_summary(details["qc"]))
    typer.echo("config: " + json.dumps(details["config"]))
    if every_failure:
        for failure in details["failures"]:
            typer.echo(f"failed: {failure['path']}: {failure['error']}")
    elif details["failed"]:
        print_reasons(details["failure_reasons"], hint=hint)


def print_notes(notes: list[str]) -> None:
    """The first ten notes on stderr, then how many more were left out."""
    for note in notes[:10]:
        stderr_console().print(f"note: {note}", markup=False, soft_wrap=True)
    if len(notes) > 10:
        stderr_console().print(f"note: ... and {len(notes) - 10} more", markup=False)


def print_reasons(reasons: list[dict], *, hint: str) -> None:
    """The most frequent reasons of failure, each with its count and a few file names."""
    typer.echo("failures by reason:")
    for group in reasons[:REASONS_SHOWN]:
        more = ", ..." if group["count"] > len(group["examples"]) else ""
        typer.echo(f"  {group['count']:,} {group['reason']}: {', '.join(group['examples'])}{more}")
    others = reasons[REASONS_SHOWN:]
    if others:
        count = sum(group["count"] for group in others)
        typer.echo(f"  {count:,} for {len(others)} other reasons")
    typer.echo(f"  every failure: {hint}")


def _size(count: float) -> str:
    """``count`` bytes in B, kB, MB, GB or TB (powers of 1000), one decimal."""
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000:
            return f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def print_plan(estimate: Plan) -> None:
    """What ``xray-scale plan`` prints: images, bytes per array and in all, and the time."""
    typer.echo(f"images: {estimate.images}")
    typer.echo(f"measured on {estimate.sampled} of them ({estimate.engine} engine):")
    for name, per_image in estimate.bytes_per_image.items():
        total = _size(per_image * estimate.images)
        typer.echo(f"  {name:<36} {_size(per_image):>10} per image  {total:>10}")
    typer.echo(f"store size: {_size(estimate.total_bytes)}")
    hours, rest = divmod(estimate.seconds, 3600)
    typer.echo(
        f"time: {estimate.images_per_s:.1f} img/s here -> {int(hours)} h {rest / 60:.0f} min "
        f"for {estimate.images} images"
    )


def write_failures(details: dict, path: Path) -> None:
    """Write every failure ``info`` found to ``path`` (path<TAB>error, one a line) and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as file:
        file.writelines(f"{f['path']}\t{f['error']}\n" for f in details["failures"])
    typer.echo(f"wrote the {details['failed']:,} failures to {path}", err=True)
