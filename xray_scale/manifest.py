"""The ChestX-ray8 metadata file (``Data_Entry_2017.csv``): select images, keep their metadata.

Its header writes two columns each as one bracketed name with a comma inside,
``OriginalImage[Width,Height]`` and ``OriginalImagePixelSpacing[x,y]``, so a
plain CSV reader sees 11 header fields for 11 values. They are read here as
four columns, ``OriginalImage[Width]``, ``OriginalImage[Height]``,
``OriginalImagePixelSpacing[x]`` and ``OriginalImagePixelSpacing[y]``.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .sources import InputError

__all__ = [
    "MANIFEST_FIELDS",
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

_MISSING = {"str": "", "int16": -1, "int32": -1, "float64": np.nan}


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
    """Header fields with ``Name[a,b]`` split into ``Name[a]`` and ``Name[b]``."""
    columns, prefix = [], None
    for field in (f.strip() for f in header):
        if prefix is None and "[" in field and "]" not in field:
            prefix, first = field.split("[", 1)
            columns.append(f"{prefix}[{first}]")
        elif prefix is not None:
            columns.append(f"{prefix}[{field.rstrip(']')}]")
            if field.endswith("]"):
                prefix = None
        else:
            columns.append(field)
    return columns


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read a ``Data_Entry_2017.csv``-style file.

    Raises
    ------
    InputError
        If the file is missing, has no ``Image Index`` column, or a row has
        the wrong number of values or repeats an image.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read manifest {str(path)!r}: {error.strerror or error}") from None
    lines = data.decode("utf-8-sig").splitlines()
    reader = csv.reader(lines)
    header = next(reader, None)
    columns = _columns(header or [])
    if "Image Index" not in columns:
        raise InputError(
            f"manifest {str(path)!r} has no 'Image Index' column; expected the header of "
            "ChestX-ray8's Data_Entry_2017.csv"
        )
    rows: dict[str, dict[str, str]] = {}
    for number, values in enumerate(reader, start=2):
        if not values:
            continue
        if len(values) != len(columns):
            raise InputError(
                f"manifest {str(path)!r} line {number}: {len(values)} values for "
                f"{len(columns)} columns"
            )
        row = dict(zip(columns, (v.strip() for v in values), strict=True))
        name = row["Image Index"]
        if name in rows:
            raise InputError(f"manifest {str(path)!r} line {number}: {name} is listed twice")
        rows[name] = row
    return Manifest(str(path), rows, hashlib.sha256(data).hexdigest())


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
        that it is recorded as failed ("file not found"), not dropped.
    missing : list of str
        Names of the listed images absent from the inputs.

    Raises
    ------
    InputError
        If two inputs have the same file name.
    """
    by_name: dict[str, str] = {}
    for path in paths:
        name = os.path.basename(path)
        if name in manifest.rows:
            if name in by_name:
                raise InputError(f"{name} is in the inputs twice: {by_name[name]} and {path}")
            by_name[name] = path
    missing = [name for name in manifest.rows if name not in by_name]
    folder = os.path.dirname(next(iter(by_name.values()), paths[0] if paths else ""))
    selected = list(by_name.values()) + [os.path.join(folder, name) for name in missing]
    return sorted(selected), missing


def manifest_columns(manifest: Manifest, paths: list[str]) -> dict[str, np.ndarray]:
    """``{index name: values}`` for the metadata of ``paths`` (missing values as -1, NaN, "")."""
    arrays = {}
    for name, (column, dtype) in MANIFEST_FIELDS.items():
        values = []
        for path in paths:
            text = manifest.rows.get(os.path.basename(path), {}).get(column, "")
            if dtype == "str":
                values.append(text)
                continue
            try:
                values.append(float(text) if dtype == "float64" else int(text))
            except ValueError:
                values.append(_MISSING[dtype])
        arrays[name] = np.array(values, dtype=object if dtype == "str" else dtype)
    return arrays
