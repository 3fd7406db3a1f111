"""Which images to render: by name, by patient, by a condition on the store's table, or a
reproducible sample of ok images."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import zarr

from ..errors import SelectionError
from ..store.encoding import read_index
from ..store.export import store_table
from ..store.layout import STATUS_OK, STATUS_PENDING
from ..store.query import RowQuery, select_rows
from .stored import as_group, index_strings, stem

__all__ = [
    "DEFAULT_SAMPLE",
    "Selection",
    "normalise_patient",
    "SelectionError",
    "select_images",
]

DEFAULT_SAMPLE = 4
"""Images selected when nothing is asked for: the store's first ok ones."""


class Selection(NamedTuple):
    """The images to render, and those left out of the request.

    Attributes
    ----------
    indices : list of int
        Store indices of ``ok`` images, ascending (in the order asked for when sorted).
    excluded : list of (int, str)
        ``(index, reason)`` of each requested image that is not ``ok``
        (its ``index/error``, or that it is still pending).
    """

    indices: list[int]
    excluded: list[tuple[int, str]]


def normalise_patient(patient: str | int) -> str:
    """A patient id as ``index/patient_id`` holds it: ``"00000011"`` and ``11`` give ``"11"``."""
    text = str(patient).strip()
    return str(int(text)) if text.isdigit() else text


def _examples(values: Iterable[str], count: int = 3) -> str:
    unique = sorted({v for v in values if v}, key=lambda v: (len(v), v))
    shown = ", ".join(unique[:count])
    return shown + (", ..." if len(unique) > count else "")


def _reasons(group: zarr.Group, status: np.ndarray, indices: np.ndarray) -> list[tuple[int, str]]:
    if indices.size == 0:
        return []
    errors = read_index(group, "error", indices)
    reasons = []
    for index, error in zip(indices.tolist(), errors.tolist(), strict=True):
        if status[index] == STATUS_PENDING:
            reasons.append((index, "pending: not processed yet; resume the run"))
        else:
            reasons.append((index, f"{status[index]}: {error}" if error else str(status[index])))
    return reasons


def select_images(
    group: zarr.Group | str | os.PathLike,
    *,
    names: Sequence[str] = (),
    patient: str | int | None = None,
    query: RowQuery | None = None,
) -> Selection:
    """Choose the images to render.

    ``names`` and ``patient`` together ask for the union of both; the query's
    ``sample`` then draws from what they ask for (or from the whole store). With
    none of them, the store's first :data:`DEFAULT_SAMPLE` ok images are chosen.
    The query's ``where``, ``sort`` and ``limit`` select among the ok images
    asked for (or all), by the store's table
    (:func:`xray_scale.store.export.store_table`), as
    :func:`xray_scale.store.query.select_rows` does: condition, sample, order,
    count. The sample is drawn once, by :meth:`RowQuery.draw
    <xray_scale.store.query.RowQuery.draw>`, either way.

    Parameters
    ----------
    group : zarr.Group or path
        A store written by :func:`xray_scale.run`.
    names : sequence of str
        Image names such as ``"00000011_001"`` (a ``.png`` suffix or a folder
        is ignored), matched against the file name of ``index/path``.
    patient : str or int, optional
        A patient id as in ``index/patient_id`` (``"11"``; ``"00000011"`` and
        ``11`` also work).
    query : RowQuery, optional
        Condition, sample (reproducible: its ``seed``), order and count
        (:class:`xray_scale.store.query.RowQuery`, validated when made); none
        by default.

    Returns
    -------
    Selection
        ``(indices, excluded)``: the ``ok`` images, ascending (in ``sort``
        order when sorted), and each requested image that is failed or
        pending, with its reason.

    Raises
    ------
    SelectionError
        (a ValueError) For an empty store, an unknown image name, a patient
        without images, or a ``where`` or ``sort`` naming an unknown column or
        that pandas cannot evaluate.
    StoreError
        If ``group`` is a path that is not a store.
    """
    query = query or RowQuery()
    group = as_group(group)
    status = index_strings(group, "status")
    if status.size == 0:
        raise SelectionError("the store holds no images")
    if isinstance(names, str):
        names = (names,)
    ok = status == STATUS_OK
    requested: set[int] = set()
    if names:
        stems: dict[str, list[int]] = {}
        for index, path in enumerate(read_index(group, "path").tolist()):
            stems.setdefault(stem(path), []).append(index)
        wanted = [stem(name.strip()) for name in names]
        unknown = [name for name in wanted if name not in stems]
        if unknown:
            listed = ", ".join(repr(name) for name in unknown)
            raise SelectionError(
                f"unknown image name{'s' if len(unknown) > 1 else ''} {listed}: not in the "
                f"store's {status.size} images (names look like {min(stems)})"
            )
        for name in wanted:
            requested.update(stems[name])
    if patient is not None:
        wanted_patient = normalise_patient(patient)
        patient_ids = index_strings(group, "patient_id")
        matches = np.flatnonzero(patient_ids == wanted_patient)
        if matches.size == 0:
            known = _examples(patient_ids.tolist())
            hint = f"patients in the store: {known}" if known else "no file has a patient id"
            raise SelectionError(f"patient {str(patient)!r} has no images in the store ({hint})")
        requested.update(matches.tolist())
    if names or patient is not None:
        candidates = np.array(sorted(requested), dtype=np.int64)
    elif query.sample is not None:
        candidates = np.arange(status.size)
    else:
        first_ok = np.flatnonzero(ok)[:DEFAULT_SAMPLE]
        last = int(first_ok[-1]) if first_ok.size == DEFAULT_SAMPLE else status.size - 1
        candidates = np.arange(last + 1)
    if query.narrows_by_table:
        asked = bool(names) or patient is not None
        usable = candidates[ok[candidates]] if asked else np.flatnonzero(ok)
        rows = select_rows(store_table(group).iloc[usable], query)
        excluded = _reasons(group, status, candidates[~ok[candidates]]) if asked else []
        return Selection([int(i) for i in rows["image"]], excluded)
    usable = candidates[ok[candidates]]
    excluded = _reasons(group, status, candidates[~ok[candidates]])
    usable = usable[query.draw(usable.size)]
    return Selection([int(i) for i in usable], excluded)
