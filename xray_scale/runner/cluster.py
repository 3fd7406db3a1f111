"""Running batch tasks on dask.distributed: a running scheduler or a local (CUDA) cluster.

Each batch task writes its own shards and statuses, so a task that distributed
retries after a worker died rewrites exactly what it wrote before: nothing is
lost or duplicated. The store and the inputs must be on storage every worker
sees; :func:`check_workers_see` verifies that before any work.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import ConfigError, StoreError
from ..io.sources.urls import UrlOptions, is_url, redact, url_filesystem
from ..store.location import StoreLocation, describe_failure
from .jobqueue import JobQueue, job_queue_client
from .schedulers import SCHEDULERS

__all__ = [
    "SCHEDULERS",
    "check_workers_see",
    "compute_on_cluster",
    "connect",
    "prepare_workers",
    "require_dask_cuda",
    "scheduler_address",
    "spot_checks",
    "worker_modules",
]


def require_dask_cuda() -> None:
    """Raise ConfigError, saying what to install, unless dask-cuda imports."""
    try:
        import dask_cuda  # noqa: F401
    except ImportError as error:
        raise ConfigError(
            f"the cuda scheduler needs dask-cuda ({error}): pip install 'xray-scale[gpu]'"
        ) from None


def _local_cuda_cluster(workers: int | None):
    """dask-cuda's LocalCUDACluster: one worker process per GPU, the CPU cores shared out.

    Each worker sees one GPU (dask-cuda sets ``CUDA_VISIBLE_DEVICES``) and runs as
    many threads as it has CPU cores of its own, to decode PNGs for its GPU.
    """
    require_dask_cuda()
    from dask_cuda import LocalCUDACluster
    from dask_cuda.utils import get_n_gpus

    gpus = workers or get_n_gpus()
    return LocalCUDACluster(
        n_workers=gpus,
        threads_per_worker=max(1, (os.cpu_count() or 1) // gpus),
        **_LOCAL_CLUSTER,
    )


_LOCAL_CLUSTER = {"dashboard_address": None, "scheduler_kwargs": {"dashboard_address": ":0"}}
"""No dashboard, and the scheduler's HTTP endpoint on a free port: on 8787, taken by
another dask on the machine, distributed warns on the terminal."""

_LOCAL_WORKER_CONFIG = {"distributed.worker.profile.enabled": False}
"""Dask settings of the workers of a local cluster. The statistical profiler samples
every thread's stack every 10 ms: measured 13 % of the workers' CPU time in a run."""


def worker_modules(engine: str) -> tuple[str, ...]:
    """The modules a worker imports before its first batch task: the batch code and the engine's."""
    from ..engines.registry import engine_module

    return ("xray_scale.runner.task", engine_module(engine))


_FORKED_WORKERS = {"distributed.worker.multiprocessing-method": "forkserver"}
"""Start a LocalCluster's workers as forks of one server process (see :func:`_preload`)."""


def _preload(modules: tuple[str, ...]) -> None:
    """Have the fork server import the batch code and ``modules`` once, before its first fork.

    distributed spawns each worker as a fresh interpreter that imports dask,
    distributed, NumPy, SciPy, zarr and the engine on its own: seconds per
    worker, all of them at once on the same cores. With the ``forkserver``
    method (:data:`_FORKED_WORKERS`, set while this is called), one server
    process imports them once and every worker is a fork of it, ready at
    birth (measured on 2 cores: start-up and preparation of 2 workers
    3.8-6.4 s against 5.1-8.0 s spawned). The server lives as long as this
    process and keeps what it imported first.
    """
    import distributed.utils

    context = distributed.utils.get_mp_context()  # sets distributed's own list, once
    context.set_forkserver_preload(
        list(dict.fromkeys(["distributed", "xray_scale.runner.task", *modules]))
    )


