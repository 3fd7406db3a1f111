"""A progress gate: named checkpoints that a run passes, and that a test can count and hold.

A test that kills, interrupts or cuts off a run midway must know where the run
is, not guess it from the time that has passed: a busy machine is slow, an idle
one finishes before the signal arrives. The run calls :func:`checkpoint` at a
few named points; with the gate on, each call leaves a ticket behind (so a test
can wait until, say, three batches are recorded), and a test can hold every
call past the M-th until it lets them go.

The gate is off, and each checkpoint costs one environment lookup, unless
:data:`ENV` (``XRAY_SCALE_GATE``) names a folder. Every process of a run
inherits it from the one that starts the run: the driver, its threads, the
worker processes of ``--scheduler processes`` or ``distributed``; the
``dask worker`` processes of a running cluster need it in their own
environment.

Semantics, the same in any thread or process:

- **Tickets.** The k-th call of ``checkpoint(name)`` (k = 0, 1, ...) creates
  the file ``<folder>/<name>-<k>`` holding the caller's process id. It is made
  whole under a private name, then linked to the ticket's name, which fails
  if that exists: no two callers get the same k, and a ticket seen is complete.
- **Holds.** While ``<folder>/hold-<name>`` exists and holds an integer M
  (:func:`hold` writes it whole), a caller whose ticket is k >= M waits,
  reading the hold file every 20 ms, until the file is removed
  (:func:`release`) or holds a number above k. A caller held longer than
  :data:`HOLD_LIMIT_S` raises RuntimeError, so a run left held by a test
  that died does not wait for ever.

The run's checkpoints (:mod:`xray_scale.runner.pipeline`):

- ``batch-start`` (:data:`BATCH_START`): a batch task starts, in the process
  and thread that runs it, before it reads any input.
- ``batch-recorded`` (:data:`BATCH_RECORDED`): the driver has written a
  finished batch's records, statuses last, into the store; once per batch.
  With the gate on, records are written as each batch arrives, not buffered
  (:class:`xray_scale.store.access.RecordWriter`), so N tickets mean N batches
  in the store.
- ``end-of-run`` (:data:`END_OF_RUN`): every batch has been computed and its
  records written; the end-of-run phase (QC groups and scores over the whole
  store, the run's entry in the store's attributes) begins.

For example, "let three batches through, wait until they are in the store,
then kill the run", with ``XRAY_SCALE_GATE=gate`` in the run's environment::

    hold("gate", BATCH_START, after=3)
    ...  # start the run
    wait_for("gate", BATCH_RECORDED, 3, process=run_process)
    run_process.kill()
    release("gate", BATCH_START)

To interrupt a run (SIGINT), hold its driver instead (``hold("gate", BATCH_RECORDED,
after=2)``, then wait for 3 tickets): the driver then waits in this module's polling
loop, where the signal is handled at once. Held in dask's blocking wait for a batch that
the gate holds, a SIGINT that arrives just before the wait begins is handled only when
that batch ends: never.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "BATCH_RECORDED",
    "BATCH_START",
    "CHECKPOINTS",
    "END_OF_RUN",
    "ENV",
    "HOLD_LIMIT_S",
    "checkpoint",
    "enabled",
    "gated",
    "hold",
    "release",
    "tickets",
    "wait_for",
]

ENV = "XRAY_SCALE_GATE"
"""The environment variable naming the gate's folder; unset or empty: the gate is off."""

BATCH_START, BATCH_RECORDED, END_OF_RUN = "batch-start", "batch-recorded", "end-of-run"
CHECKPOINTS = (BATCH_START, BATCH_RECORDED, END_OF_RUN)
"""The checkpoints a run passes (see the module's description)."""

HOLD_LIMIT_S = 600.0
"""Longest a checkpoint waits for its hold to be released before it raises."""

_POLL_S = 0.02


def enabled() -> bool:
    """Whether the gate is on in this process (:data:`ENV` names a folder)."""
    return bool(os.environ.get(ENV))


