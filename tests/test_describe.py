"""info at scale: 40,000 images of which 39,804 failed read in a screen, every count right."""

from __future__ import annotations

import json
import os

import pytest
from conftest import MANIFEST_HEADER, structured_image, write_png

from xray_scale.cli import main
from xray_scale.io.sources.manifest import NOT_IN_INPUTS
from xray_scale.store.describe import describe_store, failures_by_reason

LISTED, PRESENT, STEP = 40_000, 196, 204


def listed_name(k: int) -> str:
    return f"{k // 4 + 1:08d}_{k % 4:03d}.png"


@pytest.fixture(scope="module")
def partial_download(tmp_path_factory):
    """A 40,000-row manifest and 196 of its images (every 204th), run into a store.

    Only the 196 present files are decoded (64x64 PNGs): the other 39,804 rows
    are recorded as failed when the store is made.
    """
    folder = tmp_path_factory.mktemp("partial")
    rows = [
        f"{listed_name(k)},No Finding,0,{k // 4 + 1},50,F,PA,64,64,0.1,0.1\n" for k in range(LISTED)
    ]
    manifest = folder / "Data_Entry_2017.csv"
    manifest.write_text(MANIFEST_HEADER + "".join(rows))
    images = folder / "images"
    originals = [write_png(folder / f"original_{k}.png", structured_image(k)) for k in range(4)]
    images.mkdir()
    for n, k in enumerate(range(0, PRESENT * STEP, STEP)):
        os.link(originals[n % 4], images / listed_name(k))
    store = folder / "out.zarr"
    code = main(["run", str(images), "-o", str(store), "--manifest", str(manifest), "-q"])
    assert code == 1  # some images failed
    return store


@pytest.mark.slow
def test_info_groups_the_failures_by_reason_in_a_screen(partial_download, capsys):
    assert main(["info", str(partial_download)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) <= 40
    assert "images: 40,000 (196 ok, 39,804 failed, 0 pending), 64x64 uint8" in lines
    examples = ", ".join(listed_name(k) for k in (1, 2, 3))
    assert f"  39,804 {NOT_IN_INPUTS}: {examples}, ..." in lines
    assert any(line.startswith("time: ") and "196 images processed" in line for line in lines)
    assert f"  every failure: xray-scale info {partial_download} --failures" in lines


@pytest.mark.slow
def test_failures_lists_every_one(partial_download, capsys, tmp_path):
    assert main(["info", str(partial_download), "--failures"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("failed: ")]
    expected = {listed_name(k) for k in range(LISTED)} - {
        listed_name(k) for k in range(0, PRESENT * STEP, STEP)
    }
    assert len(listed) == 39_804
    assert {os.path.basename(line.split(": ")[1]) for line in listed} == expected
    assert all(line.endswith(f": {NOT_IN_INPUTS}") for line in listed)
    written = tmp_path / "failures.tsv"
    assert main(["info", str(partial_download), "--failures-to", str(written), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["failed"] == 39_804  # stdout: the JSON alone
    rows = written.read_text(encoding="utf-8").splitlines()
    assert len(rows) == 39_804 and rows[0].endswith(f"{listed_name(1)}\t{NOT_IN_INPUTS}")


@pytest.mark.slow
def test_json_keeps_everything(partial_download, capsys):
    assert main(["info", str(partial_download), "--json"]) == 0
    details = json.loads(capsys.readouterr().out)
    assert (details["total"], details["ok"], details["failed"]) == (40_000, 196, 39_804)
    assert len(details["failures"]) == 39_804
    assert details["failure_reasons"] == [
        {"reason": NOT_IN_INPUTS, "count": 39_804, "examples": [listed_name(k) for k in (1, 2, 3)]}
    ]
    assert details["processed"] == 196 == sum(run["processed"] for run in details["runs"])
    assert details["images_per_s"] == pytest.approx(196 / details["elapsed_s"])


def test_reasons_are_counted_apart_and_most_frequent_first():
    failures = [{"path": f"/d/t{k}.png", "error": "truncated PNG: 12 bytes"} for k in range(2)]
    failures += [
        {"path": f"/d/c{k}.png", "error": f"bad CRC in chunk IDAT: expected {k}"} for k in range(5)
    ]
    assert failures_by_reason(failures) == [
        {"reason": "bad CRC in chunk IDAT", "count": 5, "examples": ["c0.png", "c1.png", "c2.png"]},
        {"reason": "truncated PNG", "count": 2, "examples": ["t0.png", "t1.png"]},
    ]


@pytest.mark.slow
def test_describe_store_counts_match_the_status_array(partial_download):
    details = describe_store(partial_download)
    assert details["ok"] + details["failed"] + details["pending"] == details["total"] == 40_000
    assert sum(group["count"] for group in details["failure_reasons"]) == details["failed"]
