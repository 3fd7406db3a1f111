"""Whole runs from archives and name lists: the store equals the extracted folder's."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import zarr
from conftest import (
    MANIFEST_HEADER,
    assert_stores_equal,
    make_tar,
    make_zip,
    png_bytes,
    structured_image,
    write_png,
)

import xray_scale
from xray_scale.cli import main
from xray_scale.errors import InputError
from xray_scale.io.sources import archives
from xray_scale.render import grid_figure, render_store
from xray_scale.runner.plan import plan_run
from xray_scale.store.encoding import read_index

OPTIONS = {"workers": 2, "batch_size": 4, "engine": "scipy"}
NAMES = [f"{21 + k // 6:08d}_{k % 6:03d}.png" for k in range(12)]


pytestmark = pytest.mark.usefixtures("fresh_archive_handles")  # conftest.py


@pytest.fixture
def dump(phantom_folder, tmp_path):
    """The 12 phantoms as an extracted folder, two NIH tarballs, a Kaggle zip and a plain tar."""
    files = {name: (phantom_folder / name).read_bytes() for name in NAMES}
    nih = tmp_path / "nih"
    nih.mkdir()
    make_tar(nih / "images_001.tar.gz", {f"images/{n}": files[n] for n in NAMES[:7]})
    make_tar(nih / "images_002.tar.gz", {f"images/{n}": files[n] for n in NAMES[7:]})
    kaggle = make_zip(
        tmp_path / "kaggle.zip",
        {f"images_00{1 + k // 7}/images/{n}": files[n] for k, n in enumerate(NAMES)},
    )
    plain = make_tar(tmp_path / "plain.tar", {f"x/{n}": files[n] for n in NAMES}, mode="w")
    reference = tmp_path / "folder.zarr"
    assert xray_scale.run([phantom_folder], reference, **OPTIONS).ok == 12
    return {
        "folder": phantom_folder,
        "nih": nih,
        "kaggle": kaggle,
        "plain": plain,
        "reference": reference,
        "files": files,
    }


def paths_of(store) -> list[str]:
    return list(read_index(zarr.open_group(store, mode="r"), "path"))


def test_nih_tarballs_by_glob_equal_the_extracted_folder(dump, tmp_path):
    out = tmp_path / "nih.zarr"
    summary = xray_scale.run([str(dump["nih"] / "images_*.tar.gz")], out, **OPTIONS)
    assert (summary.ok, summary.failed) == (12, 0)
    assert_stores_equal(dump["reference"], out, besides=("index/path",))
    first = dump["nih"] / "images_001.tar.gz"
    assert paths_of(out)[:2] == [f"{first}::images/{NAMES[0]}", f"{first}::images/{NAMES[1]}"]
    assert (dump["nih"] / "images_001.tar.gz.xray-scale-index").is_file()


@pytest.mark.parametrize("source", ["kaggle", "plain"])
def test_kaggle_zip_and_plain_tar_equal_the_extracted_folder(dump, tmp_path, source):
    out = tmp_path / f"{source}.zarr"
    assert xray_scale.run([dump[source]], out, **OPTIONS).ok == 12
    assert_stores_equal(dump["reference"], out, besides=("index/path",))


def test_archives_mixed_with_a_folder_and_members_given_back(dump, tmp_path):
    part = tmp_path / "part"
    part.mkdir()
    for name in NAMES[7:]:
        (part / name).write_bytes(dump["files"][name])
    out = tmp_path / "mixed.zarr"
    assert xray_scale.run([dump["nih"] / "images_001.tar.gz", part], out, **OPTIONS).ok == 12
    assert_stores_equal(dump["reference"], out, besides=("index/path",))
    listed = tmp_path / "again.txt"  # index/path's names are inputs again, in a path list
    listed.write_text("\n".join(paths_of(out)[:3]) + "\n")
    again = tmp_path / "again.zarr"
    assert xray_scale.run([listed], again, **OPTIONS).ok == 3
    assert paths_of(again) == paths_of(out)[:3]
    member = paths_of(out)[4]
    assert xray_scale.run([member], tmp_path / "one.zarr", **OPTIONS).ok == 1
    with pytest.raises(InputError, match="does not hold member 'images/99999999_000.png'"):
        xray_scale.run([f"{dump['nih'] / 'images_001.tar.gz'}::images/99999999_000.png"], again)


@pytest.mark.slow
def test_worker_processes_read_members(dump, tmp_path):
    out = tmp_path / "processes.zarr"
    summary = xray_scale.run([dump["kaggle"]], out, scheduler="processes", **OPTIONS)
    assert summary.ok == 12
    assert_stores_equal(dump["reference"], out, besides=("index/path",))


def test_cut_tarball_keeps_what_came_before_and_says_so(dump, tmp_path, caplog):
    whole = (dump["nih"] / "images_001.tar.gz").read_bytes()
    cut = tmp_path / "images_001.tar.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    with caplog.at_level(logging.WARNING, logger="xray_scale.io.sources.archives"):
        summary = xray_scale.run([cut], tmp_path / "cut.zarr", **OPTIONS)
    group = zarr.open_group(tmp_path / "cut.zarr", mode="r")
    errors = list(read_index(group, "error"))
    assert summary.failed == 1 and summary.ok == summary.total - 1 >= 2
    assert errors[-1].startswith("truncated in the archive: it ends after ")
    assert "members after it are lost" in caplog.text


def test_bad_members_fail_alone(dump, tmp_path):
    files = {f"images/{n}": dump["files"][n] for n in NAMES[:4]}
    files["images/00000099_000.png"] = b"not a png, just text"
    files["images/00000099_001.png"] = dump["files"][NAMES[0]][:500]
    archive = make_zip(tmp_path / "bad.zip", files)
    summary = xray_scale.run([archive], tmp_path / "bad.zarr", **OPTIONS)
    assert (summary.ok, summary.failed) == (4, 2)
    errors = dict(
        zip(
            paths_of(tmp_path / "bad.zarr"),
            read_index(zarr.open_group(tmp_path / "bad.zarr"), "error"),
            strict=True,
        )
    )
    assert errors[f"{archive}::images/00000099_000.png"].startswith("not a PNG")
    assert errors[f"{archive}::images/00000099_001.png"].startswith("truncated PNG")


def test_resume_and_retry_failed_on_members(dump, tmp_path):
    files = {f"images/{n}": dump["files"][n] for n in NAMES[:8]}
    good = files["images/" + NAMES[5]]
    files["images/" + NAMES[5]] = good[:1000]
    archive = make_tar(tmp_path / "images_001.tar.gz", files)
    out = tmp_path / "out.zarr"
    assert xray_scale.run([archive], out, **OPTIONS).failed == 1
    assert xray_scale.run([archive], out, **OPTIONS).processed == 0  # resuming skips it
    files["images/" + NAMES[5]] = good  # the archive downloaded again
    make_tar(archive, files)
    os.utime(archive, ns=(1, 1))  # a new modification time: its index is built again
    summary = xray_scale.run([archive], out, retry_failed=True, **OPTIONS)
    assert (summary.processed, summary.failed, summary.ok) == (4, 0, 8)
    reference = zarr.open_group(dump["reference"], mode="r")
    repaired = zarr.open_group(out, mode="r")
    for name in ("stats/mean", "stats/histogram", "filters/sobel", "index/checksum"):
        assert np.array_equal(repaired[name][:8], reference[name][:8]), name
    listed = tmp_path / "list.txt"  # a listed member the archive lacks: retrying cannot help
    listed.write_text(f"{archive}::images/{NAMES[0]}\n{archive}::images/99999999_000.png\n")
    gone = tmp_path / "gone.zarr"
    assert xray_scale.run([listed], gone, **OPTIONS).failed == 1
    assert list(read_index(zarr.open_group(gone, mode="r"), "error"))[1].startswith(
        "not in the archive"
    )
    assert xray_scale.run([listed], gone, retry_failed=True, **OPTIONS).processed == 0


def test_manifest_selects_members_by_file_name(dump, tmp_path):
    manifest = tmp_path / "Data_Entry_2017.csv"
    rows = [NAMES[3], NAMES[9], "00000077_000.png"]
    manifest.write_text(
        MANIFEST_HEADER + "".join(f"{n},No Finding,0,1,58,M,PA,64,64,0.1,0.1\n" for n in rows)
    )
    out = tmp_path / "m.zarr"
    summary = xray_scale.run([dump["kaggle"]], out, manifest=manifest, **OPTIONS)
    assert (summary.ok, summary.failed, summary.manifest_missing) == (2, 1, 1)
    group = zarr.open_group(out, mode="r")
    names = [archives.file_name(p) for p in read_index(group, "path")]
    assert sorted(names) == sorted(rows)
    assert list(group["index/patient_age"][:]) == [58, 58, 58]


def test_name_list_selects_from_archives_and_a_missing_name_fails(dump, tmp_path):
    test_list = dump["nih"] / "test_list.txt"
    test_list.write_text(f"{NAMES[8]}\n{NAMES[2]}\n00000077_000.png\n")
    out = tmp_path / "test.zarr"
    summary = xray_scale.run([str(dump["nih"] / "images_*.tar.gz"), test_list], out, **OPTIONS)
    assert (summary.total, summary.ok, summary.failed) == (3, 2, 1)
    group = zarr.open_group(out, mode="r")
    paths, errors = list(read_index(group, "path")), list(read_index(group, "error"))
    nih = dump["nih"]
    assert paths == [
        f"{nih / 'images_001.tar.gz'}::images/{NAMES[2]}",
        f"{nih / 'images_002.tar.gz'}::images/{NAMES[8]}",
        f"{test_list}::00000077_000.png",
    ]
    assert errors == ["", "", "not in the inputs"]
    reference = zarr.open_group(dump["reference"], mode="r")
    assert np.array_equal(group["stats/mean"][:2], reference["stats/mean"][[2, 8]])
    with pytest.raises(InputError, match="selects images from the other inputs, but none"):
        xray_scale.run([test_list], tmp_path / "alone.zarr", **OPTIONS)


@pytest.mark.slow
def test_render_plan_and_the_changed_source_note_on_members(dump, tmp_path):
    files = {f"images/{n}": dump["files"][n] for n in NAMES[:6]}
    archive = make_tar(tmp_path / "images_001.tar.gz", files)
    out = tmp_path / "r.zarr"
    assert xray_scale.run([archive], out, **OPTIONS).ok == 6
    figure, notes = grid_figure(out, 2, dpi=30)
    assert notes == [] and len(figure.axes) >= 2
    report = render_store(out, tmp_path / "figures", names=[NAMES[2]])
    assert len(report.grids) == 1
    assert report.notes == ["summary/failures not written: no image failed"]
    files["images/" + NAMES[2]] = png_bytes(structured_image(2)[:, ::-1])  # changed since
    make_tar(archive, files)
    os.utime(archive, ns=(5, 5))
    archives._forget_opened()
    stem = NAMES[2][:-4]
    assert grid_figure(out, 2, dpi=30)[1] == [
        f"source file of {stem} changed since the run (checksum differs)"
    ]
    estimate = plan_run([archive], workers=1, sample=2, config={"run": {"batch_size": 2}})
    assert (estimate.images, estimate.sampled) == (6, 2)


def test_cli_runs_a_glob_of_tarballs(dump, tmp_path, capsys):
    out = tmp_path / "cli.zarr"
    code = main(["run", str(dump["nih"] / "images_*.tar.gz"), "-o", str(out), "--workers", "1"])
    assert code == 0
    assert f"{out}: 12 images, 12 ok, 0 failed" in capsys.readouterr().out
    assert len(paths_of(out)) == 12


def test_a_top_level_zip_member_keeps_its_patient_id(tmp_path):
    write_png(tmp_path / "x" / "00000011_004.png", structured_image(4))
    archive = make_zip(
        tmp_path / "flat.zip",
        {"00000011_004.png": (tmp_path / "x" / "00000011_004.png").read_bytes()},
    )
    out = tmp_path / "flat.zarr"
    assert xray_scale.run([archive], out, **OPTIONS).ok == 1
    group = zarr.open_group(out, mode="r")
    assert (read_index(group, "patient_id", 0), int(group["index/follow_up"][0])) == ("11", 4)
