"""Manifests and name lists inside an archive (io/sources/text_files.py), as Kaggle ships them."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest
import zarr
from conftest import (
    CHEXPERT_HEADER,
    MANIFEST_HEADER,
    assert_stores_equal,
    make_tar,
    make_zip,
    png_bytes,
    structured_image,
)

from xray_scale.cli import main
from xray_scale.errors import InputError
from xray_scale.io.sources.datasets import CHEXPERT_LABELS, read_dataset_metadata
from xray_scale.io.sources.discover import discover_inputs
from xray_scale.io.sources.text_files import read_text_file
from xray_scale.store.encoding import read_index

MANIFEST = (
    MANIFEST_HEADER + "00000061_000.png,Mass,0,61,40,F,PA,2500,2048,0.143,0.143\n"
    "00000061_002.png,No Finding,2,61,42,F,AP,2500,2048,0.143,0.143\n"
)
CHEXPERT = (
    CHEXPERT_HEADER + "\n"
    "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,"
    + ",".join("-1.0" if name == "Edema" else "" for name in CHEXPERT_LABELS)
    + "\n"
)


def test_a_member_of_a_local_zip_or_tar_and_what_is_wrong_with_one(tmp_path):
    files = {"Data_Entry_2017.csv": MANIFEST.encode(), "sub/train.csv": CHEXPERT.encode()}
    kaggle = make_zip(tmp_path / "archive.zip", files)
    tarball = make_tar(tmp_path / "meta.tar.gz", files)
    for archive in (kaggle, tarball):
        assert read_text_file(f"{archive}::Data_Entry_2017.csv", "manifest") == MANIFEST.encode()
        assert read_text_file(f"{archive}::sub/train.csv", "metadata") == CHEXPERT.encode()
        with pytest.raises(InputError, match=r"cannot read manifest .*::nope.csv'.*no such file"):
            read_text_file(f"{archive}::nope.csv", "manifest")
    with tarfile.open(tmp_path / "folder.tar", "w") as archive:
        archive.add(tmp_path, arcname="sub", recursive=False)  # a member that is a folder
    with pytest.raises(InputError, match="no such file"):
        read_text_file(f"{tmp_path / 'folder.tar'}::sub", "manifest")
    with pytest.raises(InputError, match=r"cannot read manifest .*absent.zip::x.csv'"):
        read_text_file(f"{tmp_path / 'absent.zip'}::x.csv", "manifest")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match="broken.zip::x.csv"):
        read_text_file(f"{tmp_path / 'broken.zip'}::x.csv", "manifest")
    with pytest.raises(InputError, match="a member of a tar at a URL is not read in place"):
        read_text_file("s3://bucket/nih/images_001.tar.gz::Data_Entry_2017.csv", "manifest")
    with pytest.raises(InputError, match="cannot read manifest .*plain.csv"):
        read_text_file(tmp_path / "plain.csv", "manifest")


def test_kaggles_zip_with_its_manifest_inside_runs_as_with_the_manifest_beside_it(tmp_path):
    images = {
        f"images_001/images/00000061_{k:03d}.png": png_bytes(structured_image(k)) for k in range(3)
    }
    kaggle = make_zip(
        tmp_path / "archive.zip", {**images, "Data_Entry_2017.csv": MANIFEST.encode()}
    )
    (tmp_path / "Data_Entry_2017.csv").write_text(MANIFEST)
    command = ["run", str(kaggle), "--workers", "1", "--batch-size", "2"]
    inside, beside = tmp_path / "inside.zarr", tmp_path / "beside.zarr"
    assert main([*command, "-o", str(inside), "--manifest", f"{kaggle}::Data_Entry_2017.csv"]) == 0
    assert (
        main([*command, "-o", str(beside), "--manifest", str(tmp_path / "Data_Entry_2017.csv")])
        == 0
    )
    assert_stores_equal(inside, beside)
    group = zarr.open_group(inside, mode="r")
    assert list(read_index(group, "finding_labels")) == ["Mass", "No Finding"]  # 001 not listed


def test_chexperts_csv_inside_its_archive_gives_the_same_metadata(tmp_path):
    (tmp_path / "train.csv").write_text(CHEXPERT)
    tarball = make_tar(
        tmp_path / "chexpert.tar.gz", {"CheXpert-v1.0-small/train.csv": CHEXPERT.encode()}
    )
    inside = read_dataset_metadata([f"{tarball}::CheXpert-v1.0-small/train.csv"])
    beside = read_dataset_metadata([tmp_path / "train.csv"])
    assert inside.dataset == beside.dataset == "chexpert"
    assert inside.rows == beside.rows and inside.label_codes.keys() == beside.label_codes.keys()
    for key, codes in beside.label_codes.items():
        np.testing.assert_array_equal(inside.label_codes[key], codes)


def test_a_name_list_inside_the_archive_selects_from_it(tmp_path):
    images = {
        f"images_001/images/00000061_{k:03d}.png": png_bytes(structured_image(k)) for k in range(4)
    }
    lists = {
        "test_list.txt": b"00000061_003.png\n00000061_001.png\n00000099_000.png\n",
        "paths.txt": b"images_001/images/00000061_000.png\n",
    }
    kaggle = make_zip(tmp_path / "archive.zip", {**images, **lists})
    out = tmp_path / "test.zarr"
    command = ["run", str(kaggle), f"{kaggle}::test_list.txt", "-o", str(out), "--workers", "1"]
    assert main(command) == 1  # the listed image no input holds failed
    group = zarr.open_group(out, mode="r")
    assert list(read_index(group, "path")) == [
        f"{kaggle}::images_001/images/00000061_001.png",
        f"{kaggle}::images_001/images/00000061_003.png",
        f"{kaggle}::test_list.txt::00000099_000.png",  # listed, in no input
    ]
    assert list(read_index(group, "status")) == ["ok", "ok", "failed"]
    assert read_index(group, "error", 2) == "not in the inputs"
    with pytest.raises(InputError, match="inside an archive, so it must list image names"):
        discover_inputs([kaggle, f"{kaggle}::paths.txt"])
    with pytest.raises(InputError, match=r"cannot read list .*::nope.txt'.*no such file"):
        discover_inputs([kaggle, f"{kaggle}::nope.txt"])
