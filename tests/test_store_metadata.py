"""RunMetadata owns the store's run attributes; the one-writer-per-shard rule is a real check."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import xray_scale
from xray_scale.config import Config
from xray_scale.errors import StoreError
from xray_scale.store.access import write_maps
from xray_scale.store.create import create_store
from xray_scale.store.layout import map_name, split_map_name
from xray_scale.store.metadata import RunMetadata


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("metadata") / "s.zarr"
    xray_scale.run(["synth:4x32"], out, engine="scipy", workers=1, batch_size=2)
    return out


def test_metadata_reads_back_what_it_wrote(small_store, tmp_path):
    group = zarr.open_group(small_store, mode="r")
    stored = RunMetadata.from_group(group)
    assert stored.to_attrs() == dict(group.attrs["xray_scale"])
    assert (stored.engine, stored.shape, stored.bit_depth, stored.batch_size) == (
        "scipy",
        (32, 32),
        8,
        2,
    )
    assert len(stored.runs) == 1 and stored.runs[0]["processed"] == 4
    copy = zarr.open_group(tmp_path / "copy.zarr", mode="w")
    stored.write(copy)
    assert RunMetadata.from_group(copy) == stored


def test_keys_a_newer_version_wrote_are_kept():
    attrs = {**RunMetadata.from_attrs(_minimal()).to_attrs(), "qc": {"version": 2}}
    again = RunMetadata.from_attrs(attrs)
    assert again.extra == {"qc": {"version": 2}}
    assert again.to_attrs() == attrs


def test_a_resume_adds_a_run_and_keeps_the_fingerprint(small_store):
    before = RunMetadata.from_group(zarr.open_group(small_store, mode="r"))
    xray_scale.run(["synth:4x32"], small_store, engine="scipy", workers=1, batch_size=2)
    after = RunMetadata.from_group(zarr.open_group(small_store, mode="r"))
    assert after.fingerprint == before.fingerprint
    assert after.runs[: len(before.runs)] == before.runs
    assert len(after.runs) == len(before.runs) + 1 and after.runs[-1]["processed"] == 0


def test_map_names_are_built_and_parsed_in_one_place():
    assert split_map_name(map_name("filters", "sobel")) == ("filters", "sobel")
    with pytest.raises(ValueError, match="not a map name"):
        split_map_name("stats/mean")
    with pytest.raises(ValueError, match="filters/ or masks/"):
        map_name("previews", "sobel")


def test_a_batch_that_is_not_one_whole_shard_is_refused(tmp_path):
    layout = {"shape": (8, 8), "map_dtypes": {"filters/sobel": np.dtype("float32")}}
    paths = [f"synth:8/9000000{k}_000.png" for k in range(1, 7)]
    group = create_store(tmp_path / "s.zarr", paths=paths, config=Config(batch_size=4), **layout)
    values = np.ones((4, 8, 8), np.float32)
    with pytest.raises(StoreError, match=r"batch \[2, 6\) of filters/sobel is not one whole shard"):
        write_maps(group, 2, {"filters/sobel": values})
    with pytest.raises(StoreError, match="not one whole shard of depth 4"):
        write_maps(group, 0, {"filters/sobel": values[:3]})
    write_maps(group, 4, {"filters/sobel": values[:2]})  # the last batch may be short
    assert group["filters/sobel"][4:].min() == 1


def _minimal() -> dict:
    return {
        "version": "0.1.0",
        "engine": "scipy",
        "compat": None,
        "config": {},
        "libraries": {},
        "inputs": [],
        "image_shape": [8, 8],
        "pixel_dtype": "uint8",
        "batch_size": 2,
        "map_dtypes": {},
        "full_resolution": True,
        "preview_shape": None,
        "fingerprint": "f",
        "manifest": None,
        "created": "2026-01-01T00:00:00+00:00",
        "runs": [],
    }
