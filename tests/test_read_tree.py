"""open_dataset: a store as an xarray.DataTree, the index decoded, the rest lazy."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr
from conftest import FINDINGS

import xray_scale
from xray_scale.errors import StoreError
from xray_scale.read.labels import finding_names, multi_hot
from xray_scale.store.encoding import read_index

xr = pytest.importorskip("xarray")

NAMES = [f"{41 + k // 5:08d}_{k % 5:03d}.png" for k in range(10)]


@pytest.fixture(scope="module")
def dataset_tree(labelled_store):
    return xray_scale.open_dataset(labelled_store)


def test_the_index_is_strings_along_image_named_by_file(dataset_tree, labelled_store):
    group = zarr.open_group(labelled_store, mode="r")
    assert list(dataset_tree["image"].values) == NAMES
    assert (
        list(dataset_tree.indexes["image"]) == NAMES
    )  # an index: tree.sel(image="00000041_000.png")
    assert [p.rsplit("/", 1)[1] for p in dataset_tree["path"].values] == NAMES
    assert list(dataset_tree["status"].values) == ["ok"] * 8 + ["failed", "ok"]
    assert "not in the inputs" in str(dataset_tree["error"].values[8])
    assert list(dataset_tree["patient_id"].values) == ["41"] * 5 + ["42"] * 5  # NIH's Patient ID
    assert list(dataset_tree["follow_up"].values) == [0, 1, 2, 3, 4] * 2
    assert list(dataset_tree["view_position"].values) == ["AP", "PA"] * 5
    assert list(dataset_tree["patient_age"].values) == list(range(50, 60))
    assert list(dataset_tree["finding_labels"].values) == FINDINGS
    for name in group["index"].array_keys():  # every index array, decoded as the store reads it
        assert dataset_tree[name].dims == ("image",)
        assert list(dataset_tree[name].values) == list(read_index(group, name)), name
        assert dataset_tree[name].dtype.kind != "O", name
    assert dataset_tree.attrs["batch_size"] == 4 and dataset_tree.attrs["store"] == str(
        labelled_store
    )


def test_findings_are_multi_hot_with_the_label_names(dataset_tree):
    names = ["Cardiomegaly", "Effusion", "Hernia", "Mass", "No Finding"]
    assert list(dataset_tree["finding"].values) == names
    findings = dataset_tree["findings"]
    assert findings.dims == ("image", "finding") and findings.dtype == bool
    for k, labels in enumerate(FINDINGS):
        assert set(findings["finding"].values[findings.values[k]]) == set(labels.split("|")), k
    assert int(findings.sel(finding="Effusion").sum()) == 4
    assert findings.sel(image="00000042_004.png", finding="Mass").item()


def test_maps_and_previews_are_lazy_dask_arrays_equal_to_the_store(dataset_tree, labelled_store):
    group = zarr.open_group(labelled_store, mode="r")
    previews = dataset_tree["previews"]
    assert isinstance(previews.data, da.Array)
    assert previews.dims == ("image", "map", "preview_y", "preview_x")
    assert list(previews["map"].values) == list(group["previews"].attrs["maps"])
    assert previews.data.chunks[0] == (4, 4, 2)  # one dask chunk per stored chunk
    np.testing.assert_array_equal(previews.sel(map="original").values, group["previews"][:, 0])
    for name in ["filters/sobel", "masks/mask_binary", "stats/histogram", "qc/signature"]:
        assert isinstance(dataset_tree[name].data, da.Array), name
        np.testing.assert_array_equal(dataset_tree[name].values, group[name][...])
    assert dataset_tree["filters/sobel"].dims == ("image", "y", "x")
    assert dataset_tree["filters/sobel"].data.chunks[0] == (4, 4, 2)  # one per shard
    ok = dataset_tree["stats/mean"].where(
        dataset_tree["status"] == "ok"
    )  # children align by file name
    assert int(ok.isnull().sum()) == 1 and np.isnan(ok.sel(image="00000042_003.png"))


def test_a_store_without_a_manifest_has_no_findings(tmp_path):
    xray_scale.run(["synth:3x32"], tmp_path / "s.zarr", workers=1)
    dataset_tree = xray_scale.open_dataset(tmp_path / "s.zarr")
    assert "findings" not in dataset_tree and "finding" not in dataset_tree.coords
    assert "previews" not in dataset_tree and set(dataset_tree.children) == {
        "stats",
        "qc",
        "filters",
        "masks",
    }
    assert list(dataset_tree["image"].values) == [f"90000001_{k:03d}.png" for k in range(3)]


def test_what_is_not_a_store_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(StoreError, match="not a zarr store"):
        xray_scale.open_dataset(tmp_path)


def test_labels_split_on_pipes_once_per_distinct_string():
    values = ["Mass|Effusion", "", "No Finding", "Mass|Effusion"]
    assert finding_names(values) == ("Effusion", "Mass", "No Finding")
    hot = multi_hot(values, ["Mass", "Effusion", "Nodule"])
    assert hot.tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 0], [1, 1, 0]]
    assert multi_hot([], ["Mass"]).shape == (0, 1)
