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
from xray_scale.analysis.qc import QC_FLAGS, QC_RECORD_FIELDS, image_qc
from xray_scale.analysis.qc_groups import group_duplicates, group_near_duplicates, outlier_scores
from xray_scale.analysis.stats import STAT_FIELDS
from xray_scale.cli import main
from xray_scale.render.page import write_report
from xray_scale.store.encoding import read_index
from xray_scale.store.export import store_table

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
    stats = {field: group[f"stats/{field}"][:] for field in STAT_FIELDS}
    np.testing.assert_allclose(group["qc/outlier_score"][:], outlier_scores(stats, ok))


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
