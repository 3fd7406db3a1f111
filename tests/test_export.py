"""export: one row per image, Parquet and CSV, values equal to the store's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import zarr
from conftest import make_bad_inputs

import xray_scale
from xray_scale.analysis.stats import STAT_FIELDS
from xray_scale.cli import main
from xray_scale.store.export import export_table


@pytest.fixture
def store(phantom_folder, tmp_path):
    make_bad_inputs(phantom_folder / "bad")
    xray_scale.run([phantom_folder], tmp_path / "out.zarr", workers=2)
    return tmp_path / "out.zarr"


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_export_has_one_row_per_image_with_the_store_values(store, tmp_path, suffix, capsys):
    destination = tmp_path / f"stats{suffix}"
    assert main(["export", str(store), "--to", str(destination)]) == 0
    assert f"wrote {destination}" in capsys.readouterr().out
    table = pd.read_parquet(destination) if suffix == ".parquet" else pd.read_csv(destination)
    group = zarr.open_group(store, mode="r")
    assert len(table) == group["index/status"].shape[0] == 21
    assert table["image"].tolist() == list(range(21))
    assert table["path"].tolist() == list(group["index/path"][:])
    assert (table["status"] == "failed").sum() == 9
    for field in STAT_FIELDS:
        assert np.allclose(table[field], group[f"stats/{field}"][:], equal_nan=True), field
    assert table["follow_up"].tolist() == group["index/follow_up"][:].tolist()


def test_histogram_columns_on_request(store, tmp_path):
    destination = tmp_path / "hist.parquet"
    export_table(store, destination, histogram=True)
    table = pd.read_parquet(destination)
    counts = zarr.open_group(store, mode="r")["stats/histogram"][:]
    assert np.array_equal(table[[f"hist_{b:03d}" for b in range(256)]].to_numpy(), counts)


def test_unknown_suffix_is_one_line(store, tmp_path, capsys):
    assert main(["export", str(store), "--to", str(tmp_path / "stats.xlsx")]) == 2
    assert "must end in .parquet or .csv" in capsys.readouterr().err
