"""Each chest X-ray dataset's own metadata files, recognised by their columns.

Beside ChestX-ray8's ``Data_Entry_2017.csv`` (:mod:`xray_scale.io.manifest`),
the datasets users combine publish their metadata as CSV files, each in its own
layout. :func:`read_dataset_metadata` takes a dataset's files, recognises which
dataset they belong to from their header rows (never from their names, which
users rename), and gives one row per image, keyed the way the images are
named on disk:

============  ==========================================  ==========================
dataset       files                                       an image's key
============  ==========================================  ==========================
CheXpert      ``train.csv``, ``valid.csv`` (``Path``,     its path from ``patientNNNNN/``:
              ``Sex``, ``Age``, ``Frontal/Lateral``,      ``patient00001/study1/view1_frontal.jpg``
              ``AP/PA`` and 14 labels of 1, 0, -1 or
              blank)
MIMIC-CXR     ``mimic-cxr-2.0.0-metadata.csv`` (one row   the file name without its
-JPG          per ``dicom_id``) joined with               suffix, ``<dicom_id>``
              ``mimic-cxr-2.0.0-chexpert.csv`` (one row
              per study) on the study of each dicom_id
PadChest      ``PADCHEST_chest_x_ray_images_labels_       the file name, ``ImageID``
              160K_01.02.19.csv`` (``ImageID``,
              ``Labels`` as a list...)
============  ==========================================  ==========================

Ids, by each dataset's convention: CheXpert's patient is ``patientNNNNN`` and
its study ``studyN``, whose number is the follow-up (``study1`` is 1); MIMIC's
patient is ``subject_id``, its study ``study_id``, and the follow-up is the
study's rank by ``StudyDate`` (then ``StudyTime``) among its subject's
studies, from 0; PadChest's patient is ``PatientID``, its study ``StudyID``,
and the follow-up the study's rank by ``StudyDate_DICOM`` among the patient's.

Labels are kept twice: as text (``labels``: the positive findings joined by
``|``, uncertain ones marked ``name (uncertain)``, as NIH's ``Finding
Labels`` joins them) and as a label array with the label names
(:attr:`DatasetMetadata.label_names`), one int8 per image and label:
:data:`POSITIVE` 1, :data:`NEGATIVE` 0, :data:`UNCERTAIN` -1 (CheXpert's and
MIMIC's -1, "uncertain", kept distinct from both), :data:`BLANK` -2 (not
mentioned). PadChest's labels are positive or absent (0).

Nothing identifying is kept: PadChest's ``PatientBirth`` becomes an age in
whole years at the study, its reports are not read.
"""

from __future__ import annotations

import ast
import csv
import gzip
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ...errors import InputError
from .manifest import Manifest, manifest_columns, read_manifest
from .text_files import read_text_file
from .urls import redact

__all__ = [
    "BLANK",
    "CHEXPERT_LABELS",
    "DATASETS",
    "NEGATIVE",
    "POSITIVE",
    "UNCERTAIN",
    "DatasetMetadata",
    "dataset_key",
    "read_dataset_metadata",
    "metadata_columns",
    "metadata_files",
    "read_metadata",
    "recognise",
]

POSITIVE, NEGATIVE, UNCERTAIN, BLANK = 1, 0, -1, -2
"""Codes of the label array: positive, negative, uncertain (CheXpert's -1), not mentioned."""

CODES = {"positive": POSITIVE, "negative": NEGATIVE, "uncertain": UNCERTAIN, "blank": BLANK}
"""Each code's meaning, as ``index/label_codes`` stores it in ``attrs["codes"]``."""

CHEXPERT_LABELS = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
"""The 14 CheXpert labels, as CheXpert's CSVs order them (MIMIC's chexpert CSV sorts them)."""

