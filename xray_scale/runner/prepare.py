"""Before any batch runs: the inputs selected, the run's image format, its store opened or made.

:func:`select_inputs` turns the input arguments (and a manifest) into the run's
ordered paths and the images known to be absent; :func:`prepare_store` probes
the run's format (or keeps a resumed store's), fixes the
:class:`~xray_scale.records.BatchSpec`, and opens the store holding this very
run or creates a new one, every image ``pending``.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from .. import __version__
from ..analysis.maps import batch_spec
from ..config import Config
from ..errors import DecodeError, InputError, StoreError
from ..io.decode import check_supported, read_image_header
from ..io.formats.registry import format_names
from ..io.sources.archives import file_name, source_file
from ..io.sources.datasets import DatasetMetadata, metadata_columns, read_metadata
from ..io.sources.discover import SYNTHETIC_PREFIX, discover_inputs, parse_synthetic
from ..io.sources.manifest import NOT_IN_INPUTS, Manifest, select_with_manifest
from ..io.sources.namelists import NOT_IN_INPUTS as NOT_IN_ANY_INPUT
from ..io.sources.namelists import is_absent
from ..io.sources.urls import is_url, redact
from ..records import BatchSpec
from ..store.access import open_store, store_exists
from ..store.create import create_store
from ..store.encoding import read_index
from ..store.location import StoreLocation
from ..store.metadata import RunMetadata, compared_configs, run_fingerprint
from ..store.qc import stored_qc

__all__ = [
    "PROBED_HEADERS",
    "PreparedStore",
    "SelectedInputs",
    "check_no_input_inside",
    "prepare_store",
    "select_inputs",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SelectedInputs:
    """The run's images, in store order.

    Attributes
    ----------
    paths : list of str
        One per image of the store (``index/path``).
    manifest : Manifest, DatasetMetadata or None
        The parsed ``--manifest``, if any: NIH's (which selected the paths) or
        another dataset's metadata (:mod:`xray_scale.io.sources.datasets`).
    missing : list of str
        The file names the manifest lists and the inputs lack.
    absent : dict
        ``{index: error}`` of the images known not to exist before any is read.
    """

    paths: list[str]
    manifest: Manifest | DatasetMetadata | None
    missing: list[str]
    absent: dict[int, str]


def select_inputs(
    inputs: list[str | os.PathLike],
    *,
    manifest: str | os.PathLike | list[str | os.PathLike] | None,
    limit: int | None,
) -> SelectedInputs:
    """Discover the inputs, keep the manifest's (if any), then the first ``limit``.

    See :func:`xray_scale.io.sources.discover_inputs` and
    :func:`xray_scale.io.sources.manifest.select_with_manifest`.
    """
    paths = discover_inputs(inputs)
    parsed_manifest, missing = None, []
    if manifest is not None:
        parsed_manifest = read_metadata(manifest)
        if isinstance(parsed_manifest, Manifest):  # another dataset's metadata selects nothing
            paths, missing = select_with_manifest(paths, parsed_manifest)
    paths = paths[:limit]
    return SelectedInputs(paths, parsed_manifest, missing, _absent(paths, missing))


@dataclass(frozen=True)
class PreparedStore:
    """The store a run writes into, and what its batches compute.

    Attributes
    ----------
    group : zarr.Group
        The store, open for writing.
    spec : BatchSpec
        What every batch computes and keeps.
    created : bool
        Whether this call made the store (else it resumes one).
    """

    group: zarr.Group
    spec: BatchSpec
    created: bool


def prepare_store(
    out: StoreLocation,
    selected: SelectedInputs,
    *,
    config: Config,
    compat: str | None,
    engine: str,
    decoder: str,
    inputs: list[str | os.PathLike],
    overwrite: bool,
) -> PreparedStore:
    """The store holding this very run (resumed), or a new one at ``out``.

    A new run's size and bit depth come from the config, else from the inputs'
    headers (:data:`PROBED_HEADERS`); a resumed run keeps its store's.

    Raises
    ------
    InputError
        If no input has a usable header and the config does not set the format.
    StoreError
        If ``out`` holds another run and ``overwrite`` is not set.
    """
    existing = None if overwrite or not store_exists(out) else open_store(out, mode="r+")
    if existing is None:
        present = [path for k, path in enumerate(selected.paths) if k not in selected.absent]
        shape, bit_depth = _probe_image_format(present, config)
    else:  # a resumed run keeps its store's format: repairing files must not change it
        shape, bit_depth = _stored_format(existing, config)
    spec = batch_spec(
        config, shape=shape, bit_depth=bit_depth, compat=compat, engine=engine, decoder=decoder
    )
    if existing is not None:  # the QC its store keeps: none, or an older pixel hash
        spec = stored_qc(existing, spec)
    _warn_of_an_8_bit_threshold(config, bit_depth)
    group = _open_or_create(
        out,
        paths=selected.paths,
        spec=spec,
        bit_depth=bit_depth,
        inputs=[_describe_input(i) for i in inputs],
        manifest=selected.manifest,
        missing=selected.missing,
        absent=selected.absent,
        existing=existing,
        overwrite=overwrite,
    )
    return PreparedStore(group, spec, created=existing is None)


def _warn_of_an_8_bit_threshold(config: Config, bit_depth: int) -> None:
    """Warn when a 16-bit run's masks compare its pixels with a threshold of the 8-bit scale."""
    if bit_depth == 16 and config.masks and config.threshold < 256:
        logger.warning(
            "masks.threshold = %g is on the 8-bit scale (0..255), but this run's images are "
            "16-bit (0..65535), so its masks keep almost every pixel above black: set "
            "masks.threshold on their scale (%g x 257 = %g is the same fraction of full scale), "
            "or masks.enabled = [] for no masks",
            config.threshold,
            config.threshold,
            config.threshold * 257,
        )


