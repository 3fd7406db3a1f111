"""Selecting rows of a store's table: exactly what pandas selects, errors in one line."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from conftest import make_bad_inputs

from xray_scale.cli import main
from xray_scale.errors import SelectionError
from xray_scale.render import select_images
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
            "finding_labels": rng.choice(
                ["No Finding", "Cardiomegaly|Effusion", "Effusion"], count
            ),
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
    ],
)
def test_errors_are_one_line_naming_the_columns(table, query, message):
    with pytest.raises(SelectionError) as caught:
        select_rows(table, query)
    text = str(caught.value)
    assert message in text and "\n" not in text
    if "column" in message or "condition" in message:
        assert "image, status, view_position, finding_labels, mean" in text


# -- on a real store: render and export select what pandas selects on the exported table ------


@pytest.fixture
def query_store(phantom_folder, tmp_path):
    make_bad_inputs(phantom_folder / "bad")  # failed rows: render draws from the ok ones only
    out = tmp_path / "out.zarr"
    assert main(["run", str(phantom_folder), "-o", str(out), "-q"]) == 1
    table = tmp_path / "all.parquet"
    assert main(["export", str(out), "--to", str(table)]) == 0
    return out, pd.read_parquet(table)


def pandas_selection(table, where, sort, descending, limit):
    rows = table.query(where, engine="python") if where else table
    if sort:
        rows = rows.sort_values(sort, ascending=not descending, kind="stable", na_position="last")
    return rows.head(limit) if limit else rows


@pytest.mark.parametrize(
    ("where", "sort", "descending", "limit"),
    [
        ("mean < 120 and follow_up % 2 == 0", "std", True, 3),
        ("patient_id == '22'", None, False, None),
        ("path.str.contains('0000002')", "median", False, 4),
        (None, "mean", False, 5),
    ],
)
def test_render_and_export_select_what_pandas_selects(
    query_store, tmp_path, where, sort, descending, limit
):
    path, table = query_store
    ok = table[table["status"] == "ok"]  # render draws ok images; export writes every row
    query = RowQuery(where=where, sort=sort, descending=descending, limit=limit)
    chosen = select_images(path, query=query)
    expected = pandas_selection(ok, where, sort, descending, limit)
    assert chosen.indices == expected["image"].tolist() and chosen.excluded == []
    arguments = ["export", str(path), "--to", str(tmp_path / "some.csv")]
    arguments += ["--where", where] if where else []
    arguments += ["--sort", sort] if sort else []
    arguments += ["--descending"] if descending else []
    arguments += ["--limit", str(limit)] if limit else []
    assert main(arguments) == 0
    exported = pd.read_csv(tmp_path / "some.csv")["image"].tolist()
    assert exported == pandas_selection(table, where, sort, descending, limit)["image"].tolist()


def test_render_draws_the_selection(query_store, tmp_path, capsys):
    path, table = query_store
    darkest = table[table["status"] == "ok"].sort_values("mean", kind="stable").head(2)
    arguments = ["render", str(path), "-o", str(tmp_path / "fig"), "--sort", "mean"]
    assert main([*arguments, "--limit", "2", "--no-gif", "--dpi", "20", "-q"]) == 0
    grids = [line for line in capsys.readouterr().out.splitlines() if "/grids/" in line]
    stems = [os.path.basename(p)[:12] for p in darkest["path"]]
    assert [os.path.basename(line)[:12] for line in grids] == stems


@pytest.mark.parametrize(
    ("command", "option", "message"),
    [
        ("export", ["--where", "brightness < 3"], "unknown column 'brightness' in the condition"),
        ("export", ["--sort", "brightness"], "unknown column 'brightness' to sort by"),
        ("render", ["--where", "mean <"], "cannot evaluate the condition 'mean <'"),
    ],
)
def test_a_bad_selection_is_one_line_naming_the_columns(
    query_store, tmp_path, capsys, command, option, message
):
    path, _ = query_store
    target = (
        ["--to", str(tmp_path / "t.csv")] if command == "export" else ["-o", str(tmp_path / "f")]
    )
    assert main([command, str(path), *target, *option]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
    assert "image, path, status, error, mode, bit_depth, patient_id, follow_up" in error


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"limit": 0}, "limit must be an integer >= 1"),
        ({"sample": True}, "sample must be an integer >= 1"),
        ({"seed": "7"}, "seed must be an integer"),
        ({"where": 3}, "where must be a string"),
    ],
)
def test_a_query_is_checked_once_when_made(options, message):
    with pytest.raises(SelectionError, match=message):
        RowQuery(**options)


def test_a_query_is_keyword_only():
    with pytest.raises(TypeError):
        RowQuery("mean < 90")  # type: ignore[misc]
