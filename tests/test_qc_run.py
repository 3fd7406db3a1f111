"""QC in a real run: the stored flags, groups and scores equal the pure functions' results."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from PIL import Image
from qc_cases import precision_recall

import xray_scale
from xray_scale.analysis.maps import batch_spec
from xray_scale.analysis.outliers import OUTLIER_FEATURES, outlier_distance
from xray_scale.analysis.qc import QC_FLAGS, QC_RECORD_FIELDS, QCConfig, image_qc, pixel_hash
from xray_scale.analysis.qc_groups import group_duplicates, group_near_duplicates
from xray_scale.cli import main
from xray_scale.config import load_config
from xray_scale.errors import StoreError
from xray_scale.io.phantoms import phantom
from xray_scale.render.report import write_report
from xray_scale.store.encoding import read_index
from xray_scale.store.export import store_table
from xray_scale.store.layout import QC_FEATURES
from xray_scale.store.metadata import fingerprinted_config

FIXTURES = Path(__file__).parent / "data" / "store-55e04d4"  # written before QC existed
# Every file fits, padded: the copies rescaled up by 5 % are 1075 pixels wide.
RUN_CONFIG = {
    "input": {"size": [1080, 1080], "size_policy": "pad"},
    "store": {"full_resolution": False},
}


@pytest.fixture(scope="module")
def run_store(labelled_cases, tmp_path_factory):
    out = tmp_path_factory.mktemp("qc_run") / "run.zarr"
    folder = labelled_cases[0].path.parent
    summary = xray_scale.run([folder], out, config=RUN_CONFIG, workers=2, batch_size=8)
    assert (summary.ok, summary.failed) == (len(labelled_cases), 0)
    return out


@pytest.mark.slow
def test_a_run_stores_the_flags_of_the_pure_functions(labelled_cases, run_store):
    group = zarr.open_group(run_store, mode="r")
    by_path = {str(p): k for k, p in enumerate(read_index(group, "path"))}
    order = [by_path[str(case.path)] for case in labelled_cases]
    results = [image_qc(np.asarray(Image.open(case.path))) for case in labelled_cases]
    for name in QC_RECORD_FIELDS:
        stored = group[f"qc/{name}"][:][order]
        pure = np.array([getattr(r, name) for r in results])
        np.testing.assert_array_equal(stored, pure, err_msg=name)
    ok = np.ones(len(order), dtype=bool)
    stored_groups = group["qc/duplicate_group"][:]
    pure_hashes = group["qc/pixel_hash"][:]
    np.testing.assert_array_equal(stored_groups, group_duplicates(pure_hashes))
    near = group_near_duplicates(group["qc/perceptual_hash"][:], group["qc/signature"][:], ok)
    np.testing.assert_array_equal(group["qc/near_duplicate_group"][:], near)
    features = {name: group[f"qc/{name}"][:] for name in OUTLIER_FEATURES}
    scores = outlier_distance(features, ok)
    np.testing.assert_array_equal(group["qc/outlier_score"][:], scores)
    np.testing.assert_array_equal(group["qc/outlier"][:], scores > QCConfig().outlier_threshold)


@pytest.mark.slow
def test_the_runs_flags_meet_the_precision_and_recall_target(labelled_cases, run_store):
    table = store_table(run_store).set_index("path")
    for flag in QC_FLAGS:
        truth = np.array([case.labels[flag] for case in labelled_cases])
        flags = np.array([bool(table.at[str(case.path), f"qc_{flag}"]) for case in labelled_cases])
        precision, recall, _ = precision_recall(truth, flags)
        assert precision >= 0.95 and recall >= 0.95, (flag, precision, recall)
    duplicate = np.array([table.at[str(c.path), "qc_duplicate_group"] >= 0 for c in labelled_cases])
    truth = np.array([case.labels["duplicate"] for case in labelled_cases])
    assert precision_recall(truth, duplicate)[:2] == (1.0, 1.0)


@pytest.mark.slow
def test_export_has_the_qc_columns(run_store):
    table = store_table(run_store)
    expected = [f"qc_{f}" for f in QC_FLAGS] + [
        "qc_frame_fraction",
        "qc_duplicate_group",
        "qc_near_duplicate_group",
        "qc_outlier_score",
        "qc_outlier",
        "qc_concentration",
        "qc_chest_correlation",
        "qc_fine_detail",
    ]
    assert table.columns[-len(expected) :].tolist() == expected
    assert table["qc_duplicate_group"].dtype == np.int64


@pytest.mark.slow
def test_info_prints_the_count_per_flag(run_store, capsys):
    assert main(["info", str(run_store)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("qc: "))
    assert line.startswith("qc: framed 91, inverted 13, blank 5, low_contrast 13, saturated 13;")
    assert "duplicates 39 images in 13 groups" in line


def test_a_store_made_before_qc_says_so_in_info_export_and_report(tmp_path, capsys):
    old = tmp_path / "old.zarr"
    shutil.copytree(FIXTURES / "complete", old)
    assert main(["info", str(old)]) == 0
    assert "qc: no QC in this store" in capsys.readouterr().out
    assert not any(column.startswith("qc_") for column in store_table(old).columns)
    page = write_report(old, tmp_path / "report", gifs=0).page
    assert "no QC in this store" in page.read_text(encoding="utf-8")


def _made_before_qc_outlier(store: Path) -> None:
    """Turn a store into one made before qc/outlier: no outlier arrays, SHA-1 pixel hashes."""
    group = zarr.open_group(store, mode="r+")
    qc = group["qc"]
    for name in ("outlier", *QC_FEATURES):
        del qc[name]
    qc["pixel_hash"].attrs.put({})  # no "hash": SHA-1
    attrs = dict(group.attrs["xray_scale"])
    attrs["config"] = {**attrs["config"], "qc": dict(attrs["config"]["qc"])}
    del attrs["config"]["qc"]["outlier_threshold"]  # the [qc] of those stores
    group.update_attributes({"xray_scale": attrs})
    paths = read_index(group, "path")
    ok = read_index(group, "status") == "ok"
    hashes = [pixel_hash(np.asarray(Image.open(p)), kind="sha1") for p in paths]
    hashes = np.where(ok, np.array(hashes, dtype=np.uint64), np.uint64(0))
    qc["pixel_hash"][:] = hashes


def test_a_store_made_before_qc_outlier_resumes_and_keeps_its_hash(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    films = [phantom(p, 0, shape=(128, 128)) for p in (1, 2, 3)]
    for k, film in enumerate(films):  # the first batch: 3 films and a byte copy of the first
        Image.fromarray(film).save(folder / f"a{k}.png", compress_level=1)
    shutil.copyfile(folder / "a0.png", folder / "a3.png")
    Image.fromarray(films[1]).save(folder / "b0.png", compress_level=9)  # same pixels, re-encoded
    Image.fromarray(255 - films[2]).save(folder / "b1.png")
    store = tmp_path / "old.zarr"
    config = {"run": {"batch_size": 4}}
    xray_scale.run([folder], store, config=config, workers=1)
    _made_before_qc_outlier(store)
    group = zarr.open_group(store, mode="r+")
    group["index/status"][4:] = 0  # code 0: the second batch pending again
    xray_scale.run([folder], store, config=config, workers=1)  # resumes: same fingerprint
    group = zarr.open_group(store, mode="r")
    assert (read_index(group, "status") == "ok").all()
    pixels = [np.asarray(Image.open(p)) for p in read_index(group, "path")]
    sha1 = [pixel_hash(image, kind="sha1") for image in pixels]
    np.testing.assert_array_equal(group["qc/pixel_hash"][:], np.array(sha1, dtype=np.uint64))
    np.testing.assert_array_equal(group["qc/duplicate_group"][:], [0, 1, -1, 0, 1, -1])
    assert "outlier" not in group["qc"] and np.isfinite(group["qc/outlier_score"][:]).all()
    assert main(["info", str(store)]) == 0
    assert "outliers: no qc/outlier (store made before it existed)" in capsys.readouterr().out
    table = store_table(store)
    assert "qc_outlier_score" in table.columns and "qc_outlier" not in table.columns
    page = write_report(store, tmp_path / "report", gifs=0).page.read_text(encoding="utf-8")
    assert "no qc/outlier in this store (it was made before it existed)" in page


def test_new_qc_keys_at_their_defaults_leave_the_fingerprint_as_it_was():
    spec = batch_spec(load_config(None), shape=(64, 64), bit_depth=8, compat=None, engine="scipy")
    before = {  # the [qc] of every store made with QC before qc/outlier existed
        "enabled", "frame_fraction", "frame_tolerance", "blank_range", "low_contrast_range",
        "saturated_fraction", "inverted_margin", "near_duplicate_distance",
        "near_duplicate_correlation",
    }  # fmt: skip
    assert set(fingerprinted_config(spec)["qc"]) == before
    other = load_config({"qc": {"outlier_threshold": 5.0}})
    spec = batch_spec(other, shape=(64, 64), bit_depth=8, compat=None, engine="scipy")
    assert fingerprinted_config(spec)["qc"]["outlier_threshold"] == 5.0
    assert spec.pixel_hash == "crc32c"


def test_a_pixel_hash_this_version_does_not_compute_is_refused_on_resume(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(phantom(1, 0, shape=(64, 64))).save(folder / "a.png")
    store = tmp_path / "run.zarr"
    xray_scale.run([folder], store, workers=1)
    zarr.open_group(store, mode="r+")["qc/pixel_hash"].attrs.put({"hash": "blake3"})
    with pytest.raises(StoreError, match="qc/pixel_hash is 'blake3'.*resume it with the version"):
        xray_scale.run([folder], store, workers=1)