PROBED_HEADERS = 64
"""Headers read to choose a run's size and bit depth when the config does not set them."""


def _probe_image_format(paths: list[str], config: Config) -> tuple[tuple[int, int], int]:
    """The run's (height, width) and bit depth: from config, else the inputs' most common.

    The most common among the first :data:`PROBED_HEADERS` usable headers (read
    in input order until there are that many), so that one odd file sorted first
    (another size, 16-bit colour) fails alone instead of setting the format every
    other image is measured against.
    """
    size, bit_depth = config.size, config.bit_depth
    if size is not None and bit_depth is not None:
        return size, bit_depth
    sizes: Counter = Counter()
    depths: Counter = Counter()
    first_error = ""
    for path in paths:
        if sizes.total() == PROBED_HEADERS:
            break
        try:
            header = read_image_header(path)
            check_supported(header, max_pixels=config.max_pixels)
        except DecodeError as error:
            first_error = first_error or f"{path}: {error}"
            continue
        sizes[header.height, header.width] += 1
        depths[16 if header.bit_depth == 16 else 8] += 1
    if not sizes:
        raise InputError(
            f"none of the {len(paths)} inputs has a usable {format_names()} header "
            f"(first problem: {first_error}); set input.size and input.bit_depth in the config "
            "to record them all as failed"
        )
    return size or sizes.most_common(1)[0][0], bit_depth or depths.most_common(1)[0][0]


def _stored_format(group: zarr.Group, config: Config) -> tuple[tuple[int, int], int]:
    """The size and bit depth of the store a run resumes (config values first)."""
    stored = RunMetadata.from_group(group)
    return tuple(config.size or stored.shape), config.bit_depth or stored.bit_depth


def check_no_input_inside(out: Path, paths: list[str]) -> None:
    """Refuse an ``--overwrite`` that would delete some of the run's own inputs."""
    if not out.is_dir():
        return
    inside = os.path.realpath(out) + os.sep
    for path in paths:
        if is_url(path) or parse_synthetic(path) is not None:
            continue
        if os.path.realpath(source_file(path)).startswith(inside):
            raise StoreError(
                f"--overwrite would delete inputs inside {out} (first: {path}); "
                "move them out of it, or choose another --out"
            )


