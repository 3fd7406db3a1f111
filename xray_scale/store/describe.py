"""What ``xray-scale info`` reports about a store: counts, failures, format, runs, arrays, QC."""

from __future__ import annotations

from pathlib import Path

from ..analysis.qc import QC_FLAGS
from .access import open_store, read_status_summary
from .layout import FILTER_GROUP, MASK_GROUP, map_name
from .metadata import RunMetadata
from .qc import qc_counts

__all__ = ["describe_store", "qc_summary"]


def describe_store(path: Path) -> dict:
    """Everything ``xray-scale info`` reports about a store, as plain data.

    Raises
    ------
    StoreError
        If ``path`` is not a complete store written by xray-scale.
    """
    group = open_store(path)
    stored = RunMetadata.from_group(group)
    runs = list(stored.runs)
    processed = sum(r["processed"] for r in runs)
    elapsed = sum(r["elapsed_s"] for r in runs)
    return {
        "store": str(path),
        **read_status_summary(group),
        "image_shape": stored.image_shape,
        "pixel_dtype": stored.pixel_dtype,
        "engine": stored.engine,
        "compat": stored.compat,
        "version": stored.version,
        "created": stored.created,
        "runs": runs,
        "elapsed_s": elapsed,
        "images_per_s": processed / elapsed if elapsed else None,
        "arrays": {
            **{
                map_name(kind, name): str(group[map_name(kind, name)].dtype)
                for kind in (FILTER_GROUP, MASK_GROUP)
                if kind in group
                for name in sorted(group[kind].array_keys())
            },
            **(
                {
                    "previews": f"{group['previews'].dtype}: "
                    + ", ".join(group["previews"].attrs["maps"])
                }
                if "previews" in group
                else {}
            ),
        },
        "qc": qc_counts(group),
        "config": stored.config,
        "libraries": stored.libraries,
    }


def qc_summary(counts: dict | None) -> str:
    """``info``'s QC line from :func:`xray_scale.store.qc.qc_counts`.

    Examples
    --------
    >>> qc_summary(None)
    'qc: no QC in this store (made before QC existed, or with qc.enabled = false)'
    """
    if counts is None:
        return "qc: no QC in this store (made before QC existed, or with qc.enabled = false)"
    flags = ", ".join(f"{flag} {counts[flag]}" for flag in QC_FLAGS)
    return (
        f"qc: {flags}; duplicates {counts['duplicate_images']} images in "
        f"{counts['duplicate_groups']} groups, near duplicates {counts['near_duplicate_images']} "
        f"in {counts['near_duplicate_groups']}; outliers (score > "
        f"{counts['outlier_threshold']}) {counts['outliers']}"
    )
