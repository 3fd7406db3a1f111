"""``--cluster slurm``: the workers as jobs of a real SLURM on 127.0.0.1 (tests/slurm_cluster.py).

Every test that submits jobs synchronises on the run's progress gate
(:mod:`xray_scale.runner.gate`) and on what ``squeue`` lists, never on the clock.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dask
import pytest
import zarr
from conftest import assert_stores_equal, gated_environment
from slurm_cluster import SlurmCluster, missing_binaries, start_slurm, stop_slurm

import xray_scale
from xray_scale.errors import ConfigError
from xray_scale.io.phantoms import write_phantoms
from xray_scale.runner import gate
from xray_scale.runner.jobqueue import JobQueue


def on_slurm(test):
    """Marks a test that submits jobs: one test process (xdist group) starts the SLURM."""
    for mark in (
        pytest.mark.cluster,
        pytest.mark.slow,
        pytest.mark.xdist_group("slurm"),
        pytest.mark.timeout(900),
    ):
        test = mark(test)
    return test


STATE_LIMIT_S = 300.0
"""A limit for SLURM to reach a state the test waits for, far above what any step takes."""

SIGINT_AT_ITS_DEFAULT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)
"""Runs the command after it with SIGINT at its default, as a terminal's Ctrl-C finds it
(a test session started in the background has SIGINT ignored: see tests/test_resume.py)."""


def xray_scale_command() -> str:
    return str(Path(sys.executable).parent / "xray-scale")


def wait_until(condition, what: str, slurm: SlurmCluster, limit: float = STATE_LIMIT_S):
    """Poll ``condition()`` until it returns something true; return that."""
    began = time.monotonic()
    while not (value := condition()):
        if time.monotonic() - began > limit:
            raise TimeoutError(
                f"no {what} after {limit:.0f} s; squeue: {slurm.jobs()}\n{slurm.log_tail()}"
            )
        time.sleep(0.2)
    return value


@pytest.fixture(scope="module")
def images_and_threaded_store(tmp_path_factory):
    """24 phantoms (4 patients x 6 follow-ups, 256x256) and their threaded run, batches of 2."""
    folder = tmp_path_factory.mktemp("slurm-images")
    images = folder / "images"
    write_phantoms(images, patients=4, follow_ups=6, shape=(256, 256))
    threaded = folder / "threads.zarr"
    summary = xray_scale.run([images], threaded, batch_size=2, workers=2, engine="scipy")
    assert summary.ok == 24
    return images, threaded


@pytest.fixture
def job_config(tmp_path):
    """dask-jobqueue's settings for the test SLURM, in this process and in a ``jobqueue.yaml``.

    The scheduler and the workers on the loopback interface, and the jobs' logs in a
    folder of the test. The file also sets each job's cores and memory, which the
    command line then leaves out (``DASK_CONFIG`` points a run's process at it).
    """
    logs = tmp_path / "job-logs"
    logs.mkdir()
    config_dir = tmp_path / "dask-config"
    config_dir.mkdir()
    (config_dir / "jobqueue.yaml").write_text(
        "jobqueue:\n"
        "  slurm:\n"
        "    interface: lo\n"
        f"    log-directory: {logs}\n"
        "    cores: 1\n"
        "    memory: 1GB\n"
    )
    # imported first: a dask.config.set made before dask-jobqueue adds its defaults would
    # take the whole "jobqueue" section away again as it ends
    pytest.importorskip("dask_jobqueue")
    settings = {"jobqueue.slurm.interface": "lo", "jobqueue.slurm.log-directory": str(logs)}
    with dask.config.set(settings):
        yield config_dir, logs


def run_command(images: Path, out: Path, *extra: str) -> list[str]:
    return [
        xray_scale_command(),
        "run",
        str(images),
        "-o",
        str(out),
        "--batch-size",
        "2",
        "--engine",
        "scipy",
        "-q",
        "--cluster",
        "slurm",
        *extra,
    ]


def release_all(gate_folder: Path) -> None:
    for held in gate_folder.glob("hold-*"):
        held.unlink()


def test_cluster_slurm_without_slurm_is_one_line_and_exit_2(tmp_path):
    """No sbatch on PATH: one line naming what is missing and what to do; nothing written."""
    bare = tmp_path / "bin"
    bare.mkdir()
    os.symlink(sys.executable, bare / "python")
    done = subprocess.run(
        [xray_scale_command(), "run", "synth:4x64", "-o", str(tmp_path / "o.zarr")]
        + ["--cluster", "slurm", "--cores", "1", "--memory", "1GB"],
        env={**os.environ, "PATH": str(bare)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "SLURM's sbatch is not on PATH" in lines[0] and "--address" in lines[0]
    assert not (tmp_path / "o.zarr").exists()


def test_job_options_without_cluster_are_refused(tmp_path):
    done = subprocess.run(
        [xray_scale_command(), "run", "synth:4x64", "-o", str(tmp_path / "o.zarr"), "--cores", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "xray-scale: error: --cores applies to batch jobs: add --cluster"


def test_job_queue_options_map_to_each_systems_keywords():
    spec = JobQueue("sge", jobs=3, cores=4, memory="8GB", account="proj", job_extra=("-l h=a",))
    assert spec.cluster_options() == {
        "cores": 4,
        "memory": "8GB",
        "project": "proj",
        "job_extra_directives": ["-l h=a"],
    }
    assert JobQueue("slurm", account="acc").cluster_options() == {"account": "acc"}
    assert JobQueue("pbs").cluster_options() == {}  # all from jobqueue.yaml
    with pytest.raises(ConfigError, match="cluster must be one of slurm, pbs, sge, lsf"):
        JobQueue("condor")
    with pytest.raises(ConfigError, match="jobs must be an integer >= 1"):
        JobQueue("slurm", jobs=0)


@pytest.mark.parametrize(
    ("system", "expected"),
    [
        ("slurm", ["#SBATCH -p short", "#SBATCH -A lab", "#SBATCH -t 00:20:00", "#SBATCH --x"]),
        ("pbs", ["#PBS -q short", "#PBS -A lab", "#PBS -l walltime=00:20:00", "#PBS --x"]),
        ("sge", ["#$ -q short", "#$ -P lab", "#$ -l h_rt=00:20:00", "#$ --x"]),
        ("lsf", ["#BSUB -q short", '#BSUB -P "lab"', "#BSUB -W 00:20:00", "#BSUB --x"]),
    ],
)
def test_every_system_gets_the_flags_in_its_job_script(system, expected):
    """PBS, SGE and LSF have no live test: their job scripts say what the flags asked for."""
    pytest.importorskip("dask_jobqueue")
    from xray_scale.runner.jobqueue import _new_cluster

    spec = JobQueue(
        system, cores=2, memory="4GB", queue="short", walltime="00:20:00", account="lab"
    )
    with dask.config.set({f"jobqueue.{system}.interface": "lo"}):
        cluster = _new_cluster(dataclasses_replace(spec, job_extra=("--x",)))
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in expected:
        assert line in script, script


def dataclasses_replace(spec: JobQueue, **changes) -> JobQueue:
    import dataclasses

    return dataclasses.replace(spec, **changes)


def test_cores_and_memory_neither_given_nor_configured_say_where_to_set_them():
    pytest.importorskip("dask_jobqueue")
    from xray_scale.runner.jobqueue import _new_cluster

    with pytest.raises(ConfigError, match=r"pass --cores and --memory, or set them under"):
        _new_cluster(JobQueue("pbs"))


@on_slurm
def test_two_jobs_with_options_from_jobqueue_yaml_equal_a_threaded_run(
    slurm, images_and_threaded_store, job_config, tmp_path, gate_folder
):
    """Two jobs (cores and memory from jobqueue.yaml) both work; the store equals threads'."""
    images, threaded = images_and_threaded_store
    config_dir, _ = job_config
    gate.hold(gate_folder, gate.BATCH_START, after=0)  # every batch waits: both jobs take one
    process = subprocess.Popen(
        run_command(images, tmp_path / "slurm.zarr", "--jobs", "2"),
        env={**gated_environment(gate_folder), "DASK_CONFIG": str(config_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        owners = gate.wait_for(gate_folder, gate.BATCH_START, 2, process=process, timeout=600)
        jobs = slurm.jobs()
        gate.release(gate_folder, gate.BATCH_START)
        stdout, stderr = process.communicate(timeout=600)
    finally:
        release_all(gate_folder)
        process.kill()
        process.wait()
    assert process.returncode == 0, stderr
    assert len(set(owners)) == 2, owners  # two worker processes: one per job (one thread each)
    assert len(jobs) == 2, jobs
    assert_stores_equal(tmp_path / "slurm.zarr", threaded)
    runs = zarr.open_group(tmp_path / "slurm.zarr", mode="r").attrs["xray_scale"]["runs"]
    assert runs[-1]["scheduler"] == "slurm"
    assert slurm.command("squeue", "--noheader", "--states=PENDING,RUNNING").strip() == ""
    wait_until(lambda: slurm.jobs() == [], "empty squeue", slurm)


@on_slurm
def test_a_cancelled_job_loses_nothing_and_is_replaced(
    slurm, images_and_threaded_store, job_config, tmp_path, gate_folder, monkeypatch
):
    """``scancel`` on a job whose worker holds a batch: the batch is redone, a job replaces it."""
    images, threaded = images_and_threaded_store
    monkeypatch.setenv(gate.ENV, str(gate_folder))  # the jobs inherit it through sbatch
    gate.hold(gate_folder, gate.BATCH_START, after=2)
    seen: dict = {}

    def cancel_one_job_mid_run():
        try:
            # two batches done; each job's one-thread worker now holds the next it started
            seen["owners"] = gate.wait_for(gate_folder, gate.BATCH_START, 4, timeout=600)
            first = slurm.jobs()
            assert len(first) == 2, first
            seen["cancelled"] = first[0]
            slurm.command("scancel", first[0])
            seen["replacement"] = wait_until(
                lambda: [job for job in slurm.jobs() if job not in first],
                "replacement job",
                slurm,
            )
        except BaseException as error:  # the run must not stay held: report, then release
            seen["error"] = error
        finally:
            gate.release(gate_folder, gate.BATCH_START)

    helper = threading.Thread(target=cancel_one_job_mid_run, daemon=True)
    helper.start()
    try:
        summary = xray_scale.run(
            [images],
            tmp_path / "survivor.zarr",
            batch_size=2,
            engine="scipy",
            cluster=JobQueue("slurm", jobs=2, cores=1, memory="1GB"),
        )
    finally:
        helper.join()  # it ends by itself: each of its waits has a limit
        release_all(gate_folder)
    if "error" in seen:
        raise seen["error"]
    assert len(set(seen["owners"][2:])) == 2  # both jobs held a batch when one was cancelled
    assert seen["replacement"] and seen["cancelled"] not in seen["replacement"]
    assert len(gate.tickets(gate_folder, gate.BATCH_START)) > 12  # the held batch ran again
    assert summary.ok == 24 and summary.failed == 0 and summary.pending == 0
    assert_stores_equal(tmp_path / "survivor.zarr", threaded)
    assert slurm.command("squeue", "--noheader", "--states=PENDING,RUNNING").strip() == ""


@on_slurm
def test_a_job_killed_by_its_walltime_loses_nothing(
    slurm, images_and_threaded_store, job_config, tmp_path, gate_folder, monkeypatch
):
    """One job of one minute: SLURM ends it while its worker holds a batch; the next job
    redoes that batch and the rest, and the store equals a threaded run's."""
    images, threaded = images_and_threaded_store
    _, logs = job_config
    monkeypatch.setenv(gate.ENV, str(gate_folder))  # the job inherits it through sbatch
    gate.hold(gate_folder, gate.BATCH_START, after=1)
    seen: dict = {}

    def wait_for_the_time_limit():
        try:
            gate.wait_for(gate_folder, gate.BATCH_START, 2, timeout=600)  # the 2nd batch held
            first = slurm.jobs()
            assert len(first) == 1, first
            seen["first"] = first[0]
            wait_until(lambda: first[0] not in slurm.jobs(), "end of the first job", slurm)
            seen["replacement"] = wait_until(
                lambda: [job for job in slurm.jobs() if job != first[0]], "replacement", slurm
            )
        except BaseException as error:
            seen["error"] = error
        finally:
            gate.release(gate_folder, gate.BATCH_START)

    helper = threading.Thread(target=wait_for_the_time_limit, daemon=True)
    helper.start()
    try:
        summary = xray_scale.run(
            [images],
            tmp_path / "walltime.zarr",
            batch_size=2,
            engine="scipy",
            cluster=JobQueue("slurm", jobs=1, cores=1, memory="1GB", walltime="00:01:00"),
        )
    finally:
        helper.join()  # it ends by itself: each of its waits has a limit
        release_all(gate_folder)
    if "error" in seen:
        raise seen["error"]
    log = (logs / f"dask-worker-{seen['first']}.err").read_text()
    assert "DUE TO TIME LIMIT" in log, log[-2000:]
    assert len(gate.tickets(gate_folder, gate.BATCH_START)) > 12  # the held batch ran again
    assert summary.ok == 24 and summary.pending == 0
    assert_stores_equal(tmp_path / "walltime.zarr", threaded)
    assert slurm.command("squeue", "--noheader", "--states=PENDING,RUNNING").strip() == ""


@on_slurm
def test_ctrl_c_leaves_no_job_in_squeue(
    slurm, images_and_threaded_store, job_config, tmp_path, gate_folder
):
    """SIGINT while both jobs hold a batch: exit 130, and every job submitted is cancelled."""
    images, _ = images_and_threaded_store
    config_dir, _ = job_config
    gate.hold(gate_folder, gate.BATCH_START, after=2)  # then each job's worker holds one
    gate.hold(gate_folder, gate.BATCH_RECORDED, after=1)  # the driver waits in the gate's loop
    process = subprocess.Popen(
        [sys.executable, "-c", SIGINT_AT_ITS_DEFAULT]
        + run_command(images, tmp_path / "interrupted.zarr", "--jobs", "2"),
        env={**gated_environment(gate_folder), "DASK_CONFIG": str(config_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        gate.wait_for(gate_folder, gate.BATCH_RECORDED, 2, process=process, timeout=600)
        owners = gate.wait_for(gate_folder, gate.BATCH_START, 4, process=process, timeout=600)
        submitted = slurm.jobs()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=300)
    finally:
        release_all(gate_folder)
        process.kill()
        process.wait()
    assert process.returncode == 130, stderr
    assert "interrupted; finished batches are kept" in stderr and "Traceback" not in stderr
    assert len(submitted) == 2 and len(set(owners[2:])) == 2  # both jobs were mid-batch
    # scancel has run on every job before the driver exits; SLURM may still be ending them
    assert slurm.command("squeue", "--noheader", "--states=PENDING,RUNNING").strip() == ""
    wait_until(lambda: slurm.jobs() == [], "empty squeue", slurm)


@on_slurm
@pytest.mark.skipif(bool(missing_binaries()), reason="SLURM/munge not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="the test SLURM runs its daemons as root")
def test_every_daemon_stops_by_itself_at_the_end(tmp_path):
    """A second SLURM, as the session fixture starts and stops its own: nothing is left."""
    folder = tmp_path / "slurm"
    cluster = start_slurm(folder)
    assert cluster.node_state() == "idle"
    assert cluster.command("srun", "hostname").strip()
    pids = {name: process.pid for name, process in cluster.daemons.items()}
    assert set(pids) == {"munged", "slurmctld", "slurmd"}
    stop_slurm(cluster)
    assert all(process.poll() is not None for process in cluster.daemons.values())
    left = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # a process that ended meanwhile
            if str(folder).encode() in command or int(entry.name) in pids.values():
                left.append(command.replace(b"\0", b" ").decode(errors="replace"))
    assert left == []
    assert shutil.which("sinfo")
    done = subprocess.run(
        ["sinfo"], env={**os.environ, **cluster.environment}, capture_output=True, timeout=60
    )
    assert done.returncode != 0  # no slurmctld answers any more


@on_slurm
def test_ctrl_c_while_the_jobs_wait_in_the_queue_cancels_them(
    slurm, images_and_threaded_store, job_config, tmp_path
):
    """Jobs held in the queue (``--begin`` in an hour): SIGINT cancels them, exit 130."""
    images, _ = images_and_threaded_store
    config_dir, _ = job_config
    process = subprocess.Popen(
        [sys.executable, "-c", SIGINT_AT_ITS_DEFAULT]
        + run_command(images, tmp_path / "waiting.zarr", "--jobs", "2")
        + ["--job-extra=--begin=now+1hour"],
        env={**os.environ, "DASK_CONFIG": str(config_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pending = wait_until(
            lambda: (
                slurm.command("squeue", "--noheader", "--states=PENDING", "--format=%i").split()
                if len(slurm.jobs()) == 2
                else None
            ),
            "two pending jobs",
            slurm,
        )
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
        process.wait()
    assert len(pending) == 2
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert slurm.jobs() == []  # pending jobs end at once when cancelled
