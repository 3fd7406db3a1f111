"""Runs over JPEG and DICOM inputs: folders, archives, a bucket, resize, and no identifying tag
anywhere (store, messages, the report, export)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import zarr
from conftest import assert_stores_equal, make_tar, make_zip, structured_image
from PIL import Image

import xray_scale
from xray_scale.cli import main
from xray_scale.io.formats.dicom import VOI_CHOICES
from xray_scale.io.formats.jpeg import decode_jpeg
from xray_scale.store.encoding import read_index

pytest.importorskip("pydicom", reason="the dicom extra is not installed")

from dicom_writer import IDENTIFYING, dicom_bytes  # noqa: E402
from pydicom.uid import BasicTextSRStorage  # noqa: E402

from xray_scale.config import DICOM_VOI  # noqa: E402


def jpeg_bytes(pixels: np.ndarray, quality: int = 90) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=quality)
    return out.getvalue()


def jpeg_films(count: int = 5, shape=(64, 64)) -> dict[str, bytes]:
    return {
        f"patient{k:05d}_view1_frontal.jpg": jpeg_bytes(structured_image(k, shape))
        for k in range(count)
    }


def gray(data: bytes) -> np.ndarray:
    return decode_jpeg(data, max_pixels=10**8)[1]


def test_the_config_and_the_decoder_agree_on_the_voi_choices():
    assert DICOM_VOI == VOI_CHOICES


def test_a_jpeg_folder_runs_like_png_and_a_truncated_one_fails_alone(tmp_path):
    films = jpeg_films()
    folder = tmp_path / "chexpert"
    folder.mkdir()
    for name, data in films.items():
        (folder / name).write_bytes(data)
    truncated = films["patient00001_view1_frontal.jpg"][:900]
    (folder / "patient00001_view1_frontal.jpg").write_bytes(truncated)
    summary = xray_scale.run([folder], tmp_path / "out.zarr", workers=1)
    assert (summary.ok, summary.failed) == (4, 1)
    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    errors = list(read_index(group, "error"))
    assert errors[1].startswith("truncated JPEG") and not any(errors[:1] + errors[2:])
    assert list(read_index(group, "mode")) == ["L", "", "L", "L", "L"]
    for k in (0, 2, 3, 4):  # the stored statistics are those of libjpeg-turbo's pixels
        pixels = gray(films[f"patient{k:05d}_view1_frontal.jpg"])
        assert group["stats/mean"][k] == pytest.approx(pixels.mean(), rel=1e-12)


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_jpegs_in_an_archive_equal_the_folder(tmp_path, kind):
    films = jpeg_films(4)
    folder = tmp_path / "folder"
    folder.mkdir()
    for name, data in films.items():
        (folder / name).write_bytes(data)
    members = {f"CheXpert-v1.0-small/train/{name}": data for name, data in films.items()}
    archive = tmp_path / f"chexpert.{kind}"
    (make_tar if kind == "tar.gz" else make_zip)(archive, members)
    assert xray_scale.run([folder], tmp_path / "a.zarr", workers=1).ok == 4
    assert xray_scale.run([archive], tmp_path / "b.zarr", workers=1).ok == 4
    a, b = (zarr.open_group(tmp_path / n, mode="r") for n in ("a.zarr", "b.zarr"))
    assert np.array_equal(a["stats/histogram"][:], b["stats/histogram"][:])
    assert np.array_equal(a["filters/sobel"][:], b["filters/sobel"][:])


def dicom_folder(tmp_path, *, bad: bool = True):
    """DICOM films in four syntaxes, MONOCHROME1 among them, and (bad) the unusable ones."""
    folder = tmp_path / "vindr"
    folder.mkdir()
    stored = [(structured_image(k, (64, 64)).astype(np.uint16) * 16) for k in range(4)]
    files = {
        "a.dcm": dicom_bytes(stored[0], syntax="explicit", bits_stored=12),
        "b.dcm": dicom_bytes(
            stored[1], syntax="jpeg2000", bits_stored=12, photometric="MONOCHROME1"
        ),
        "c.dcm": dicom_bytes(stored[2], syntax="jpeg-ls", bits_stored=12, window=(1800, 2000)),
        "d.dcm": dicom_bytes(stored[3], syntax="rle", bits_stored=12, slope=1, intercept=10),
    }
    if bad:
        files["e_report.dcm"] = dicom_bytes(None, sop_class=BasicTextSRStorage)
        files["f_mpeg2.dcm"] = dicom_bytes(
            stored[0], syntax="1.2.840.10008.1.2.4.100", bits_stored=12
        )
        files["g_truncated.dcm"] = files["a.dcm"][:-500]
        files["h_frames.dcm"] = dicom_bytes(np.stack(stored[:2]), frames=2, bits_stored=12)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder, stored, files


def all_text(group: zarr.Group) -> str:
    """Every array's values and every attribute of a store, as text."""
    parts = [json.dumps(group.attrs.asdict(), default=str)]
    for _, array in group.arrays():
        parts.append(json.dumps(array.attrs.asdict(), default=str))
        values = array[:]
        if values.dtype == np.uint8 and values.ndim == 2 and "index" in array.path:
            parts.extend(bytes(row).decode("utf-8", "replace") for row in values)
        elif values.dtype.kind in "OUS":
            parts.extend(map(str, values.ravel()))
    for _, sub in group.groups():
        parts.append(all_text(sub))
    return "\n".join(parts)


