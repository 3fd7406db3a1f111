"""The run: inputs to a complete store, one fused dask task per batch.

Each task (:func:`xray_scale.runner.task.process_batch`) decodes its K files once,
computes every filter, mask and statistic image by image, writes its own shard
of every full-resolution array (and its chunk of ``previews``), and returns
the batch's small per-image records (statistics, histogram, status,
error). The process that runs the pipeline is the only writer of those
records (:class:`xray_scale.store.access.RecordWriter`), statuses last. Nothing
larger than one batch is held per worker, and a batch is the unit of resume:
re-running the same command on the same store redoes only the batches that
still hold a ``pending`` image.

The graph is a plain dict, one task per batch and no dependencies: 14,015
tasks for the full dump, built in well under a second, and handed to a local
scheduler a few hundred at a time (:data:`xray_scale.runner.execute.BATCHES_PER_CALL`).
Tests stop a run at a known point through the checkpoints it passes
(:mod:`xray_scale.runner.gate`).

:func:`run` is a sequence of named steps: check the options; select the
inputs and prepare the store (:mod:`.prepare`); build the graph of the batches
still to do; execute it (:mod:`.execute`), each finished batch's records taken
by one recorder in this process; then finish: the QC of the whole run
(:mod:`.finish`), the summary, and the run's record in the store.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import zarr

from ..analysis.maps import check_compat
from ..config import Config, load_config
from ..engines.registry import get_engine, resolve_decoder, resolve_engine
from ..errors import ConfigError
from ..io.decode import FILE_NOT_FOUND
from ..io.sources.datasets import metadata_files
from ..io.sources.manifest import NOT_IN_INPUTS
from ..io.sources.namelists import NOT_IN_INPUTS as NOT_IN_ANY_INPUT
from ..io.sources.urls import UrlOptions, is_url, url_options
from ..records import BatchRecord, BatchSpec
from ..store.access import RecordWriter, pending_batches, read_status_summary
from ..store.location import StoreLocation, parse_storage_options, reaching, store_location
from ..store.metadata import RunMetadata, utc_now
from ..store.writer import StoreWriter
from . import gate
from .cluster import SCHEDULERS, require_dask_cuda, scheduler_address
from .execute import execute
from .finish import finish_qc
from .jobqueue import JobQueue, require_job_queue
from .prepare import SelectedInputs, check_no_input_inside, prepare_store, select_inputs
from .task import process_batch

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["SCHEDULERS", "RunSummary", "run"]


@dataclass(frozen=True)
class RunSummary:
    """The outcome of :func:`run`, read back from the store's index.

    Attributes
    ----------
    store : str
        Path of the store.
    total, ok, failed, pending : int
        Image counts by status.
    processed : int
        Images this call read and analysed (resumed batches excluded; a file
        that does not exist is failed, not processed), so :attr:`images_per_s`
        is a rate of work.
    elapsed_s : float
        Wall time of this call's processing.
    failures : list of (str, str)
        ``(path, error)`` of every failed image in the store.
    manifest_missing : int
        Images the manifest lists but the inputs lack (recorded as failed).
    """

    store: str
    total: int
    ok: int
    failed: int
    pending: int
    processed: int
    elapsed_s: float
    failures: list[tuple[str, str]]
    manifest_missing: int = 0

    @property
    def images_per_s(self) -> float:
        """Images processed per second of this call (0 if nothing was processed)."""
        return self.processed / self.elapsed_s if self.processed and self.elapsed_s else 0.0


def _checked_options(
    config: Config | str | os.PathLike | dict | None,
    *,
    batch_size: int | None,
    scheduler: str,
    workers: int | None,
    limit: int | None,
) -> Config:
    """The run's configuration, loaded, with ``batch_size``; the numbers and scheduler checked.

    Raises
    ------
    ConfigError
        For a bad configuration, batch size, scheduler, worker count or limit.
    """
    if not isinstance(config, Config):
        config = load_config(config)
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch size must be an integer >= 1, got {batch_size!r}")
        config = dataclasses.replace(config, batch_size=batch_size)
    if scheduler not in SCHEDULERS:
        raise ConfigError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}")
    if scheduler == "cuda":
        require_dask_cuda()
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be >= 1, got {limit}")
    return config


def _check_engine_runs_on(scheduler: str, engine: str) -> None:
    """Refuse dask's worker processes for an engine that cannot run in them (a GPU's)."""
    if scheduler == "processes" and not get_engine(engine).processes:
        raise ConfigError(
            f"the {engine} engine runs as threads of one process per GPU: use --scheduler "
            "threads (one GPU) or --scheduler cuda (every GPU); dask's worker processes crash "
            "in CUDA"
        )


def _check_storage_options_apply(
    store_options: dict, out: StoreLocation, paths: list[str], manifest
) -> None:
    """Refuse storage options when neither the store, an input nor the manifest is a URL."""
    urls = [*paths, *metadata_files(manifest)]
    if store_options and out.is_local and not any(map(is_url, urls)):
        raise ConfigError(
            "--storage-option applies to URLs (s3://...), and neither the store nor any "
            "input is one; leave it out"
        )


def _start_counts(
    selected: SelectedInputs, starts: list[int], batch: int, *, fresh: bool
) -> tuple[int, int]:
    """``(total, already done)`` for ``on_start``: the images this run is about.

    What was failed as the store was made, outside any task, is not this run's.
    """
    paths, absent = selected.paths, selected.absent
    todo = sum(min(batch, len(paths) - start) for start in starts)
    scheduled = set(starts)
    skipped = sum(k // batch * batch not in scheduled for k in absent) if fresh else 0
    return len(paths) - skipped, len(paths) - skipped - todo


def _batch_graph(
    paths: list[str], starts: list[int], spec: BatchSpec, writer: StoreWriter, carried: UrlOptions
) -> dict:
    """One task per batch still to do, without dependencies: a plain dict dask runs as it is."""
    batch = spec.config.batch_size
    batch_task = functools.partial(process_batch, spec=spec, writer=writer)
    task = gate.gated(gate.BATCH_START, batch_task)  # a test can count and hold them
    return {("batch", s): (carried, task, paths[s : s + batch], s) for s in starts}


class _Recorder:
    """Takes each finished batch in this process: its absent images' errors, then its records.

    Attributes
    ----------
    processed : int
        Images read and analysed so far (a file that was not there is not counted).
    """

    def __init__(
        self,
        records: RecordWriter,
        absent: dict[int, str],
        out: StoreLocation,
        on_batch: Callable[[BatchRecord], None] | None,
    ):
        self.records, self.absent, self.out, self.on_batch = records, absent, out, on_batch
        self.processed = 0

    def __call__(self, record: BatchRecord) -> None:
        for k in range(record.size):  # a batch holding present images read the absent too
            if record.start + k in self.absent:
                record.error[k] = self.absent[record.start + k]
        not_read = (FILE_NOT_FOUND, NOT_IN_INPUTS, NOT_IN_ANY_INPUT)
        self.processed += sum(error not in not_read for error in record.error)
        with reaching(self.out):
            self.records.add(record)
        gate.checkpoint(gate.BATCH_RECORDED)
        if self.on_batch is not None:
            self.on_batch(record)


def _finish(
    group: zarr.Group,
    out: StoreLocation,
    spec: BatchSpec,
    run_metadata: RunMetadata,
    *,
    processed: int,
    started: str,
    began: float,
    details: dict,
) -> RunSummary:
    """The end of the run: the QC of the whole run, the summary, and this run's record.

    ``details`` (scheduler, decoder, address, workers) go into the record as they are.
    """
    finishing = time.perf_counter()  # the end-of-run phase: what sees the whole run
    if spec.qc is not None:
        finish_qc(group, spec.qc)  # the groups and outlier scores of the whole run
    elapsed = time.perf_counter() - began
    summary = _summarise(group, out, processed, elapsed)
    run_metadata.with_run(
        {
            "started": started,
            "finished": utc_now(),
            "processed": processed,
            "elapsed_s": round(elapsed, 3),
            "end_of_run_s": round(time.perf_counter() - finishing, 3),
            **details,
            "ok": summary.ok,
            "failed": summary.failed,
        }
    ).write(group)
    return summary


def _summarise(group: zarr.Group, out: StoreLocation, processed: int, elapsed: float) -> RunSummary:
    counts = read_status_summary(group)
    manifest = RunMetadata.from_group(group).manifest or {}
    return RunSummary(
        store=str(out),
        total=counts["total"],
        ok=counts["ok"],
        failed=counts["failed"],
        pending=counts["pending"],
        processed=processed,
        elapsed_s=elapsed,
        failures=[(f["path"], f["error"]) for f in counts["failures"]],
        manifest_missing=manifest.get("missing", 0),
    )


def run(
    inputs: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    config: Config | str | os.PathLike | dict | None = None,
    compat: str | None = None,
    engine: str = "auto",
    decoder: str = "cpu",
    scheduler: str = "threads",
    address: str | Client | None = None,
    cluster: JobQueue | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    manifest: str | os.PathLike | list[str | os.PathLike] | None = None,
    overwrite: bool = False,
    retry_failed: bool = False,
    storage_options: dict | list[str] | None = None,
    input_options: dict | list[str] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_batch: Callable[[BatchRecord], None] | None = None,
) -> RunSummary:
    """Process PNG inputs into a zarr store, or resume an unfinished store.

    Parameters
    ----------
    inputs : list of str or path-like
        Directories, globs, ``.txt`` lists or files (see
        :func:`xray_scale.io.sources.discover_inputs`).
    out : path-like or str
        The ``.zarr`` store. If it exists and was made by the same inputs
        and configuration, the run resumes: only batches still holding a
        ``pending`` image are processed (and, with ``retry_failed``, those
        holding a ``failed`` one).
        It may be a URL (``s3://bucket/cxr.zarr``, any fsspec URL): see
        :mod:`xray_scale.store.location` for where credentials come from.
    config : Config, path, dict or None
        The configuration (None: the tutorial's bank).
    compat : {None, "tutorial"}
        ``"tutorial"`` stores the tutorial's arrays bit for bit.
    engine : {"auto", "scipy", "opencv", "cupy"}
        Filter implementation (:mod:`xray_scale.engines`); ``auto`` picks the
        fastest one installed. The engine used is recorded in the store.
    decoder : {"cpu", "gpu", "auto"}
        Where the PNGs are decoded. ``gpu`` (the cupy engine only, with CuPy
        and nvCOMP): on the GPU (:mod:`xray_scale.io.formats.png_gpu`), each batch
        staying there for the filters; same statuses, messages and pixels as
        the CPU decoder. ``auto``: ``gpu`` where it can run, else ``cpu``.
        Each run's decoder is recorded in the store's ``runs`` entries.
    scheduler : {"threads", "processes", "distributed", "cuda"}
        Local dask scheduler; ``distributed`` starts a LocalCluster of
        ``workers`` single-threaded worker processes; ``cuda`` starts
        dask-cuda's LocalCUDACluster, one worker per GPU (``workers`` of them,
        default every GPU), each with its share of the CPU cores as threads
        (the ``gpu`` extra).
    address : str or distributed.Client, optional
        ``tcp://host:port`` of a running dask.distributed scheduler, or a
        client connected to one (a Dask Gateway cluster's
        ``cluster.get_client()``, which carries the gateway's TLS; the run
        uses it and leaves it open); inputs and a store that are files must be
        at the same paths on every worker (URLs are opened by each worker
        itself, with the run's options).
    cluster : JobQueue, optional
        Run the batches on dask workers in HPC batch jobs (SLURM, PBS, SGE,
        LSF: :mod:`xray_scale.runner.jobqueue`); jobs that end mid-run are
        replaced, and every job is cancelled at the end, also on Ctrl-C.
    workers : int, optional
        Threads, processes or LocalCluster workers (default: the number of
        CPUs); ignored with ``address``.
    batch_size : int, optional
        Overrides ``run.batch_size`` of the config.
    limit : int, optional
        Process only the first ``limit`` inputs of the sorted list.
    manifest : path or list of paths, optional
        A ``Data_Entry_2017.csv``: only the images it lists are processed,
        its metadata goes into ``index/*``, and listed images missing from
        the inputs are recorded as failed when the store is made
        (:data:`xray_scale.io.sources.manifest.NOT_IN_INPUTS`): no task reads them and
        no shard is written for a batch of them only. Or a dataset's metadata
        files, which select nothing (:mod:`xray_scale.io.sources.datasets`).
    overwrite : bool
        Replace an existing store instead of resuming it (only a store written
        by xray-scale is ever deleted).
    retry_failed : bool
        When resuming, also process again every batch holding a ``failed``
        image (a file since repaired, a batch the GPU ran out of memory on).
    storage_options : dict or list of str, optional
        fsspec options (``endpoint_url``, ``key``, ``secret``, ``anon``...),
        or ``KEY=VALUE`` strings, of every URL the run opens: the store, and
        the inputs, lists and manifest unless ``input_options`` is given;
        on the workers too (they travel with the tasks). Never written into
        the store, a log or a message. An S3 client gives up on an endpoint
        that does not answer within :data:`xray_scale.io.sources.urls.S3_CLIENT_CONFIG`.
    input_options : dict or list of str, optional
        The inputs' own options, instead of ``storage_options``, for inputs
        on another endpoint or with other credentials than the store.
    on_start : callable, optional
        Called once as ``on_start(total_images, already_done)``.
    on_batch : callable, optional
        Called with each finished batch's :class:`xray_scale.records.BatchRecord`.

    Returns
    -------
    RunSummary

    Raises
    ------
    InputError, ConfigError, EngineError, StoreError
        Before any work, for unusable inputs, configuration, engine or store.
    UnreachableError
        (an ``OSError``) If the endpoint of URL inputs or of a URL store goes
        away during the run: unfinished batches stay ``pending``, and the
        same call resumes.
    """
    config = _checked_options(
        config, batch_size=batch_size, scheduler=scheduler, workers=workers, limit=limit
    )
    check_compat(compat)
    engine = resolve_engine(engine)
    decoder = resolve_decoder(decoder, engine, compat=compat)
    _check_engine_runs_on(scheduler, engine)
    if cluster is not None:  # recorded as the run's scheduler
        scheduler = require_job_queue(cluster, address=address)
    store_options = parse_storage_options(storage_options)
    inputs_options = parse_storage_options(input_options or store_options)
    with url_options(inputs_options):
        selected = select_inputs(inputs, manifest=manifest, limit=limit)
        out = store_location(out, store_options)
        _check_storage_options_apply(store_options, out, selected.paths, manifest)
        if overwrite and out.is_local:
            check_no_input_inside(out.path, selected.paths)
        prepared = prepare_store(
            out,
            selected,
            config=config,
            compat=compat,
            engine=engine,
            decoder=decoder,
            inputs=inputs,
            overwrite=overwrite,
        )
        group, spec = prepared.group, prepared.spec
        run_metadata = RunMetadata.from_group(group)
        starts = pending_batches(group, retry_failed=retry_failed)
        if on_start:
            on_start(*_start_counts(selected, starts, config.batch_size, fresh=prepared.created))
        carried = UrlOptions(json.dumps(inputs_options, sort_keys=True))  # to each worker
        writer = StoreWriter(out.url if out.is_local else out, run_metadata.fingerprint)
        graph = _batch_graph(selected.paths, starts, spec, writer, carried)
        # with the gate on, a test waits for statuses in the store: none waits in memory
        records = RecordWriter(group, interval_s=0.0) if gate.enabled() else RecordWriter(group)
        recorder = _Recorder(records, selected.absent, out, on_batch)
        started = utc_now()
        with reaching(out):  # the store's endpoint gone away: an error naming it, exit 3
            began = execute(
                graph,
                recorder,
                records,
                scheduler=scheduler,
                address=address,
                cluster=cluster,
                workers=workers,
                engine=engine,
                out=out,
                paths=selected.paths,
                carried=carried,
            )
            gate.checkpoint(gate.END_OF_RUN)
            return _finish(
                group,
                out,
                spec,
                run_metadata,
                processed=recorder.processed,
                started=started,
                began=began,
                details={
                    "scheduler": "distributed" if address is not None else scheduler,
                    "decoder": decoder,
                    "address": scheduler_address(address),
                    "workers": workers or os.cpu_count(),
                },
            )
