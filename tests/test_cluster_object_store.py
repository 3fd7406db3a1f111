"""A dask cluster with no shared disk: workers in empty folders, the store on S3 (moto)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import assert_stores_equal
from test_cluster import dask_command, stop_processes, wait_for
from test_object_store import s3, s3_server, url_store  # noqa: F401 - fixtures

import xray_scale
from xray_scale.errors import StoreError
from xray_scale.io.synth import write_phantoms
from xray_scale.store.encoding import read_index

pytestmark = pytest.mark.slow


@pytest.fixture
def bare_cluster(tmp_path, s3_server):  # noqa: F811 - the fixture imported above
    """A scheduler and two workers, each in an empty folder of its own, S3 settings in their env.

    The workers see nothing of the driver's files: their working folders are empty and
    elsewhere, and what they get is the graph (phantom inputs, the store's URL).
    """
    processes = []

    def start(arguments: list[str], name: str, env: dict) -> subprocess.Popen:
        folder = tmp_path / name
        folder.mkdir()
        log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [dask_command(), *arguments], stdout=log, stderr=log, cwd=folder, env=env
        )
        processes.append((process, log))
        return process

    scheduler_file = tmp_path / "scheduler.json"
    base = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    start(
        ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
        + ["--scheduler-file", str(scheduler_file)],
        "scheduler",
        base,
    )
    wait_for(scheduler_file.exists, "the scheduler file")
    address = json.loads(scheduler_file.read_text())["address"]
    with_s3 = {
        **base,
        "AWS_ENDPOINT_URL": s3_server["endpoint"],
        "AWS_ACCESS_KEY_ID": s3_server["key"],
        "AWS_SECRET_ACCESS_KEY": s3_server["secret"],
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    without_s3 = {**with_s3, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}

    def workers(broken: bool = False) -> None:
        for k in range(2):
            env = without_s3 if broken and k == 1 else with_s3
            start(
                ["worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"]
                + ["--host", "127.0.0.1", "--name", f"worker-{k}"],
                f"worker-{k}",
                env,
            )
        from distributed import Client

        with Client(address, timeout="20s") as client:
            wait_for(lambda: len(client.scheduler_info()["workers"]) == 2, "two workers")

    yield address, workers
    stop_processes(processes)


def test_workers_with_no_shared_disk_write_the_same_store(bare_cluster, s3, tmp_path):  # noqa: F811
    address, start_workers = bare_cluster
    start_workers()
    inputs = ["synth:18x64"]
    summary = xray_scale.run(inputs, "s3://cxr/cluster.zarr", batch_size=3, address=address)
    assert (summary.ok, summary.failed) == (18, 0)
    xray_scale.run(inputs, tmp_path / "threads.zarr", batch_size=3, workers=2)
    assert_stores_equal(url_store("s3://cxr/cluster.zarr"), tmp_path / "threads.zarr")
    assert sorted(p.name for p in (tmp_path / "worker-0").iterdir()) == []  # nothing written


def test_a_worker_that_cannot_reach_the_store_is_named_with_the_url(bare_cluster, s3):  # noqa: F811
    address, start_workers = bare_cluster
    start_workers(broken=True)
    with pytest.raises(StoreError) as caught:
        xray_scale.run(["synth:6x64"], "s3://cxr/unseen.zarr", batch_size=3, address=address)
    message = str(caught.value)
    assert "worker-1" in message or "tcp://127.0.0.1" in message, message
    assert "s3://cxr/unseen.zarr" in message and "cannot be reached" in message, message
    assert s3["secret"] not in message and s3["key"] not in message


def test_a_url_input_the_workers_cannot_read_is_named_with_the_worker(bare_cluster, s3):  # noqa: F811
    from distributed import Client

    from xray_scale.run.cluster import check_workers_see
    from xray_scale.store.location import store_location

    address, start_workers = bare_cluster
    start_workers()
    xray_scale.run(["synth:3x64"], "s3://cxr/seen.zarr", batch_size=3)
    s3["client"].put_object(Bucket="cxr", Key="in/00000001_000.png", Body=b"png bytes")
    store, there = store_location("s3://cxr/seen.zarr"), "s3://cxr/in/00000001_000.png"
    missing = "s3://cxr/in/00000099_000.png"
    with Client(address, timeout="20s") as client:
        check_workers_see(client, store=store, inputs=[there])  # every worker reads it
        with pytest.raises(StoreError) as caught:
            check_workers_see(client, store=store, inputs=[there, missing])
    message = str(caught.value)
    assert message.startswith("worker tcp://127.0.0.1:"), message
    assert f"{missing} does not exist; inputs must be on a URL every worker can read" in message
    assert s3["secret"] not in message


def test_url_inputs_and_a_url_store_need_no_shared_disk(bare_cluster, s3, tmp_path):  # noqa: F811
    address, start_workers = bare_cluster
    start_workers()
    folder = tmp_path / "images"
    written = write_phantoms(folder, patients=2, follow_ups=5, shape=(64, 64))
    for path in written:
        s3["client"].put_object(Bucket="cxr", Key=f"dump/{path.name}", Body=path.read_bytes())
    summary = xray_scale.run(
        ["s3://cxr/dump/"], "s3://cxr/from-urls.zarr", batch_size=3, address=address
    )
    assert (summary.ok, summary.failed) == (10, 0)
    xray_scale.run([folder], tmp_path / "local.zarr", batch_size=3, workers=2)
    assert_stores_equal(
        url_store("s3://cxr/from-urls.zarr"), tmp_path / "local.zarr", besides=("index/path",)
    )
    paths = read_index(xray_scale.open_store("s3://cxr/from-urls.zarr"), "path")
    assert [p.rsplit("/", 1)[1] for p in paths] == sorted(p.name for p in written)
    assert all(p.startswith("s3://cxr/dump/") for p in paths)
    assert list((tmp_path / "worker-0").iterdir()) == list((tmp_path / "worker-1").iterdir()) == []