def test_dicom_run_stores_monochrome2_uint16_the_tags_and_a_reason_per_bad_file(tmp_path):
    folder, stored, _ = dicom_folder(tmp_path)
    summary = xray_scale.run([folder], tmp_path / "out.zarr", workers=1)
    assert (summary.ok, summary.failed) == (4, 4)
    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    assert group.attrs["xray_scale"]["pixel_dtype"] == "uint16"
    errors = list(read_index(group, "error"))
    assert errors[4].startswith("DICOM without pixel data (Basic Text SR Storage)")
    assert errors[5].startswith("unsupported DICOM transfer syntax: MPEG2")
    assert errors[6].startswith("truncated DICOM pixel data")
    assert errors[7].startswith("multi-frame DICOM (2 frames)")
    assert (
        list(read_index(group, "mode"))[:4] == ["MONOCHROME2", "MONOCHROME1"] + ["MONOCHROME2"] * 2
    )
    assert list(read_index(group, "dicom_patient_id")) == ["patient042"] * 4 + [""] * 4
    assert list(read_index(group, "dicom_bits_stored"))[:4] == ["12"] * 4
    assert list(read_index(group, "dicom_photometric"))[1] == "MONOCHROME1"
    assert group["stats/max"][1] == (4095 - stored[1]).max()  # inverted
    assert group["stats/mean"][3] == pytest.approx(stored[3].mean() + 10, rel=1e-12)  # rescaled


@pytest.mark.slow
def test_no_identifying_tag_reaches_the_store_a_message_the_report_or_the_export(tmp_path, capsys):
    folder, _, _ = dicom_folder(tmp_path)
    out = tmp_path / "out.zarr"
    assert main(["run", str(folder), "--out", str(out), "--workers", "1"]) == 1  # 4 failed
    assert main(["info", str(out)]) == 0
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    assert main(["export", str(out), "--to", str(tmp_path / "table.csv")]) == 0
    render = tmp_path / "render"
    assert main(["render", str(out), "-o", str(render), "--sample", "2", "--no-gif", "-q"]) == 0
    assert list(render.rglob("*.png"))  # the DICOM films decoded again and drawn
    seen = [capsys.readouterr().out, all_text(zarr.open_group(out, mode="r"))]
    seen += [p.read_text("utf-8", "replace") for p in (tmp_path / "report").rglob("*.html")]
    seen.append((tmp_path / "table.csv").read_text())
    assert "patient042" in seen[1] and "patient042" in seen[3]  # the listed tags are there
    for text in seen:
        for value in IDENTIFYING.values():
            assert value not in text and value.split("^")[0] not in text, value


@pytest.mark.slow
def test_dicoms_in_a_zip_equal_the_folder(tmp_path):
    folder, _, files = dicom_folder(tmp_path, bad=False)
    archive = make_zip(
        tmp_path / "rsna.zip", {f"stage_2_train_images/{n}": d for n, d in files.items()}
    )
    assert xray_scale.run([folder], tmp_path / "a.zarr", workers=1).ok == 4
    assert xray_scale.run([archive], tmp_path / "b.zarr", workers=1).ok == 4
    a, b = (zarr.open_group(tmp_path / n, mode="r") for n in ("a.zarr", "b.zarr"))
    assert np.array_equal(a["stats/histogram"][:], b["stats/histogram"][:])
    assert list(read_index(a, "dicom_study_uid")) == list(read_index(b, "dicom_study_uid"))


