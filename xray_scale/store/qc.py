"""The QC arrays of a store: created with it, filled batch by batch, finished with the run.

Per image (``N``), when the run computes QC (``qc.enabled``, the default)::

    qc/framed, qc/inverted, qc/blank, qc/low_contrast, qc/saturated   (N,) bool
    qc/frame_fraction        (N,) float64  NaN where not ok
    qc/pixel_hash            (N,) uint64   64 bits of the SHA-1 of the pixels
    qc/perceptual_hash       (N,) uint64   64-bit DCT hash of the 32 x 32 downscale
    qc/signature             (N, 1024) int8  the downscale's detail
    qc/duplicate_group       (N,) int64    -1: no copy; else the group's smallest index
    qc/near_duplicate_group  (N,) int64    the same for near copies
    qc/outlier_score         (N,) float64  NaN until the run finishes

The first eight are written with each batch's records (by the pipeline's one
record writer, before the statuses); the groups and the outlier scores are
computed by :func:`finish_qc` from the stored hashes and statistics of all ok
images once no image is pending, again on every completed resume. A store
made before QC existed, or with ``qc.enabled = false``, has no ``qc/`` group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import zarr

from .encoding import read_index
from .layout import (
    QC_FLAGS,
    SIGNATURE_SIZE,
    STAT_FIELDS,
    STATUS_OK,
    STATUS_PENDING,
    dimension_names,
)

if TYPE_CHECKING:  # annotations only: reading a store needs none of the analysis
    from ..analysis.qc import QCConfig

__all__ = ["QC_COLUMNS", "QC_GROUP", "create_qc_arrays", "finish_qc", "has_qc", "qc_counts"]

QC_GROUP = "qc"
QC_COLUMNS: tuple[str, ...] = (
    *QC_FLAGS,
    "frame_fraction",
    "duplicate_group",
    "near_duplicate_group",
    "outlier_score",
)
"""The ``qc/*`` arrays a table of the store shows (``qc_<name>``); not the hashes."""
_DTYPES = {
    **{flag: ("bool", False) for flag in QC_FLAGS},
    "frame_fraction": ("float64", np.nan),
    "pixel_hash": ("uint64", 0),
    "perceptual_hash": ("uint64", 0),
    "duplicate_group": ("int64", -1),
    "near_duplicate_group": ("int64", -1),
    "outlier_score": ("float64", np.nan),
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


def finish_qc(group: zarr.Group, config: QCConfig) -> bool:
    """Group duplicates and near duplicates and score outliers, over every ok image.

    Does nothing (and returns False) while an image is pending: the groups and
    scores are those of the whole run.

    Returns
    -------
    bool
        Whether the groups and scores were written.
    """
    from ..analysis.qc_groups import group_duplicates, group_near_duplicates, outlier_scores

    status = read_index(group, "status")
    if (status == STATUS_PENDING).any():
        return False
    ok = status == STATUS_OK
    qc = group[QC_GROUP]
    qc["duplicate_group"][:] = group_duplicates(qc["pixel_hash"][:], ok)
    qc["near_duplicate_group"][:] = group_near_duplicates(
        qc["perceptual_hash"][:],
        qc["signature"],  # read a block of rows at a time, never whole
        ok,
        max_distance=config.near_duplicate_distance,
        min_correlation=config.near_duplicate_correlation,
    )
    stats = {field: group[f"stats/{field}"][:] for field in STAT_FIELDS}
    qc["outlier_score"][:] = outlier_scores(stats, ok)
    return True


def qc_counts(group: zarr.Group, *, outlier_threshold: float = 3.5) -> dict | None:
    """How many ok images each flag marks, the groups, and the outliers; None without QC.

    Returns
    -------
    dict or None
        ``{flag: count}`` for each flag, ``"duplicate_groups"`` and
        ``"duplicate_images"`` (and the same for near duplicates), and
        ``"outliers"``: ok images whose score is above ``outlier_threshold``.
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
    scores = qc["outlier_score"][:][ok]
    counts["outliers"] = int(np.count_nonzero(scores > outlier_threshold))
    counts["outlier_threshold"] = outlier_threshold
    return counts
