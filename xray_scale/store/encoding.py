"""How ``index/`` holds text and statuses, so that any zarr v3 reader opens every array.

Variable-length strings are a zarr-python extension that other zarr v3
implementations (tensorstore among them) refuse, so a store holds only zarr v3
core data types:

- a text array (``index/path``, ``error``, ``mode``, ``patient_id`` and the
  manifest's text columns) is ``uint8`` of shape ``(N, width)``: row ``i`` is
  the UTF-8 bytes of value ``i``, padded with NUL bytes (``numpy``'s
  ``row.tobytes().rstrip(b"\\0")`` gives them back). Its attributes say
  ``{"encoding": "utf-8, NUL-padded"}``. The width is the longest value's at
  creation; a longer value written later widens the array (zarr resizes it),
  so nothing is ever truncated. File names that are not valid UTF-8 keep their
  bytes (Python's ``surrogateescape``).
- ``index/status`` is ``uint8`` codes, their names in the attribute
  ``"codes"`` (``["pending", "ok", "failed"]``: code 0 is ``pending``, the
  fill value).

Stores written before this layout hold variable-length strings; every
function here reads and writes both, so they still resume and read. Code that
reads ``index/`` goes through :func:`read_index` and gets Python strings.
"""

from __future__ import annotations

import numpy as np
import zarr

from .layout import STATUS_FAILED, STATUS_OK, STATUS_PENDING, dimension_names

__all__ = [
    "STATUS_CODES",
    "TEXT_ENCODING",
    "create_status_array",
    "create_text_array",
    "encode_text",
    "read_index",
    "stored_values",
    "text_rows",
]

STATUS_CODES = (STATUS_PENDING, STATUS_OK, STATUS_FAILED)
"""The statuses in code order: ``index/status`` holds ``STATUS_CODES.index(status)``."""
TEXT_ENCODING = "utf-8, NUL-padded"
"""The ``"encoding"`` attribute of a text array."""
_MIN_CHUNK_WIDTH = 16


def _encode_one(value) -> bytes:
    return str(value).encode("utf-8", "surrogateescape")


def encode_text(values, width: int | None = None) -> np.ndarray:
    """``(n, width)`` uint8 rows of UTF-8 bytes, NUL-padded (width: the longest value's).

    Raises
    ------
    ValueError
        If a value is longer than ``width`` bytes.
    """
    encoded = [_encode_one(v) for v in values]
    longest = max((len(b) for b in encoded), default=0)
    width = max(longest, 1) if width is None else width
    if longest > width:
        raise ValueError(f"a value of {longest} bytes does not fit a text array {width} wide")
    return np.frombuffer(b"".join(b.ljust(width, b"\0") for b in encoded), dtype=np.uint8).reshape(
        len(encoded), width
    )


def _decode_rows(rows: np.ndarray) -> np.ndarray:
    """Python strings (object array) of NUL-padded UTF-8 rows."""
    width = rows.shape[-1]
    raw = np.ascontiguousarray(rows, dtype=np.uint8).view(f"S{width}").reshape(rows.shape[:-1])
    return np.array([b.decode("utf-8", "surrogateescape") for b in raw.tolist()], dtype=object)


def _is_text(array: zarr.Array) -> bool:
    return array.attrs.get("encoding") == TEXT_ENCODING


def _is_codes(array: zarr.Array) -> bool:
    return "codes" in array.attrs


def create_text_array(
    group: zarr.Group, name: str, *, values, count: int, chunk: int, width: int = 1
) -> zarr.Array:
    """Create text array ``name`` of ``count`` rows, ``values`` written if given.

    The width is the longest of ``values`` (and at least ``width``); each
    chunk holds ``chunk`` rows of that width. Its dimensions are ``image`` and
    ``<name>_bytes`` (:func:`~xray_scale.store.layout.dimension_names`); a
    longer value widening it later (:func:`stored_values`) keeps them.
    """
    rows = encode_text(values) if values is not None else None
    width = max(width, rows.shape[1] if rows is not None else 1)
    array = group.create_array(
        name,
        shape=(count, width),
        dtype="uint8",
        chunks=(chunk, max(width, _MIN_CHUNK_WIDTH)),
        fill_value=0,
        dimension_names=dimension_names(name, text=True),
        attributes={"encoding": TEXT_ENCODING},
    )
    if rows is not None and count:
        array[:, : rows.shape[1]] = rows
    return array


def create_status_array(group: zarr.Group, name: str, *, count: int, chunk: int) -> zarr.Array:
    """Create the status array: uint8 codes, every image ``pending``."""
    return group.create_array(
        name,
        shape=(count,),
        dtype="uint8",
        chunks=(chunk,),
        fill_value=STATUS_CODES.index(STATUS_PENDING),
        dimension_names=dimension_names(name),
        attributes={"codes": list(STATUS_CODES)},
    )


def stored_values(array: zarr.Array, values) -> np.ndarray:
    """``values`` (strings) as ``array`` stores them, widening a text array if they need it.

    For a text array: NUL-padded UTF-8 rows of the array's width; for the
    status codes: uint8 codes; for an array of an older store: the strings.
    """
    if _is_text(array):
        rows = encode_text(values)
        if rows.shape[1] > array.shape[1]:
            array.resize((array.shape[0], rows.shape[1]))
        return encode_text(values, array.shape[1])
    if _is_codes(array):
        codes = list(array.attrs["codes"])
        return np.array([codes.index(str(v)) for v in values], dtype=np.uint8)
    return np.array(list(values), dtype=object)


def text_rows(group: zarr.Group, name: str) -> np.ndarray | None:
    """``index/<name>`` as NUL-padded UTF-8 rows: a text array's own, or the status names.

    None for an array that is neither (numbers, or strings of an older store).
    """
    array = group[f"index/{name}"]
    if _is_text(array):
        return array[...]
    if _is_codes(array):
        return encode_text(array.attrs["codes"])[array[...]]
    return None


def read_index(group: zarr.Group, name: str, indices=None) -> np.ndarray:
    """``index/<name>`` as values: text and statuses as Python strings (object arrays).

    Parameters
    ----------
    group : zarr.Group
        A store.
    name : str
        The array's name in ``index/`` (``"path"``, ``"status"``, ``"follow_up"``...).
    indices : int, array of int or None
        The images to read (None: all). An int gives one value.
    """
    array = group[f"index/{name}"]
    one = isinstance(indices, (int, np.integer))
    if indices is None:
        raw = array[...]
    else:
        where = np.atleast_1d(np.asarray(indices, dtype=np.int64))
        raw = array.get_orthogonal_selection((where,)) if where.size else array[0:0]
    if _is_text(array):
        values = _decode_rows(raw)
    elif _is_codes(array):
        values = np.array(array.attrs["codes"], dtype=object)[raw]
    elif raw.dtype.kind in "OTU":
        values = np.asarray(raw).astype(object)
    else:
        values = np.asarray(raw)
    return values[0] if one else values
