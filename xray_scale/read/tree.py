"""A store as an ``xarray.DataTree``: the index as coordinates, everything else lazy.

The tree has the store's groups, and every array keeps its store name::

    /            coordinates along "image": image (the file name), path, status,
                 error, mode, bit_depth, checksum, patient_id, follow_up and the
                 manifest's columns; "finding" (the label names)
                 findings   (image, finding) bool, when the store has a manifest
                 previews   (image, map, preview_y, preview_x), "map" named
    /stats       min max mean std median p01 p99 mask_fraction (image),
                 histogram (image, histogram_bin)
    /qc          the QC flags, hashes, groups and scores (image), signature
    /filters     one (image, y, x) array per filter, /masks the same per mask

Text is decoded to strings and statuses to their names through the store's
own reader (:func:`xray_scale.store.encoding.read_index`), so stores of every
layout open, those written before the arrays had dimension names too. Every
array outside the index is a dask array, one chunk per stored chunk (per
shard, for the maps): nothing is read until it is computed. The child groups
inherit the ``image`` coordinate (xarray's tree inherits indexed coordinates
only), so a child's arrays align with the root's columns by file name:
``tree["stats/mean"].where(tree["status"] == "ok")``,
``tree["stats/mean"].groupby(tree["view_position"]).mean()``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
import zarr

from ..io.sources.archives import file_name
from ..store.access import open_store
from ..store.encoding import read_index
from ..store.layout import (
    FILTER_GROUP,
    IMAGE_DIM,
    LABELS,
    MASK_GROUP,
    STAT_FIELDS,
    dimension_names,
)
from ..store.location import StoreLocation, store_location
from ..store.metadata import RunMetadata
from ..store.qc import QC_GROUP, has_qc
from .labels import FINDINGS_COLUMN, finding_names, multi_hot

if TYPE_CHECKING:
    import xarray

__all__ = ["FINDING_DIM", "open_dataset"]

FINDING_DIM = "finding"
"""The dimension (and coordinate) of the finding labels' names."""


def open_dataset(
    store: str | os.PathLike | StoreLocation,
    *,
    storage_options: dict | list[str] | None = None,
) -> xarray.DataTree:
    """Open a store written by :func:`xray_scale.run` as an ``xarray.DataTree``.

    Parameters
    ----------
    store : path-like or str
        The store (a folder, or a URL such as ``s3://bucket/cxr.zarr``).
    storage_options : dict or list of str, optional
        Options of a URL store's file system (``KEY=VALUE`` strings, as
        ``--storage-option`` takes them).

    Returns
    -------
    xarray.DataTree
        Its root holds the index as coordinates along ``image`` (whose values
        are the file names; ``path`` holds the inputs as given), ``findings``
        (``image`` x ``finding``, bool) when the run had a manifest, and
        ``previews`` when the store has them, ``map`` naming what each shows.
        ``stats``, ``qc``, ``filters`` and ``masks`` are child groups, present
        where the store has them. Everything but the index is read lazily,
        through dask.

    Raises
    ------
    StoreError
        If ``store`` is not a complete store written by xray-scale.

    Examples
    --------
    >>> import xray_scale
    >>> out = xray_scale.run(["synth:4x32"], getfixture("tmp_path") / "s.zarr", workers=1)
    >>> tree = xray_scale.open_dataset(getfixture("tmp_path") / "s.zarr")
    >>> tree["stats/mean"].sizes["image"], str(tree["status"].values[0])
    (4, 'ok')
    """
    import xarray as xr

    location = store_location(store, storage_options)
    group = open_store(location)
    children = {
        "stats": _stats(group),
        QC_GROUP: _group_arrays(group[QC_GROUP]) if has_qc(group) else None,
        FILTER_GROUP: _group_arrays(group[FILTER_GROUP]) if FILTER_GROUP in group else None,
        MASK_GROUP: _group_arrays(group[MASK_GROUP]) if MASK_GROUP in group else None,
    }
    nodes = {"/": _root(group, location)}
    nodes |= {f"/{name}": xr.Dataset(arrays) for name, arrays in children.items() if arrays}
    return xr.DataTree.from_dict(nodes)


def _root(group: zarr.Group, location: StoreLocation):
    """The root: the index as coordinates, the findings and the previews."""
    import xarray as xr

    coords = _index_coordinates(group)
    data = {}
    if FINDINGS_COLUMN in group["index"]:
        values = coords[FINDINGS_COLUMN][1]
        names = finding_names(values)
        coords[FINDING_DIM] = ((FINDING_DIM,), np.array(names, dtype=str))
        data["findings"] = ((IMAGE_DIM, FINDING_DIM), multi_hot(values, names))
    if LABELS in group:  # a dataset's label codes (--manifest): along "label", named
        codes = group[LABELS]
        coords["label"] = (("label",), np.array(list(codes.attrs["names"]), dtype=str))
        data["label_codes"] = (dimension_names(LABELS), np.asarray(codes[:]))
    if "previews" in group:
        previews = group["previews"]
        coords["map"] = (("map",), np.array(list(previews.attrs["maps"]), dtype=str))
        data["previews"] = (dimension_names("previews"), _lazy(previews))
    return xr.Dataset(data, coords=coords, attrs=_attributes(group, location))


def _index_coordinates(group: zarr.Group) -> dict:
    """``{name: (("image",), values)}`` of every ``index/*`` array, text as ``str``."""
    coords = {}
    for name in sorted(group["index"].array_keys()):
        if f"index/{name}" == LABELS:  # (N, L): a data variable of the root, not a coordinate
            continue
        values = read_index(group, name)
        if values.dtype == object:
            values = values.astype(str)
        coords[name] = ((IMAGE_DIM,), values)
    names = [file_name(path) for path in coords["path"][1].tolist()]
    return {IMAGE_DIM: ((IMAGE_DIM,), np.array(names, dtype=str)), **coords}


def _stats(group: zarr.Group) -> dict:
    arrays = {field: group[f"stats/{field}"] for field in (*STAT_FIELDS, "histogram")}
    return {
        field: (dimension_names(f"stats/{field}"), _lazy(array)) for field, array in arrays.items()
    }


def _group_arrays(child: zarr.Group) -> dict:
    """Each array of a child group (``qc``, ``filters``, ``masks``), lazily."""
    prefix = child.basename
    return {
        name: (dimension_names(f"{prefix}/{name}"), _lazy(child[name]))
        for name in sorted(child.array_keys())
    }


def _lazy(array: zarr.Array):
    """``array`` as a dask array, one chunk per stored chunk (per shard when sharded)."""
    import dask.array as da

    depth = (array.shards or array.chunks)[0]
    return da.from_zarr(array, chunks=(depth, *array.shape[1:]))


def _attributes(group: zarr.Group, location: StoreLocation) -> dict:
    """The run, in a few scalars: the store, the tool's version, the engine and the batch size."""
    metadata = RunMetadata.from_group(group)
    return {
        "store": str(location),
        "xray_scale_version": metadata.version,
        "engine": metadata.engine,
        "compat": metadata.compat or "",
        "batch_size": metadata.batch_size,
        "image_shape": list(metadata.image_shape),
    }