_CHEXPERT_COLUMNS = {"Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS}
_MIMIC_METADATA_COLUMNS = {"dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate"}
_MIMIC_LABEL_COLUMNS = {"subject_id", "study_id", *CHEXPERT_LABELS}
_PADCHEST_COLUMNS = {"ImageID", "ImageDir", "StudyID", "PatientID", "Labels", "Projection"}

DATASETS = ("chexpert", "mimic-cxr-jpg", "padchest")
"""The datasets :func:`recognise` knows, by name."""

COLUMNS = {
    "patient_id": "str",
    "study_id": "str",
    "follow_up": "int16",
    "view_position": "str",
    "patient_sex": "str",
    "patient_age": "int16",
    "labels": "str",
}
"""The per-image columns every dataset's metadata gives (``""`` or -1 when unknown)."""

_CHEXPERT_PATH = re.compile(r"(patient\d+)/(study(\d+))/[^/]+$")


@dataclass(frozen=True)
class DatasetMetadata:
    """One dataset's metadata, one row per image.

    Attributes
    ----------
    dataset : str
        One of :data:`DATASETS`.
    paths : tuple of str
        The files read, in the order given.
    rows : dict
        ``{key: {column: value}}`` (:data:`COLUMNS`), in file order; the key as
        :func:`dataset_key` computes it from an input's path.
    label_names : tuple of str
        The label array's columns.
    label_codes : dict
        ``{key: (L,) int8}`` codes (module docstring).
    digest : str
        sha256 over the files' bytes (part of a run's identity).
    """

    dataset: str
    paths: tuple[str, ...]
    rows: dict[str, dict[str, object]]
    label_names: tuple[str, ...]
    label_codes: dict[str, np.ndarray] = field(repr=False)
    digest: str

    @property
    def path(self) -> str:
        """The files, as a store's ``manifest`` record names them."""
        return ", ".join(self.paths)

    def columns(self, paths: Sequence[str]) -> dict[str, np.ndarray]:
        """``{name: (N,) array}`` of :data:`COLUMNS` for ``paths`` (missing: ``""`` or -1)."""
        rows = [self.rows.get(dataset_key(self.dataset, p), {}) for p in paths]
        out = {}
        for name, dtype in COLUMNS.items():
            if dtype == "str":
                out[name] = np.array([str(row.get(name, "")) for row in rows], dtype=object)
            else:
                out[name] = np.array([row.get(name, -1) for row in rows], dtype=dtype)
        return out

    def labels(self, paths: Sequence[str]) -> np.ndarray:
        """``(N, L)`` int8 label codes of ``paths``; an image without a row: all :data:`BLANK`."""
        blank = np.full(len(self.label_names), BLANK, dtype=np.int8)
        keys = (dataset_key(self.dataset, p) for p in paths)
        return np.stack([self.label_codes.get(key, blank) for key in keys]).reshape(
            len(paths), len(self.label_names)
        )


def dataset_key(dataset: str, path: str) -> str:
    """How an input's path names its metadata row in ``dataset``.

    Examples
    --------
    >>> dataset_key("chexpert", "/d/CheXpert-v1.0/train/patient00001/study1/view1_frontal.jpg")
    'patient00001/study1/view1_frontal.jpg'
    >>> dataset_key("mimic-cxr-jpg", "s3://b/files/p10/p10000032/s50414267/02aa804e.jpg")
    '02aa804e'
    """
    text = os.fspath(path).replace("\\", "/")
    text = text.rpartition("::")[2] if "::" in text else text  # an archive's member
    if dataset == "chexpert":
        match = _CHEXPERT_PATH.search(text)
        return match[0] if match else text.rpartition("/")[2]
    if dataset == "mimic-cxr-jpg":  # <dicom_id>.jpg, or .dcm in MIMIC-CXR's DICOM release
        return text.rpartition("/")[2].rpartition(".")[0]
    return text.rpartition("/")[2]


def _read_csv(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]], bytes]:
    shown = redact(os.fspath(path))
    data = read_text_file(path, "metadata")
    if shown.lower().endswith(".gz"):  # MIMIC's and PadChest's CSVs are published gzipped
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise InputError(f"cannot read metadata {shown!r}: {error}") from None
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise InputError(
            f"metadata {shown!r} is not UTF-8 (byte {error.start}); save it as UTF-8"
        ) from None
    reader = csv.DictReader(text.splitlines())
    header = [name.strip() for name in (reader.fieldnames or [])]
    reader.fieldnames = header
    rows = [
        {k: (v or "").strip() for k, v in row.items() if k is not None}
        for row in reader
        if any((v or "").strip() for v in row.values() if isinstance(v, str))
    ]
    return header, rows, data


