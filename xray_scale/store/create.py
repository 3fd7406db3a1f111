"""Creating a store: every array made empty, every image ``pending``, and marked complete last.

A local store is built in a hidden folder beside its path and renamed into
place once complete, so a run killed while creating one leaves nothing that
looks like a store; ``--overwrite`` deletes only a store written by
xray-scale (or an empty folder). Object storage has no rename: a store at a
URL is built in place, and its completion marker, written last, is what
every reader checks (:mod:`xray_scale.store.remote`). See
:mod:`xray_scale.store.layout` for what a store holds.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from ..config import Config
from ..errors import StoreError
from ..io.formats.registry import DICOM, format_for_name
from ..io.sources.discover import parse_image_name
from .encoding import create_status_array, create_text_array, stored_values
from .layout import (
    ATTRS_KEY,
    DICOM_COLUMNS,
    HISTOGRAM_CHUNK,
    LABELS,
    MASK_GROUP,
    ORIGINAL_SIZE,
    RECORD_CHUNK,
    STAT_FIELDS,
    STATE_COMPLETE,
    STATE_CREATING,
    STATE_KEY,
    STATUS_FAILED,
    STATUS_PENDING,
    dimension_names,
    split_map_name,
)
from .location import StoreLocation, describe_failure, store_location
from .metadata import RunMetadata
from .qc import create_qc_arrays

__all__ = ["ERROR_WIDTH", "create_store"]

ERROR_WIDTH = 160
"""Initial width in bytes of ``index/error``; a longer message widens the array."""


def _compressors(name: str, config: Config):
    """Filter maps: as configured. Masks (0/1, or mostly zeros): zstd level 1, always."""
    if split_map_name(name)[0] == MASK_GROUP:
        return ZstdCodec(level=1)
    if config.compressor == "none":
        return None
    if config.compressor == "zstd":
        return ZstdCodec(level=config.compression_level)
    if config.compressor == "blosc-lz4":  # bit shuffle: measured faster and smaller for lz4
        return BloscCodec(cname="lz4", clevel=config.compression_level, shuffle="bitshuffle")
    return BloscCodec(cname="zstd", clevel=config.compression_level, shuffle="shuffle")


def create_store(
    path: str | os.PathLike | StoreLocation,
    *,
    paths: list[str],
    shape: tuple[int, int],
    map_dtypes: dict[str, np.dtype],
    config: Config,
    metadata: RunMetadata | None = None,
    columns: dict[str, np.ndarray] | None = None,
    preview_maps: tuple[str, ...] = (),
    preview_shape: tuple[int, int] | None = None,
    qc: bool = False,
    failed: Mapping[int, str] | None = None,
    overwrite: bool = False,
    labels: tuple[tuple[str, ...], np.ndarray, dict[str, int]] | None = None,
) -> zarr.Group:
    """Create an empty store for a run, every image ``pending`` (or ``failed``, if known now).

    Parameters
    ----------
    path : path-like or StoreLocation
        The ``.zarr`` directory to create, or its URL (:mod:`.location`).
    paths : list of str
        The run's inputs, in order: index ``i`` of every array is ``paths[i]``.
    shape : (int, int)
        (height, width) of every image.
    map_dtypes : dict
        ``{"filters/<name>" or "masks/<name>": dtype}`` of the full-resolution arrays.
    config : Config
        Gives the batch size (shard depth) and the compression.
    metadata : RunMetadata, optional
        The run's metadata (version, config, times...); None stores an empty
        one (a store for measuring writes, not for resuming).
    columns : dict, optional
        More per-image columns for the index, ``{name: (N,) array}`` (e.g.
        from a manifest), stored as ``index/<name>``. ``patient_id`` and
        ``follow_up`` among them (a dataset's own ids) replace those parsed from
        the file names.
    preview_maps : tuple of str
        What ``previews[:, m]`` shows, for each ``m`` (``"original"``, then map
        names); empty for no ``previews`` array.
    preview_shape : (int, int), optional
        (height, width) of the previews.
    qc : bool
        Create the ``qc/*`` arrays (:mod:`xray_scale.store.qc`).
    failed : mapping, optional
        ``{index: error}`` of the images already known to fail, recorded as
        ``failed`` from the start (a manifest's images the inputs lack): no
        task ever processes them.
    overwrite : bool
        Replace an existing store at ``path`` (a local one once the new one is
        built); only a store written by xray-scale (or an empty folder) is ever
        deleted.
    labels : (names, codes, meaning), optional
        A dataset's labels: ``(N, L)`` int8 ``codes`` stored as ``index/label_codes``,
        its ``attrs["names"]`` the L label names and ``attrs["codes"]`` the
        ``meaning`` of each code (:mod:`xray_scale.io.sources.datasets`).

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
    location = store_location(path)
    layout = {
        "paths": paths,
        "shape": shape,
        "map_dtypes": map_dtypes,
        "config": config,
        "attrs": metadata.to_attrs() if metadata is not None else {},
        "columns": columns,
        "preview_maps": preview_maps,
        "preview_shape": preview_shape,
        "qc": qc,
        "failed": failed or {},
        "labels": labels,
    }
    if not location.is_local:
        return _create_at_url(location, overwrite=overwrite, layout=layout)
    path = location.path
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise StoreError(f"{path} already exists; pass --overwrite to replace it")
        _check_replaceable(path)
    building = path.parent / f".{path.name}.creating-{_build_owner()}-{uuid.uuid4().hex[:8]}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_builds(path)
        _build_store(str(building), **layout)
        if overwrite and (path.exists() or path.is_symlink()):
            _check_replaceable(path)  # again: something else may have appeared there meanwhile
            shutil.rmtree(path)
        building.rename(path)
    except OSError as error:
        raise StoreError(f"cannot write the store at {path}: {error.strerror or error}") from None
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return zarr.open_group(path, mode="r+")


def _create_at_url(location: StoreLocation, *, overwrite: bool, layout: dict) -> zarr.Group:
    """Build a store in place at a URL, its completion marker last (see :mod:`.remote`)."""
    from .remote import ABSENT, FOREIGN, probe, remove_store

    found = probe(location)
    if found != ABSENT:
        if not overwrite:
            raise StoreError(f"{location} already exists; pass --overwrite to replace it")
        if found == FOREIGN:
            raise StoreError(
                f"{location} holds objects that are not an xray-scale store: --overwrite replaces "
                "only a store written by xray-scale; choose another --out, or remove them yourself"
            )
        remove_store(location)
    try:
        _build_store(location.zarr_store(), **layout)
        return zarr.open_group(location.zarr_store(), mode="r+", zarr_format=3)
    except Exception as error:  # each client has its own errors: say which URL and why
        raise StoreError(
            f"cannot write the store at {location}: {describe_failure(error)}"
        ) from None


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
        group_json = json.loads((path / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(group_json, dict) and ATTRS_KEY in group_json.get("attributes", {})


def _build_store(
    target,
    *,
    paths: list[str],
    shape: tuple[int, int],
    map_dtypes: dict[str, np.dtype],
    config: Config,
    attrs: dict,
    columns: dict[str, np.ndarray] | None,
    preview_maps: tuple[str, ...],
    preview_shape: tuple[int, int] | None,
    qc: bool,
    failed: Mapping[int, str],
    labels: tuple[tuple[str, ...], np.ndarray, dict[str, int]] | None = None,
) -> None:
    """Write every array of a new store at ``target`` (see :func:`create_store`).

    ``target`` is what ``zarr.open_group`` takes (a path, a zarr store). The
    group's completion marker says ``creating`` from the first write and
    ``complete`` after the last one.
    """
    count, batch = len(paths), config.batch_size
    height, width = shape
    records = (batch * -(-RECORD_CHUNK // batch),)  # whole batches per chunk
    histograms = (batch * -(-HISTOGRAM_CHUNK // batch), 256)
    group = zarr.create_group(  # refuses an existing group, keeps objects that are not zarr's
        target, attributes={ATTRS_KEY: attrs, STATE_KEY: STATE_CREATING}, zarr_format=3
    )
    for name, dtype in map_dtypes.items():
        group.create_array(
            name,
            shape=(count, height, width),
            dtype=dtype,
            chunks=(1, height, width),
            shards=(batch, height, width),
            compressors=_compressors(name, config),
            fill_value=0,
            dimension_names=dimension_names(name),
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
            dimension_names=dimension_names("previews"),
            attributes={"maps": list(preview_maps)},
        )
    for field in STAT_FIELDS:
        group.create_array(
            f"stats/{field}",
            shape=(count,),
            dtype="float64",
            chunks=records,
            fill_value=np.nan,
            dimension_names=dimension_names(f"stats/{field}"),
        )
    group.create_array(
        "stats/histogram",
        shape=(count, 256),
        dtype="int64",
        chunks=histograms,
        fill_value=0,
        dimension_names=dimension_names("stats/histogram"),
    )
    columns = columns or {}
    names = [parse_image_name(p) for p in paths]
    patient_ids, follow_ups = columns.get("patient_id"), columns.get("follow_up")
    create_status_array(group, "index/status", count=count, chunk=records[0])
    create_text_array(group, "index/path", values=paths, count=count, chunk=records[0])
    create_text_array(
        group,
        "index/patient_id",
        values=[n[0] for n in names] if patient_ids is None else patient_ids,
        count=count,
        chunk=records[0],
    )
    create_text_array(group, "index/mode", values=None, count=count, chunk=records[0], width=8)
    create_text_array(
        group, "index/error", values=None, count=count, chunk=records[0], width=ERROR_WIDTH
    )
    for name, dtype, fill in (
        ("index/bit_depth", "uint8", 0),
        ("index/follow_up", "int16", -1),
        ("index/checksum", "uint32", 0),
    ):
        group.create_array(
            name,
            shape=(count,),
            dtype=dtype,
            chunks=records,
            fill_value=fill,
            dimension_names=dimension_names(name),
        )
    if any(format_for_name(path) is DICOM for path in paths):  # its tags, as each is read
        for name in DICOM_COLUMNS.values():
            create_text_array(group, name, values=None, count=count, chunk=records[0])
    if config.size_policy == "resize":  # each image's own size, before it was resized
        for name in ORIGINAL_SIZE:
            group.create_array(
                name,
                shape=(count,),
                dtype="int32",
                chunks=records,
                fill_value=0,
                dimension_names=dimension_names(name),
            )
    if labels is not None:
        label_names, codes, meaning = labels
        group.create_array(
            LABELS,
            shape=(count, len(label_names)),
            dtype="int8",
            chunks=(records[0], max(1, len(label_names))),
            fill_value=0,
            dimension_names=dimension_names(LABELS),
            attributes={"names": list(label_names), "codes": meaning},
        )
        if len(label_names):
            group[LABELS][:] = codes
    if qc:
        create_qc_arrays(group, count, records=records[0], rows=histograms[0])
    for name, values in columns.items():
        if name in ("patient_id", "follow_up"):  # a dataset's own ids: written above
            continue
        if values.dtype == object:
            create_text_array(group, f"index/{name}", values=values, count=count, chunk=records[0])
            continue
        group.create_array(
            f"index/{name}",
            shape=(count,),
            dtype=values.dtype,
            chunks=records,
            fill_value=np.nan if values.dtype.kind == "f" else -1,
            dimension_names=dimension_names(f"index/{name}"),
        )
        group[f"index/{name}"][:] = values
    if failed:
        indices = np.fromiter(failed, dtype=np.int64, count=len(failed))
        errors = np.full(count, "", dtype=object)
        errors[indices] = list(failed.values())
        status = np.full(count, STATUS_PENDING, dtype=object)
        status[indices] = STATUS_FAILED
        for name, values in (("index/error", errors), ("index/status", status)):
            array = group[name]
            array[:] = stored_values(array, values)  # may widen index/error first
    if follow_ups is None:
        follow_ups = [n[1] for n in names]
    group["index/follow_up"][:] = np.asarray(follow_ups, dtype=np.int16)
    group.attrs[STATE_KEY] = STATE_COMPLETE
