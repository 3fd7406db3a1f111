"""Stores written before a change still resume, and give the arrays of a fresh run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import zarr
from conftest import assert_stores_equal

import xray_scale
from xray_scale.store.encoding import read_index

FIXTURES = Path(__file__).parent / "data" / "store-55e04d4"
INPUTS = ["synth:8x48"]


@pytest.mark.parametrize("name", ["complete", "partial"])
def test_an_old_store_resumes_into_the_fresh_runs_arrays(name, tmp_path):
    old = tmp_path / f"{name}-resumed.zarr"
    shutil.copytree(FIXTURES / name, old)
    config = FIXTURES / f"{name}.toml"
    pending = int((read_index(zarr.open_group(old, mode="r"), "status") == "pending").sum())

    resumed = xray_scale.run(INPUTS, old, config=config, engine="scipy", workers=1)
    fresh_store = tmp_path / "fresh.zarr"
    fresh = xray_scale.run(INPUTS, fresh_store, config=config, engine="scipy", workers=1)

    assert resumed.processed == pending
    assert (resumed.ok, resumed.failed, resumed.pending) == (8, 0, 0)
    assert (fresh.ok, fresh.processed) == (8, 8)
    # Made before QC existed: it resumes without QC; the fresh run has QC, and the rest is equal.
    assert "qc" not in zarr.open_group(old, mode="r")
    assert "qc" in zarr.open_group(fresh_store, mode="r")
    assert_stores_equal(old, fresh_store, without=("qc/",))


def test_the_partial_fixture_is_really_unfinished():
    status = read_index(zarr.open_group(FIXTURES / "partial", mode="r"), "status")
    assert list(status) == ["ok"] * 4 + ["pending"] * 4
