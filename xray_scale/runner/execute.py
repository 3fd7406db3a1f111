"""Running a run's batch tasks: on a local dask scheduler, or on a dask.distributed cluster.

:func:`execute` hands the graph (one task per batch, no dependencies) to the
scheduler the run asked for, gives each finished batch's records to the
pipeline's one record writer as it comes, and flushes what finished also when
the run stops early (Ctrl-C, a failing task), unless the store itself is gone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import dask.multiprocessing
import dask.threaded
from dask.callbacks import Callback

from ..errors import StoreUnreachableError
from ..io.sources.archive_index import portable_indexes
from ..io.sources.archives import source_file
from ..io.sources.urls import UrlOptions, is_url
from ..records import BatchRecord
from ..store.access import RecordWriter
from ..store.location import StoreLocation
from .cluster import (
    check_workers_see,
    compute_on_cluster,
    connect,
    prepare_workers,
    spot_checks,
    worker_modules,
)
from .jobqueue import JobQueue

__all__ = ["BATCHES_PER_CALL", "compute_locally", "execute"]


class _BatchCallback(Callback):
    """Hands each finished batch to ``on_record`` in dask's scheduler loop (this process)."""

    def __init__(self, on_record: Callable[[BatchRecord], None]):
        super().__init__()
        self._on_record = on_record

    def _posttask(self, key, result, dsk, state, worker_id):
        self._on_record(result)


BATCHES_PER_CALL = 256
"""Batches given to dask's local scheduler at a time (at least 64 per worker).

dask keeps the result of every requested task until the call returns, and a
batch's records take ~2.5 kB per image: 280 MB for the whole dump in one call.
Calls of a few hundred batches keep that to a few MB and leave the workers
idle only in each call's last round.
"""


def compute_locally(
    graph: dict, scheduler: str, workers: int, on_record: Callable[[BatchRecord], None]
) -> None:
    """Run the batch tasks on a local dask scheduler, a bounded number at a time."""
    get = {"threads": dask.threaded.get, "processes": dask.multiprocessing.get}[scheduler]
    keys = list(graph)
    step = max(BATCHES_PER_CALL, 64 * workers)
    with _BatchCallback(on_record):
        for first in range(0, len(keys), step):
            part = {key: graph[key] for key in keys[first : first + step]}
            get(part, list(part), num_workers=workers)


def execute(
    graph: dict,
    on_record: Callable[[BatchRecord], None],
    records: RecordWriter,
    *,
    scheduler: str,
    address,
    workers: int | None,
    engine: str,
    cluster: JobQueue | None = None,
    out: StoreLocation,
    paths: list[str],
    carried: UrlOptions,
) -> float:
    """Run every batch task of ``graph``, handing each finished batch to ``on_record``.

    Parameters
    ----------
    graph : dict
        ``{("batch", start): task}``, one task per batch.
    on_record : callable
        Called in this process with each finished batch's records.
    records : RecordWriter
        Flushed once the tasks stop, however they stop, unless the store is unreachable.
    scheduler, address, workers, cluster
        As for :func:`xray_scale.run`: ``"distributed"``, ``"cuda"``, an address
        (or a client), or HPC batch jobs (``cluster``) run on a cluster, else on dask's local
        ``threads`` or ``processes``.
    engine : str
        The concrete engine, which a cluster's workers import before the first task.
    out : StoreLocation
        The store, which every worker must see.
    paths : list of str
        The run's inputs: a few are checked from the workers, and the indexes of
        archives at URLs are sent to them.
    carried : UrlOptions
        The inputs' storage options, carried into each task.

    Returns
    -------
    float
        ``time.perf_counter()`` when the batches began (after a cluster's workers were ready).
    """
    began = time.perf_counter()
    store_gone = False
    try:
        if scheduler in ("distributed", "cuda") or address is not None or cluster is not None:
            cuda = scheduler == "cuda"
            preload = worker_modules(engine)
            with connect(
                address, workers=workers, cuda=cuda, preload=preload, job_queue=cluster
            ) as client:
                check_workers_see(client, store=out, inputs=spot_checks(paths), options=carried)
                archives = {source_file(p) for p in paths if is_url(p)}
                indexes = portable_indexes(sorted(archives))
                local = address is None
                prepare_workers(client, engine=engine, local=local, indexes=indexes)
                began = time.perf_counter()
                compute_on_cluster(client, graph, on_record)
        else:
            compute_locally(graph, scheduler, workers or os.cpu_count() or 1, on_record)
    except StoreUnreachableError:
        store_gone = True  # nothing can be written: the unwritten stay pending
        raise
    finally:
        if not store_gone:  # what finished is kept, also on Ctrl-C or a failing task
            records.flush()
    return began
