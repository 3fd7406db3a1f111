"""The xray-scale command: in-process through main(), and as the installed executable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest
import zarr
from conftest import make_bad_inputs
from PIL import Image

from xray_scale.cli import main


def executable() -> str:
    found = Path(sys.executable).parent / "xray-scale"
    if found.exists():
        return str(found)
    on_path = shutil.which("xray-scale")
    if on_path is None:
        pytest.skip("the xray-scale console script is not installed (pip install -e .)")
    return on_path


def test_run_then_info(phantom_folder, tmp_path, capsys):
    out = tmp_path / "out.zarr"
    assert main(["run", str(phantom_folder), "--out", str(out), "--workers", "2", "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "images: 12 (12 ok, 0 failed, 0 pending), 64x64 uint8" in text
    assert main(["info", str(out), "--json"]) == 0
    details = json.loads(capsys.readouterr().out)
    assert (details["total"], details["ok"], details["failed"]) == (12, 12, 0)
    assert details["config"]["filters"]["laplace_gaussian"] == {"sigma": 1.0}
    assert details["images_per_s"] > 0 and details["elapsed_s"] > 0
    assert details["arrays"]["filters/sobel"] == "float32" and "previews" not in details["arrays"]


def test_info_names_what_the_previews_show(phantom_folder, tmp_path, capsys):
    config = tmp_path / "previews.toml"
    config.write_text(
        "[store]\nfull_resolution = false\npreview_size = 32\n[masks]\nenabled = []\n"
    )
    out = tmp_path / "out.zarr"
    assert main(["run", str(phantom_folder), "-o", str(out), "--config", str(config), "-q"]) == 0
    assert main(["info", str(out)]) == 0
    maps = "original, laplace_gaussian, gaussian_gradient_magnitude, sobel, tutorial_canny"
    assert f"arrays: previews (uint8: {maps})" in capsys.readouterr().out


def test_failed_images_give_exit_code_1_and_are_listed(phantom_folder, tmp_path, capsys):
    make_bad_inputs(phantom_folder / "bad")
    out = tmp_path / "out.zarr"
    assert main(["run", str(phantom_folder), "-o", str(out), "--batch-size", "3"]) == 1
    printed = capsys.readouterr().out
    assert "12 ok, 9 failed" in printed
    assert main(["info", str(out), "--json"]) == 0
    details = json.loads(capsys.readouterr().out)
    assert len(details["failures"]) == 9
    assert any("empty file (0 bytes)" in f["error"] for f in details["failures"])
    shutil.copyfile(phantom_folder / "00000021_000.png", phantom_folder / "bad" / "truncated.png")
    assert main(["run", str(phantom_folder), "-o", str(out), "--batch-size", "3"]) == 1
    assert "12 ok, 9 failed (0 processed" in capsys.readouterr().out  # resuming: nothing to do
    retry = ["run", str(phantom_folder), "-o", str(out), "--batch-size", "3", "--retry-failed"]
    assert main(retry) == 1
    assert "13 ok, 8 failed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["run", "{tmp}/nowhere", "-o", "{tmp}/o.zarr"], "does not exist; give a directory"),
        (["run", "{images}"], "Missing option '--out'"),
        (["run", "{images}", "-o", "{tmp}/o.zarr", "--bogus"], "No such option: --bogus"),
        (["run", "{images}", "-o", "{tmp}/o.zarr", "--workers", "0"], "--workers"),
        (["run", "{images}", "-o", "{tmp}/o.zarr", "--compat", "numpy"], "'numpy' is not one of"),
        (["run", "{images}", "-o", "{tmp}/o.zarr", "--config", "{tmp}/none.toml"], "not found"),
        (["run", "{images}", "-o", "{tmp}/o.zarr", "--config", "{tmp}/bad.toml"], "unknown key"),
        (["run", "{images}", "-o", "{tmp}/images"], "is not a zarr store"),
        (["run", "{images}", "-o", "{tmp}/o.zarr", "--config", "{images}"], "cannot be read"),
        (["run", "{images}", "-o", "{tmp}/bad.toml"], "is a file, not a store"),
        (["info", "{tmp}/missing.zarr"], "is not a zarr store"),
        (["synth", "{tmp}/s", "--bit-depth", "12"], "--bit-depth: must be 8 or 16, got 12"),
        (["bench", "{tmp}/empty", "--images", "2"], "no PNG or JPEG or DICOM files in"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_misuse_is_one_line_and_exit_code_2(phantom_folder, tmp_path, capsys, arguments, message):
    (tmp_path / "bad.toml").write_text("[filters.blur]\nsigma = 1\n")
    (tmp_path / "empty").mkdir()
    values = {"tmp": str(tmp_path), "images": str(phantom_folder)}
    assert main([a.format(**values) for a in arguments]) == 2
    error = capsys.readouterr().err
    assert error.startswith("xray-scale: error: ") and message in error
    assert len(error.strip().splitlines()) == 1 and "Traceback" not in error


def test_an_io_error_outside_a_run_says_so_without_talking_of_resuming(tmp_path, capsys):
    (tmp_path / "a file").write_text("not a folder")
    assert main(["synth", str(tmp_path / "a file" / "phantoms")]) == 3
    error = capsys.readouterr().err
    assert error.startswith("xray-scale: error: ") and error.strip().endswith(
        "fix it and try again"
    )


def test_existing_store_with_another_config_needs_overwrite(phantom_folder, tmp_path, capsys):
    out = str(tmp_path / "out.zarr")
    assert main(["run", str(phantom_folder), "-o", out, "-q", "--limit", "3"]) == 0
    assert main(["run", str(phantom_folder), "-o", out, "-q", "--limit", "4"]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["run", str(phantom_folder), "-o", out, "-q", "--limit", "4", "--overwrite"]) == 0
    assert zarr.open_group(out)["index/status"].shape == (4,)


def test_installed_executable_runs_as_a_subprocess(phantom_folder, tmp_path):
    out = tmp_path / "out store ü.zarr"
    done = subprocess.run(
        [executable(), "run", str(phantom_folder), "-o", str(out), "--compat", "tutorial"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert done.returncode == 0, done.stderr
    assert "12 images, 12 ok, 0 failed" in done.stdout
    group = zarr.open_group(out, mode="r")
    assert group["filters/laplace_gaussian"].dtype == "uint8"  # the tutorial's dtype
    missing = subprocess.run(
        [executable(), "info", str(tmp_path / "none.zarr")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and "is not a zarr store" in missing.stderr


@pytest.mark.slow
def test_demo_generates_processes_and_reports(tmp_path):
    done = subprocess.run(
        [executable(), "demo", "--out", str(tmp_path / "demo"), "--size", "128", "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 12 chest phantoms (128x128)" in done.stdout
    assert "12 images, 12 ok, 0 failed" in done.stdout
    assert zarr.open_group(tmp_path / "demo" / "demo.zarr")["stats/mean"][:].min() > 0
    grid = tmp_path / "demo" / "figures" / "comparison_grid.png"
    gif = tmp_path / "demo" / "figures" / "patient_90000001.gif"
    assert f"comparison grid: {grid}" in done.stdout and f"follow-up GIF: {gif}" in done.stdout
    assert iio.imread(grid).shape[:2] == (int(11.0 * 80), int(10.2 * 80))  # 3 x 3 panels
    assert Image.open(gif).n_frames == 6


@pytest.mark.slow
def test_demo_rerun_with_other_options_holds_only_the_new_phantoms(tmp_path, capsys):
    demo = ["demo", "--out", str(tmp_path / "d"), "-q"]
    assert main([*demo, "--size", "96", "--patients", "2", "--follow-ups", "3"]) == 0
    capsys.readouterr()
    assert main([*demo, "--size", "64", "--patients", "1", "--follow-ups", "2"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 2 chest phantoms (64x64)" in printed and "2 images, 2 ok, 0 failed" in printed
    names = sorted(p.name for p in (tmp_path / "d" / "phantoms").iterdir())
    assert names == ["90000001_000.png", "90000001_001.png"]


def test_demo_with_one_follow_up_says_why_there_is_no_gif(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--size", "64", "--follow-ups", "1"]) == 0
    printed = capsys.readouterr().out
    assert "follow-up GIF: none (no GIF for patient 90000001: 1 usable image(s)" in printed
    assert not list((tmp_path / "d" / "figures").glob("*.gif"))


def test_demo_refuses_a_phantoms_folder_holding_other_files(tmp_path, capsys):
    phantoms = tmp_path / "d" / "phantoms"
    phantoms.mkdir(parents=True)
    (phantoms / "90000001_000.png").write_bytes(b"an old phantom")
    (phantoms / "notes.txt").write_text("mine")
    assert main(["demo", "--out", str(tmp_path / "d"), "--size", "64"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "holds 'notes.txt', which the demo did not write" in error
    assert sorted(p.name for p in phantoms.iterdir()) == ["90000001_000.png", "notes.txt"]


@pytest.mark.parametrize(
    "command", ["run", "info", "plan", "bench", "export", "synth", "demo", "render", "report"]
)
def test_help_shows_click_metavars_not_python_types(command, capsys):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    for python_type in ("<list[", "<int", "<str>", "<path>", "<float", "<bool"):
        assert python_type not in text


def test_help_names_types_as_click_does(capsys):
    assert main(["run", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--workers INTEGER RANGE" in text and "--config PATH" in text
    assert "--scheduler [threads|processes|distributed|cuda]" in text
    assert "--storage-option TEXT" in text and "-o, --out TEXT" in text
    assert "[OPTIONS] {INPUTS}..." in text
    assert main(["render", "--help"]) == 0
    assert "--grid-size FLOAT FLOAT" in capsys.readouterr().out
