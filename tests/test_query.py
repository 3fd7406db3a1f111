"""Selecting rows of a store's table: exactly what pandas selects, errors in one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xray_scale.errors import SelectionError
from xray_scale.store.query import RowQuery, select_rows


@pytest.fixture
def table():
    rng = np.random.default_rng(3)
    count = 200
    return pd.DataFrame(
        {
            "image": np.arange(count),
            "status": rng.choice(["ok", "failed"], count, p=[0.9, 0.1]),
            "view_position": rng.choice(["AP", "PA"], count),
            "finding_labels": rng.choice(["No Finding", "Cardiomegaly|Effusion", "Effusion"], count),
            "mean": np.where(rng.random(count) < 0.1, np.nan, rng.uniform(0, 255, count)),
        }
    )


def test_where_is_pandas_query(table):
    where = "view_position == 'AP' and finding_labels.str.contains('Cardiomegaly')"
    rows = select_rows(table, RowQuery(where=where))
    assert rows["image"].tolist() == table.query(where, engine="python")["image"].tolist()
    assert 0 < len(rows) < len(table)


def test_sort_and_limit_are_pandas_sort_values_and_head(table):
    rows = select_rows(table, RowQuery(where="mean < 90", sort="mean", limit=30))
    expected = table.query("mean < 90").sort_values("mean", kind="stable").head(30)
    assert rows["image"].tolist() == expected["image"].tolist()
    darkest = select_rows(table, RowQuery(sort="mean", descending=True, limit=5))
    top = table.sort_values("mean", ascending=False, kind="stable", na_position="last").head(5)
    assert darkest["image"].tolist() == top["image"].tolist()


def test_missing_values_sort_last(table):
    rows = select_rows(table, RowQuery(sort="mean"))
    assert rows["mean"].isna().sum() == table["mean"].isna().sum() > 0
    assert rows["mean"].iloc[-1:].isna().all() and not rows["mean"].iloc[:1].isna().any()


def test_sample_draws_reproducibly_from_the_selected_rows(table):
    query = RowQuery(where="status == 'ok'", sample=20, seed=7)
    rows = select_rows(table, query)
    candidates = table.query("status == 'ok'")["image"].to_numpy()
    drawn = np.sort(np.random.default_rng(7).choice(candidates.size, size=20, replace=False))
    assert rows["image"].tolist() == candidates[drawn].tolist()
    assert select_rows(table, query)["image"].tolist() == rows["image"].tolist()
    assert len(select_rows(table, RowQuery(where="image < 5", sample=20))) == 5


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (RowQuery(where="brightness < 3"), "unknown column 'brightness' in the condition"),
        (RowQuery(where="mean <"), "cannot evaluate the condition 'mean <'"),
        (RowQuery(where="mean"), "is not true or false for each image"),
        (RowQuery(sort="brightness"), "unknown column 'brightness' to sort by"),
        (RowQuery(limit=0), "limit must be an integer >= 1"),
    ],
)
def test_errors_are_one_line_naming_the_columns(table, query, message):
    with pytest.raises(SelectionError) as caught:
        select_rows(table, query)
    text = str(caught.value)
    assert message in text and "\n" not in text
    if "column" in message or "condition" in message:
        assert "image, status, view_position, finding_labels, mean" in text
