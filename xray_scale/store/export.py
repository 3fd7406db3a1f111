"""One row per image of a store, as a table: index, metadata, statistics and QC."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import zarr

from ..errors import StoreError
from .access import open_store
from .encoding import read_index
from .layout import STAT_FIELDS
from .qc import QC_COLUMNS, QC_GROUP, has_qc
from .query import RowQuery, select_rows

__all__ = ["EXPORT_FORMATS", "export_table", "store_table"]

EXPORT_FORMATS = (".parquet", ".csv")
"""File suffixes :func:`export_table` writes."""


def store_table(store: str | os.PathLike | zarr.Group, *, histogram: bool = False):
    """A pandas DataFrame with one row per image of a store.

    Parameters
    ----------
    store : path-like or zarr.Group
        A store written by :func:`xray_scale.run` (or the store, open).
    histogram : bool
        Add the 256 histogram counts as columns ``hist_000`` .. ``hist_255``.

    Returns
    -------
    pandas.DataFrame
        Columns ``image`` (store index), every ``index/*`` array (path, status,
        error, mode, bit depth, patient id, follow-up, and manifest metadata
        when the run had one), then every ``stats/*`` field, then, for a store
        with QC, ``qc_framed``, ``qc_inverted``, ``qc_blank``, ``qc_low_contrast``,
        ``qc_saturated``, ``qc_frame_fraction``, ``qc_duplicate_group``,
        ``qc_near_duplicate_group`` (-1: none) and ``qc_outlier_score``.
    """
    import pandas as pd

    group = store if isinstance(store, zarr.Group) else open_store(store)
    count = group["index/status"].shape[0]
    columns: dict[str, np.ndarray] = {"image": np.arange(count)}
    leading = ["path", "status", "error", "mode", "bit_depth", "patient_id", "follow_up"]
    others = sorted(set(group["index"].array_keys()) - set(leading))
    for name in leading + others:
        values = read_index(group, name)
        # Python strings become pandas' own string columns: Parquet is written twice as fast
        # (112,120 rows: 0.56 s against 1.29 s) and conditions evaluate faster.
        columns[name] = values.astype(object) if values.dtype.kind == "T" else values
    for field in STAT_FIELDS:
        columns[field] = group[f"stats/{field}"][:]
    if has_qc(group):
        for name in QC_COLUMNS:
            columns[f"qc_{name}"] = group[f"{QC_GROUP}/{name}"][:]
    table = pd.DataFrame(columns)
    if histogram:
        counts = group["stats/histogram"][:]
        bins = pd.DataFrame(counts, columns=[f"hist_{b:03d}" for b in range(256)])
        table = pd.concat([table, bins], axis=1)
    return table


def export_table(
    store: str | os.PathLike,
    destination: str | os.PathLike,
    *,
    histogram: bool = False,
    query: RowQuery | None = None,
) -> tuple[Path, int]:
    """Write :func:`store_table` to ``.parquet`` or ``.csv`` (chosen by the suffix).

    Parameters
    ----------
    store : path-like
        A store written by :func:`xray_scale.run`.
    destination : path-like
        ``.parquet`` or ``.csv`` file to write.
    histogram : bool
        Add the 256 histogram counts as columns.
    query : RowQuery, optional
        Only these rows, in this order (:func:`xray_scale.store.query.select_rows`).

    Returns
    -------
    (Path, int)
        The file written and its number of rows.

    Raises
    ------
    StoreError
        For another suffix, or a store that is not one.
    SelectionError
        For a query naming an unknown column or that pandas cannot evaluate.
    """
    destination = Path(destination)
    suffix = destination.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise StoreError(
            f"cannot export to {destination.name!r}: the file name must end in .parquet or .csv"
        )
    table = store_table(store, histogram=histogram)
    if query is not None:
        table = select_rows(table, query)
    destination.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        table.to_parquet(destination, index=False)
    else:
        table.to_csv(destination, index=False)
    return destination, len(table)
