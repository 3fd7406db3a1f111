"""Stores written before a change still resume, and give the arrays of a fresh run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import array_paths, assert_stores_equal

import xray_scale
from xray_scale.analysis.stats import stats_from_counts
from xray_scale.store.encoding import read_index, stored_values

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


def made_before_dimension_names(store: Path) -> None:
    """Give every array of ``store`` the dimension names of the layout before 25 (at 82b5faa).

    Then: the maps ``(image, y, x)``, ``previews`` ``(image, map, y, x)`` (``y`` and ``x``
    at another size), every text array ``(image, byte)`` at its own width, ``index/status``
    ``(image,)``, and no names at all on ``stats/*``, ``qc/*`` and the other ``index/*``.
    """
    from xray_scale.store.encoding import TEXT_ENCODING

    for meta in store.rglob("zarr.json"):
        array = json.loads(meta.read_text())
        if array.get("node_type") != "array":
            continue
        name = meta.parent.relative_to(store).as_posix()
        if name.startswith(("filters/", "masks/")):
            array["dimension_names"] = ["image", "y", "x"]
        elif name == "previews":
            array["dimension_names"] = ["image", "map", "y", "x"]
        elif array["attributes"].get("encoding") == TEXT_ENCODING:
            array["dimension_names"] = ["image", "byte"]
        elif name == "index/status":
            array["dimension_names"] = ["image"]
        else:
            array.pop("dimension_names", None)
        meta.write_text(json.dumps(array, indent=2))


def test_a_store_made_before_dimension_names_resumes_and_keeps_its_names(tmp_path):
    config = {"run": {"batch_size": 4}, "store": {"preview_size": 16}}
    old = tmp_path / "old.zarr"
    xray_scale.run(INPUTS, old, config=config, engine="scipy", workers=1)
    made_before_dimension_names(old)
    group = zarr.open_group(old, mode="r+")
    group["index/status"][4:] = stored_values(group["index/status"], ["pending"] * 4)
    names_before = {name: group[name].metadata.dimension_names for name in array_paths(group)}
    assert names_before["index/path"] == ("image", "byte")
    assert names_before["stats/mean"] is None

    resumed = xray_scale.run(INPUTS, old, config=config, engine="scipy", workers=1)
    fresh = tmp_path / "fresh.zarr"
    xray_scale.run(INPUTS, fresh, config=config, engine="scipy", workers=1)

    assert (resumed.processed, resumed.ok, resumed.pending) == (4, 8, 0)
    assert_stores_equal(old, fresh)
    group = zarr.open_group(old, mode="r+")
    assert {n: group[n].metadata.dimension_names for n in array_paths(group)} == names_before
    error, width = group["index/error"], group["index/error"].shape[1]
    error[:1] = stored_values(error, ["x" * (width + 40)])  # widens an old text array
    reopened = zarr.open_group(old, mode="r")["index/error"]
    assert reopened.shape[1] == width + 40
    assert reopened.metadata.dimension_names == ("image", "byte")  # its name stays
    # open_dataset reads it through the store's readers, names or none
    tree = xray_scale.open_dataset(old)
    assert tree["stats/mean"].dims == ("image",) and tree["previews"].dims[2:] == (
        "preview_y",
        "preview_x",
    )
    assert list(tree["status"].values) == ["ok"] * 8


@pytest.mark.parametrize("name", ["complete", "partial"])
def test_open_dataset_reads_a_store_of_variable_length_strings(name):
    tree = xray_scale.open_dataset(FIXTURES / name)
    group = zarr.open_group(FIXTURES / name, mode="r")
    assert list(tree["status"].values) == list(read_index(group, "status"))
    assert list(tree["image"].values) == [f"90000001_{k:03d}.png" for k in range(8)]
    assert tree["path"].dtype.kind == "U" and tree["mode"].values[0] == "L"
    np.testing.assert_array_equal(tree["stats/mean"].values, group["stats/mean"][:])