def recognise(header: Sequence[str]) -> str:
    """Which file of which dataset a CSV header is.

    Returns
    -------
    str
        ``"chexpert"``, ``"mimic-cxr-jpg metadata"``, ``"mimic-cxr-jpg labels"`` or ``"padchest"``.

    Raises
    ------
    InputError
        If the header is no known dataset's, naming the columns each needs.

    Examples
    --------
    >>> recognise(["subject_id", "study_id", *CHEXPERT_LABELS])
    'mimic-cxr-jpg labels'
    """
    columns = set(header)
    if _CHEXPERT_COLUMNS <= columns:
        return "chexpert"
    if _MIMIC_METADATA_COLUMNS <= columns:
        return "mimic-cxr-jpg metadata"
    if _MIMIC_LABEL_COLUMNS <= columns:
        return "mimic-cxr-jpg labels"
    if _PADCHEST_COLUMNS <= columns:
        return "padchest"
    raise InputError(
        "metadata columns of no known dataset: expected CheXpert's (Path, Sex, Age, "
        "Frontal/Lateral, AP/PA and its 14 labels), MIMIC-CXR-JPG's metadata (dicom_id, "
        "subject_id, study_id, ViewPosition, StudyDate) or chexpert labels (subject_id, "
        "study_id and the 14 labels), or PadChest's (ImageID, ImageDir, StudyID, PatientID, "
        f"Labels, Projection); got {', '.join(list(header)[:8]) or 'no header'}"
    )


def _code(text: str, where: str) -> int:
    """A CheXpert label cell: ``1.0``, ``0.0``, ``-1.0`` or blank."""
    if text == "":
        return BLANK
    try:
        value = float(text)
    except ValueError:
        value = None
    if value not in (1.0, 0.0, -1.0):
        raise InputError(f"{where}: label value {text!r}; expected 1, 0, -1 or blank")
    return int(value)


def _label_text(names: Sequence[str], codes: np.ndarray) -> str:
    parts = [
        name if code == POSITIVE else f"{name} (uncertain)"
        for name, code in zip(names, codes, strict=True)
        if code in (POSITIVE, UNCERTAIN)
    ]
    return "|".join(parts)


def _int(text: str, default: int = -1) -> int:
    try:
        return int(float(text))
    except ValueError:
        return default


def _chexpert(files: list[tuple[str, list[dict[str, str]]]]) -> tuple[dict, dict]:
    rows, codes = {}, {}
    for shown, records in files:
        for line, record in enumerate(records, start=2):
            where = f"{shown!r} line {line}"
            match = _CHEXPERT_PATH.search(record["Path"].replace("\\", "/"))
            if match is None:
                raise InputError(
                    f"{where}: Path {record['Path']!r} is not .../patientNNNNN/studyN/<view>.jpg"
                )
            key = match[0]
            if key in codes:
                raise InputError(f"{where}: {key} is listed twice")
            code = np.array([_code(record[n], where) for n in CHEXPERT_LABELS], dtype=np.int8)
            codes[key] = code
            view = record["AP/PA"] or record["Frontal/Lateral"]
            rows[key] = {
                "patient_id": match[1],
                "study_id": match[2],
                "follow_up": int(match[3]),
                "view_position": view,
                "patient_sex": record["Sex"],
                "patient_age": _int(record["Age"]),
                "labels": _label_text(CHEXPERT_LABELS, code),
            }
    return rows, codes