def test_jpegs_of_any_size_resized_into_one_run(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    sizes = [(300, 240), (240, 300), (64, 64)]
    for k, size in enumerate(sizes):
        (folder / f"{k}.jpg").write_bytes(jpeg_bytes(structured_image(k, size)))
    config = {"input": {"size": [64, 64], "size_policy": "resize"}}
    assert xray_scale.run([folder], tmp_path / "out.zarr", config=config, workers=1).ok == 3
    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    assert [int(v) for v in group["index/file_height"][:]] == [300, 240, 64]
    assert [int(v) for v in group["index/file_width"][:]] == [240, 300, 64]


# -- from a bucket (moto's S3 server on 127.0.0.1) ---------------------------------------------


@pytest.mark.s3
@pytest.mark.slow
def test_jpegs_and_dicoms_from_a_bucket_equal_the_folder_runs(s3_fs, tmp_path):
    s3_fs.makedirs("formats-test", exist_ok=True)  # moto keeps buckets per process: our own
    folder = tmp_path / "jpg"
    folder.mkdir()
    for name, data in jpeg_films(3).items():
        (folder / name).write_bytes(data)
        s3_fs.pipe(f"formats-test/mimic/files/p10/{name}", data)
    dicoms, _, files = dicom_folder(tmp_path, bad=False)
    for name, data in files.items():
        s3_fs.pipe(f"formats-test/vindr/{name}", data)
    for local, url in (
        (folder, "s3://formats-test/mimic/files/"),
        (dicoms, "s3://formats-test/vindr/"),
    ):
        here = xray_scale.run([local], tmp_path / "here.zarr", workers=1, overwrite=True)
        there = xray_scale.run([url], tmp_path / "there.zarr", workers=1, overwrite=True)
        assert here.ok == there.ok == len(list(local.iterdir())) and there.failed == 0
        a, b = (zarr.open_group(tmp_path / n, mode="r") for n in ("here.zarr", "there.zarr"))
        assert np.array_equal(a["stats/histogram"][:], b["stats/histogram"][:]), url
        assert np.array_equal(a["filters/laplace_gaussian"][:], b["filters/laplace_gaussian"][:])
    s3_fs.rm("formats-test", recursive=True)  # no bucket left for another module's server


def test_a_jpeg_named_png_is_read_as_the_jpeg_it_is(tmp_path):
    """The registry picks a format by the file's leading bytes, not its name."""
    pixels = structured_image(9, (64, 64))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "misnamed.png").write_bytes(jpeg_bytes(pixels))
    assert xray_scale.run([tmp_path / "in"], tmp_path / "out.zarr", workers=1).ok == 1
    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    assert list(read_index(group, "mode")) == ["L"]
    assert group["stats/mean"][0] == pytest.approx(gray(jpeg_bytes(pixels)).mean(), rel=1e-12)


def test_the_dicom_voi_choice_reaches_the_decoder_through_the_config(tmp_path):
    folder, stored, _ = dicom_folder(tmp_path, bad=False)  # c.dcm has a window, 1800 +- 1000
    means = {}
    for voi in ("window", "none"):
        config = {"input": {"dicom_voi": voi}}
        out = tmp_path / f"{voi}.zarr"
        assert xray_scale.run([folder], out, config=config, workers=1).ok == 4
        means[voi] = zarr.open_group(out, mode="r")["stats/mean"][2]
    assert means["none"] == pytest.approx(stored[2].mean(), rel=1e-12)
    assert means["window"] != pytest.approx(means["none"])


@pytest.mark.cluster
@pytest.mark.slow
def test_jpegs_and_dicoms_on_a_dask_cluster_equal_a_threaded_run(dask_cluster, tmp_path):
    """Workers in their own processes decode JPEG and DICOM (and read the tags) as threads do."""
    address, _ = dask_cluster
    films = tmp_path / "films"
    films.mkdir()
    for name, data in jpeg_films(3).items():
        (films / name).write_bytes(data)
    dicoms, _, _ = dicom_folder(tmp_path, bad=True)
    for path in dicoms.iterdir():
        (films / path.name).write_bytes(path.read_bytes())
    here = xray_scale.run([films], tmp_path / "threads.zarr", workers=1)
    there = xray_scale.run([films], tmp_path / "cluster.zarr", address=address)
    assert (here.ok, here.failed) == (there.ok, there.failed) == (7, 4)
    assert "index/dicom_patient_id" in zarr.open_group(tmp_path / "cluster.zarr", mode="r")
    assert_stores_equal(tmp_path / "threads.zarr", tmp_path / "cluster.zarr")
