"""The NIH finding labels of a store's images, as a multi-hot matrix.

NIH's ``Data_Entry_2017.csv`` gives each image its findings in one column,
``Finding Labels``, the names joined by ``|`` (``"Effusion|Mass"``, or
``"No Finding"``); a run with ``--manifest`` stores it as the text array
``index/finding_labels``. Images without a row (or a store made without a
manifest) have ``""``: no label at all, not even ``No Finding``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["FINDINGS_COLUMN", "NO_FINDING", "finding_names", "multi_hot"]

FINDINGS_COLUMN = "finding_labels"
"""The ``index/`` array holding the manifest's ``Finding Labels``."""
NO_FINDING = "No Finding"
"""NIH's label for an image with none of the findings."""
_SEPARATOR = "|"


def _split(value: str) -> list[str]:
    return [name.strip() for name in str(value).split(_SEPARATOR) if name.strip()]


def finding_names(values: Sequence[str]) -> tuple[str, ...]:
    """Every label that ``values`` (``Finding Labels`` strings) name, sorted.

    Examples
    --------
    >>> finding_names(["Effusion|Mass", "No Finding", "", "Mass"])
    ('Effusion', 'Mass', 'No Finding')
    """
    return tuple(sorted({name for value in set(values) for name in _split(value)}))


def multi_hot(values: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """A ``(len(values), len(names))`` bool matrix: whether image ``i`` has label ``names[j]``.

    Labels not in ``names`` are left out.

    Examples
    --------
    >>> multi_hot(["Effusion|Mass", "No Finding", ""], ["Effusion", "Mass"]).astype(int)
    array([[1, 1],
           [0, 0],
           [0, 0]])
    """
    column = {name: j for j, name in enumerate(names)}
    matrix = np.zeros((len(values), len(names)), dtype=bool)
    # NIH's dump repeats a few hundred distinct strings over 112,120 images: split each once.
    distinct, inverse = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
    rows = np.zeros((len(distinct), len(names)), dtype=bool)
    for k, value in enumerate(distinct):
        for name in _split(value):
            if name in column:
                rows[k, column[name]] = True
    if len(values):
        matrix[:] = rows[inverse.reshape(-1)]
    return matrix
