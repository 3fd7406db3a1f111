"""Real ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1 (a pytest plugin).

Registered in ``conftest.py`` (``pytest_plugins``): the fixture ``dask_cluster`` starts a
scheduler and two workers; ``dask_command``, ``wait_for`` and ``stop_processes`` help tests
that start their own (``tests/test_cluster_object_store.py``), so no test module imports
another. A test using ``dask_cluster`` is marked ``cluster`` (``conftest.py`` checks it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import gated_environment


def dask_command() -> str:
    """The ``dask`` command line of this environment; skips the test where it is absent."""
    script = Path(sys.executable).parent / "dask"
    if not script.exists():
        pytest.skip("the dask command line (dask.distributed) is not installed")
    return str(script)


def wait_for(condition, what: str, timeout: float = 180.0):
    """Wait for a server to come up: ``condition()`` true, polled; a limit far above its start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s (see the logs)")


def stop_processes(processes: list[tuple[subprocess.Popen, object]]) -> None:
    """Terminate each (process, log) still running, kill it after 20 s, close its log."""
    for process, log in processes:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


def scheduler_address(scheduler_file: Path) -> str:
    """The address a scheduler writes to its ``--scheduler-file``, once the file is whole.

    The file exists before the scheduler has written it (an empty or half-written file was
    read once, on a busy machine): polled until it parses and holds an address.
    """

    def written() -> str | None:
        try:
            return json.loads(scheduler_file.read_text()).get("address")
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    return wait_for(written, "the scheduler file's address")


@pytest.fixture
def dask_cluster(tmp_path, gate_folder):
    """A scheduler on a random port and two single-threaded workers, as subprocesses.

    The workers pass the progress gate at ``gate_folder`` (:mod:`xray_scale.runner.gate`). Yields
    the scheduler's address and the two worker processes.
    """
    scheduler_file = tmp_path / "scheduler.json"
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = []

    def start(arguments: list[str], name: str) -> subprocess.Popen:
        log = open(logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [dask_command(), *arguments], stdout=log, stderr=log, env=gated_environment(gate_folder)
        )
        processes.append((process, log))
        return process

    start(
        [
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(scheduler_file),
        ],
        "scheduler",
    )
    address = scheduler_address(scheduler_file)
    workers = [
        start(
            [
                "worker",
                address,
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--name",
                f"worker-{k}",
            ],
            f"worker-{k}",
        )
        for k in range(2)
    ]
    from distributed import Client

    with Client(address, timeout="20s") as client:
        wait_for(lambda: len(client.scheduler_info()["workers"]) == 2, "two workers")
    yield address, workers
    for held in gate_folder.glob("hold-*"):  # a test that failed holding a batch
        held.unlink()
    stop_processes(processes)
