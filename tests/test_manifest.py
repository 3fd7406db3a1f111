"""manifest: the real Data_Entry_2017 header, selection, metadata, missing images."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import zarr
from conftest import MANIFEST_HEADER, REAL_SAMPLE, needs_real_sample, structured_image, write_png

import xray_scale
from xray_scale.cli import main
from xray_scale.errors import InputError
from xray_scale.io.phantoms import write_phantoms
from xray_scale.io.sources.manifest import (
    NOT_IN_INPUTS,
    manifest_columns,
    read_manifest,
    select_with_manifest,
)
from xray_scale.store.encoding import read_index


def write_manifest(path, rows):
    path.write_text(MANIFEST_HEADER + "".join(",".join(map(str, row)) + "\n" for row in rows))
    return path


@pytest.fixture
def folder_and_manifest(tmp_path):
    images = tmp_path / "images"
    for k in range(4):
        write_png(images / f"00000031_{k:03d}.png", structured_image(k))
    write_png(images / "unlisted.png", structured_image(9))
    manifest = write_manifest(
        tmp_path / "Data_Entry_2017.csv",
        [
            [
                f"00000031_{k:03d}.png",
                "No Finding" if k else "Effusion|Mass",
                k,
                31,
                60 + k,
                "F",
                "PA" if k % 2 else "AP",
                2500 + k,
                2048,
                0.143,
                0.168,
            ]
            for k in range(6)  # 00000031_004 and _005 are listed but not on disk
        ],
    )
    return images, manifest


def test_the_bracketed_header_becomes_four_columns(folder_and_manifest):
    _, path = folder_and_manifest
    row = read_manifest(path).rows["00000031_001.png"]
    assert row["OriginalImage[Width]"] == "2501" and row["OriginalImage[Height]"] == "2048"
    assert row["OriginalImagePixelSpacing[x]"] == "0.143"
    assert row["OriginalImagePixelSpacing[y]"] == "0.168"


@needs_real_sample
@pytest.mark.real_data
def test_the_real_manifest_rows():
    manifest = read_manifest(REAL_SAMPLE / "Data_Entry_2017-patient11.csv")
    assert len(manifest.rows) == 9
    assert manifest.rows["00000011_005.png"]["View Position"] == "AP"
    assert manifest.rows["00000011_006.png"]["OriginalImage[Width]"] == "2992"


def test_run_selects_listed_images_stores_metadata_and_records_missing_ones(
    folder_and_manifest, tmp_path
):
    images, manifest = folder_and_manifest
    summary = xray_scale.run([images], tmp_path / "out.zarr", manifest=manifest, workers=1)
    assert (summary.total, summary.ok, summary.failed, summary.manifest_missing) == (6, 4, 2, 2)
    assert summary.processed == 4  # the absent files are failed, not processed
    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    names = [os.path.basename(p) for p in read_index(group, "path")]
    assert names == [f"00000031_{k:03d}.png" for k in range(6)]  # unlisted.png left out
    assert list(read_index(group, "status")) == ["ok"] * 4 + ["failed"] * 2
    assert list(read_index(group, "error")[4:]) == [NOT_IN_INPUTS] * 2
    assert read_index(group, "finding_labels", 0) == "Effusion|Mass"
    assert list(read_index(group, "view_position")) == ["AP", "PA"] * 3
    assert group["index/patient_age"][:].tolist() == [60, 61, 62, 63, 64, 65]
    assert group["index/original_width"][:].tolist() == [2500, 2501, 2502, 2503, 2504, 2505]
    assert np.allclose(group["index/pixel_spacing_y"][:], 0.168)
    attrs = group.attrs["xray_scale"]["manifest"]
    assert attrs["listed"] == 6 and attrs["missing"] == 2
    assert attrs["missing_examples"] == ["00000031_004.png", "00000031_005.png"]


def test_changing_the_manifest_is_another_run(folder_and_manifest, tmp_path):
    images, manifest = folder_and_manifest
    xray_scale.run([images], tmp_path / "out.zarr", manifest=manifest, workers=1)
    manifest.write_text(manifest.read_text().replace("Effusion|Mass", "Mass"))
    with pytest.raises(xray_scale.StoreError, match="other inputs, another config"):
        xray_scale.run([images], tmp_path / "out.zarr", manifest=manifest, workers=1)


def test_bad_manifests(tmp_path):
    (tmp_path / "other.csv").write_text("name,label\na.png,x\n")
    with pytest.raises(InputError, match="no 'Image Index' column"):
        read_manifest(tmp_path / "other.csv")
    write_manifest(tmp_path / "short.csv", [["00000001_000.png", "x", 0]])
    with pytest.raises(InputError, match="line 2: 3 values for 11 columns"):
        read_manifest(tmp_path / "short.csv")
    with pytest.raises(InputError, match="cannot read manifest"):
        read_manifest(tmp_path / "nowhere.csv")
    row = ["00000001_000.png", "x", 0, 1, 50, "M", "PA", 1, 1, 0.1, 0.1]
    write_manifest(tmp_path / "twice.csv", [row, row])
    with pytest.raises(InputError, match="listed twice"):
        read_manifest(tmp_path / "twice.csv")


def test_two_inputs_with_one_name_are_refused(folder_and_manifest, tmp_path):
    images, manifest = folder_and_manifest
    paths = [str(images / "00000031_000.png"), str(tmp_path / "copy" / "00000031_000.png")]
    with pytest.raises(InputError, match="is in the inputs twice"):
        select_with_manifest(paths, read_manifest(manifest))


def manifest_row(name, age="50"):
    return [name, "No Finding", 0, 1, age, "M", "PA", 2500, 2048, 0.143, 0.168]


def test_ages_with_a_unit_are_whole_years_and_unreadable_ones_are_counted(tmp_path, caplog):
    ages = ["58", "058Y", "045M", "010D", "old", "99999"]
    names = [f"00000001_{k:03d}.png" for k in range(len(ages))]
    path = write_manifest(tmp_path / "m.csv", map(manifest_row, names, ages))
    with caplog.at_level("WARNING", logger="xray_scale.io.sources.manifest"):
        manifest = read_manifest(path)
    columns = manifest_columns(manifest, [str(tmp_path / name) for name in names])
    assert columns["patient_age"].tolist() == [58, 58, 3, 0, -1, -1]
    assert caplog.messages == [
        f"manifest {str(path)!r}: 2 unreadable 'Patient Age' value(s), stored as -1 "
        "(first: line 6, 'old'); expected a whole number of years, optionally with a unit: "
        "58, 058Y, 045M, 010D"
    ]


def test_blank_rows_are_skipped_and_a_blank_image_name_is_refused(tmp_path):
    blank = ",,,,,,,,,,"
    lines = [
        MANIFEST_HEADER.strip(),
        ",".join(map(str, manifest_row("00000001_000.png"))),
        blank,
        blank,
    ]
    (tmp_path / "m.csv").write_bytes("\r\n".join(lines).encode() + b"\r\n")
    assert list(read_manifest(tmp_path / "m.csv").rows) == ["00000001_000.png"]
    write_manifest(tmp_path / "nameless.csv", [manifest_row("")])
    with pytest.raises(InputError, match="line 2: the 'Image Index' column is blank"):
        read_manifest(tmp_path / "nameless.csv")


def test_a_manifest_that_is_not_utf8_is_one_line_saying_where_and_what_to_do(tmp_path, capsys):
    row = ",".join(map(str, manifest_row("00000001_000.png"))).replace("No Finding", "Épanchement")
    latin1 = (MANIFEST_HEADER + row + "\n").encode("latin-1")
    data = b"\xef\xbb\xbf" + latin1  # a UTF-8 BOM, then Latin-1
    (tmp_path / "latin1.csv").write_bytes(data)
    where = f"byte {len(MANIFEST_HEADER) + 3 + len('00000001_000.png,')} (line 2) is 0xc9"
    with pytest.raises(InputError, match=rf"is not UTF-8: {re.escape(where)}; save it as UTF-8"):
        read_manifest(tmp_path / "latin1.csv")
    write_png(tmp_path / "images" / "00000001_000.png", structured_image(0))
    arguments = ["plan", str(tmp_path / "images"), "--manifest", str(tmp_path / "latin1.csv")]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and where in error


def test_a_header_with_quoted_bracketed_columns_is_read_the_same(tmp_path):
    quoted = MANIFEST_HEADER.replace(
        "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]",
        '"OriginalImage[Width,Height]","OriginalImagePixelSpacing[x, y]"',
    )
    row = manifest_row("00000001_000.png")
    (tmp_path / "m.csv").write_text(quoted + ",".join(map(str, row)) + "\n")
    parsed = read_manifest(tmp_path / "m.csv").rows["00000001_000.png"]
    assert (parsed["OriginalImage[Width]"], parsed["OriginalImage[Height]"]) == ("2500", "2048")
    assert parsed["OriginalImagePixelSpacing[y]"] == "0.168"


def _bytes_under(folder) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


@pytest.mark.slow
def test_a_partial_download_writes_nothing_for_the_images_it_lacks(tmp_path):
    """40,000 listed, 9 present, the default config: 9 images' work and about their store."""
    images = tmp_path / "images"
    if all((REAL_SAMPLE / f"00000011_{k:03d}.png").is_file() for k in range(9)):
        present = [REAL_SAMPLE / f"00000011_{k:03d}.png" for k in range(9)]
    else:  # phantoms of the real images' size, under the real images' names
        present = write_phantoms(tmp_path / "phantoms", first_patient_id=11)
    images.mkdir()
    for path in present:
        os.symlink(path, images / path.name)
    names = [f"{k // 10 + 1:08d}_{k % 10:03d}.png" for k in range(40_000)]
    names[100:109] = [path.name for path in present]  # patient 11, as in the real file
    rows = [manifest_row(name) for name in names]
    manifest = write_manifest(tmp_path / "Data_Entry_2017.csv", rows)
    alone = xray_scale.run([images], tmp_path / "nine.zarr", workers=2)
    started = []
    summary = xray_scale.run(
        [images],
        tmp_path / "all.zarr",
        manifest=manifest,
        workers=2,
        on_start=lambda *a: started.append(a),
    )
    assert (summary.total, summary.ok, summary.failed, summary.processed) == (40_000, 9, 39_991, 9)
    assert started == [(16, 0)]  # the two batches holding the 9: nothing "already done"
    assert (alone.ok, alone.processed) == (9, 9)
    group = zarr.open_group(tmp_path / "all.zarr", mode="r")
    indices = [k for k, path in enumerate(read_index(group, "path")) if "00000011_" in path]
    batches = {k // 8 for k in indices}
    for name in ("filters/sobel", "masks/mask_binary"):  # a shard only for the batches of the 9
        assert sorted(p.name for p in (tmp_path / "all.zarr" / name / "c").iterdir()) == sorted(
            str(b) for b in batches
        )
    maps = {
        store: sum(_bytes_under(tmp_path / store / kind) for kind in ("filters", "masks"))
        for store in ("all.zarr", "nine.zarr")
    }
    assert maps["all.zarr"] < 1.1 * maps["nine.zarr"]
    assert _bytes_under(tmp_path / "all.zarr") < 1.1 * _bytes_under(tmp_path / "nine.zarr") + 2e6