def _ranks(dates: dict[tuple[str, str], str]) -> dict[tuple[str, str], int]:
    """Each (patient, study)'s rank by date among its patient's studies, from 0."""
    by_patient: dict[str, list[tuple[str, str]]] = {}
    for (patient, study), date in dates.items():
        by_patient.setdefault(patient, []).append((date, study))
    return {
        (patient, study): rank
        for patient, studies in by_patient.items()
        for rank, (_, study) in enumerate(sorted(studies))
    }


def _mimic(metadata: list[tuple[str, list]], labels: list[tuple[str, list]]) -> tuple[dict, dict]:
    if not metadata:
        raise InputError(
            "MIMIC-CXR-JPG labels without their metadata: give mimic-cxr-2.0.0-metadata.csv "
            "too (it says which study each dicom_id belongs to)"
        )
    names = tuple(sorted(CHEXPERT_LABELS))  # as MIMIC's chexpert CSV orders them
    study_codes = {}
    for shown, records in labels:
        for line, record in enumerate(records, start=2):
            where = f"{shown!r} line {line}"
            code = np.array([_code(record[n], where) for n in names], dtype=np.int8)
            study_codes[(record["subject_id"], record["study_id"])] = code
    images, dates = [], {}
    for _, records in metadata:
        for record in records:
            study = (record["subject_id"], record["study_id"])
            dates[study] = min(
                dates.get(study, "~"),
                f"{record.get('StudyDate', '')}{record.get('StudyTime', '').zfill(10)}",
            )
            images.append((record, study))
    ranks = _ranks(dates)
    rows, codes = {}, {}
    blank = np.full(len(names), BLANK, dtype=np.int8)
    for record, study in images:
        key = record["dicom_id"]
        code = study_codes.get(study, blank)
        codes[key] = code
        rows[key] = {
            "patient_id": study[0],
            "study_id": study[1],
            "follow_up": ranks[study],
            "view_position": record.get("ViewPosition", ""),
            "patient_sex": "",
            "patient_age": -1,
            "labels": _label_text(names, code),
        }
    return rows, codes, names


def _padchest_labels(text: str, where: str) -> list[str]:
    if not text or text.lower() == "nan":
        return []
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise InputError(f"{where}: Labels {text[:40]!r} is not a list like ['normal']") from None
    if not isinstance(value, list):
        raise InputError(f"{where}: Labels {text[:40]!r} is not a list like ['normal']")
    return [str(label).strip() for label in value if str(label).strip()]


def _padchest(files: list[tuple[str, list[dict[str, str]]]]) -> tuple[dict, dict, tuple]:
    found, dates = [], {}
    for shown, records in files:
        for line, record in enumerate(records, start=2):
            labels = _padchest_labels(record["Labels"], f"{shown!r} line {line}")
            study = (record["PatientID"], record["StudyID"])
            dates[study] = min(dates.get(study, "~"), record.get("StudyDate_DICOM", ""))
            found.append((record, study, labels))
    names = tuple(sorted({label for _, _, labels in found for label in labels}))
    column = {name: i for i, name in enumerate(names)}
    ranks = _ranks(dates)
    rows, codes = {}, {}
    for record, study, labels in found:
        code = np.zeros(len(names), dtype=np.int8)
        code[[column[label] for label in labels]] = POSITIVE
        born, date = _int(record.get("PatientBirth", "")), record.get("StudyDate_DICOM", "")
        age = int(date[:4]) - born if born > 0 and date[:4].isdigit() else -1
        codes[record["ImageID"]] = code
        rows[record["ImageID"]] = {
            "patient_id": study[0],
            "study_id": study[1],
            "follow_up": ranks[study],
            "view_position": record.get("ViewPosition_DICOM") or record.get("Projection", ""),
            "patient_sex": record.get("PatientSex_DICOM", ""),
            "patient_age": age,
            "labels": "|".join(labels),
        }
    return rows, codes, names