@contextmanager
def connect(
    address,
    *,
    workers: int | None,
    cuda: bool = False,
    preload: tuple[str, ...] = (),
    job_queue: JobQueue | None = None,
) -> Iterator:
    """A ``distributed.Client``: to ``address``, to batch jobs, or to a new local cluster.

    Parameters
    ----------
    address : str, distributed.Client or None
        ``tcp://host:port`` of a running scheduler; a client the caller made
        (a Dask Gateway cluster's ``cluster.get_client()``, with its TLS),
        used as it is and left open; or None to start a LocalCluster of
        ``workers`` single-threaded worker processes.
    workers : int or None
        Workers of the local cluster (default: the number of CPUs; with
        ``cuda``, the number of GPUs).
    cuda : bool
        Start dask-cuda's LocalCUDACluster instead of a LocalCluster: one
        worker per GPU, each with its share of the CPU cores as threads.
    preload : tuple of str
        Modules the workers of a LocalCluster start with, imported once and
        forked (:func:`worker_modules`); nothing for a running scheduler's.
    job_queue : JobQueue, optional
        Run the workers as jobs of an HPC batch queue instead
        (:func:`xray_scale.runner.jobqueue.job_queue_client`): all cancelled at the end.

    Raises
    ------
    StoreError
        If the scheduler cannot be reached (the message names the address).
    ConfigError
        If ``cuda`` is asked for and dask-cuda is not installed, or the job
        queue cannot be used (:func:`xray_scale.runner.jobqueue.require_job_queue`).
    """
    import dask
    from distributed import Client, LocalCluster

    if job_queue is not None:
        with job_queue_client(job_queue) as client:
            yield client
        return
    if address is None and cuda:
        with (
            dask.config.set(_LOCAL_WORKER_CONFIG),
            _local_cuda_cluster(workers) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    if address is None:
        with dask.config.set({**_LOCAL_WORKER_CONFIG, **_FORKED_WORKERS}):
            _preload(preload)
            with (
                LocalCluster(
                    n_workers=workers or os.cpu_count(),
                    threads_per_worker=1,
                    processes=True,
                    **_LOCAL_CLUSTER,
                ) as cluster,
                Client(cluster) as client,
            ):
                yield client
        return
    if isinstance(address, Client):  # the caller's: theirs to close
        yield address
        return
    try:
        client = Client(address, timeout="10s")
    except OSError as error:
        raise StoreError(
            f"cannot reach the dask scheduler at {address}: {error}; start one with "
            "'dask scheduler' and pass its address"
        ) from None
    with client:
        yield client


def scheduler_address(address) -> str | None:
    """The address a run records: ``address`` itself, or the scheduler's of a client or cluster."""
    if address is None or isinstance(address, str):
        return address
    return getattr(address, "scheduler_address", None) or address.scheduler.address


def prepare_workers(
    client, *, engine: str, local: bool, indexes: dict[str, bytes] | None = None
) -> None:
    """Make every worker, present or joining later, ready for batch tasks before any is sent.

    Each imports the batch code and loads ``engine`` (seconds of imports that
    would otherwise fall into the first task of each worker). The workers of a
    local cluster also get the allocator policy of the ``xray-scale``
    executable (:func:`xray_scale.allocator.tune_malloc`): distributed starts
    them with ``MALLOC_TRIM_THRESHOLD_`` set, which turns off glibc's adaptive
    mmap threshold, so every image-sized buffer was a fresh ``mmap`` to fault in
    (measured: 5.9 million page faults and 22 s of kernel time for 624 images,
    1.4 s with the policy; the run at 0.5-0.7 of the threaded rate before).

    Parameters
    ----------
    client : distributed.Client
    engine : str
        The run's concrete engine.
    local : bool
        Whether the cluster is one this run started (its workers are ours to tune).
    indexes : dict, optional
        The saved indexes of the run's archives at URLs
        (:func:`xray_scale.io.sources.archive_index.portable_indexes`): each worker
        keeps them, so that none reads a whole archive to index it again.
    """
    client.register_worker_callbacks(
        setup=functools.partial(
            _prepare_worker, engine=engine, tune_allocator=local, indexes=indexes or {}
        )
    )


def _prepare_worker(*, engine: str, tune_allocator: bool, indexes: dict[str, bytes]) -> None:
    """On a worker: the allocator policy, the archive indexes, then the imports."""
    if tune_allocator:
        from ..allocator import tune_malloc

        tune_malloc()
    from ..io.sources.archives import adopt_indexes

    adopt_indexes(indexes)
    from ..engines.registry import get_engine
    from . import task  # noqa: F401  the batch code, imported before the first task

    get_engine(engine)


def _url_problem(url: str) -> str | None:
    """On a worker: why it cannot read the object at ``url`` (None if it can)."""
    try:
        filesystem, path = url_filesystem(url)
        if not filesystem.exists(path):
            return "does not exist"
    except Exception as error:  # each client has its own errors: say why, not how
        return f"cannot be read ({describe_failure(error)})"
    return None


def _visibility(paths: list[str], options: UrlOptions) -> dict[str, str]:
    """On a worker: which of ``paths`` (files or URLs, opened with ``options``) it cannot see."""
    return options(_problems, paths)


def _problems(paths: list[str]) -> dict[str, str]:
    problems = {}
    for path in paths:
        if is_url(path):
            problem = _url_problem(path)
            if problem is not None:
                problems[redact(path)] = problem
        elif not os.path.exists(path):
            problems[path] = "does not exist"
        elif not os.access(path, os.R_OK):
            problems[path] = "is not readable"
    return problems


def _store_problem(store: StoreLocation) -> str | None:
    """On a worker: why it cannot write into ``store`` (None if it can)."""
    from ..store.access import open_store

    if store.is_local:
        if not os.path.exists(store.url):
            return "does not exist"
        return None if os.access(store.url, os.W_OK) else "is not writable"
    try:
        open_store(store, mode="r+")
    except StoreError as error:
        return str(error)
    return None


def spot_checks(paths: list[str]) -> list[str]:
    """A few input files to check on every worker: first, middle and last (an archive for a member).

    Phantoms and name-list entries no input holds are not files: not checked.
    """
    from ..io.sources.archives import source_file
    from ..io.sources.discover import parse_synthetic
    from ..io.sources.namelists import is_absent

    picked = (paths[0], paths[len(paths) // 2], paths[-1])
    files = [source_file(p) for p in picked if parse_synthetic(p) is None and not is_absent(p)]
    return sorted(set(files))


def check_workers_see(
    client, *, store: StoreLocation, inputs: list[str], options: UrlOptions | None = None
) -> None:
    """Check every worker can read ``inputs`` (with ``options``) and write into ``store``.

    Raises
    ------
    StoreError
        Naming the worker and the path or URL it cannot use.
    """
    answers = client.run(_visibility, inputs, options or UrlOptions())
    if not answers:
        raise StoreError("the dask cluster has no workers; start some with 'dask worker ADDRESS'")
    store_problems = client.run(_store_problem, store)
    for worker, problem in store_problems.items():
        if problem is not None and store.is_local:
            raise StoreError(
                f"worker {worker}: the store {store} {problem}; the store must be on storage "
                "that every worker sees (a shared file system), at the same path"
            )
        if problem is not None:
            raise StoreError(f"worker {worker} cannot write into the store: {problem}")
    for worker, problems in answers.items():
        for path, problem in problems.items():
            where = (
                "a URL every worker can read (its credentials and endpoint in --storage-option, "
                "or in the worker's environment or config files)"
                if is_url(path)
                else "storage that every worker sees (a shared file system), at the same path"
            )
            raise StoreError(f"worker {worker}: {path} {problem}; inputs must be on {where}")


def compute_on_cluster(client, graph: dict, on_result: Callable) -> None:
    """Compute a graph of independent tasks on the cluster, handing each result on as it arrives."""
    from distributed import as_completed

    completed = as_completed(client.get(graph, list(graph), sync=False))
    for future in completed:
        on_result(future.result())
        future.release()  # the workers may drop the result: nothing holds all of them