def checkpoint(name: str) -> None:
    """Pass checkpoint ``name``: claim its next ticket, then wait while it is held.

    Does nothing when the gate is off.

    Raises
    ------
    RuntimeError
        If the ticket was held for :data:`HOLD_LIMIT_S` seconds.
    """
    folder = os.environ.get(ENV)
    if not folder:
        return
    ticket = _claim(Path(folder), name)
    hold_file = Path(folder) / f"hold-{name}"
    waited = time.monotonic()
    while _held(hold_file, ticket):
        if time.monotonic() - waited > HOLD_LIMIT_S:
            raise RuntimeError(
                f"checkpoint {name} (ticket {ticket}) held for {HOLD_LIMIT_S:.0f} s: "
                f"remove {hold_file} to let the run go on, or unset {ENV}"
            )
        time.sleep(_POLL_S)


def gated(name: str, function: Callable) -> Callable:
    """``function``, passing checkpoint ``name`` before each call (picklable, for dask tasks)."""
    return functools.partial(_pass_then_call, name, function)


def _pass_then_call(name: str, function: Callable, *args, **kwargs):
    checkpoint(name)
    return function(*args, **kwargs)


_next_ticket: dict[tuple[Path, str], int] = {}
"""Per folder and name, a ticket number this process knows every lower one is taken."""


def _claim(folder: Path, name: str) -> int:
    """The lowest free ticket of ``name``, taken: its file created with this process's id."""
    draft = folder / f".draft-{name}-{os.getpid()}-{threading.get_ident()}"
    draft.write_text(str(os.getpid()))
    ticket = _next_ticket.get((folder, name), 0)
    try:
        while True:
            try:
                os.link(draft, folder / f"{name}-{ticket}")  # fails if it exists: atomic
                break
            except FileExistsError:
                ticket += 1
    finally:
        draft.unlink()
    _next_ticket[folder, name] = ticket + 1  # a hint only: a lower value is merely slower
    return ticket


def _held(hold_file: Path, ticket: int) -> bool:
    try:
        text = hold_file.read_text().strip()
    except FileNotFoundError:
        return False
    if not text:  # written by hand and not yet whole: read it again
        return True
    try:
        return ticket >= int(text)
    except ValueError:
        raise RuntimeError(
            f"{hold_file} must hold an integer (the tickets let through), not {text!r}"
        ) from None


# -- the test's side ------------------------------------------------------------------------


def hold(folder: str | os.PathLike, name: str, *, after: int = 0) -> None:
    """Hold every call of checkpoint ``name`` from its ticket ``after`` on (0: every call).

    Written whole (a temporary file renamed), so that no checkpoint reads half of it.
    A later call changes the number: ``hold(folder, name, after=5)`` lets two
    more through a hold at 3.
    """
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ValueError(f"after must be an integer >= 0, got {after!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    draft = folder / f".hold-{name}-{os.getpid()}-{threading.get_ident()}"
    draft.write_text(str(after))
    os.replace(draft, folder / f"hold-{name}")


def release(folder: str | os.PathLike, name: str) -> None:
    """Let every held and future call of checkpoint ``name`` through."""
    (Path(folder) / f"hold-{name}").unlink(missing_ok=True)


def tickets(folder: str | os.PathLike, name: str) -> list[int]:
    """The process ids of the tickets of ``name`` claimed so far, by ticket number."""
    found = {}
    prefix = f"{name}-"
    for path in Path(folder).glob(f"{name}-*"):
        number = path.name[len(prefix) :]
        if number.isdigit():
            found[int(number)] = int(path.read_text())
    return [found[k] for k in sorted(found)]


def wait_for(
    folder: str | os.PathLike,
    name: str,
    count: int,
    *,
    process=None,
    timeout: float = 240.0,
) -> list[int]:
    """Wait until ``count`` tickets of ``name`` are claimed; return their process ids.

    Parameters
    ----------
    folder : path-like
        The gate's folder.
    name : str
        The checkpoint.
    count : int
        Tickets to wait for.
    process : subprocess.Popen, optional
        The run's process: if it ends first, the wait ends with an error.
    timeout : float
        A limit for a run that is stuck, far above what any step takes.

    Raises
    ------
    RuntimeError
        If ``process`` ended before the tickets were claimed.
    TimeoutError
        After ``timeout`` seconds without them.
    """
    began = time.monotonic()
    while len(found := tickets(folder, name)) < count:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"the run ended (exit {process.returncode}) after {len(found)} of the "
                f"{count} {name} checkpoints waited for"
            )
        if time.monotonic() - began > timeout:
            raise TimeoutError(
                f"{len(found)} of {count} {name} checkpoints after {timeout:.0f} s: "
                "the run is stuck, or held where it should not be"
            )
        time.sleep(_POLL_S)
    return found