def _describe_input(item: str | os.PathLike) -> str:
    """An input argument as recorded in the store: absolute, unless a phantom source or a URL.

    A URL is recorded without any ``user:password@`` part.
    """
    text = os.fspath(item)
    if is_url(text):
        return redact(text)
    return text if text.startswith(SYNTHETIC_PREFIX) else os.path.abspath(text)


def _differences(group: zarr.Group, paths: list[str], spec: BatchSpec) -> list[str]:
    """What differs between the run a store holds and this one, as short phrases."""
    stored = RunMetadata.from_group(group)
    found = []
    stored_paths = group["index/path"]
    if stored_paths.shape[0] != len(paths):
        found.append(f"{stored_paths.shape[0]} inputs in the store, {len(paths)} now")
    else:
        changed = np.flatnonzero(read_index(group, "path") != np.array(paths, dtype=object))
        if changed.size:
            found.append(f"{changed.size} other input paths, the first {paths[changed[0]]}")
    for name, now in (
        ("engine", spec.engine),
        ("compat", spec.compat),
        ("image_shape", list(spec.shape)),
        ("pixel_dtype", spec.pixel_dtype),
    ):
        if getattr(stored, name) != now:
            found.append(f"{name} {getattr(stored, name)} in the store, {now} now")
    stored, current = compared_configs(stored.config or {}, spec)
    stored, current = _flatten(stored), _flatten(json.loads(json.dumps(current)))  # JSON: lists
    for key in sorted(stored.keys() | current.keys()):
        if stored.get(key) != current.get(key):
            found.append(f"config {key} {stored.get(key)!r} in the store, {current.get(key)!r} now")
    return found


def _flatten(table: dict, prefix: str = "") -> dict:
    """``{"store": {"compressor": "zstd"}}`` -> ``{"store.compressor": "zstd"}``."""
    flat = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _absent(paths: list[str], missing: list[str]) -> dict[int, str]:
    """``{index: error}`` of the images known not to exist before any is read.

    A manifest's images that the inputs lack (named in ``missing``), and a
    name list's names that no input holds (``LIST::NAME`` paths).
    """
    names = set(missing)
    absent = {}
    for k, path in enumerate(paths):
        if is_absent(path):
            absent[k] = NOT_IN_ANY_INPUT
        elif names and file_name(path) in names:
            absent[k] = NOT_IN_INPUTS
    return absent


def _open_or_create(
    out: StoreLocation,
    *,
    paths: list[str],
    spec: BatchSpec,
    bit_depth: int,
    inputs: list[str],
    manifest: Manifest | DatasetMetadata | None,
    missing: list[str],
    absent: dict[int, str],
    existing: zarr.Group | None,
    overwrite: bool,
) -> zarr.Group:
    """``existing`` if it holds this very run (else StoreError), or a new store at ``out``."""
    manifest_digest = manifest.digest if manifest else None
    fingerprint = run_fingerprint(paths, spec, bit_depth=bit_depth, manifest_digest=manifest_digest)
    if existing is not None:
        if RunMetadata.from_group(existing).fingerprint != fingerprint:
            differences = "; ".join(_differences(existing, paths, spec)) or (
                "the store layout of another xray-scale version, or another manifest"
            )
            raise StoreError(
                f"{out} holds a run with other inputs, another config or another store "
                f"layout ({differences}); pass --overwrite to replace it, or choose another --out"
            )
        return existing
    run_metadata = RunMetadata.for_run(
        spec,
        version=__version__,
        fingerprint=fingerprint,
        inputs=inputs,
        manifest={
            "path": manifest.path,
            "listed": len(manifest.rows),
            "missing": len(missing),
            "missing_examples": missing[:20],
        }
        if manifest
        else None,
    )
    columns, labels = metadata_columns(manifest, paths)
    return create_store(
        out,
        paths=paths,
        config=spec.config,
        metadata=run_metadata,
        columns=columns,
        labels=labels,
        failed=absent,
        overwrite=overwrite,
        qc=spec.qc is not None,
        **spec.store_layout(),
    )
