"""The zarr v3 store: layout, creation, one writer per shard, status written last.

Layout (``N`` images of ``H x W``, ``K`` images per batch)::

    out.zarr/
      attrs["xray_scale"]    tool version, config, engine, compat, library versions,
                             inputs, image shape, pixel dtype, batch size, times
      filters/<name>         (N, H, W) chunk (1, H, W), shard (K, H, W)
      masks/<name>           (N, H, W) chunk (1, H, W), shard (K, H, W)
      previews               (N, M, h, w) uint8, chunk (K, M, h, w): small images for
                             browsing, when store.preview_size > 0; along the "map" axis
                             the original and each map, named in attrs["maps"]
      stats/<field>          (N,)      min max mean std median p01 p99 mask_fraction
      stats/histogram        (N, 256)  counts
      index/path             (N,) str   the input file
      index/status           (N,) str   pending | ok | failed
      index/error            (N,) str   one-line reason when failed, else ""
      index/mode             (N,) str   Pillow mode of the file (L, I;16, RGB, ...)
      index/bit_depth        (N,) uint8 bits per sample in the file (0: unreadable)
      index/checksum         (N,) uint32 CRC-32 of the file's chunk CRCs when processed
                             (0: failed, phantom, or a store older than this array)
      index/patient_id       (N,) str   from NNNNNNNN_NNN.png, "" when the name differs
      index/follow_up        (N,) int16 from the name, -1 when the name differs

Two tasks writing into one zarr shard lose data silently (zarr-python issues
3514 and 3682), so batch ``b`` covers exactly images ``[b*K, (b+1)*K)``, every
full-resolution shard (and every chunk of ``previews``) is exactly one batch
deep, and :func:`write_maps` asserts both. The per-image arrays (``stats/*``,
``index/*``) are small and written by one writer only, the process that runs the pipeline
(:class:`RecordWriter`), in chunks of thousands of images: one chunk per batch
would mean hundreds of thousands of tiny files for the full dump. A batch's
records are written only after its task has written its maps, and
``index/status`` last, so a batch whose status is not ``pending`` is complete,
whatever happened later.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import platform
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from .config import Config
from .sources import parse_image_name, parse_synthetic
from .stats import STAT_FIELDS

__all__ = [
    "STATUS_FAILED",
    "STATUS_OK",
    "STATUS_PENDING",
    "BatchRecord",
    "RecordWriter",
    "StoreError",
    "create_store",
    "image_array_depth",
    "library_versions",
    "open_store",
    "pending_batches",
    "read_status_summary",
    "store_attrs",
    "utc_now",
    "write_maps",
]

STATUS_PENDING, STATUS_OK, STATUS_FAILED = "pending", "ok", "failed"
ATTRS_KEY = "xray_scale"
RECORD_CHUNK = 8192
"""Images per chunk of the per-image arrays (rounded up to whole batches)."""
HISTOGRAM_CHUNK = 1024
"""Images per chunk of ``stats/histogram`` (2 MB of counts)."""
_INDEX_STRINGS = ("path", "status", "error", "mode", "patient_id")


class StoreError(RuntimeError):
    """The store cannot be created, opened or written; the message says why."""


@dataclass
class BatchRecord:
    """The small per-image results of one batch, for images ``[start, start + K)``.

    What a batch task returns once its maps are written; the pipeline's
    :class:`RecordWriter` stores it.

    Attributes
    ----------
    start : int
        Index of the batch's first image.
    stats : dict
        ``{field: (K,) float64}`` for each of STAT_FIELDS (NaN where failed).
    histogram : ndarray
        ``(K, 256)`` counts.
    status, error, mode : list of str
        Per image.
    bit_depth, checksum : list of int
        Per image (:attr:`xray_scale.decode.DecodedImage.checksum`).
    """

    start: int
    stats: dict[str, np.ndarray]
    histogram: np.ndarray
    status: list[str]
    error: list[str]
    mode: list[str]
    bit_depth: list[int]
    checksum: list[int]

    @property
    def size(self) -> int:
        """Number of images in the batch."""
        return len(self.status)

    @property
    def failures(self) -> list[tuple[int, str]]:
        """``(store index, error)`` of each failed image."""
        return [(self.start + k, e) for k, e in enumerate(self.error) if e]


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


def _compressors(name: str, config: Config):
    """Filter maps: as configured. Masks (0/1, or mostly zeros): zstd level 1, always."""
    if name.startswith("masks/"):
        return ZstdCodec(level=1)
    if config.compressor == "none":
        return None
    if config.compressor == "zstd":
        return ZstdCodec(level=config.compression_level)
    if config.compressor == "blosc-lz4":  # bit shuffle: measured faster and smaller for lz4
        return BloscCodec(cname="lz4", clevel=config.compression_level, shuffle="bitshuffle")
    return BloscCodec(cname="zstd", clevel=config.compression_level, shuffle="shuffle")


def create_store(
    path: str | os.PathLike,
    *,
    paths: list[str],
    shape: tuple[int, int],
    map_dtypes: dict[str, np.dtype],
    config: Config,
    attrs: dict,
    metadata: dict[str, np.ndarray] | None = None,
    preview_maps: tuple[str, ...] = (),
    preview_shape: tuple[int, int] | None = None,
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
    metadata : dict, optional
        More per-image columns for the index, ``{name: (N,) array}`` (e.g.
        from a manifest), stored as ``index/<name>``.
    preview_maps : tuple of str
        What ``previews[:, m]`` shows, for each ``m`` (``"original"``, then map
        names); empty for no ``previews`` array.
    preview_shape : (int, int), optional
        (height, width) of the previews.
    overwrite : bool
        Replace an existing store at ``path`` once the new one is built; only a
        store written by xray-scale (or an empty folder) is ever deleted.

    Returns
    -------
    zarr.Group

    Raises
    ------
    StoreError
        If ``path`` exists and ``overwrite`` is False, if ``overwrite`` would
        delete something that is not an xray-scale store, or if the store
        cannot be written.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise StoreError(f"{path} already exists; pass --overwrite to replace it")
        _check_replaceable(path)
    building = path.parent / f".{path.name}.creating-{_build_owner()}-{uuid.uuid4().hex[:8]}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_builds(path)
        _build_store(
            building,
            paths=paths,
            shape=shape,
            map_dtypes=map_dtypes,
            config=config,
            attrs=attrs,
            metadata=metadata,
            preview_maps=preview_maps,
            preview_shape=preview_shape,
        )
        if overwrite and (path.exists() or path.is_symlink()):
            _check_replaceable(path)  # again: something else may have appeared there meanwhile
            shutil.rmtree(path)
        building.rename(path)
    except OSError as error:
        raise StoreError(f"cannot write the store at {path}: {error.strerror or error}") from None
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return zarr.open_group(path, mode="r+")


def _host() -> str:
    """This host's name, as the folders of stores in the making carry it."""
    return platform.node() or "host"


