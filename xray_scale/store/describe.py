"""What ``xray-scale info`` reports about a store: counts, failures by reason, runs, arrays, QC."""

from __future__ import annotations

import os
from collections import Counter

from .access import open_store, read_status_summary
from .layout import FILTER_GROUP, MASK_GROUP, QC_FLAGS, map_name
from .location import store_location
from .metadata import RunMetadata
from .qc import qc_counts

__all__ = [
    "EXAMPLES_PER_REASON",
    "describe_store",
    "failure_reason",
    "failures_by_reason",
    "qc_summary",
]

EXAMPLES_PER_REASON = 3
"""File names shown for each reason of failure."""


def failure_reason(error: str, *, width: int = 48) -> str:
    """Short reason of a failure: the text before the first ``:`` or ``;``.

    Parameters
    ----------
    error : str
        An ``index/error`` message.
    width : int
        Longer reasons are cut to this many characters, ending in ``...``.

    Examples
    --------
    >>> failure_reason("truncated PNG: only 12 bytes")
    'truncated PNG'
    >>> failure_reason("file not found")
    'file not found'
    >>> failure_reason("")
    'unknown'
    """
    head = error.split(":", 1)[0].split(";", 1)[0].strip() or "unknown"
    return head if len(head) <= width else head[: width - 3].rstrip() + "..."


def failures_by_reason(failures: list[dict]) -> list[dict]:
    """Failures grouped by :func:`failure_reason`, the most frequent first.

    Parameters
    ----------
    failures : list of dict
        ``{"path", "error"}`` of each failed image, in store order.

    Returns
    -------
    list of dict
        ``{"reason", "count", "examples"}``: the examples are the file names
        of the first :data:`EXAMPLES_PER_REASON` images failed for it.

    Examples
    --------
    >>> failures_by_reason([{"path": "a/1.png", "error": "truncated PNG: 9 bytes"},
    ...                     {"path": "a/2.png", "error": "file not found"},
    ...                     {"path": "a/3.png", "error": "file not found"}])[0]
    {'reason': 'file not found', 'count': 2, 'examples': ['2.png', '3.png']}
    """
    counts: Counter = Counter()
    examples: dict[str, list[str]] = {}
    for failure in failures:
        reason = failure_reason(failure["error"])
        counts[reason] += 1
        shown = examples.setdefault(reason, [])
        if len(shown) < EXAMPLES_PER_REASON:
            shown.append(os.path.basename(failure["path"]))
    return [
        {"reason": reason, "count": count, "examples": examples[reason]}
        for reason, count in counts.most_common()
    ]


def describe_store(path: str | os.PathLike) -> dict:
    """Everything ``xray-scale info`` reports about a store, as plain data.

    ``processed`` counts the images this store's runs read (a file absent from
    the inputs is recorded as failed, not processed), so ``images_per_s`` is a
    rate of work.

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
    status = read_status_summary(group)
    return {
        "store": str(store_location(path)),
        **status,
        "failure_reasons": failures_by_reason(status["failures"]),
        "image_shape": stored.image_shape,
        "pixel_dtype": stored.pixel_dtype,
        "engine": stored.engine,
        "compat": stored.compat,
        "version": stored.version,
        "created": stored.created,
        "runs": runs,
        "processed": processed,
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
    outliers = (
        f"outliers (score > {counts['outlier_threshold']}) {counts['outliers']}"
        if counts["outliers"] is not None
        else "outliers: no qc/outlier (store made before it existed)"
    )
    return (
        f"qc: {flags}; duplicates {counts['duplicate_images']} images in "
        f"{counts['duplicate_groups']} groups, near duplicates {counts['near_duplicate_images']} "
        f"in {counts['near_duplicate_groups']}; {outliers}"
    )
