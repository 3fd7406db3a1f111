"""A dask cluster with no shared disk: workers in empty folders, the store on S3 (moto)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from conftest import assert_stores_equal, gated_environment, make_tar
from dask_processes import dask_command, scheduler_address, stop_processes, wait_for
from s3_servers import flags, keys, url_store

import xray_scale
from xray_scale.errors import StoreError
from xray_scale.io.phantoms import write_phantoms
from xray_scale.runner import gate
from xray_scale.store.encoding import read_index
from xray_scale.store.location import store_location

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.s3]


@pytest.fixture
def bare_cluster(tmp_path, s3_server, gate_folder):
    """A scheduler and two workers, each in an empty folder of its own, S3 settings in their env
    (or none: ``workers(s3_settings=False)``), the progress gate at ``gate_folder`` on.

    The workers see nothing of the driver's files: their working folders are empty and
    elsewhere, each has a cache folder of its own, and what they get is the graph (phantom
    or URL inputs, the store's URL) and what the driver ships them. Yields the scheduler's
    address, a function starting the workers (it returns their processes) and the
    environment a driver process needs.
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
    base = {k: v for k, v in gated_environment(gate_folder).items() if not k.startswith("AWS_")}
    start(
        ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
        + ["--scheduler-file", str(scheduler_file)],
        "scheduler",
        base,
    )
    address = scheduler_address(scheduler_file)
    with_s3 = {
        **base,
        "AWS_ENDPOINT_URL": s3_server["endpoint"],
        "AWS_ACCESS_KEY_ID": s3_server["key"],
        "AWS_SECRET_ACCESS_KEY": s3_server["secret"],
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    without_s3 = {**with_s3, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}

    def workers(broken: bool = False, s3_settings: bool = True) -> list[subprocess.Popen]:
        started = []
        for k in range(2):
            env = without_s3 if broken and k == 1 else with_s3 if s3_settings else base
            env = {**env, "XDG_CACHE_HOME": str(tmp_path / f"worker-{k}-cache")}
            started.append(
                start(
                    ["worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"]
                    + ["--host", "127.0.0.1", "--name", f"worker-{k}"],
                    f"worker-{k}",
                    env,
                )
            )
        from distributed import Client

        with Client(address, timeout="20s") as client:
            wait_for(lambda: len(client.scheduler_info()["workers"]) == 2, "two workers")
        return started

    yield address, workers, with_s3
    for held in gate_folder.glob("hold-*"):  # a test that failed holding a batch
        held.unlink()
    stop_processes(processes)


def test_a_worker_that_cannot_reach_the_store_is_named_with_the_url(bare_cluster, s3_user):
    address, start_workers, _ = bare_cluster
    start_workers(broken=True)
    with pytest.raises(StoreError) as caught:
        xray_scale.run(["synth:6x64"], "s3://cxr/unseen.zarr", batch_size=3, address=address)
    message = str(caught.value)
    assert "worker-1" in message or "tcp://127.0.0.1" in message, message
    assert "s3://cxr/unseen.zarr" in message and "cannot be reached" in message, message
    assert s3_user["secret"] not in message and s3_user["key"] not in message


def test_a_url_input_the_workers_cannot_read_is_named_with_the_worker(bare_cluster, s3_user):
    from distributed import Client

    from xray_scale.runner.cluster import check_workers_see
    from xray_scale.store.location import store_location

    address, start_workers, _ = bare_cluster
    start_workers()
    xray_scale.run(["synth:3x64"], "s3://cxr/seen.zarr", batch_size=3)
    s3_user["client"].put_object(Bucket="cxr", Key="in/00000001_000.png", Body=b"png bytes")
    store, there = store_location("s3://cxr/seen.zarr"), "s3://cxr/in/00000001_000.png"
    missing = "s3://cxr/in/00000099_000.png"
    with Client(address, timeout="20s") as client:
        check_workers_see(client, store=store, inputs=[there])  # every worker reads it
        with pytest.raises(StoreError) as caught:
            check_workers_see(client, store=store, inputs=[there, missing])
    message = str(caught.value)
    assert message.startswith("worker tcp://127.0.0.1:"), message
    assert f"{missing} does not exist; inputs must be on a URL every worker can read" in message
    assert s3_user["secret"] not in message


def test_url_inputs_need_no_shared_disk_and_a_killed_worker_loses_nothing(
    bare_cluster,
    s3_user,
    tmp_path,
    gate_folder,
):
    """PNGs and NIH's .tar.gz in the bucket, the store in the bucket, one worker SIGKILLed
    in the middle of a batch."""
    address, start_workers, _ = bare_cluster
    workers = start_workers()
    folder = tmp_path / "images"
    written = write_phantoms(folder, patients=2, follow_ups=6, shape=(64, 64))
    for path in written[:5]:
        s3_user["client"].put_object(Bucket="cxr", Key=f"dump/{path.name}", Body=path.read_bytes())
    members = {f"images/{p.name}": p.read_bytes() for p in written[5:]}
    archive = make_tar(tmp_path / "a.tar.gz", members)
    s3_user["client"].put_object(
        Bucket="cxr", Key="nih/images_001.tar.gz", Body=archive.read_bytes()
    )
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

    url, inputs = "s3://cxr/survivor.zarr", ["s3://cxr/dump/", "s3://cxr/nih/images_001.tar.gz"]
    summary = xray_scale.run(
        inputs, url, batch_size=2, address=address, on_batch=kill_worker_0_in_its_batch
    )
    assert killed == [-signal.SIGKILL]
    assert len(gate.tickets(gate_folder, gate.BATCH_START)) > 6  # its batch started again
    assert (summary.ok, summary.failed) == (12, 0)
    xray_scale.run([folder], tmp_path / "threads.zarr", batch_size=2, workers=2)
    assert_stores_equal(url_store(url), tmp_path / "threads.zarr", besides=("index/path",))
    assert list(read_index(xray_scale.open_store(url), "path")) == [
        f"s3://cxr/dump/{p.name}" for p in written[:5]
    ] + [f"s3://cxr/nih/images_001.tar.gz::images/{p.name}" for p in written[5:]]
    # the driver shipped the archive's index: no worker read the archive whole to build one
    assert not (tmp_path / "worker-1-cache").exists()
    assert list((tmp_path / "worker-0").iterdir()) == list((tmp_path / "worker-1").iterdir()) == []


def test_a_driver_killed_mid_run_then_run_again_leaves_the_same_store(
    bare_cluster,
    s3_user,
    tmp_path,
    gate_folder,
):
    """The CLI against the cluster, SIGKILLed once 2 of its 8 batches are in the store, then run
    again."""
    address, start_workers, env = bare_cluster
    start_workers()
    url, inputs = "s3://cxr/driver.zarr", "synth:16x64"
    command = [sys.executable, "-m", "xray_scale.cli", "run", inputs, "-o", url]
    command += ["--batch-size", "2", "--engine", "scipy", "--address", address, "-q"]
    gate.hold(gate_folder, gate.BATCH_START, after=2)
    driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        gate.wait_for(gate_folder, gate.BATCH_RECORDED, 2, process=driver)
        driver.kill()
    finally:
        driver.kill()
        driver.wait()
        gate.release(gate_folder, gate.BATCH_START)  # the workers finish what they held, unrecorded
    assert driver.returncode == -signal.SIGKILL, driver.stderr.read()
    group = xray_scale.open_store(url)
    status = list(read_index(group, "status"))
    assert (status.count("ok"), status.count("pending")) == (4, 12)
    assert group.attrs["xray_scale"].get("runs", []) == []
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert set(read_index(xray_scale.open_store(url), "status")) == {"ok"}
    xray_scale.run([inputs], tmp_path / "threads.zarr", batch_size=2, workers=2, engine="scipy")
    assert_stores_equal(url_store(url), tmp_path / "threads.zarr")
    assert list((tmp_path / "worker-0").iterdir()) == list((tmp_path / "worker-1").iterdir()) == []


def test_workers_without_any_s3_setting_use_the_options_given_to_the_run(
    bare_cluster,
    no_aws_environment,
    tmp_path,
):
    """No AWS_* variable on the workers nor the driver: --storage-option alone reaches them.

    The endpoint and keys travel with the tasks, and none of them lands in the store.
    """
    server = no_aws_environment
    address, start_workers, _ = bare_cluster
    start_workers(s3_settings=False)
    folder = tmp_path / "images"
    written = write_phantoms(folder, patients=2, follow_ups=3, shape=(64, 64))
    for path in written:
        body = path.read_bytes()
        server["client"].put_object(Bucket="cxr", Key=f"options/{path.name}", Body=body)
    url, options = "s3://cxr/options.zarr", flags(server, server["endpoint"])
    summary = xray_scale.run(
        ["s3://cxr/options/"], url, batch_size=2, address=address, storage_options=options
    )
    assert (summary.ok, summary.failed) == (6, 0)
    xray_scale.run([folder], tmp_path / "threads.zarr", batch_size=2, workers=2)
    store = store_location(url, options).zarr_store(read_only=True)
    assert_stores_equal(store, tmp_path / "threads.zarr", besides=("index/path",))
    for key in keys(server, "options.zarr/"):
        if key.endswith("zarr.json"):
            body = server["client"].get_object(Bucket="cxr", Key=key)["Body"].read().decode()
            assert server["secret"] not in body and server["key"] not in body, key
