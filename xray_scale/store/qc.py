"""The QC arrays of a store: created with it, filled batch by batch, finished with the run.

Per image (``N``), when the run computes QC (``qc.enabled``, the default)::

    qc/framed, qc/inverted, qc/blank, qc/low_contrast, qc/saturated   (N,) bool
    qc/frame_fraction        (N,) float64  NaN where not ok
    qc/concentration, qc/chest_correlation, qc/fine_detail
                             (N,) float64  the outlier features, NaN where not ok
    qc/pixel_hash            (N,) uint64   64 bits identifying the pixels (attrs: "hash")
    qc/perceptual_hash       (N,) uint64   64-bit DCT hash of the 32 x 32 downscale
    qc/signature             (N, 1024) int8  the downscale's detail
    qc/duplicate_group       (N,) int64    -1: no copy; else the group's smallest index
    qc/near_duplicate_group  (N,) int64    the same for near copies
    qc/outlier_score         (N,) float64  NaN until the run finishes
    qc/outlier               (N,) bool     outlier_score > qc.outlier_threshold

The first eleven are written with each batch's records (by the pipeline's one
record writer, before the statuses); the groups, the outlier scores and flags
are computed by :func:`xray_scale.runner.finish.finish_qc` from the stored hashes
and features of all ok images (:func:`read_qc_inputs`), and written here
(:func:`write_qc_results`), once no image is pending, again on every completed resume. A store
made before QC existed, or with ``qc.enabled = false``, has no ``qc/`` group.
A store made before ``qc/outlier`` existed has no outlier features nor flags:
it keeps the SHA-1 pixel hash and the old outlier score (the largest robust
z-score of its statistics) when resumed, and info, export and the report say so.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import zarr

from ..errors import StoreError
from .encoding import read_index
from .layout import (
    QC_FEATURES,
    QC_FLAGS,
    SIGNATURE_SIZE,
    STAT_FIELDS,
    STATUS_OK,
    STATUS_PENDING,
    dimension_names,
)
from .metadata import RunMetadata

__all__ = [
    "QC_COLUMNS",
    "QC_GROUP",
    "QCInputs",
    "create_qc_arrays",
    "has_outlier_flags",
    "has_qc",
    "qc_counts",
    "read_qc_inputs",
    "stored_qc",
    "write_qc_results",
]

QC_GROUP = "qc"
QC_COLUMNS: tuple[str, ...] = (
    *QC_FLAGS,
    "frame_fraction",
    "duplicate_group",
    "near_duplicate_group",
    "outlier_score",
    "outlier",
    *QC_FEATURES,
)
"""The ``qc/*`` arrays a table of the store shows (``qc_<name>``); not the hashes.
Stores made before ``qc/outlier`` existed lack it and the features."""
PIXEL_HASH = "crc32c"
"""The :func:`~xray_scale.analysis.qc.pixel_hash` kind of new stores, in ``qc/pixel_hash``'s
attrs (``"hash"``); a store without it holds ``"sha1"``."""
_DTYPES = {
    **{flag: ("bool", False) for flag in QC_FLAGS},
    "frame_fraction": ("float64", np.nan),
    **{feature: ("float64", np.nan) for feature in QC_FEATURES},
    "pixel_hash": ("uint64", 0),
    "perceptual_hash": ("uint64", 0),
    "duplicate_group": ("int64", -1),
    "near_duplicate_group": ("int64", -1),
    "outlier_score": ("float64", np.nan),
    "outlier": ("bool", False),
}


def create_qc_arrays(group: zarr.Group, count: int, *, records: int, rows: int) -> None:
    """Create every ``qc/*`` array of a new store of ``count`` images.

    ``records`` is the chunk length of the per-image arrays, ``rows`` that of
    ``qc/signature`` (like ``stats/histogram``'s).
    """
    for name, (dtype, fill) in _DTYPES.items():
        group.create_array(
            f"{QC_GROUP}/{name}",
            shape=(count,),
            dtype=dtype,
            chunks=(records,),
            fill_value=fill,
            dimension_names=dimension_names(f"{QC_GROUP}/{name}"),
            attributes={"hash": PIXEL_HASH} if name == "pixel_hash" else None,
        )
    group.create_array(
        f"{QC_GROUP}/signature",
        shape=(count, SIGNATURE_SIZE),
        dtype="int8",
        chunks=(rows, SIGNATURE_SIZE),
        fill_value=0,
        dimension_names=dimension_names(f"{QC_GROUP}/signature"),
    )


def has_qc(group: zarr.Group) -> bool:
    """Whether the store holds QC arrays (stores made before QC, or without it, do not)."""
    return f"{QC_GROUP}/framed" in group


def has_outlier_flags(group: zarr.Group) -> bool:
    """Whether the store's QC has ``qc/outlier`` and its features (not made before them)."""
    return f"{QC_GROUP}/outlier" in group


def stored_qc(group: zarr.Group, spec):
    """A resumed run's :class:`~xray_scale.records.BatchSpec`, with the QC its store keeps.

    No QC for a store made without it (or before QC existed); for a store made
    before ``qc/outlier`` existed, its SHA-1 pixel hash, so that the images of
    this run group with those already stored.
    """
    if not has_qc(group):
        return dataclasses.replace(spec, qc=None)
    kind = group[f"{QC_GROUP}/pixel_hash"].attrs.get("hash", "sha1")
    if kind not in (PIXEL_HASH, "sha1"):
        raise StoreError(
            f"this store's qc/pixel_hash is {kind!r}, which this version of xray-scale does not "
            "compute; resume it with the version that made it, or pass --overwrite"
        )
    return dataclasses.replace(spec, pixel_hash=kind)


@dataclasses.dataclass(frozen=True)
class QCInputs:
    """What the end of a run computes the groups and outlier scores from, as stored.

    Attributes
    ----------
    ok : ndarray
        ``(N,)`` bool, the images whose status is ``ok``.
    pixel_hash, perceptual_hash : ndarray
        ``(N,)`` uint64 each.
    signature : zarr.Array
        ``(N, 1024)`` int8, left in the store: read a block of rows at a time.
    features : dict or None
        ``{name: (N,) float64}`` of the outlier features; None for a store made
        before ``qc/outlier`` existed.
    stats : dict or None
        ``{field: (N,)}`` of ``stats/*``, for such a store's old outlier score;
        None when it has the features.
    """

    ok: np.ndarray
    pixel_hash: np.ndarray
    perceptual_hash: np.ndarray
    signature: zarr.Array
    features: dict[str, np.ndarray] | None
    stats: dict[str, np.ndarray] | None


def read_qc_inputs(group: zarr.Group, features: tuple[str, ...]) -> QCInputs | None:
    """The stored hashes and ``features`` (or, before ``qc/outlier``, statistics) of every image.

    Returns None while an image is pending: the groups and scores are those of
    the whole run.
    """
    status = read_index(group, "status")
    if (status == STATUS_PENDING).any():
        return None
    qc = group[QC_GROUP]
    flags = has_outlier_flags(group)
    return QCInputs(
        ok=status == STATUS_OK,
        pixel_hash=qc["pixel_hash"][:],
        perceptual_hash=qc["perceptual_hash"][:],
        signature=qc["signature"],
        features={name: qc[name][:] for name in features} if flags else None,
        stats=None if flags else {field: group[f"stats/{field}"][:] for field in STAT_FIELDS},
    )


def write_qc_results(
    group: zarr.Group,
    *,
    duplicate_group: np.ndarray,
    near_duplicate_group: np.ndarray,
    outlier_score: np.ndarray,
    outlier: np.ndarray | None,
) -> None:
    """Write the end of a run's QC: groups, outlier scores and (when the store has it) flags.

    Parameters
    ----------
    duplicate_group, near_duplicate_group : ndarray
        ``(N,)`` int64, -1 for no group.
    outlier_score : ndarray
        ``(N,)`` float64.
    outlier : ndarray or None
        ``(N,)`` bool; None for a store made before ``qc/outlier`` existed.
    """
    qc = group[QC_GROUP]
    qc["duplicate_group"][:] = duplicate_group
    qc["near_duplicate_group"][:] = near_duplicate_group
    qc["outlier_score"][:] = outlier_score
    if outlier is not None:
        qc["outlier"][:] = outlier


def qc_counts(group: zarr.Group) -> dict | None:
    """How many ok images each flag marks, the groups, and the outliers; None without QC.

    Returns
    -------
    dict or None
        ``{flag: count}`` for each flag, ``"duplicate_groups"`` and
        ``"duplicate_images"`` (and the same for near duplicates), ``"outliers"``
        (ok images in ``qc/outlier``) and ``"outlier_threshold"`` (the run's
        ``qc.outlier_threshold``): both None in a store made before ``qc/outlier``.
    """
    if not has_qc(group):
        return None
    ok = read_index(group, "status") == STATUS_OK
    qc = group[QC_GROUP]
    counts = {flag: int(np.count_nonzero(qc[flag][:][ok])) for flag in QC_FLAGS}
    for kind in ("duplicate", "near_duplicate"):
        ids = qc[f"{kind}_group"][:][ok]
        counts[f"{kind}_groups"] = int(np.unique(ids[ids >= 0]).size)
        counts[f"{kind}_images"] = int(np.count_nonzero(ids >= 0))
    counts["outliers"] = counts["outlier_threshold"] = None
    if has_outlier_flags(group):
        counts["outliers"] = int(np.count_nonzero(qc["outlier"][:][ok]))
        stored = RunMetadata.from_group(group).config.get("qc", {})
        counts["outlier_threshold"] = stored.get("outlier_threshold")
    return counts