def _build_owner() -> str:
    """``HOST-PID`` of this process, as the folders of stores in the making are named."""
    return f"{_host()}-{os.getpid()}"


def _remove_stale_builds(path: Path) -> None:
    """Delete what creations of ``path`` killed midway on this host left (their process is gone).

    Only this host's: on a shared file system another host's build may be in
    progress, and its process ids mean nothing here.
    """
    if os.name != "posix":
        return
    host = _host()
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.creating-{glob.escape(host)}-*"):
        owner = leftover.name[len(f".{path.name}.creating-{host}-") :]
        pid = owner.split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (POSIX: signal 0 checks, sends nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _check_replaceable(path: Path) -> None:
    """Let ``--overwrite`` delete nothing but an xray-scale store, or an empty folder."""
    if path.is_symlink():
        raise StoreError(
            f"{path} is a symbolic link: --overwrite replaces only a store at its real path; "
            f"give --out {path.resolve()} if that is the store to replace"
        )
    try:
        if path.is_dir() and (not any(path.iterdir()) or _is_ours(path)):
            return
    except OSError as error:
        raise StoreError(f"cannot read {path} ({error.strerror or error})") from None
    raise StoreError(
        f"{path} exists and is not an xray-scale store: --overwrite replaces only a store "
        "written by xray-scale; choose another --out, or remove it yourself"
    )


def _is_ours(path: Path) -> bool:
    """Whether ``path`` holds a zarr group with xray-scale's attributes, however incomplete."""
    try:
        metadata = json.loads((path / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(metadata, dict) and ATTRS_KEY in metadata.get("attributes", {})


def _build_store(
    path: Path,
    *,
    paths: list[str],
    shape: tuple[int, int],
    map_dtypes: dict[str, np.dtype],
    config: Config,
    attrs: dict,
    metadata: dict[str, np.ndarray] | None,
    preview_maps: tuple[str, ...],
    preview_shape: tuple[int, int] | None,
) -> None:
    """Write every array of a new store at ``path`` (see :func:`create_store`)."""
    count, batch = len(paths), config.batch_size
    height, width = shape
    records = (batch * -(-RECORD_CHUNK // batch),)  # whole batches per chunk
    histograms = (batch * -(-HISTOGRAM_CHUNK // batch), 256)
    group = zarr.open_group(path, mode="w-", attributes={ATTRS_KEY: attrs})
    for name, dtype in map_dtypes.items():
        group.create_array(
            name,
            shape=(count, height, width),
            dtype=dtype,
            chunks=(1, height, width),
            shards=(batch, height, width),
            compressors=_compressors(name, config),
            fill_value=0,
            dimension_names=("image", "y", "x"),
        )
    if preview_maps:
        # One chunk per batch holding every preview of its images: one write per
        # task (a write per map cost more in zarr's machinery than the compression).
        group.create_array(
            "previews",
            shape=(count, len(preview_maps), *preview_shape),
            dtype="uint8",
            chunks=(batch, len(preview_maps), *preview_shape),
            # zstd-1: 12 % larger than zstd-3 on real previews, at half its time
            compressors=ZstdCodec(level=1),
            fill_value=0,
            dimension_names=("image", "map", "y", "x"),
            attributes={"maps": list(preview_maps)},
        )
    for field in STAT_FIELDS:
        group.create_array(
            f"stats/{field}", shape=(count,), dtype="float64", chunks=records, fill_value=np.nan
        )
    group.create_array(
        "stats/histogram", shape=(count, 256), dtype="int64", chunks=histograms, fill_value=0
    )
    for name in _INDEX_STRINGS:
        fill = STATUS_PENDING if name == "status" else ""
        group.create_array(
            f"index/{name}", shape=(count,), dtype=str, chunks=records, fill_value=fill
        )
    group.create_array(
        "index/bit_depth", shape=(count,), dtype="uint8", chunks=records, fill_value=0
    )
    group.create_array(
        "index/follow_up", shape=(count,), dtype="int16", chunks=records, fill_value=-1
    )
    group.create_array(
        "index/checksum", shape=(count,), dtype="uint32", chunks=records, fill_value=0
    )
    for name, values in (metadata or {}).items():
        string = values.dtype == object
        group.create_array(
            f"index/{name}",
            shape=(count,),
            dtype=str if string else values.dtype,
            chunks=records,
            fill_value="" if string else (np.nan if values.dtype.kind == "f" else -1),
        )
        group[f"index/{name}"][:] = values
    names = [parse_image_name(p) for p in paths]
    group["index/path"][:] = np.array(paths, dtype=object)
    group["index/patient_id"][:] = np.array([n[0] for n in names], dtype=object)
    group["index/follow_up"][:] = np.array([n[1] for n in names], dtype=np.int16)


def open_store(path: str | os.PathLike, *, mode: str = "r") -> zarr.Group:
    """Open a store written by this package.

    Raises
    ------
    StoreError
        If ``path`` is missing or is not an xray_scale store.
    """
    path = Path(path)
    if path.is_file():
        raise StoreError(f"{path} is a file, not a store; give the --out of a run")
    if not (path / "zarr.json").is_file():
        raise StoreError(f"{path} is not a zarr store (no zarr.json); give the --out of a run")
    group = zarr.open_group(path, mode=mode)
    if ATTRS_KEY not in group.attrs:
        raise StoreError(f"{path} is a zarr store but was not written by xray-scale")
    if not _is_complete(group):
        raise StoreError(
            f"{path} is an incomplete store (its creation was interrupted): "
            "run again with --overwrite to replace it"
        )
    return group


def _is_complete(group: zarr.Group) -> bool:
    """Whether every per-image array exists and every path was written (paths came last).

    Stores are renamed into place once complete; this catches those an older
    version of xray-scale left half-made.
    """
    names = [f"index/{name}" for name in (*_INDEX_STRINGS, "bit_depth", "follow_up")]
    names += [f"stats/{field}" for field in (*STAT_FIELDS, "histogram")]
    if any(name not in group for name in names):
        return False
    return not (group["index/path"][:] == "").any()


def store_attrs(group: zarr.Group) -> dict:
    """The run's attributes (``attrs["xray_scale"]``)."""
    return dict(group.attrs[ATTRS_KEY])


def pending_batches(group: zarr.Group, *, retry_failed: bool = False) -> list[int]:
    """Start indices of the batches that hold any ``pending`` image.

    With ``retry_failed``, also those holding a ``failed`` image whose file
    exists now (a file still missing, such as an image a manifest lists but
    the inputs lack, would only fail again). The whole batch is processed
    again (a batch is one shard), its ``ok`` images too.
    """
    batch = store_attrs(group)["batch_size"]
    status = group["index/status"][:]
    redo = status == STATUS_PENDING
    if retry_failed:
        failed = np.flatnonzero(status == STATUS_FAILED)
        if failed.size:
            paths = group["index/path"][:]
            redo[[k for k in failed if _exists(str(paths[k]))]] = True
    return sorted({int(k) // batch * batch for k in np.flatnonzero(redo)})


def _exists(path: str) -> bool:
    return parse_synthetic(path) is not None or os.path.exists(path)


def image_array_depth(array: zarr.Array) -> int:
    """Images per write unit of an image array: its shard depth, or its chunk depth if unsharded."""
    return (array.shards or array.chunks)[0]


def write_maps(arrays: Mapping[str, zarr.Array], start: int, maps: dict[str, np.ndarray]) -> None:
    """Write one batch's shard of image arrays (full-resolution maps, or its previews).

    Parameters
    ----------
    arrays : mapping
        ``{name: zarr.Array}`` holding at least the arrays named in ``maps``
        (a :class:`zarr.Group` of the store will do).
    start : int
        Index of the batch's first image.
    maps : dict
        ``{"filters/<name>" or "masks/<name>": (K, H, W) array}``, or
        ``{"previews": (K, M, h, w) array}``.

    Raises
    ------
    AssertionError
        If the batch is not exactly one shard (one chunk of ``previews``):
        two writers per shard lose data.
    """
    for name, values in maps.items():
        array = arrays[name]
        depth = image_array_depth(array)
        stop = start + values.shape[0]
        assert start % depth == 0 and (values.shape[0] == depth or stop == array.shape[0]), (
            f"batch [{start}, {stop}) of {name} is not one whole shard of depth {depth}"
        )
        array[start:stop] = values


class RecordWriter:
    """The single writer of a store's per-image arrays (``stats/*``, ``index/*``).

    Batch records are buffered and written every ``interval_s`` seconds (and
    by :meth:`flush`), each chunk read and written once per flush, with
    ``index/status`` written after everything else. Records must be added
    only after their batch's maps are written.

    Parameters
    ----------
    group : zarr.Group
        The store, open for writing.
    interval_s : float
        Longest time a record waits in memory; a process killed in between
        loses at most these statuses, and resuming redoes their batches.
    """

    def __init__(self, group: zarr.Group, *, interval_s: float = 2.0):
        self._group = group
        self._interval = interval_s
        self._pending: list[BatchRecord] = []
        self._last_flush = time.monotonic()

    def add(self, record: BatchRecord) -> None:
        """Buffer one batch's records; flush if the interval has passed."""
        self._pending.append(record)
        if time.monotonic() - self._last_flush >= self._interval:
            self.flush()

    def _write(self, name: str, values_of: Callable[[BatchRecord], np.ndarray]) -> None:
        array = self._group[name]
        chunk = array.chunks[0]
        by_chunk: dict[int, list[BatchRecord]] = {}
        for record in self._pending:
            by_chunk.setdefault(record.start // chunk, []).append(record)
        for number, records in by_chunk.items():
            low = number * chunk
            high = min(low + chunk, array.shape[0])
            region = array[low:high]
            for record in records:
                offset = record.start - low
                region[offset : offset + record.size] = values_of(record)
            array[low:high] = region

    def flush(self) -> None:
        """Write every buffered record now, statuses last."""
        if self._pending:
            for field in STAT_FIELDS:
                self._write(f"stats/{field}", lambda r, f=field: r.stats[f])
            self._write("stats/histogram", lambda r: r.histogram)
            self._write("index/error", lambda r: np.array(r.error, dtype=object))
            self._write("index/mode", lambda r: np.array(r.mode, dtype=object))
            self._write("index/bit_depth", lambda r: np.array(r.bit_depth, dtype=np.uint8))
            if "index/checksum" in self._group:  # stores made before it existed have none
                self._write("index/checksum", lambda r: np.array(r.checksum, dtype=np.uint32))
            self._write("index/status", lambda r: np.array(r.status, dtype=object))
            self._pending = []
        self._last_flush = time.monotonic()


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
