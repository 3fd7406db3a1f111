"""Any zarr v3 reader opens every array of a store: tensorstore reads what zarr-python reads,
and xarray opens every group, each dimension name having one size across the store."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import array_paths, make_bad_inputs, structured_image, write_png

import xray_scale
from xray_scale.store.encoding import (
    STATUS_CODES,
    TEXT_ENCODING,
    create_text_array,
    read_index,
    stored_values,
)

ROOT = Path(__file__).resolve().parents[1]

LONG = "/".join(["a-folder-name-longer-than-any-fixed-width-would-have-guessed"] * 5)


def open_with_tensorstore(store, name):
    tensorstore = pytest.importorskip("tensorstore", reason="tensorstore is in the test extra")
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(store / name)}}
    return tensorstore.open(spec, read=True).result().read().result()


def text_of(rows: np.ndarray) -> list[str]:
    """What a reader that knows only the documented encoding makes of a text array."""
    return [bytes(row).rstrip(b"\0").decode("utf-8") for row in rows]


@pytest.fixture
def reader_store(phantom_folder, tmp_path):
    make_bad_inputs(phantom_folder / "bad")
    write_png(phantom_folder / LONG / "00000099_000.png", structured_image(5))
    write_png(phantom_folder / "é-ü" / "00000099_001.png", structured_image(6))
    out = tmp_path / "out.zarr"
    xray_scale.run([phantom_folder], out, workers=1, engine="scipy")
    return out


def test_tensorstore_opens_every_array_with_zarr_pythons_values(reader_store):
    group = zarr.open_group(reader_store, mode="r")
    names = array_paths(group)
    assert {"index/path", "index/status", "index/error", "index/mode"} <= set(names)
    for name in names:
        ours = group[name][...]
        theirs = open_with_tensorstore(reader_store, name)
        assert theirs.dtype == ours.dtype and theirs.shape == ours.shape, name
        assert np.array_equal(theirs, ours, equal_nan=ours.dtype.kind == "f"), name


def test_the_text_arrays_decode_to_the_strings_our_api_gives(reader_store):
    group = zarr.open_group(reader_store, mode="r")
    for name in ["path", "error", "mode", "patient_id"]:
        assert group[f"index/{name}"].attrs["encoding"] == TEXT_ENCODING
        rows = open_with_tensorstore(reader_store, f"index/{name}")
        assert text_of(rows) == list(read_index(group, name)), name
    paths = list(read_index(group, "path"))
    assert any(LONG in p for p in paths) and any("é-ü" in p for p in paths)  # nothing truncated
    codes = open_with_tensorstore(reader_store, "index/status")
    assert group["index/status"].attrs["codes"] == list(STATUS_CODES) == ["pending", "ok", "failed"]
    assert [STATUS_CODES[c] for c in codes] == list(read_index(group, "status"))
    assert sorted(set(read_index(group, "status"))) == ["failed", "ok"]
    assert any(
        "not a PNG" in e for e in text_of(open_with_tensorstore(reader_store, "index/error"))
    )


def test_a_longer_value_widens_a_text_array_instead_of_truncating_it(tmp_path):
    group = zarr.open_group(tmp_path / "t.zarr", mode="w")
    array = create_text_array(group, "index/error", values=None, count=4, chunk=2, width=8)
    long = "x" * 50 + " ünïcode"
    array[1:3] = stored_values(array, ["short", long])
    assert array.shape == (4, len(long.encode()))
    reopened = zarr.open_group(tmp_path / "t.zarr", mode="r")["index/error"]
    assert reopened.metadata.dimension_names == ("image", "error_bytes")  # the name stays
    assert list(read_index(group, "error")) == ["", "short", long, ""]
    assert text_of(open_with_tensorstore(tmp_path / "t.zarr", "index/error")) == [
        "",
        "short",
        long,
        "",
    ]


@pytest.fixture(params=["default", "full-dump", "compat-tutorial", "manifest"])
def any_kind_of_store(request, tmp_path):
    """A store of each kind a run makes (the manifest one: previews beside full-resolution maps)."""
    if request.param == "manifest":
        return request.getfixturevalue("labelled_store")
    out = tmp_path / f"{request.param}.zarr"
    options = {
        "default": {},
        "full-dump": {"config": ROOT / "configs" / "full-dump.toml"},
        "compat-tutorial": {"compat": "tutorial"},
    }[request.param]
    xray_scale.run(["synth:6x64"], out, workers=1, batch_size=4, **options)
    return out


def test_every_array_names_its_dimensions_each_name_with_one_size(any_kind_of_store):
    group = zarr.open_group(any_kind_of_store, mode="r")
    sizes: dict[str, set[int]] = {}
    for name in array_paths(group):
        dims = group[name].metadata.dimension_names
        assert dims is not None and len(dims) == group[name].ndim, name
        assert dims[0] == "image", name
        for dim, size in zip(dims, group[name].shape, strict=True):
            sizes.setdefault(dim, set()).add(size)
    assert {dim: len(found) for dim, found in sizes.items() if len(found) > 1} == {}
    assert {"image", "histogram_bin", "path_bytes", "error_bytes"} <= set(sizes)


def test_xarray_opens_every_group_with_zarr_pythons_values(any_kind_of_store):
    xr = pytest.importorskip("xarray")
    group = zarr.open_group(any_kind_of_store, mode="r")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback, no guess: consolidated=False says it
        tree = xr.open_datatree(any_kind_of_store, engine="zarr", consolidated=False)
    names = array_paths(group)
    opened = [f"{node.path}/{name}".lstrip("/") for node in tree.subtree for name in node.data_vars]
    assert sorted(opened) == sorted(names)
    for name in names:
        ours, theirs = group[name][...], tree[name].values
        assert theirs.dtype == ours.dtype and theirs.shape == ours.shape, name
        assert np.array_equal(theirs, ours, equal_nan=ours.dtype.kind == "f"), name
        assert tree[name].dims == group[name].metadata.dimension_names, name
