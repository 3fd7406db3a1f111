"""Resume after SIGKILL and SIGINT of a real `xray-scale run` process."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import assert_stores_equal, gated_environment, structured_image, write_png

import xray_scale
from xray_scale.io.phantoms import write_phantoms
from xray_scale.runner import gate
from xray_scale.store.encoding import read_index

pytestmark = pytest.mark.slow


def command(images: Path, out: Path) -> list[str]:
    script = Path(sys.executable).parent / "xray-scale"
    return [
        str(script),
        "run",
        str(images),
        "-o",
        str(out),
        "--batch-size",
        "2",
        "--workers",
        "1",
        "--engine",
        "scipy",
        "-q",
    ]


@pytest.fixture(scope="module")
def images_and_clean_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    images = folder / "images"
    write_phantoms(images, patients=8, follow_ups=8, shape=(512, 512))
    clean = folder / "clean.zarr"
    summary = xray_scale.run([images], clean, batch_size=2, workers=1, engine="scipy")
    assert summary.ok == 64
    qc = zarr.open_group(clean, mode="r")["qc"]  # QC is on by default: its arrays are compared too
    assert np.isfinite(qc["outlier_score"][:]).all() and (qc["pixel_hash"][:] != 0).all()
    return images, clean


RECORDED = 3
"""Batches (of 32) in the store when the run is stopped: the driver is held as it records the
third, so no fourth is started."""


SIGINT_AT_ITS_DEFAULT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)
"""Runs the command after it as a terminal's Ctrl-C finds it: SIGINT at its default. A test
session started in the background (``pytest ... &``) has SIGINT ignored, every process it
starts inherits that, and Python then leaves it ignored: the run would never see the signal."""


def start_and_stop_midway(
    images: Path, out: Path, stop: signal.Signals, gate_folder: Path
) -> subprocess.CompletedProcess:
    """Start a run, send ``stop`` once 3 of its batches are in the store and no other runs.

    The run's driver is held (:mod:`xray_scale.runner.gate`) just after it wrote the
    third batch's statuses; with one worker, the fourth batch is only started when
    the driver goes on. So the run is midway, 6 of 64 images ok, however fast the
    machine. The driver waits in the gate's polling loop, where a SIGINT is
    handled at once (in a blocking wait on a queue, one arriving just before the
    wait begins is handled only when the wait ends: when the next batch is done).
    """
    gate.hold(gate_folder, gate.BATCH_RECORDED, after=RECORDED - 1)
    process = subprocess.Popen(
        [sys.executable, "-c", SIGINT_AT_ITS_DEFAULT, *command(images, out)],
        env=gated_environment(gate_folder),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        gate.wait_for(gate_folder, gate.BATCH_RECORDED, RECORDED, process=process)
        process.send_signal(stop)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
        process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def assert_stopped_midway(out: Path) -> None:
    """The three batches recorded are ok, every other image is pending."""
    status = read_index(zarr.open_group(out, mode="r"), "status")
    batches = [tuple(batch) for batch in status.reshape(32, 2)]
    assert batches.count(("ok", "ok")) == RECORDED
    assert batches.count(("pending", "pending")) == 32 - RECORDED


def test_sigkill_then_resume_gives_the_clean_store(images_and_clean_store, tmp_path, gate_folder):
    images, clean = images_and_clean_store
    out = tmp_path / "killed.zarr"
    killed = start_and_stop_midway(images, out, signal.SIGKILL, gate_folder)
    assert killed.returncode == -signal.SIGKILL
    assert_stopped_midway(out)
    resumed = subprocess.run(command(images, out), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert_stores_equal(out, clean)


def test_sigint_stops_cleanly_says_how_to_resume_and_resumes(
    images_and_clean_store, tmp_path, gate_folder
):
    images, clean = images_and_clean_store
    out = tmp_path / "interrupted.zarr"
    interrupted = start_and_stop_midway(images, out, signal.SIGINT, gate_folder)
    assert interrupted.returncode == 130, interrupted.stderr
    assert "interrupted; finished batches are kept, re-run the same command to resume" in (
        interrupted.stderr
    )
    assert "Traceback" not in interrupted.stderr
    assert_stopped_midway(out)
    resumed = subprocess.run(command(images, out), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert_stores_equal(out, clean)


def test_kill_9_in_the_end_of_run_phase_then_the_same_command_completes_the_store(
    tmp_path, gate_folder
):
    """Every batch recorded, the run SIGKILLed as its end-of-run work (QC groups, scores) begins."""
    run = ["run", "synth:12x96", "--batch-size", "2", "--workers", "1", "--engine", "scipy", "-q"]
    out, clean = tmp_path / "killed.zarr", tmp_path / "clean.zarr"
    xray_scale.run(["synth:12x96"], clean, batch_size=2, workers=1, engine="scipy")
    script = str(Path(sys.executable).parent / "xray-scale")
    gate.hold(gate_folder, gate.END_OF_RUN)
    process = subprocess.Popen(
        [script, *run, "-o", str(out)],
        env=gated_environment(gate_folder),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        gate.wait_for(gate_folder, gate.END_OF_RUN, 1, process=process)
        process.kill()
        process.wait()
    finally:
        process.kill()
        gate.release(gate_folder, gate.END_OF_RUN)
    assert process.wait() == -signal.SIGKILL, process.stderr.read()
    group = zarr.open_group(out, mode="r")
    assert list(read_index(group, "status")) == ["ok"] * 12  # every batch was recorded
    assert np.isnan(group["qc/outlier_score"][:]).all()  # ... and the run's end never came
    assert group.attrs["xray_scale"].get("runs", []) == []
    again = subprocess.run(
        [script, *run, "-o", str(out)], capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr
    assert_stores_equal(out, clean)
    assert len(zarr.open_group(out, mode="r").attrs["xray_scale"]["runs"]) == 1


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs, so that a run fills it up (needs root, as CI has)."""
    mount_point = tmp_path / "small disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3M", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_disk_full_is_a_clear_error_and_nothing_incomplete_is_marked_ok(
    images_and_clean_store, small_disk
):
    images, clean = images_and_clean_store
    out = small_disk / "out.zarr"
    done = subprocess.run(command(images, out), capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stderr
    assert "No space left on device" in done.stderr and "re-run the same command" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    group, reference = zarr.open_group(out, mode="r"), zarr.open_group(clean, mode="r")
    status = read_index(group, "status")
    assert (status == "pending").any()
    for index in (status == "ok").nonzero()[0]:
        for name in ["filters/sobel", "filters/laplace_gaussian", "masks/mask_values"]:
            assert (group[name][index] == reference[name][index]).all(), (name, index)


def test_an_output_location_that_cannot_be_created_is_a_clear_error(
    images_and_clean_store, tmp_path
):
    images, _ = images_and_clean_store
    (tmp_path / "a file").write_text("not a folder")
    done = subprocess.run(
        command(images, tmp_path / "a file" / "out.zarr"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "cannot write the store" in done.stderr and "Traceback" not in done.stderr


def test_overwrite_deletes_only_a_store_written_by_xray_scale(images_and_clean_store, tmp_path):
    images, _ = images_and_clean_store
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("a week of work")
    a_file = tmp_path / "scan.png"
    a_file.write_bytes(b"not a store")
    for out in (precious, a_file):
        with pytest.raises(xray_scale.StoreError, match="is not an xray-scale store"):
            xray_scale.run([images], out, limit=2, engine="scipy", overwrite=True)
    assert (precious / "notes.txt").read_text() == "a week of work"
    assert a_file.read_bytes() == b"not a store"
    store = tmp_path / "out.zarr"
    xray_scale.run([images], store, limit=2, engine="scipy")
    summary = xray_scale.run([images], store, limit=4, engine="scipy", overwrite=True)
    assert summary.total == summary.ok == 4


def test_a_store_appears_only_once_complete(tmp_path):
    from xray_scale.config import Config
    from xray_scale.store.create import create_store

    out = tmp_path / "out.zarr"
    seen_midway = []

    class Midway(dict):
        """Metadata columns that note what is on disk when the build reaches them."""

        def items(self):
            seen_midway.append(sorted(p.name for p in tmp_path.iterdir()))
            return super().items()

    layout = {"paths": ["a.png"], "shape": (8, 8), "map_dtypes": {}, "config": Config()}
    unstorable = Midway(note=np.zeros(1, dtype=[("a", "O")]))  # zarr refuses it, midway
    with pytest.raises(ValueError):
        create_store(out, columns=unstorable, **layout)
    host = platform.node()
    assert seen_midway[0][0].startswith(f".out.zarr.creating-{host}-{os.getpid()}-")
    assert "out.zarr" not in seen_midway[0]  # the store is built beside --out, not in it
    assert list(tmp_path.iterdir()) == []  # neither the store nor its folder in the making
    dead = tmp_path / f".out.zarr.creating-{host}-999999999-0a1b2c3d"  # killed: no such process
    other_host = tmp_path / ".out.zarr.creating-elsewhere-1-0a1b2c3d"  # maybe still building
    dead.mkdir()
    other_host.mkdir()
    create_store(out, **layout)
    assert sorted(p.name for p in tmp_path.iterdir()) == [other_host.name, "out.zarr"]


def test_an_incomplete_store_is_refused_with_what_to_do_and_overwrite_replaces_it(
    images_and_clean_store, tmp_path
):
    images, _ = images_and_clean_store
    out = tmp_path / "out.zarr"  # what an older version left when killed while creating it
    zarr.open_group(out, mode="w", attributes={"xray_scale": {"batch_size": 2}})
    with pytest.raises(xray_scale.StoreError, match="incomplete store.*--overwrite"):
        xray_scale.run([images], out, limit=2, engine="scipy")
    with pytest.raises(xray_scale.StoreError, match="incomplete store"):
        xray_scale.open_store(out)
    xray_scale.run([images], out, limit=2, engine="scipy", overwrite=True)
    group = zarr.open_group(out, mode="r+")
    assert group.attrs["xray_scale_state"] == "complete"
    group.attrs["xray_scale_state"] = "creating"  # what a creation in place killed midway leaves
    with pytest.raises(xray_scale.StoreError, match="incomplete store"):
        xray_scale.run([images], out, limit=2, engine="scipy")
    attributes = dict(group.attrs)
    del attributes["xray_scale_state"]  # an older version's store, killed before the paths
    group.attrs.clear()
    group.attrs.update(attributes)
    group["index/path"][1] = 0
    with pytest.raises(xray_scale.StoreError, match="incomplete store"):
        xray_scale.run([images], out, limit=2, engine="scipy")
    summary = xray_scale.run([images], out, limit=2, engine="scipy", overwrite=True)
    assert summary.ok == 2


def test_retry_failed_processes_repaired_images_again(images_and_clean_store, tmp_path):
    images, clean = images_and_clean_store
    folder = tmp_path / "images"
    shutil.copytree(images, folder)
    broken = sorted(folder.iterdir())[5]
    good = broken.read_bytes()
    broken.write_bytes(good[:1000])
    out = tmp_path / "out.zarr"
    options = {"batch_size": 2, "workers": 1, "engine": "scipy"}
    assert xray_scale.run([folder], out, **options).failed == 1
    broken.write_bytes(good)
    assert xray_scale.run([folder], out, **options).failed == 1  # resuming skips it
    summary = xray_scale.run([folder], out, retry_failed=True, **options)
    assert summary.failed == 0 and summary.ok == 64 and summary.processed == 2
    listed = tmp_path / "list.txt"  # one listed file is missing: retrying cannot help it
    listed.write_text("\n".join(map(str, sorted(folder.iterdir())[:4])) + "\nabsent.png\n")
    missing = tmp_path / "missing.zarr"
    assert xray_scale.run([listed], missing, **options).failed == 1
    assert xray_scale.run([listed], missing, retry_failed=True, **options).processed == 0
    repaired = zarr.open_group(out, mode="r")
    reference = zarr.open_group(clean, mode="r")
    for name in ("stats/mean", "stats/histogram", "filters/sobel"):
        assert np.array_equal(repaired[name][4:6], reference[name][4:6]), name


def test_overwrite_refuses_to_delete_the_runs_own_inputs(images_and_clean_store, tmp_path):
    images, _ = images_and_clean_store
    store = tmp_path / "out.zarr"
    xray_scale.run([images], store, limit=2, engine="scipy")
    inside = store / "pngs"
    shutil.copytree(images, inside)
    with pytest.raises(xray_scale.StoreError, match="would delete inputs inside"):
        xray_scale.run([inside], store, limit=2, engine="scipy", overwrite=True)
    assert len(list(inside.iterdir())) == 64


def test_a_resumed_run_keeps_its_format_when_repaired_files_would_change_it(tmp_path):
    folder = tmp_path / "images"
    for k in range(4):
        write_png(folder / f"a16_{k}.png", structured_image(k, dtype=np.uint16))
    for k in range(5):
        write_png(folder / f"b08_{k}.png", structured_image(k))
    repaired = {k: (folder / f"b08_{k}.png").read_bytes() for k in (0, 1)}
    for k in repaired:
        (folder / f"b08_{k}.png").write_bytes(b"")  # 4 readable 16-bit, 3 8-bit: a 16-bit run
    out = tmp_path / "out.zarr"
    assert xray_scale.run([folder], out, workers=1, batch_size=3).failed == 2
    for k, data in repaired.items():
        (folder / f"b08_{k}.png").write_bytes(data)  # now 5 8-bit against 4 16-bit
    summary = xray_scale.run([folder], out, workers=1, batch_size=3, retry_failed=True)
    assert (summary.ok, summary.failed) == (9, 0)
    group = zarr.open_group(out, mode="r")
    assert group.attrs["xray_scale"]["pixel_dtype"] == "uint16"
    assert group["stats/max"][4] == structured_image(0).max()  # 8-bit values kept as they are
