"""dask.distributed: a real `dask scheduler` and two `dask worker` processes on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import signal
import sys
from pathlib import Path

import pytest
import zarr
from conftest import assert_stores_equal

import xray_scale
from xray_scale.errors import ConfigError, StoreError
from xray_scale.io.phantoms import write_phantoms
from xray_scale.runner import gate

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster_images(tmp_path) -> Path:
    folder = tmp_path / "images"
    write_phantoms(folder, patients=4, follow_ups=6, shape=(256, 256))
    return folder


@pytest.mark.cluster
def test_cluster_run_equals_a_threaded_run(dask_cluster, cluster_images, tmp_path):
    address, _ = dask_cluster
    threaded = xray_scale.run([cluster_images], tmp_path / "threads.zarr", batch_size=3, workers=2)
    on_cluster = xray_scale.run(
        [cluster_images], tmp_path / "cluster.zarr", batch_size=3, address=address
    )
    assert on_cluster.ok == threaded.ok == 24
    assert "qc/near_duplicate_group" in zarr.open_group(tmp_path / "cluster.zarr", mode="r")
    assert_stores_equal(tmp_path / "cluster.zarr", tmp_path / "threads.zarr")  # QC included


@pytest.mark.cluster
def test_a_client_of_the_callers_runs_the_batches_and_stays_open(
    dask_cluster, cluster_images, tmp_path
):
    from distributed import Client

    address, _ = dask_cluster
    threaded = xray_scale.run([cluster_images], tmp_path / "threads.zarr", batch_size=3, workers=2)
    with Client(address, timeout="60s") as client:  # as a Dask Gateway cluster's get_client()
        summary = xray_scale.run(
            [cluster_images], tmp_path / "client.zarr", batch_size=3, address=client
        )
        assert summary.ok == threaded.ok == 24
        assert client.status == "running"  # the caller's client: not closed by the run
        assert client.submit(sum, [1, 2]).result(timeout=60) == 3
    assert_stores_equal(tmp_path / "client.zarr", tmp_path / "threads.zarr")
    run_record = zarr.open_group(tmp_path / "client.zarr", mode="r").attrs["xray_scale"]["runs"][-1]
    assert run_record["scheduler"] == "distributed" and run_record["address"] == address


@pytest.mark.cluster
def test_a_worker_killed_in_the_middle_of_a_batch_loses_nothing(
    dask_cluster, cluster_images, tmp_path, gate_folder
):
    """Worker 0 is SIGKILLed while it runs a batch: that batch runs again on worker 1."""
    address, workers = dask_cluster
    clean = xray_scale.run([cluster_images], tmp_path / "clean.zarr", batch_size=2, workers=2)
    gate.hold(gate_folder, gate.BATCH_START, after=1)
    killed = []

    def kill_worker_0_in_its_batch(record):
        if killed:
            return
        # the first batch is done; each (one-thread) worker holds the next one it started
        owners = gate.wait_for(gate_folder, gate.BATCH_START, 3)
        assert sorted(owners[1:]) == sorted(worker.pid for worker in workers), owners
        workers[0].send_signal(signal.SIGKILL)
        killed.append(workers[0].wait(timeout=60))
        gate.release(gate_folder, gate.BATCH_START)

    summary = xray_scale.run(
        [cluster_images],
        tmp_path / "survivor.zarr",
        batch_size=2,
        address=address,
        on_batch=kill_worker_0_in_its_batch,
    )
    assert killed == [-signal.SIGKILL]
    assert len(gate.tickets(gate_folder, gate.BATCH_START)) > 12  # its batch started again
    assert summary.ok == clean.ok == 24 and summary.failed == 0
    assert_stores_equal(tmp_path / "survivor.zarr", tmp_path / "clean.zarr")


@pytest.mark.cluster
def test_the_local_distributed_scheduler_equals_threads(cluster_images, tmp_path):
    xray_scale.run([cluster_images], tmp_path / "threads.zarr", batch_size=4, workers=2, limit=8)
    xray_scale.run(
        [cluster_images],
        tmp_path / "local.zarr",
        batch_size=4,
        workers=2,
        limit=8,
        scheduler="distributed",
    )
    assert_stores_equal(tmp_path / "local.zarr", tmp_path / "threads.zarr")


@pytest.mark.cluster
def test_local_workers_are_ready_before_the_first_task():
    from xray_scale.runner.cluster import connect, prepare_workers, worker_modules

    def state():  # on the worker
        import resource

        import dask
        import numpy as np

        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(50):  # a batch-sized block, allocated, written and freed, as in a run
            np.ones((1024, 2048), np.float32)[::7] = 2
        return {
            "imported": "xray_scale.runner.task" in sys.modules,
            "profiler": dask.config.get("distributed.worker.profile.enabled"),
            "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before,
        }

    def preloaded():  # on the worker: what it was born with (a spawned one has none of ours)
        return "xray_scale.runner.task" in sys.modules

    with connect(None, workers=1, preload=worker_modules("opencv")) as client:
        assert list(client.run(preloaded).values()) == [True]
        prepare_workers(client, engine="opencv", local=True)
        (answer,) = client.run(state).values()
    assert answer["imported"] and answer["profiler"] is False
    # Reused from the heap: ~450 page faults in all. distributed's own setting
    # (MALLOC_TRIM_THRESHOLD_) made each a fresh mmap: measured 25,800 faults, every time.
    assert answer["faults"] < 5_000


def test_unreachable_scheduler_is_a_clear_error(cluster_images, tmp_path):
    with pytest.raises(StoreError, match="cannot reach the dask scheduler at tcp://127.0.0.1:9"):
        xray_scale.run([cluster_images], tmp_path / "x.zarr", address="tcp://127.0.0.1:9")


@pytest.mark.skipif(
    importlib.util.find_spec("dask_cuda") is not None, reason="dask-cuda is installed here"
)
def test_the_cuda_scheduler_without_dask_cuda_says_what_to_install(cluster_images, tmp_path):
    with pytest.raises(
        ConfigError, match=r"the cuda scheduler needs dask-cuda .*xray-scale\[gpu\]"
    ):
        xray_scale.run([cluster_images], tmp_path / "out.zarr", scheduler="cuda")
    assert not (tmp_path / "out.zarr").exists()  # refused before any work
