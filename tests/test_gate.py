"""The progress gate: tickets unique across threads and processes, holds that hold, then let go."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import gated_environment

from xray_scale.runner import gate

CALLS = """
import sys, threading
from xray_scale.runner import gate
name, threads, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def work():
    for _ in range(calls):
        gate.checkpoint(name)
workers = [threading.Thread(target=work) for _ in range(threads)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
print("done", flush=True)
"""


def calls(folder, name: str, *, threads: int = 1, count: int = 1) -> subprocess.Popen:
    """A process passing checkpoint ``name`` ``count`` times in each of ``threads`` threads."""
    return subprocess.Popen(
        [sys.executable, "-c", CALLS, name, str(threads), str(count)],
        env=gated_environment(folder),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_every_call_in_any_thread_or_process_gets_its_own_ticket(gate_folder):
    processes = [calls(gate_folder, "step", threads=4, count=10) for _ in range(3)]
    for process in processes:
        assert process.communicate(timeout=120)[0] == "done\n"
    owners = gate.tickets(gate_folder, "step")
    assert len(owners) == 120  # tickets 0..119, none twice, none skipped
    assert sorted(set(owners)) == sorted(process.pid for process in processes)
    assert all(owners.count(process.pid) == 40 for process in processes)
    assert sorted(p.name for p in gate_folder.iterdir()) == sorted(f"step-{k}" for k in range(120))


def test_a_hold_stops_each_call_from_its_ticket_on_until_raised_or_released(gate_folder):
    gate.hold(gate_folder, "step", after=2)
    process = calls(gate_folder, "step", count=5)
    try:
        gate.wait_for(gate_folder, "step", 3, process=process)  # ticket 2 claimed: held there
        assert len(gate.tickets(gate_folder, "step")) == 3 and process.poll() is None
        gate.hold(gate_folder, "step", after=3)  # one more through
        gate.wait_for(gate_folder, "step", 4, process=process)
        assert len(gate.tickets(gate_folder, "step")) == 4 and process.poll() is None
        gate.release(gate_folder, "step")
        assert process.communicate(timeout=120)[0] == "done\n"
    finally:
        process.kill()
    assert gate.tickets(gate_folder, "step") == [process.pid] * 5


def test_a_hold_of_one_name_leaves_the_others_alone(gate_folder):
    gate.hold(gate_folder, "other")
    process = calls(gate_folder, "step", count=3)
    assert process.communicate(timeout=120)[0] == "done\n"
    assert gate.tickets(gate_folder, "other") == []


def test_waiting_on_a_run_that_ended_says_so(gate_folder):
    process = calls(gate_folder, "step", count=2)
    process.wait(timeout=120)
    with pytest.raises(RuntimeError, match=r"the run ended \(exit 0\) after 2 of the 3 step"):
        gate.wait_for(gate_folder, "step", 3, process=process)


def test_a_hold_file_that_is_no_number_is_a_clear_error(gate_folder, monkeypatch):
    monkeypatch.setenv(gate.ENV, str(gate_folder))
    (gate_folder / "hold-step").write_text("three")
    with pytest.raises(RuntimeError, match="hold-step must hold an integer"):
        gate.checkpoint("step")
    with pytest.raises(ValueError, match="after must be an integer >= 0"):
        gate.hold(gate_folder, "step", after=-1)


def test_a_gated_function_passes_its_checkpoint_first(gate_folder, monkeypatch):
    monkeypatch.setenv(gate.ENV, str(gate_folder))
    seen = []

    def work(x):
        seen.append(len(gate.tickets(gate_folder, "task")))
        return x + 1

    assert gate.gated("task", work)(1) == 2
    assert seen == [1]
    monkeypatch.setenv(gate.ENV, "")  # off: no ticket, no wait
    gate.hold(gate_folder, "task")
    assert not gate.enabled() and gate.gated("task", work)(2) == 3
    assert seen == [1, 1]
    import pickle

    assert pickle.loads(pickle.dumps(gate.gated("task", int)))("4") == 4  # for dask's workers
