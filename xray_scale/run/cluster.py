"""Running batch tasks on dask.distributed: a running scheduler or a local (CUDA) cluster.

Each batch task writes its own shards and statuses, so a task that distributed
retries after a worker died rewrites exactly what it wrote before: nothing is
lost or duplicated. The store and the inputs must be on storage every worker
sees; :func:`check_workers_see` verifies that before any work.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import ConfigError, StoreError

__all__ = ["check_workers_see", "compute_on_cluster", "connect", "require_dask_cuda"]


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
        dashboard_address=None,
    )


@contextmanager
def connect(address: str | None, *, workers: int | None, cuda: bool = False) -> Iterator:
    """A ``distributed.Client``: to ``address``, or to a new local cluster.

    Parameters
    ----------
    address : str or None
        ``tcp://host:port`` of a running scheduler, or None to start a
        LocalCluster of ``workers`` single-threaded worker processes.
    workers : int or None
        Workers of the local cluster (default: the number of CPUs; with
        ``cuda``, the number of GPUs).
    cuda : bool
        Start dask-cuda's LocalCUDACluster instead of a LocalCluster: one
        worker per GPU, each with its share of the CPU cores as threads.

    Raises
    ------
    StoreError
        If the scheduler cannot be reached (the message names the address).
    ConfigError
        If ``cuda`` is asked for and dask-cuda is not installed.
    """
    from distributed import Client, LocalCluster

    if address is None and cuda:
        with _local_cuda_cluster(workers) as cluster, Client(cluster) as client:
            yield client
        return
    if address is None:
        with (
            LocalCluster(
                n_workers=workers or os.cpu_count(),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
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


def _visibility(paths: list[str]) -> dict[str, str]:
    """On a worker: which of ``paths`` it cannot see, and why."""
    problems = {}
    for path in paths:
        if not os.path.exists(path):
            problems[path] = "does not exist"
        elif not os.access(path, os.R_OK):
            problems[path] = "is not readable"
    return problems


def check_workers_see(client, *, store: str, inputs: list[str]) -> None:
    """Check every worker can read ``inputs`` and write into ``store``.

    Raises
    ------
    StoreError
        Naming the worker and the path it cannot use.
    """
    answers = client.run(_visibility, [store, *inputs])
    if not answers:
        raise StoreError("the dask cluster has no workers; start some with 'dask worker ADDRESS'")
    writable = client.run(os.access, store, os.W_OK)
    for worker, problems in answers.items():
        for path, problem in problems.items():
            raise StoreError(
                f"worker {worker}: {path} {problem}; inputs and store must be on storage "
                "that every worker sees (a shared file system), at the same path"
            )
        if not writable[worker]:
            raise StoreError(f"worker {worker} cannot write into the store {store}")


def compute_on_cluster(client, graph: dict, on_result: Callable) -> None:
    """Compute a graph of independent tasks on the cluster, handing each result on as it arrives."""
    from distributed import as_completed

    completed = as_completed(client.get(graph, list(graph), sync=False))
    for future in completed:
        on_result(future.result())
        future.release()  # the workers may drop the result: nothing holds all of them
