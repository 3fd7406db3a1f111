"""The live progress bar of ``xray-scale run`` on stderr: images done, rate, ETA, failures."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .analysis.records import BatchRecord

__all__ = ["RunProgress"]

_stderr = Console(stderr=True, highlight=False)


class RunProgress:
    """A live bar on stderr: images done / total, images/s, ETA, failures.

    Parameters
    ----------
    quiet : bool
        Show nothing (only the "resuming" line is printed).
    """

    def __init__(self, quiet: bool):
        self._bar = (
            None
            if quiet
            else Progress(
                TextColumn("[bold]processing"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.1f} img/s"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[failed]} failed"),
                console=_stderr,
            )
        )
        self._task = None
        self._began = time.perf_counter()
        self._done = 0
        self._failed = 0

    def start(self, total: int, already_done: int) -> None:
        """Show the bar (a run's ``on_start``), ``already_done`` of ``total`` images done."""
        if already_done:
            _stderr.print(f"resuming: {already_done} of {total} images already done")
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task(
                "run", total=total, completed=already_done, rate=0.0, failed=0
            )
        self._began = time.perf_counter()

    def batch(self, report: BatchRecord) -> None:
        """Count one finished batch (a run's ``on_batch``)."""
        self._done += report.size
        self._failed += len(report.failures)
        if self._bar is not None:
            rate = self._done / max(time.perf_counter() - self._began, 1e-9)
            self._bar.update(self._task, advance=report.size, rate=rate, failed=self._failed)

    def stop(self) -> None:
        """Remove the bar, if it was shown; calling it again does nothing."""
        if self._task is not None:  # started: stopping a bar never started prints a blank line
            self._bar.stop()
        self._bar = self._task = None
