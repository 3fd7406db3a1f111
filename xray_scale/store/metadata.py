"""The run a store holds: :class:`RunMetadata`, the one owner of ``attrs["xray_scale"]``.

Every module that reads or writes the store's run attributes goes through
this class (``to_attrs`` / ``from_group``), and the fingerprint that decides
whether a store may be resumed is computed here and nowhere else.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import hashlib
import json
import platform
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING

import zarr

from .layout import ATTRS_KEY

if TYPE_CHECKING:  # annotations only: reading a store needs none of the analysis
    from ..records import BatchSpec

__all__ = [
    "RunMetadata",
    "compared_configs",
    "fingerprinted_config",
    "library_versions",
    "run_fingerprint",
    "utc_now",
]


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


def fingerprinted_config(spec: BatchSpec) -> dict:
    """The config as the fingerprint sees it: without ``[qc]`` when the run keeps no QC.

    So a store made before QC existed (its config has no ``[qc]``) is still
    the same run, and resumes (without QC); and a store made with QC resumes
    only with the same QC thresholds. A ``[qc]`` key added since stores were
    first made with QC (:data:`_LATER_QC_KEYS`) is left out at its default, so
    those stores resume too.
    """
    config = spec.config.to_dict()
    if spec.qc is None:
        del config["qc"]
    return _without_later_defaults(config, spec)


def compared_configs(stored: dict, spec: BatchSpec) -> tuple[dict, dict]:
    """A store's config and this run's, as the fingerprint sees them: to name what differs."""
    return _without_later_defaults(copy.deepcopy(stored), spec), fingerprinted_config(spec)


_LATER_QC_KEYS = ("outlier_threshold",)
"""``[qc]`` keys that stores made before them lack (issue 24 added ``outlier_threshold``)."""

_LATER_INPUT_DEFAULTS = {"dicom_voi": "lut"}
"""``[input]`` keys that stores made before them lack, with their defaults (issue 26)."""


def _without_later_defaults(config: dict, spec: BatchSpec) -> dict:
    """``config`` without the :data:`_LATER_QC_KEYS` at their defaults (changed in place)."""
    inputs = config.get("input")
    if isinstance(inputs, dict):
        for key, default in _LATER_INPUT_DEFAULTS.items():
            if inputs.get(key) == default:
                del inputs[key]
    qc = config.get("qc")
    if isinstance(qc, dict):
        defaults = dataclasses.asdict(type(spec.config.qc)())
        for key in _LATER_QC_KEYS:
            if key in qc and qc[key] == defaults[key]:
                del qc[key]
    return config


def run_fingerprint(
    paths: list[str], spec: BatchSpec, *, bit_depth: int, manifest_digest: str | None
) -> str:
    """What makes two runs the same run: inputs in order, config, compat, engine, format, layout.

    A store is resumed only by a run with its fingerprint (the store layout this
    version of xray-scale writes for the run included), so every shard it holds
    has the layout the run would write.
    """
    settings = {
        "manifest": manifest_digest,
        "config": fingerprinted_config(spec),
        "compat": spec.compat,
        "engine": spec.engine,
        "shape": list(spec.shape),
        "bits": bit_depth,
        "layout": spec.store_layout(),
    }
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class RunMetadata:
    """What a store records about its run, as stored in ``attrs["xray_scale"]``.

    Attributes
    ----------
    version : str
        xray-scale's version that created the store.
    engine : str
        The concrete engine (``"scipy"``, ``"opencv"``, ``"cupy"``).
    compat : str or None
        ``"tutorial"`` or None.
    config : dict
        The configuration, as :meth:`xray_scale.config.Config.to_dict` gives it.
    libraries : dict
        Library versions at creation (:func:`library_versions`).
    inputs : list of str
        The run's inputs as given (folders, globs, lists, ``synth:``).
    image_shape : list of int
        ``[height, width]`` of every image.
    pixel_dtype : str
        ``"uint8"`` or ``"uint16"``.
    batch_size : int
        Images per batch: the depth of every shard.
    map_dtypes : dict
        ``{"filters/<name>" or "masks/<name>": dtype name}``.
    full_resolution : bool
        Whether the maps are kept at full resolution.
    preview_shape : list of int or None
        ``[h, w]`` of the previews.
    fingerprint : str
        :func:`run_fingerprint` of the run.
    manifest : dict or None
        ``{"path", "listed", "missing", "missing_examples"}`` of a ``--manifest``.
    created : str
        ISO 8601 time of creation.
    runs : tuple of dict
        One entry per call that worked on the store (times, counts, scheduler).
    extra : dict
        Keys this version does not know (a newer writer's), kept as they are.
    """

    version: str
    engine: str
    compat: str | None
    config: dict
    libraries: dict
    inputs: list
    image_shape: list
    pixel_dtype: str
    batch_size: int
    map_dtypes: dict
    full_resolution: bool
    preview_shape: list | None
    fingerprint: str
    manifest: dict | None = None
    created: str = ""
    runs: tuple = ()
    extra: dict = field(default_factory=dict)

    @classmethod
    def for_run(
        cls,
        spec: BatchSpec,
        *,
        version: str,
        fingerprint: str,
        inputs: list[str],
        manifest: dict | None,
    ) -> RunMetadata:
        """The metadata of a new store for a run of ``spec``, created now, with no runs yet."""
        return cls(
            version=version,
            engine=spec.engine,
            compat=spec.compat,
            config=spec.config.to_dict(),
            libraries=library_versions(),
            inputs=list(inputs),
            image_shape=list(spec.shape),
            pixel_dtype=spec.pixel_dtype,
            batch_size=spec.config.batch_size,
            map_dtypes=dict(spec.map_dtypes),
            full_resolution=spec.full_resolution,
            preview_shape=list(spec.preview_shape) if spec.preview_shape else None,
            fingerprint=fingerprint,
            manifest=manifest,
            created=utc_now(),
        )

    @property
    def bit_depth(self) -> int:
        """Bits per pixel of the run's images: 16 for ``uint16``, else 8."""
        return 16 if self.pixel_dtype == "uint16" else 8

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of every image."""
        return tuple(int(n) for n in self.image_shape)

    def with_run(self, run: dict) -> RunMetadata:
        """The same metadata with one more entry in :attr:`runs`."""
        return dataclasses.replace(self, runs=(*self.runs, run))

    def to_attrs(self) -> dict:
        """The JSON-ready dict stored as ``attrs["xray_scale"]``."""
        attrs = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        attrs["runs"] = list(attrs["runs"])
        return {**attrs.pop("extra"), **attrs}

    @classmethod
    def from_attrs(cls, attrs: dict) -> RunMetadata:
        """Read back :meth:`to_attrs` (keys unknown here go to :attr:`extra`)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {key: value for key, value in attrs.items() if key in names}
        known["runs"] = tuple(known.get("runs", ()))
        extra = {key: value for key, value in attrs.items() if key not in names}
        return cls(**known, extra=extra)

    @classmethod
    def from_group(cls, group: zarr.Group) -> RunMetadata:
        """The metadata of an open store."""
        return cls.from_attrs(dict(group.attrs[ATTRS_KEY]))

    @staticmethod
    def present(group: zarr.Group) -> bool:
        """Whether a zarr group holds run metadata (was written by xray-scale)."""
        return ATTRS_KEY in group.attrs

    def write(self, group: zarr.Group) -> None:
        """Store this metadata in ``group``'s attributes, replacing what was there."""
        group.attrs[ATTRS_KEY] = self.to_attrs()
