"""One row per image of a store, as a table: index, metadata, statistics and QC.

The table is built as Arrow columns straight from the store's arrays: numbers
and flags are handed over as buffers, and a text array's NUL-padded UTF-8
rows become an Arrow string column (offsets and bytes) without one Python
string being made. ``export`` to Parquet without a selection therefore never
imports pandas (its import alone is 0.3-1.0 s of a command that must answer in
under 2 s for the whole dump); a selection, CSV and :func:`store_table` go
through pandas.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import zarr

from ..errors import StoreError
from .access import open_store
from .encoding import encode_text, read_index, text_rows
from .layout import LABELS, STAT_FIELDS
from .qc import QC_COLUMNS, QC_GROUP, has_qc
from .query import RowQuery, select_rows

__all__ = ["EXPORT_FORMATS", "export_table", "store_arrow_table", "store_table"]

EXPORT_FORMATS = (".parquet", ".csv")
"""File suffixes :func:`export_table` writes."""
_LEADING = ("path", "status", "error", "mode", "bit_depth", "patient_id", "follow_up")
_LABEL_CODES = LABELS.rpartition("/")[2]
"""``index/label_codes`` (N, L): exported as one ``label_<name>`` column per label."""


def _string_column(rows: np.ndarray):
    """An Arrow string column of NUL-padded UTF-8 rows ``(n, width)``, built from buffers.

    A row whose bytes are not UTF-8 (a file name kept with Python's
    ``surrogateescape``) has its bad bytes replaced by U+FFFD, as Parquet
    strings must be UTF-8.
    """
    import pyarrow as pa

    rows = np.ascontiguousarray(rows, dtype=np.uint8)
    count, width = rows.shape
    # Seen as fixed-width bytes, a row's length is that of its bytes without the NUL padding.
    lengths = np.char.str_len(rows.view(f"S{width}").reshape(count))
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = rows[np.arange(width) < lengths[:, None]]
    column = pa.Array.from_buffers(
        pa.large_string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    try:
        column.validate(full=True)
    except pa.ArrowInvalid:
        text = [bytes(row).rstrip(b"\0").decode("utf-8", "replace") for row in rows]
        return _string_column(encode_text(text))
    return column


def _column(values: np.ndarray):
    """An Arrow column of a one-dimensional NumPy array (numbers, flags or strings)."""
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    if values.dtype.kind in "OTU":  # strings of a store made before text arrays were bytes
        return _string_column(encode_text(values.tolist()))
    if values.dtype == bool:
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])
    kind = pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def _index_column(group: zarr.Group, name: str):
    rows = text_rows(group, name)
    return _string_column(rows) if rows is not None else _column(read_index(group, name))


def _dictionary_columns(table) -> list[str]:
    """The text columns whose values repeat (all but ``path``): those Parquet dictionary-encodes.

    Trying a dictionary on every column (numbers, unique paths) writes the
    dump's table 2.5x slower and larger.
    """
    import pyarrow as pa

    return [
        field.name
        for field in table.schema
        if pa.types.is_large_string(field.type) and field.name != "path"
    ]


def store_arrow_table(store: str | os.PathLike | zarr.Group, *, histogram: bool = False):
    """A ``pyarrow.Table`` with one row per image of a store (the columns of :func:`store_table`).

    Parameters
    ----------
    store : path-like or zarr.Group
        A store written by :func:`xray_scale.run` (or the store, open).
    histogram : bool
        Add the 256 histogram counts as columns ``hist_000`` .. ``hist_255``.

    Returns
    -------
    pyarrow.Table
    """
    import pyarrow as pa

    group = store if isinstance(store, zarr.Group) else open_store(store)
    count = group["index/status"].shape[0]
    columns = {"image": _column(np.arange(count, dtype=np.int64))}
    others = sorted(set(group["index"].array_keys()) - set(_LEADING) - {_LABEL_CODES})
    for name in (*_LEADING, *others):
        columns[name] = _index_column(group, name)
    if _LABEL_CODES in group["index"]:  # a dataset's label codes: one column per label
        codes = group[f"index/{_LABEL_CODES}"]
        values = np.asarray(codes[:])
        for j, label in enumerate(codes.attrs["names"]):
            columns[f"label_{label}"] = _column(values[:, j])
    for field in STAT_FIELDS:
        columns[field] = _column(group[f"stats/{field}"][:])
    if has_qc(group):  # made before qc/outlier: without it and its features
        stored = set(group[QC_GROUP].array_keys())
        for name in (name for name in QC_COLUMNS if name in stored):
            columns[f"qc_{name}"] = _column(group[f"{QC_GROUP}/{name}"][:])
    if histogram:
        counts = np.asarray(group["stats/histogram"][:]).T
        for b in range(counts.shape[0]):
            columns[f"hist_{b:03d}"] = _column(counts[b])
    return pa.table(columns)


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
        ``qc_near_duplicate_group`` (-1: none), ``qc_outlier_score``, ``qc_outlier``,
        ``qc_concentration``, ``qc_chest_correlation`` and ``qc_fine_detail`` (the
        last four absent from a store made before ``qc/outlier`` existed).
    """
    return store_arrow_table(store, histogram=histogram).to_pandas()


def export_table(
    store: str | os.PathLike,
    destination: str | os.PathLike,
    *,
    histogram: bool = False,
    query: RowQuery | None = None,
) -> tuple[Path, int]:
    """Write the store's table (:func:`store_table`) to ``.parquet`` or ``.csv`` (by the suffix).

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
    table = store_arrow_table(store, histogram=histogram)
    destination.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet" and (query is None or not query.selects):
        import pyarrow.parquet as pq

        pq.write_table(table, destination, use_dictionary=_dictionary_columns(table))
        return destination, table.num_rows
    frame = table.to_pandas()
    if query is not None:
        frame = select_rows(frame, query)
    if suffix == ".parquet":
        frame.to_parquet(destination, index=False)
    else:
        frame.to_csv(destination, index=False)
    return destination, len(frame)
