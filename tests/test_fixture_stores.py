"""Stores written before a change still resume, and give the arrays of a fresh run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import assert_stores_equal

import xray_scale
from xray_scale.analysis.stats import stats_from_counts
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
    assert_stores_equal(old, fresh_store, without=("qc/", "stats/std"))
    assert_std_written_before_exact_sums(old, fresh_store)


def assert_std_written_before_exact_sums(old: Path, fresh: Path) -> None:
    """``stats/std`` of images this code did not process, compared by value, and recomputed.

    At 55e04d4 the variance went through ``np.dot`` in float64, i.e. OpenBLAS,
    whose kernel depends on the CPU: its last bits differ between machines, so
    the committed values are compared by value (1e-12 relative). The stored
    histograms are exact counts (uint8 films: one bin per level), and from them
    today's exact integer sums give the fresh run's std bit for bit.
    """
    old_group, fresh_group = zarr.open_group(old, mode="r"), zarr.open_group(fresh, mode="r")
    stored, exact = old_group["stats/std"][:], fresh_group["stats/std"][:]
    np.testing.assert_allclose(stored, exact, rtol=1e-12, atol=0)
    for k, counts in enumerate(old_group["stats/histogram"][:]):
        recomputed, _ = stats_from_counts(counts.astype(np.int64), threshold=0)
        assert recomputed["std"] == exact[k], k


def test_the_partial_fixture_is_really_unfinished():
    status = read_index(zarr.open_group(FIXTURES / "partial", mode="r"), "status")
    assert list(status) == ["ok"] * 4 + ["pending"] * 4
