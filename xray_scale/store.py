"""The zarr v3 store: layout, creation, one writer per shard, status written last.

Layout (``N`` images of ``H x W``, ``K`` images per batch)::

    out.zarr/
      attrs["xray_scale"]    tool version, config, engine, compat, library versions,
                             inputs, image shape, pixel dtype, batch size, times
      filters/<name>         (N, H, W) chunk (1, H, W), shard (K, H, W)
      masks/<name>           (N, H, W) chunk (1, H, W), shard (K, H, W)
      stats/<field>          (N,)      chunk (K,)   min max mean std median p01 p99 mask_fraction
      stats/histogram        (N, 256)  chunk (K, 256)
      index/path             (N,) str   the input file
      index/status           (N,) str   pending | ok | failed
      index/error            (N,) str   one-line reason when failed, else ""
      index/mode             (N,) str   Pillow mode of the file (L, I;16, RGB, ...)
      index/bit_depth        (N,) uint8 bits per sample in the file (0: unreadable)
      index/patient_id       (N,) str   from NNNNNNNN_NNN.png, "" when the name differs
      index/follow_up        (N,) int16 from the name, -1 when the name differs

Two tasks writing into one zarr shard lose data silently (zarr-python issues
3514 and 3682), so batch ``b`` covers exactly images ``[b*K, (b+1)*K)``, every
full-resolution shard is exactly one batch deep, and :func:`write_batch`
asserts both. ``index/status`` of a batch is written after all its data, so a
batch whose status is not ``pending`` is complete, whatever happened later.
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from .config import Config
from .sources import parse_image_name
from .stats import STAT_FIELDS

__all__ = [
    "STATUS_FAILED",
    "STATUS_OK",
    "STATUS_PENDING",
    "BatchResult",
    "StoreError",
    "create_store",
    "library_versions",
    "open_store",
    "pending_batches",
    "read_status_summary",
    "store_attrs",
    "utc_now",
    "write_batch",
]

STATUS_PENDING, STATUS_OK, STATUS_FAILED = "pending", "ok", "failed"
ATTRS_KEY = "xray_scale"
_INDEX_STRINGS = ("path", "status", "error", "mode", "patient_id")


class StoreError(RuntimeError):
    """The store cannot be created, opened or written; the message says why."""


@dataclass
class BatchResult:
    """Everything one batch writes, for images ``[start, start + K)``.

    Attributes
    ----------
    start : int
        Index of the batch's first image.
    maps : dict
        ``{"filters/<name>" or "masks/<name>": (K, H, W) array}``.
    stats : dict
        ``{field: (K,) float64}`` for each of STAT_FIELDS.
    histogram : ndarray
        ``(K, 256)`` counts.
    status, error, mode : list of str
        Per image.
    bit_depth : list of int
        Per image.
    """

    start: int
    maps: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    histogram: np.ndarray
    status: list[str]
    error: list[str]
    mode: list[str]
    bit_depth: list[int]

    @property
    def size(self) -> int:
        """Number of images in the batch."""
        return len(self.status)


def utc_now() -> str:
    """The current time, ISO 8601, UTC, to the second."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape the results."""
    versions = {"python": platform.python_version()}
    for package in ("xray-scale", "numpy", "scipy", "dask", "zarr", "pillow", "scikit-image"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _compressors(config: Config):
    if config.compressor == "none":
        return None
    if config.compressor == "zstd":
        return ZstdCodec(level=config.compression_level)
    return BloscCodec(cname="zstd", clevel=config.compression_level, shuffle="shuffle")


def create_store(
    path: str | os.PathLike,
    *,
    paths: list[str],
    shape: tuple[int, int],
    map_dtypes: dict[str, np.dtype],
    config: Config,
    attrs: dict,
    overwrite: bool = False,
) -> zarr.Group:
    """Create an empty store for a run, every image ``pending``.

    Parameters
    ----------
    path : path-like
        The ``.zarr`` directory to create.
    paths : list of str
        The run's inputs, in order: index ``i`` of every array is ``paths[i]``.
    shape : (int, int)
        (height, width) of every image.
    map_dtypes : dict
        ``{"filters/<name>" or "masks/<name>": dtype}`` of the full-resolution arrays.
    config : Config
        Gives the batch size (shard depth) and the compression.
    attrs : dict
        Stored under ``attrs["xray_scale"]`` (version, config, times...).
    overwrite : bool
        Delete an existing store at ``path`` first.

    Returns
    -------
    zarr.Group

    Raises
    ------
    StoreError
        If ``path`` exists and ``overwrite`` is False, or cannot be written.
    """
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise StoreError(f"{path} already exists; pass --overwrite to replace it")
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    count, batch = len(paths), config.batch_size
    height, width = shape
    try:
        group = zarr.open_group(path, mode="w-", attributes={ATTRS_KEY: attrs})
        for name, dtype in map_dtypes.items():
            group.create_array(
                name,
                shape=(count, height, width),
                dtype=dtype,
                chunks=(1, height, width),
                shards=(batch, height, width),
                compressors=_compressors(config),
                fill_value=0,
                dimension_names=("image", "y", "x"),
            )
        for field in STAT_FIELDS:
            group.create_array(
                f"stats/{field}",
                shape=(count,),
                dtype="float64",
                chunks=(batch,),
                fill_value=np.nan,
            )
        group.create_array(
            "stats/histogram", shape=(count, 256), dtype="int64", chunks=(batch, 256), fill_value=0
        )
        for name in _INDEX_STRINGS:
            fill = STATUS_PENDING if name == "status" else ""
            group.create_array(
                f"index/{name}", shape=(count,), dtype=str, chunks=(batch,), fill_value=fill
            )
        group.create_array(
            "index/bit_depth", shape=(count,), dtype="uint8", chunks=(batch,), fill_value=0
        )
        group.create_array(
            "index/follow_up", shape=(count,), dtype="int16", chunks=(batch,), fill_value=-1
        )
        names = [parse_image_name(p) for p in paths]
        group["index/path"][:] = np.array(paths, dtype=object)
        group["index/patient_id"][:] = np.array([n[0] for n in names], dtype=object)
        group["index/follow_up"][:] = np.array([n[1] for n in names], dtype=np.int16)
    except OSError as error:
        raise StoreError(f"cannot write the store at {path}: {error.strerror or error}") from None
    return group


def open_store(path: str | os.PathLike, *, mode: str = "r") -> zarr.Group:
    """Open a store written by this package.

    Raises
    ------
    StoreError
        If ``path`` is missing or is not an xray_scale store.
    """
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise StoreError(f"{path} is not a zarr store (no zarr.json); give the --out of a run")
    group = zarr.open_group(path, mode=mode)
    if ATTRS_KEY not in group.attrs:
        raise StoreError(f"{path} is a zarr store but was not written by xray-scale")
    return group


def store_attrs(group: zarr.Group) -> dict:
    """The run's attributes (``attrs["xray_scale"]``)."""
    return dict(group.attrs[ATTRS_KEY])


def pending_batches(group: zarr.Group) -> list[int]:
    """Start indices of the batches that hold any ``pending`` image."""
    batch = store_attrs(group)["batch_size"]
    status = group["index/status"][:]
    return [
        start
        for start in range(0, status.size, batch)
        if (status[start : start + batch] == STATUS_PENDING).any()
    ]


def write_batch(group: zarr.Group, result: BatchResult) -> None:
    """Write one batch: its shard of every map, its stats, then its statuses.

    Raises
    ------
    AssertionError
        If the batch is not exactly one shard (two writers per shard lose data).
    """
    start, stop = result.start, result.start + result.size
    batch = store_attrs(group)["batch_size"]
    count = group["index/status"].shape[0]
    assert start % batch == 0 and (result.size == batch or stop == count), (
        f"batch [{start}, {stop}) is not one whole shard of depth {batch}"
    )
    for name, values in result.maps.items():
        array = group[name]
        assert array.shards[0] == batch, f"{name} shard depth {array.shards[0]} != batch {batch}"
        array[start:stop] = values
    for field, values in result.stats.items():
        group[f"stats/{field}"][start:stop] = values
    group["stats/histogram"][start:stop] = result.histogram
    group["index/error"][start:stop] = np.array(result.error, dtype=object)
    group["index/mode"][start:stop] = np.array(result.mode, dtype=object)
    group["index/bit_depth"][start:stop] = np.array(result.bit_depth, dtype=np.uint8)
    group["index/status"][start:stop] = np.array(result.status, dtype=object)


def read_status_summary(group: zarr.Group) -> dict:
    """Image counts by status, and every failure with its message.

    Returns
    -------
    dict
        ``{"total", "ok", "failed", "pending": int, "failures": [{"path", "error"}]}``
    """
    status = group["index/status"][:]
    failed = np.flatnonzero(status == STATUS_FAILED)
    failures = []
    if failed.size:
        paths = group["index/path"].get_coordinate_selection(failed)
        errors = group["index/error"].get_coordinate_selection(failed)
        failures = [{"path": str(p), "error": str(e)} for p, e in zip(paths, errors, strict=True)]
    ok = int((status == STATUS_OK).sum())
    return {
        "total": int(status.size),
        "ok": ok,
        "failed": int(failed.size),
        "pending": int(status.size) - ok - int(failed.size),
        "failures": failures,
    }
