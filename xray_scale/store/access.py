"""Reading and writing a store: open it, find what is left to do, one writer per shard, status last.

Two tasks writing into one zarr shard lose data silently (zarr-python issues
3514 and 3682), so batch ``b`` covers exactly images ``[b*K, (b+1)*K)``, every
full-resolution shard (and every chunk of ``previews``) is exactly one batch
deep, and :func:`write_maps` checks both, raising
:class:`~xray_scale.errors.StoreError` otherwise. The per-image arrays
(``stats/*``, ``index/*``) are small and written by one writer only, the
process that runs the pipeline (:class:`RecordWriter`), in chunks of
thousands of images. A batch's records are written only after its task has
written its maps, and ``index/status`` last, so a batch whose status is not
``pending`` is complete, whatever happened later. The layout is in
:mod:`xray_scale.store.layout`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import zarr

from ..errors import StoreError
from ..io.sources.archives import member_exists, split_member_path
from ..io.sources.discover import parse_synthetic
from ..io.sources.urls import is_url, url_exists
from .encoding import read_index, stored_values
from .layout import (
    DICOM_COLUMNS,
    INDEX_STRINGS,
    ORIGINAL_SIZE,
    QC_RECORD_FIELDS,
    STAT_FIELDS,
    STATE_COMPLETE,
    STATE_KEY,
    STATUS_FAILED,
    STATUS_OK,
    STATUS_PENDING,
)
from .location import StoreLocation, describe_failure, store_location
from .metadata import RunMetadata
from .qc import QC_GROUP, has_qc

if TYPE_CHECKING:  # annotations only: reading a store needs none of the analysis
    from ..records import BatchRecord

__all__ = [
    "RecordWriter",
    "StoreError",
    "image_array_depth",
    "open_store",
    "pending_batches",
    "read_status_summary",
    "store_exists",
    "write_maps",
]


def open_store(path: str | os.PathLike | StoreLocation, *, mode: str = "r") -> zarr.Group:
    """Open a complete store written by this package (a local folder, or a URL).

    Raises
    ------
    StoreError
        If ``path`` is missing, is not an xray_scale store, or is one whose
        creation did not finish.
    """
    location = store_location(path)
    if not location.is_local:
        return _checked(_open_at_url(location, mode=mode), location)
    path = location.path
    if path.is_file():
        raise StoreError(f"{path} is a file, not a store; give the --out of a run")
    if not (path / "zarr.json").is_file():
        raise StoreError(f"{path} is not a zarr store (no zarr.json); give the --out of a run")
    return _checked(zarr.open_group(path, mode=mode), path)


def store_exists(path: str | os.PathLike | StoreLocation) -> bool:
    """Whether anything is at a store's place (a URL's: raises StoreError when unreachable)."""
    location = store_location(path)
    if location.is_local:
        return location.path.exists() or location.path.is_symlink()
    from .remote import ABSENT, probe

    return probe(location) != ABSENT


def _open_at_url(location: StoreLocation, *, mode: str) -> zarr.Group:
    from .remote import ABSENT, FOREIGN, probe

    found = probe(location)
    if found == ABSENT:
        raise StoreError(f"there is no store at {location}; give the --out of a run")
    if found == FOREIGN:
        raise StoreError(f"{location} is not a zarr store written by xray-scale")
    try:
        return zarr.open_group(location.zarr_store(read_only=mode == "r"), mode=mode, zarr_format=3)
    except Exception as error:  # each client has its own errors: say which URL and why
        raise StoreError(f"cannot open the store {location}: {describe_failure(error)}") from None


def _checked(group: zarr.Group, where) -> zarr.Group:
    """``group`` if it is a complete store of ours, else :class:`StoreError`."""
    if not RunMetadata.present(group):
        raise StoreError(f"{where} is a zarr store but was not written by xray-scale")
    if not _is_complete(group):
        raise StoreError(
            f"{where} is an incomplete store (its creation was interrupted): "
            "run again with --overwrite to replace it"
        )
    return group


def _is_complete(group: zarr.Group) -> bool:
    """Whether the store's creation finished: its completion marker says so.

    A store older than the marker was renamed into place once complete; for
    those, whether every per-image array exists and every path was written
    (paths came last) catches what an older version left half-made.
    """
    if STATE_KEY in group.attrs:
        return group.attrs[STATE_KEY] == STATE_COMPLETE
    names = [f"index/{name}" for name in (*INDEX_STRINGS, "bit_depth", "follow_up")]
    names += [f"stats/{field}" for field in (*STAT_FIELDS, "histogram")]
    if any(name not in group for name in names):
        return False
    return not (read_index(group, "path") == "").any()


def pending_batches(group: zarr.Group, *, retry_failed: bool = False) -> list[int]:
    """Start indices of the batches that hold any ``pending`` image.

    With ``retry_failed``, also those holding a ``failed`` image whose file
    exists now (a file still missing, such as an image a manifest lists but
    the inputs lack, would only fail again). The whole batch is processed
    again (a batch is one shard), its ``ok`` images too.
    """
    batch = RunMetadata.from_group(group).batch_size
    status = read_index(group, "status")
    redo = status == STATUS_PENDING
    if retry_failed:
        failed = np.flatnonzero(status == STATUS_FAILED)
        if failed.size:
            paths = read_index(group, "path", failed)
            redo[[k for k, path in zip(failed, paths, strict=True) if _exists(str(path))]] = True
    return sorted({int(k) // batch * batch for k in np.flatnonzero(redo)})


def _exists(path: str) -> bool:
    """Whether an input is there to retry: a phantom, a file, a member, or a URL's object."""
    if parse_synthetic(path) is not None or os.path.exists(path):
        return True
    if split_member_path(path) is not None:  # a member of an archive, on disk or at a URL
        return member_exists(path)
    return is_url(path) and url_exists(path)


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
    StoreError
        If the batch is not exactly one shard (one chunk of ``previews``):
        two writers in one shard lose data, so this is never done.
    """
    for name, values in maps.items():
        array = arrays[name]
        depth = image_array_depth(array)
        stop = start + values.shape[0]
        if start % depth or (values.shape[0] != depth and stop != array.shape[0]):
            raise StoreError(
                f"batch [{start}, {stop}) of {name} is not one whole shard of depth {depth}: "
                "a batch must be exactly one shard (report this as a bug)"
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
        0 writes every record as it is added (a run with the progress gate
        of :mod:`xray_scale.runner.gate` on).
    """

    def __init__(self, group: zarr.Group, *, interval_s: float = 2.0):
        self._group = group
        self._interval = interval_s
        self._pending: list[BatchRecord] = []
        self._last_flush = time.monotonic()
        self._arrays: dict[str, zarr.Array] = {}  # numeric arrays, opened once (~0.3 ms each)
        self._chunks: dict[str, tuple[int, np.ndarray]] = {}  # each one's last chunk written
        self._qc_names: list[str] | None = None  # the QC arrays this store has
        self._has: dict[str, bool] = {}  # whether the store has each optional array

    def add(self, record: BatchRecord) -> None:
        """Buffer one batch's records; flush if the interval has passed."""
        self._pending.append(record)
        if time.monotonic() - self._last_flush >= self._interval:
            self.flush()

    def _write(self, name: str, values_of: Callable[[BatchRecord], np.ndarray]) -> None:
        if name not in self._arrays:  # text arrays may be widened, so only these are kept
            self._arrays[name] = self._group[name]
        self._write_into(self._arrays[name], values_of, keep=name)

    def _stored(self, name: str) -> bool:
        """Whether the store has the optional array ``name``, looked up once per writer."""
        if name not in self._has:
            self._has[name] = name in self._group
        return self._has[name]

    def _stored_qc(self) -> list[str]:
        """The ``qc/*`` record arrays of the store: none without QC, fewer in older stores."""
        if self._qc_names is None:
            stored = set(self._group[QC_GROUP].array_keys()) if has_qc(self._group) else set()
            self._qc_names = [name for name in QC_RECORD_FIELDS if name in stored]
        return self._qc_names

    def _write_text(self, name: str, values_of: Callable[[BatchRecord], list]) -> None:
        """Write a text or status array in the encoding its store uses (see :mod:`.encoding`)."""
        array = self._group[name]
        strings = [value for record in self._pending for value in values_of(record)]
        stored = stored_values(array, strings)  # may widen a text array first
        starts = np.cumsum([0] + [record.size for record in self._pending])
        first = {id(record): int(k) for record, k in zip(self._pending, starts, strict=False)}
        self._write_into(array, lambda r: stored[first[id(r)] : first[id(r)] + r.size])

    def _write_into(
        self,
        array: zarr.Array,
        values_of: Callable[[BatchRecord], np.ndarray],
        *,
        keep: str | None = None,
    ) -> None:
        """Each chunk the records touch: read, updated, written whole.

        With ``keep``, the last chunk written is kept, and not read again by the
        next flush into it: this writer is the only one of these arrays.
        """
        chunk = array.chunks[0]
        by_chunk: dict[int, list[BatchRecord]] = {}
        for record in self._pending:
            by_chunk.setdefault(record.start // chunk, []).append(record)
        for number, records in by_chunk.items():
            low = number * chunk
            high = min(low + chunk, array.shape[0])
            kept = self._chunks.get(keep) if keep else None
            region = kept[1] if kept and kept[0] == number else array[low:high]
            for record in records:
                offset = record.start - low
                region[offset : offset + record.size] = values_of(record)
            array[low:high] = region
            if keep:
                self._chunks[keep] = (number, region)

    def flush(self) -> None:
        """Write every buffered record now, statuses last."""
        if self._pending:
            for field in STAT_FIELDS:
                self._write(f"stats/{field}", lambda r, f=field: r.stats[f])
            self._write("stats/histogram", lambda r: r.histogram)
            self._write_text("index/error", lambda r: r.error)
            self._write_text("index/mode", lambda r: r.mode)
            self._write("index/bit_depth", lambda r: np.array(r.bit_depth, dtype=np.uint8))
            if self._stored("index/checksum"):  # stores made before it existed have none
                self._write("index/checksum", lambda r: np.array(r.checksum, dtype=np.uint32))
            if self._stored(DICOM_COLUMNS["PatientID"]):  # only runs with DICOM inputs
                for tag, name in DICOM_COLUMNS.items():
                    self._write_text(name, lambda r, t=tag: [(s or {}).get(t, "") for s in r.tags])
            if self._stored(ORIGINAL_SIZE[0]):  # only runs with input.size_policy = "resize"
                for axis, name in enumerate(ORIGINAL_SIZE):
                    self._write(
                        name,
                        lambda r, a=axis: np.array([s[a] for s in r.original_size], np.int32),
                    )
            for name in self._stored_qc():  # stores made before QC, or without it, have none
                self._write(f"{QC_GROUP}/{name}", lambda r, n=name: _qc_values(r, n))
            self._write_text("index/status", lambda r: r.status)
            self._pending = []
        self._last_flush = time.monotonic()


def _qc_values(record: BatchRecord, name: str) -> np.ndarray:
    """A batch's ``qc/<name>`` values; a record without QC is refused rather than stored."""
    if record.qc is None:
        raise StoreError(
            f"the batch at image {record.start} has no QC but the store keeps it; "
            "run with qc.enabled = true to resume this store"
        )
    return record.qc[name]


def read_status_summary(group: zarr.Group) -> dict:
    """Image counts by status, and every failure with its message.

    Returns
    -------
    dict
        ``{"total", "ok", "failed", "pending": int, "failures": [{"path", "error"}]}``
    """
    status = read_index(group, "status")
    failed = np.flatnonzero(status == STATUS_FAILED)
    failures = []
    if failed.size:
        paths = read_index(group, "path", failed)
        errors = read_index(group, "error", failed)
        failures = [{"path": str(p), "error": str(e)} for p, e in zip(paths, errors, strict=True)]
    ok = int((status == STATUS_OK).sum())
    return {
        "total": int(status.size),
        "ok": ok,
        "failed": int(failed.size),
        "pending": int(status.size) - ok - int(failed.size),
        "failures": failures,
    }
