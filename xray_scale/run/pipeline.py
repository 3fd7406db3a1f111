"""The run: inputs to a complete store, one fused dask task per batch.

Each task (:func:`xray_scale.analysis.batch.process_batch`) decodes its K files once,
computes every filter, mask and statistic image by image, writes its own shard
of every full-resolution array (and its chunk of ``previews``), and returns
the batch's small per-image records (statistics, histogram, status,
error). The process that runs the pipeline is the only writer of those
records (:class:`xray_scale.store.access.RecordWriter`), statuses last. Nothing
larger than one batch is held per worker, and a batch is the unit of resume:
re-running the same command on the same store redoes only the batches that
still hold a ``pending`` image.

The graph is a plain dict, one task per batch and no dependencies (14,015 for
the full dump, built in well under a second), handed to a local scheduler a few
hundred at a time (:data:`BATCHES_PER_CALL`) or to a cluster (:mod:`.cluster`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dask.multiprocessing
import dask.threaded
import numpy as np
import zarr
from dask.callbacks import Callback

from .. import __version__
from ..analysis.batch import StoreWriter, process_batch
from ..analysis.maps import check_compat
from ..analysis.records import BatchRecord, BatchSpec
from ..config import Config, load_config
from ..engines.registry import get_engine, resolve_decoder, resolve_engine
from ..errors import ConfigError, DecodeError, InputError, StoreError, StoreUnreachableError
from ..io.archive_index import portable_indexes
from ..io.archives import file_name, source_file
from ..io.decode import FILE_NOT_FOUND, check_supported, read_png_header
from ..io.manifest import (
    NOT_IN_INPUTS,
    Manifest,
    manifest_columns,
    read_manifest,
    select_with_manifest,
)
from ..io.namelists import NOT_IN_INPUTS as NOT_IN_ANY_INPUT
from ..io.namelists import is_absent
from ..io.sources import SYNTHETIC_PREFIX, discover_inputs, parse_synthetic
from ..io.urls import UrlOptions, is_url, redact, url_options
from ..store.access import (
    RecordWriter,
    open_store,
    pending_batches,
    read_status_summary,
    store_exists,
)
from ..store.create import create_store
from ..store.encoding import read_index
from ..store.location import StoreLocation, parse_storage_options, reaching, store_location
from ..store.metadata import RunMetadata, compared_configs, run_fingerprint, utc_now
from ..store.qc import finish_qc, stored_qc
from . import gate
from .cluster import (
    SCHEDULERS,
    check_workers_see,
    compute_on_cluster,
    connect,
    prepare_workers,
    require_dask_cuda,
    spot_checks,
    worker_modules,
)
from .jobqueue import JobQueue, require_job_queue

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


PROBED_HEADERS = 64
"""Headers read to choose a run's size and bit depth when the config does not set them."""


def _probe_image_format(paths: list[str], config: Config) -> tuple[tuple[int, int], int]:
    """The run's (height, width) and bit depth: from config, else the inputs' most common.

    The most common among the first :data:`PROBED_HEADERS` usable headers (read
    in input order until there are that many), so that one odd file sorted first
    (another size, 16-bit colour) fails alone instead of setting the format every
    other image is measured against.
    """
    size, bit_depth = config.size, config.bit_depth
    if size is not None and bit_depth is not None:
        return size, bit_depth
    sizes: Counter = Counter()
    depths: Counter = Counter()
    first_error = ""
    for path in paths:
        if sizes.total() == PROBED_HEADERS:
            break
        try:
            header = read_png_header(path)
            check_supported(header, max_pixels=config.max_pixels)
        except DecodeError as error:
            first_error = first_error or f"{path}: {error}"
            continue
        sizes[header.height, header.width] += 1
        depths[16 if header.bit_depth == 16 else 8] += 1
    if not sizes:
        raise InputError(
            f"none of the {len(paths)} inputs has a usable PNG header "
            f"(first problem: {first_error}); set input.size and input.bit_depth in the config "
            "to record them all as failed"
        )
    return size or sizes.most_common(1)[0][0], bit_depth or depths.most_common(1)[0][0]


