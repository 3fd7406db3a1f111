"""export: one row per image, Parquet and CSV, values equal to the store's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr
from conftest import make_bad_inputs

import xray_scale
from xray_scale.analysis.stats import STAT_FIELDS
from xray_scale.cli import main
from xray_scale.store.encoding import encode_text, read_index
from xray_scale.store.export import export_table
from xray_scale.store.qc import QC_COLUMNS
from xray_scale.store.query import RowQuery


@pytest.fixture
def export_store(phantom_folder, tmp_path):
    make_bad_inputs(phantom_folder / "bad")
    xray_scale.run([phantom_folder], tmp_path / "out.zarr", workers=2)
    return tmp_path / "out.zarr"


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_export_has_one_row_per_image_with_the_store_values(export_store, tmp_path, suffix, capsys):
    destination = tmp_path / f"stats{suffix}"
    assert main(["export", str(export_store), "--to", str(destination)]) == 0
    assert f"wrote {destination}" in capsys.readouterr().out
    table = pd.read_parquet(destination) if suffix == ".parquet" else pd.read_csv(destination)
    group = zarr.open_group(export_store, mode="r")
    assert len(table) == group["index/status"].shape[0] == 21
    assert table["image"].tolist() == list(range(21))
    assert table["path"].tolist() == list(read_index(group, "path"))
    assert (table["status"] == "failed").sum() == 9
    for field in STAT_FIELDS:
        assert np.allclose(table[field], group[f"stats/{field}"][:], equal_nan=True), field
    assert table["follow_up"].tolist() == group["index/follow_up"][:].tolist()


def test_histogram_columns_on_request(export_store, tmp_path):
    destination = tmp_path / "hist.parquet"
    export_table(export_store, destination, histogram=True)
    table = pd.read_parquet(destination)
    counts = zarr.open_group(export_store, mode="r")["stats/histogram"][:]
    assert np.array_equal(table[[f"hist_{b:03d}" for b in range(256)]].to_numpy(), counts)


def test_unknown_suffix_is_one_line(export_store, tmp_path, capsys):
    assert main(["export", str(export_store), "--to", str(tmp_path / "stats.xlsx")]) == 2
    assert "must end in .parquet or .csv" in capsys.readouterr().err


def test_parquet_without_a_selection_equals_the_pandas_path_and_imports_no_pandas(
    export_store, tmp_path
):
    fast = tmp_path / "fast.parquet"
    code = (
        "import sys\nfrom xray_scale.cli import main\n"
        f"assert main(['export', {str(export_store)!r}, '--to', {str(fast)!r},"
        " '--histogram']) == 0\n"
        "print('pandas' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"
    # A condition true of every row sends the same table through pandas.
    through_pandas = tmp_path / "pandas.parquet"
    query = RowQuery(where="image >= 0")
    export_table(export_store, through_pandas, histogram=True, query=query)
    fast_table, pandas_table = pd.read_parquet(fast), pd.read_parquet(through_pandas)
    group = zarr.open_group(export_store, mode="r")
    index_columns = len(list(group["index"].array_keys()))
    assert fast_table.shape == (21, 1 + index_columns + len(STAT_FIELDS) + len(QC_COLUMNS) + 256)
    assert fast_table["qc_framed"].dtype == bool
    pd.testing.assert_frame_equal(fast_table, pandas_table)


def test_an_old_store_of_variable_length_strings_exports_its_strings(tmp_path):
    old = Path(__file__).parent / "data" / "store-55e04d4" / "complete"
    destination = tmp_path / "old.parquet"
    export_table(old, destination)
    table = pd.read_parquet(destination)
    group = zarr.open_group(old, mode="r")
    for name in ("path", "status", "error", "patient_id"):
        assert table[name].tolist() == list(read_index(group, name)), name


def test_a_file_name_that_is_not_utf8_is_exported_with_a_replacement_character(tmp_path):
    from xray_scale.store.export import _string_column

    rows = encode_text(["a.png", "caf\udce9.png", "", "z"])
    assert _string_column(rows).to_pylist() == ["a.png", "caf\ufffd.png", "", "z"]
