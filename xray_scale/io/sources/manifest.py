"""The ChestX-ray8 metadata file (``Data_Entry_2017.csv``): select images, keep their metadata.

Its header writes two columns each as one bracketed name with a comma inside,
``OriginalImage[Width,Height]`` and ``OriginalImagePixelSpacing[x,y]``, so a
plain CSV reader sees 11 header fields for 11 values. They are read here as
four columns, ``OriginalImage[Width]``, ``OriginalImage[Height]``,
``OriginalImagePixelSpacing[x]`` and ``OriginalImagePixelSpacing[y]``. A
header that quotes them (``"OriginalImage[Width,Height]"``, one field) is read
the same way.

``Patient Age`` is a whole number of years (``58``) or, as in earlier NIH and
Kaggle releases, a number with a unit: ``058Y`` years, ``045M`` months,
``010D`` days, stored as whole years. Rows whose fields are all blank, as
spreadsheets write them (``,,,,,,,,,,``), are skipped.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
from dataclasses import dataclass

import numpy as np

from ...errors import InputError
from .archives import file_name
from .text_files import read_text_file
from .urls import redact

__all__ = [
    "MANIFEST_FIELDS",
    "NOT_IN_INPUTS",
    "Manifest",
    "manifest_columns",
    "read_manifest",
    "select_with_manifest",
]

MANIFEST_FIELDS: dict[str, tuple[str, str]] = {
    "finding_labels": ("Finding Labels", "str"),
    "patient_age": ("Patient Age", "int16"),
    "patient_gender": ("Patient Gender", "str"),
    "view_position": ("View Position", "str"),
    "original_width": ("OriginalImage[Width]", "int32"),
    "original_height": ("OriginalImage[Height]", "int32"),
    "pixel_spacing_x": ("OriginalImagePixelSpacing[x]", "float64"),
    "pixel_spacing_y": ("OriginalImagePixelSpacing[y]", "float64"),
}
"""``index/<name>`` arrays written from the manifest: (CSV column, dtype)."""

NOT_IN_INPUTS = "not in the inputs (listed in the manifest)"
"""The error recorded for an image the manifest lists and the inputs lack."""

_MISSING = {"str": "", "int16": -1, "int32": -1, "float64": np.nan}
_LIMITS = {
    dtype: (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)) for dtype in ("int16", "int32")
}
"""Each integer column's range (``np.iinfo`` costs microseconds a call: 112,120 rows x 4)."""
_AGE = re.compile(r"(\d+)([YMD]?)", re.IGNORECASE)
_EXPECTED = {
    "int16": "a whole number of years, optionally with a unit: 58, 058Y, 045M, 010D",
    "int32": "a whole number",
    "float64": "a number",
}

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Manifest:
    """A parsed metadata file.

    Attributes
    ----------
    path : str
        The CSV file.
    rows : dict
        ``{image name: {column: text}}``, in file order.
    digest : str
        sha256 of the file's bytes (part of a run's identity).
    """

    path: str
    rows: dict[str, dict[str, str]]
    digest: str


def _columns(header: list[str]) -> list[str]:
    """Header fields with ``Name[a,b]`` split into ``Name[a]`` and ``Name[b]``.

    The bracket is either split over fields by the comma (``Name[a`` and
    ``b]``, as NIH writes it) or one quoted field (``"Name[a,b]"``).
    """
    columns, prefix = [], None
    for field in (f.strip() for f in header):
        name, bracket, inside = field.partition("[")
        if prefix is None and bracket and inside.endswith("]") and "," in inside:
            columns.extend(f"{name}[{part.strip()}]" for part in inside[:-1].split(","))
        elif prefix is None and bracket and "]" not in inside:
            prefix = name
            columns.append(f"{prefix}[{inside}]")
        elif prefix is not None:
            columns.append(f"{prefix}[{field.rstrip(']')}]")
            if field.endswith("]"):
                prefix = None
        else:
            columns.append(field)
    return columns


def _years(text: str) -> int:
    """Whole years in a ``Patient Age`` value: ``58``, ``058Y``, ``045M`` or ``010D``.

    Raises
    ------
    ValueError
        If ``text`` is not an integer with an optional Y, M or D suffix.

    Examples
    --------
    >>> [_years(text) for text in ("58", "058Y", "045M", "010D", "11m")]
    [58, 58, 3, 0, 0]
    """
    match = _AGE.fullmatch(text)
    if match is None:
        raise ValueError(f"not an age: {text!r}")
    number, unit = int(match[1]), match[2].upper()
    return number // 12 if unit == "M" else number // 365 if unit == "D" else number


def _number(text: str, column: str, dtype: str) -> int | float | None:
    """The value of ``text`` as ``dtype``, or None if it is blank, unreadable or too large."""
    try:
        if dtype == "float64":
            return float(text)
        value = _years(text) if column == MANIFEST_FIELDS["patient_age"][0] else int(text)
    except ValueError:
        return None
    low, high = _LIMITS[dtype]
    return value if low <= value <= high else None