def _stored_format(group: zarr.Group, config: Config) -> tuple[tuple[int, int], int]:
    """The size and bit depth of the store a run resumes (config values first)."""
    stored = RunMetadata.from_group(group)
    return tuple(config.size or stored.shape), config.bit_depth or stored.bit_depth


def _check_no_input_inside(out: Path, paths: list[str]) -> None:
    """Refuse an ``--overwrite`` that would delete some of the run's own inputs."""
    if not out.is_dir():
        return
    inside = os.path.realpath(out) + os.sep
    for path in paths:
        if is_url(path) or parse_synthetic(path) is not None:
            continue
        if os.path.realpath(source_file(path)).startswith(inside):
            raise StoreError(
                f"--overwrite would delete inputs inside {out} (first: {path}); "
                "move them out of it, or choose another --out"
            )


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


def _compute_locally(
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


def _describe_input(item: str | os.PathLike) -> str:
    """An input argument as recorded in the store: absolute, unless a phantom source or a URL.

    A URL is recorded without any ``user:password@`` part.
    """
    text = os.fspath(item)
    if is_url(text):
        return redact(text)
    return text if text.startswith(SYNTHETIC_PREFIX) else os.path.abspath(text)


def _differences(group: zarr.Group, paths: list[str], spec: BatchSpec) -> list[str]:
    """What differs between the run a store holds and this one, as short phrases."""
    stored = RunMetadata.from_group(group)
    found = []
    stored_paths = group["index/path"]
    if stored_paths.shape[0] != len(paths):
        found.append(f"{stored_paths.shape[0]} inputs in the store, {len(paths)} now")
    else:
        changed = np.flatnonzero(read_index(group, "path") != np.array(paths, dtype=object))
        if changed.size:
            found.append(f"{changed.size} other input paths, the first {paths[changed[0]]}")
    for name, now in (
        ("engine", spec.engine),
        ("compat", spec.compat),
        ("image_shape", list(spec.shape)),
        ("pixel_dtype", spec.pixel_dtype),
    ):
        if getattr(stored, name) != now:
            found.append(f"{name} {getattr(stored, name)} in the store, {now} now")
    stored, current = compared_configs(stored.config or {}, spec)
    stored, current = _flatten(stored), _flatten(json.loads(json.dumps(current)))  # JSON: lists
    for key in sorted(stored.keys() | current.keys()):
        if stored.get(key) != current.get(key):
            found.append(f"config {key} {stored.get(key)!r} in the store, {current.get(key)!r} now")
    return found


def _flatten(table: dict, prefix: str = "") -> dict:
    """``{"store": {"compressor": "zstd"}}`` -> ``{"store.compressor": "zstd"}``."""
    flat = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _absent(paths: list[str], missing: list[str]) -> dict[int, str]:
    """``{index: error}`` of the images known not to exist before any is read.

    A manifest's images that the inputs lack (named in ``missing``), and a
    name list's names that no input holds (``LIST::NAME`` paths).
    """
    names = set(missing)
    absent = {}
    for k, path in enumerate(paths):
        if is_absent(path):
            absent[k] = NOT_IN_ANY_INPUT
        elif names and file_name(path) in names:
            absent[k] = NOT_IN_INPUTS
    return absent


def _open_or_create(
    out: StoreLocation,
    *,
    paths: list[str],
    spec: BatchSpec,
    bit_depth: int,
    inputs: list[str],
    manifest: Manifest | None,
    missing: list[str],
    absent: dict[int, str],
    existing: zarr.Group | None,
    overwrite: bool,
) -> zarr.Group:
    """``existing`` if it holds this very run (else StoreError), or a new store at ``out``."""
    manifest_digest = manifest.digest if manifest else None
    fingerprint = run_fingerprint(paths, spec, bit_depth=bit_depth, manifest_digest=manifest_digest)
    if existing is not None:
        if RunMetadata.from_group(existing).fingerprint != fingerprint:
            differences = "; ".join(_differences(existing, paths, spec)) or (
                "the store layout of another xray-scale version, or another manifest"
            )
            raise StoreError(
                f"{out} holds a run with other inputs, another config or another store "
                f"layout ({differences}); pass --overwrite to replace it, or choose another --out"
            )
        return existing
    run_metadata = RunMetadata.for_run(
        spec,
        version=__version__,
        fingerprint=fingerprint,
        inputs=inputs,
        manifest={
            "path": manifest.path,
            "listed": len(manifest.rows),
            "missing": len(missing),
            "missing_examples": missing[:20],
        }
        if manifest
        else None,
    )
    return create_store(
        out,
        paths=paths,
        config=spec.config,
        metadata=run_metadata,
        columns=manifest_columns(manifest, paths) if manifest else None,
        failed=absent,
        overwrite=overwrite,
        qc=spec.qc is not None,
        **spec.store_layout(),
    )


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
    address: str | None = None,
    cluster: JobQueue | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    manifest: str | os.PathLike | None = None,
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
        and nvCOMP): on the GPU (:mod:`xray_scale.io.gpu_png`), each batch
        staying there for the filters; same statuses, messages and pixels as
        the CPU decoder. ``auto``: ``gpu`` where it can run, else ``cpu``.
        Each run's decoder is recorded in the store's ``runs`` entries.
    scheduler : {"threads", "processes", "distributed", "cuda"}
        Local dask scheduler; ``distributed`` starts a LocalCluster of
        ``workers`` single-threaded worker processes; ``cuda`` starts
        dask-cuda's LocalCUDACluster, one worker per GPU (``workers`` of them,
        default every GPU), each with its share of the CPU cores as threads
        (the ``gpu`` extra).
    address : str, optional
        ``tcp://host:port`` of a running dask.distributed scheduler; inputs
        and a store that are files must be at the same paths on every worker
        (URLs are opened by each worker itself, with the run's options).
    cluster : JobQueue, optional
        Workers in SLURM, PBS, SGE or LSF jobs (:mod:`xray_scale.run.jobqueue`).
    workers : int, optional
        Threads, processes or LocalCluster workers (default: the number of
        CPUs); ignored with ``address``.
    batch_size : int, optional
        Overrides ``run.batch_size`` of the config.
    limit : int, optional
        Process only the first ``limit`` inputs of the sorted list.
    manifest : path, optional
        A ``Data_Entry_2017.csv``: only the images it lists are processed,
        its metadata goes into ``index/*``, and listed images missing from
        the inputs are recorded as failed when the store is made
        (:data:`xray_scale.io.manifest.NOT_IN_INPUTS`): no task reads them and
        no shard is written for a batch of them only.
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
        that does not answer within :data:`xray_scale.io.urls.S3_CLIENT_CONFIG`.
    input_options : dict or list of str, optional
        The inputs' own options, instead of ``storage_options``, for inputs
        on another endpoint or with other credentials than the store.
    on_start : callable, optional
        Called once as ``on_start(total_images, already_done)``.
    on_batch : callable, optional
        Called with each finished batch's :class:`xray_scale.analysis.records.BatchRecord`.

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
    if cluster is not None:  # recorded as the run's scheduler
        scheduler = require_job_queue(cluster, address=address)
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be >= 1, got {limit}")
    check_compat(compat)
    engine = resolve_engine(engine)
    decoder = resolve_decoder(decoder, engine, compat=compat)
    if scheduler == "processes" and not get_engine(engine).processes:
        raise ConfigError(
            f"the {engine} engine runs as threads of one process per GPU: use --scheduler "
            "threads (one GPU) or --scheduler cuda (every GPU); dask's worker processes crash "
            "in CUDA"
        )
    store_options = parse_storage_options(storage_options)
    inputs_options = parse_storage_options(input_options or store_options)
    with url_options(inputs_options):
        paths = discover_inputs(inputs)
        parsed_manifest, missing = None, []
        if manifest is not None:
            parsed_manifest = read_manifest(manifest)
            paths, missing = select_with_manifest(paths, parsed_manifest)
        paths = paths[:limit]
        absent = _absent(paths, missing)
        out = store_location(out, store_options)
        if store_options and out.is_local and not any(map(is_url, [*paths, str(manifest)])):
            raise ConfigError(
                "--storage-option applies to URLs (s3://...), and neither the store nor any "
                "input is one; leave it out"
            )
        if overwrite and out.is_local:
            _check_no_input_inside(out.path, paths)
        existing = None if overwrite or not store_exists(out) else open_store(out, mode="r+")
        if existing is None:
            present = [path for k, path in enumerate(paths) if k not in absent]
            shape, bit_depth = _probe_image_format(present, config)
        else:  # a resumed run keeps its store's format: repairing files must not change it
            shape, bit_depth = _stored_format(existing, config)
        spec = BatchSpec.for_run(
            config, shape=shape, bit_depth=bit_depth, compat=compat, engine=engine, decoder=decoder
        )
        if existing is not None:  # the QC its store keeps: none, or an older pixel hash
            spec = stored_qc(existing, spec)
        group = _open_or_create(
            out,
            paths=paths,
            spec=spec,
            bit_depth=bit_depth,
            inputs=[_describe_input(i) for i in inputs],
            manifest=parsed_manifest,
            missing=missing,
            absent=absent,
            existing=existing,
            overwrite=overwrite,
        )
        run_metadata = RunMetadata.from_group(group)
        starts = pending_batches(group, retry_failed=retry_failed)
        batch = config.batch_size
        todo = sum(min(batch, len(paths) - start) for start in starts)
        if on_start:  # what was failed as the store was made, outside any task, is not this run's
            scheduled = set(starts)
            fresh = existing is None
            skipped = sum(k // batch * batch not in scheduled for k in absent) if fresh else 0
            on_start(len(paths) - skipped, len(paths) - skipped - todo)
        writer = StoreWriter(out.url if out.is_local else out, run_metadata.fingerprint)
        batch_task = functools.partial(process_batch, spec=spec, writer=writer)
        task = gate.gated(gate.BATCH_START, batch_task)  # a test can count and hold them
        carried = UrlOptions(json.dumps(inputs_options, sort_keys=True))  # to each worker
        graph = {("batch", s): (carried, task, paths[s : s + batch], s) for s in starts}
        # with the gate on, a test waits for statuses in the store: none waits in memory
        records = RecordWriter(group, interval_s=0.0) if gate.enabled() else RecordWriter(group)
        processed = 0

        def on_record(record: BatchRecord) -> None:
            nonlocal processed
            for k in range(record.size):  # a batch holding present images read the absent too
                if record.start + k in absent:
                    record.error[k] = absent[record.start + k]
            not_read = (FILE_NOT_FOUND, NOT_IN_INPUTS, NOT_IN_ANY_INPUT)
            processed += sum(error not in not_read for error in record.error)
            with reaching(out):
                records.add(record)
            gate.checkpoint(gate.BATCH_RECORDED)
            if on_batch is not None:
                on_batch(record)

        started, began = utc_now(), time.perf_counter()
        with reaching(out):  # the store's endpoint gone away: an error naming it, exit 3
            store_gone = False
            try:
                if scheduler not in ("threads", "processes") or address:
                    options = {"cuda": scheduler == "cuda", "preload": worker_modules(engine)}
                    with connect(address, workers=workers, job_queue=cluster, **options) as client:
                        check_workers_see(
                            client, store=out, inputs=spot_checks(paths), options=carried
                        )
                        archives = {source_file(p) for p in paths if is_url(p)}
                        indexes = portable_indexes(sorted(archives))
                        local = address is None
                        prepare_workers(client, engine=engine, local=local, indexes=indexes)
                        began = time.perf_counter()
                        compute_on_cluster(client, graph, on_record)
                else:
                    _compute_locally(graph, scheduler, workers or os.cpu_count() or 1, on_record)
            except StoreUnreachableError:
                store_gone = True  # nothing can be written: the unwritten stay pending
                raise
            finally:
                if not store_gone:  # what finished is kept, also on Ctrl-C or a failing task
                    records.flush()
            gate.checkpoint(gate.END_OF_RUN)
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
                    "scheduler": "distributed" if address else scheduler,
                    "decoder": decoder,
                    "address": address,
                    "workers": workers or os.cpu_count(),
                    "ok": summary.ok,
                    "failed": summary.failed,
                }
            ).write(group)
        return summary