def read_dataset_metadata(paths: Sequence[str | os.PathLike]) -> DatasetMetadata:
    """Read one dataset's metadata files, recognised by their columns.

    Parameters
    ----------
    paths : sequence of path
        CheXpert's ``train.csv`` and/or ``valid.csv``; MIMIC-CXR-JPG's
        metadata CSV with (or without) its chexpert CSV; PadChest's CSV.

    Returns
    -------
    DatasetMetadata

    Raises
    ------
    InputError
        A file that cannot be read, a header of no known dataset, files of two
        datasets, an image listed twice or a label value out of its range; one
        line naming the file and line.
    """
    if not paths:
        raise InputError("no metadata files given")
    kinds: dict[str, list[tuple[str, list[dict[str, str]]]]] = {}
    digest = hashlib.sha256()
    for path in paths:
        header, records, data = _read_csv(path)
        try:
            kind = recognise(header)
        except InputError as error:
            raise InputError(f"metadata {os.fspath(path)!r}: {error}") from None
        kinds.setdefault(kind, []).append((os.fspath(path), records))
        digest.update(hashlib.sha256(data).digest())
    datasets = {kind.partition(" ")[0] for kind in kinds}
    if len(datasets) > 1:
        raise InputError(
            f"metadata files of {len(datasets)} datasets ({', '.join(sorted(datasets))}): "
            "run each dataset separately"
        )
    (dataset,) = datasets
    if dataset == "chexpert":
        rows, codes = _chexpert(kinds["chexpert"])
        names = CHEXPERT_LABELS
    elif dataset == "mimic-cxr-jpg":
        rows, codes, names = _mimic(
            kinds.get("mimic-cxr-jpg metadata", []), kinds.get("mimic-cxr-jpg labels", [])
        )
    else:
        rows, codes, names = _padchest(kinds["padchest"])
    shown = tuple(os.fspath(p) for p in paths)
    return DatasetMetadata(dataset, shown, rows, tuple(names), codes, digest.hexdigest())


def read_metadata(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
) -> Manifest | DatasetMetadata:
    """What ``--manifest`` gives: ChestX-ray8's ``Data_Entry_2017.csv`` or another dataset's files.

    Parameters
    ----------
    paths : path or sequence of paths
        One NIH file (which selects the images it lists,
        :func:`xray_scale.io.sources.manifest.read_manifest`), or a dataset's
        metadata files (:func:`read_dataset_metadata`: they annotate the
        inputs and select nothing).

    Raises
    ------
    InputError
        As either reader does.
    """
    files = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if len(files) == 1:
        try:
            return read_manifest(files[0])
        except InputError as error:
            if "no 'Image Index' column" not in str(error):
                raise
    return read_dataset_metadata(files)


def metadata_files(manifest) -> list[str]:
    """``--manifest``'s files as strings: none, one path, or several."""
    if manifest is None:
        return []
    if isinstance(manifest, str | os.PathLike):
        return [os.fspath(manifest)]
    return [os.fspath(path) for path in manifest]


def metadata_columns(
    metadata: Manifest | DatasetMetadata | None, paths: Sequence[str]
) -> tuple[dict[str, np.ndarray] | None, tuple | None]:
    """The index columns and labels a store gets from ``--manifest``'s metadata for ``paths``.

    Returns
    -------
    columns : dict or None
        ``{name: (N,) array}`` (:data:`COLUMNS` for a dataset, NIH's
        :data:`~xray_scale.io.sources.manifest.MANIFEST_FIELDS`), None without metadata.
    labels : (names, codes, meaning) or None
        A dataset's label codes for ``index/label_codes``; None for NIH or none.
    """
    if isinstance(metadata, DatasetMetadata):
        return metadata.columns(paths), (metadata.label_names, metadata.labels(paths), CODES)
    return (manifest_columns(metadata, paths) if metadata else None), None
