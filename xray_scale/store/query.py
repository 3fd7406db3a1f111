"""Selecting rows of a store's table: a condition, a random sample, an order and a count.

What ``render --where/--sample/--sort/--limit`` and ``export`` with the same
options choose, applied in that order to the table of
:func:`xray_scale.store.export.store_table` (one row per image: index,
metadata and statistics columns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SelectionError

__all__ = ["RowQuery", "select_rows"]


@dataclass(frozen=True, kw_only=True)
class RowQuery:
    """Which rows of a store's table to keep, and in which order; checked when made.

    Keyword-only, and validated once, here: whatever carries it (``export``,
    ``render``, the selection of images) can rely on its values.

    Attributes
    ----------
    where : str or None
        A pandas condition over the table's columns, as for
        :meth:`pandas.DataFrame.query` (``"view_position == 'AP' and
        finding_labels.str.contains('Cardiomegaly')"``, ``"mean < 90"``).
    sample : int or None
        Keep this many of the rows left, drawn with
        ``numpy.random.default_rng(seed)`` (in table order); all when fewer.
    seed : int
        Seed of the draw.
    sort : str or None
        Order the rows by this column (missing values last; ties keep table order).
    descending : bool
        Largest first.
    limit : int or None
        Keep the first this many rows.
    """

    where: str | None = None
    sample: int | None = None
    seed: int = 0
    sort: str | None = None
    descending: bool = False
    limit: int | None = None

    def __post_init__(self) -> None:
        _count(self.sample, "sample")
        _count(self.limit, "limit")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer):
            raise SelectionError(f"seed must be an integer, got {self.seed!r}")
        for name in ("where", "sort"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise SelectionError(f"{name} must be a string, got {value!r}")

    @property
    def selects(self) -> bool:
        """Whether the query narrows or orders anything."""
        return any(v is not None for v in (self.where, self.sample, self.sort, self.limit))

    @property
    def narrows_by_table(self) -> bool:
        """Whether it needs the store's table: a condition, an order or a count."""
        return any(v is not None for v in (self.where, self.sort, self.limit))

    def draw(self, count: int) -> np.ndarray:
        """Positions of the rows the sample keeps among ``count``, ascending: the one draw.

        All of them without a sample or when there are no more than ``sample``;
        else ``sample`` drawn with ``numpy.random.default_rng(seed)``.

        Examples
        --------
        >>> len(RowQuery(sample=2, seed=0).draw(5))
        2
        >>> RowQuery().draw(3).tolist()
        [0, 1, 2]
        """
        if self.sample is None or count <= self.sample:
            return np.arange(count)
        drawn = np.random.default_rng(self.seed).choice(count, size=self.sample, replace=False)
        return np.sort(drawn)


def _columns(table) -> str:
    return ", ".join(str(column) for column in table.columns)


def _count(value, name: str) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1
    ):
        raise SelectionError(f"{name} must be an integer >= 1, got {value!r}")


def select_rows(table, query: RowQuery):
    """The rows of ``table`` that ``query`` keeps, in its order.

    Parameters
    ----------
    table : pandas.DataFrame
        A store's table (:func:`xray_scale.store.export.store_table`).
    query : RowQuery

    Returns
    -------
    pandas.DataFrame
        The kept rows: ``table.query(where)``, then the sample, then sorted,
        then the first ``limit``.

    Raises
    ------
    SelectionError
        (a ValueError) For an unknown column, or an expression pandas cannot
        evaluate or that is not a condition; one line naming the table's
        columns. (A count below 1 is refused when the query is made.)

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"image": [0, 1, 2, 3], "mean": [80.0, 120.0, 60.0, 95.0]})
    >>> select_rows(table, RowQuery(where="mean < 100", sort="mean"))["image"].tolist()
    [2, 0, 3]
    >>> select_rows(table, RowQuery(sort="mean", descending=True, limit=1))["image"].tolist()
    [1]
    """
    rows = table
    if query.where is not None:
        rows = rows[_condition(table, query.where)]
    if query.sample is not None:
        rows = rows.iloc[query.draw(len(rows))]
    if query.sort is not None:
        if query.sort not in table.columns:
            raise SelectionError(
                f"unknown column {query.sort!r} to sort by; the columns are: {_columns(table)}"
            )
        rows = rows.sort_values(
            query.sort, ascending=not query.descending, kind="stable", na_position="last"
        )
    if query.limit is not None:
        rows = rows.iloc[: query.limit]
    return rows


def _condition(table, where: str):
    """The boolean Series ``where`` gives over ``table`` (pandas' python engine)."""
    import pandas as pd
    from pandas.errors import UndefinedVariableError

    try:
        mask = table.eval(where, engine="python")
    except UndefinedVariableError as error:
        name = str(error).split("'")[1] if "'" in str(error) else str(error)
        raise SelectionError(
            f"unknown column {name!r} in the condition {where!r}; the columns are: "
            f"{_columns(table)}"
        ) from None
    except Exception as error:  # pandas raises many kinds for a bad expression
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SelectionError(
            f"cannot evaluate the condition {where!r} ({reason}); write it as for "
            f"pandas.DataFrame.query over the columns: {_columns(table)}"
        ) from None
    if not (isinstance(mask, pd.Series) and pd.api.types.is_bool_dtype(mask.dtype)):
        raise SelectionError(
            f"the condition {where!r} is not true or false for each image (compare a column, "
            f"e.g. 'mean < 90'); the columns are: {_columns(table)}"
        )
    return mask.fillna(False).astype(bool)  # a nullable boolean's missing values: not kept