def _warn_unreadable(path: str, rows: dict[str, dict[str, str]], lines: list[int]) -> None:
    """Log one warning per numeric column with non-blank values :func:`_number` cannot read."""
    for column, dtype in MANIFEST_FIELDS.values():
        if dtype == "str":
            continue
        bad = [
            (line, row[column])
            for line, row in zip(lines, rows.values(), strict=True)
            if row.get(column) and _number(row[column], column, dtype) is None
        ]
        if bad:
            line, text = bad[0]
            logger.warning(
                "manifest %r: %d unreadable %r value(s), stored as %s (first: line %d, %r); "
                "expected %s",
                str(path),
                len(bad),
                column,
                _MISSING[dtype],
                line,
                text,
                _EXPECTED[dtype],
            )


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read a ``Data_Entry_2017.csv``-style file.

    Rows whose fields are all blank are skipped. A number that cannot be read
    (``Patient Age`` ``"n/a"``, a width of ``"?"``) does not refuse the file:
    one bad value should not stop a 112,120-row manifest. It is stored as
    missing (-1, or NaN for spacings) and a warning on the
    ``xray_scale.io.sources.manifest`` logger counts such values per column and names
    the first one's line.

    The file may be at a URL (``s3://bucket/Data_Entry_2017.csv``), read
    with the client's own credentials, or in an archive
    (``archive.zip::Data_Entry_2017.csv``, :mod:`.text_files`).

    Raises
    ------
    InputError
        If the file is missing or not UTF-8, has no ``Image Index`` column,
        or a row has the wrong number of values, no image name or repeats an
        image.
    """
    shown = redact(os.fspath(path))
    data = read_text_file(path, "manifest")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise InputError(
            f"manifest {shown!r} is not UTF-8: byte {error.start} (line {line}) is "
            f"0x{data[error.start]:02x}; save it as UTF-8 (in a spreadsheet: 'CSV UTF-8') "
            "and try again"
        ) from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    columns = _columns(header or [])
    if "Image Index" not in columns:
        raise InputError(
            f"manifest {shown!r} has no 'Image Index' column; expected the header of "
            "ChestX-ray8's Data_Entry_2017.csv"
        )
    rows: dict[str, dict[str, str]] = {}
    lines = []
    for number, values in enumerate(reader, start=2):
        if not any(value.strip() for value in values):
            continue
        if len(values) != len(columns):
            raise InputError(
                f"manifest {shown!r} line {number}: {len(values)} values for {len(columns)} columns"
            )
        row = dict(zip(columns, (v.strip() for v in values), strict=True))
        name = row["Image Index"]
        if not name:
            raise InputError(
                f"manifest {shown!r} line {number}: the 'Image Index' column is blank; "
                "fill in the image's file name or delete the row"
            )
        if name in rows:
            raise InputError(f"manifest {shown!r} line {number}: {name} is listed twice")
        rows[name] = row
        lines.append(number)
    _warn_unreadable(shown, rows, lines)
    return Manifest(shown, rows, hashlib.sha256(data).hexdigest())


def select_with_manifest(paths: list[str], manifest: Manifest) -> tuple[list[str], list[str]]:
    """Keep the inputs the manifest lists; name those it lists but the inputs lack.

    Parameters
    ----------
    paths : list of str
        Discovered inputs.
    manifest : Manifest

    Returns
    -------
    selected : list of str
        Sorted paths of every listed image. A listed image absent from the
        inputs gets the path it would have beside the first input found, so
        that it is recorded as failed (:data:`NOT_IN_INPUTS`), not dropped.
    missing : list of str
        Names of the listed images absent from the inputs.

    Raises
    ------
    InputError
        If two inputs have the same file name.
    """
    by_name: dict[str, str] = {}
    for path in paths:
        name = file_name(path)
        if name in manifest.rows:
            if name in by_name:
                raise InputError(f"{name} is in the inputs twice: {by_name[name]} and {path}")
            by_name[name] = path
    missing = [name for name in manifest.rows if name not in by_name]
    folder = os.path.dirname(next(iter(by_name.values()), paths[0] if paths else ""))
    selected = list(by_name.values()) + [os.path.join(folder, name) for name in missing]
    return sorted(selected), missing


def manifest_columns(manifest: Manifest, paths: list[str]) -> dict[str, np.ndarray]:
    """``{index name: values}`` for the metadata of ``paths``.

    Ages are whole years (``045M`` gives 3). Blank or unreadable values are
    stored as missing: -1, NaN or "".
    """
    rows = [manifest.rows.get(file_name(path), {}) for path in paths]
    arrays = {}
    for name, (column, dtype) in MANIFEST_FIELDS.items():
        texts = [row.get(column, "") for row in rows]
        if dtype == "str":
            arrays[name] = np.array(texts, dtype=object)
            continue
        values = [_number(text, column, dtype) for text in texts]
        missing = _MISSING[dtype]
        arrays[name] = np.array([missing if v is None else v for v in values], dtype=dtype)
    return arrays
