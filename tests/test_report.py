"""The report page: a real run's store, the page parsed, its links followed, opened in Chromium."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from browser import check_page, why_no_browser
from PIL import Image

from xray_scale import run
from xray_scale.cli import main
from xray_scale.io.phantoms import write_phantoms
from xray_scale.render.report import write_report


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value and not value.startswith("#"):
                self.links.append(value)

    def handle_data(self, data):
        self.text.append(data)


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    parser.close()
    return parser


def _inputs(folder: Path) -> Path:
    """Phantoms of 2 patients, a byte copy, an inverted and a framed copy, a broken file."""
    paths = write_phantoms(folder, patients=2, follow_ups=3, shape=(128, 128))
    shutil.copyfile(paths[0], folder / "copy_of_first.png")
    first = np.asarray(Image.open(paths[1]))
    Image.fromarray(255 - first).save(folder / "inverted.png")
    framed = np.zeros_like(first)
    framed[24:104, 24:104] = first[24:104, 24:104]
    Image.fromarray(framed).save(folder / "framed.png")
    (folder / "broken.png").write_bytes(b"not a png at all")
    return folder


@pytest.fixture(scope="module")
def qc_store(tmp_path_factory) -> Path:
    folder = _inputs(tmp_path_factory.mktemp("inputs"))
    out = tmp_path_factory.mktemp("stores") / "run.zarr"
    summary = run([folder], out, workers=1)
    assert (summary.ok, summary.failed) == (9, 1)
    return out


@pytest.mark.slow
def test_page_parses_and_every_link_is_a_file(qc_store, tmp_path):
    result = write_report(qc_store, tmp_path / "report")
    assert result.page == tmp_path / "report" / "index.html"
    parsed = _parse(result.page)
    assert parsed.links
    for link in parsed.links:
        parts = urlparse(link)
        assert not parts.scheme and not parts.netloc, f"{link} is not a relative file link"
        assert (result.page.parent / unquote(parts.path)).is_file(), link
    text = " ".join(parsed.text)
    for expected in ("inverted: 1 images", "framed: 1 images", "Duplicates: 1 groups, 2 images"):
        assert expected in text
    assert "failures by reason" in text.lower() and "not a PNG" in text
    written = {p.relative_to(result.page.parent).as_posix() for p in result.files}
    assert {"csv/inverted.csv", "csv/duplicate_groups.csv", "csv/failures.csv"} <= written
    assert any(p.startswith("gifs/") for p in written)
    assert any(p.startswith("grids/") for p in written)


def test_galleries_are_capped_and_lists_complete(qc_store, tmp_path):
    result = write_report(qc_store, tmp_path / "report", gallery=1, groups=1, group_members=1)
    outliers = (tmp_path / "report" / "csv" / "outliers.csv").read_text().splitlines()
    assert len(outliers) == 1 + 9  # header + every ok image
    thumbs = [p for p in result.files if p.parent.name == "thumbs"]
    assert 1 <= len(thumbs) <= 5 + 1 + 2  # one per flag with images, outliers, one per group kind


def test_thumbnails_come_from_previews_when_stored(tmp_path):
    folder = _inputs(tmp_path / "inputs")
    out = tmp_path / "previews.zarr"
    run([folder], out, config={"store": {"preview_size": 32, "full_resolution": False}})
    for moved in folder.glob("*.png"):  # the sources are gone: thumbnails must use the previews
        moved.unlink()
    result = write_report(out, tmp_path / "report", gifs=0)
    thumbs = [p for p in result.files if p.parent.name == "thumbs"]
    assert thumbs and all(max(Image.open(p).size) == 32 for p in thumbs)


def test_a_store_without_qc_says_so(tmp_path):
    folder = _inputs(tmp_path / "inputs")
    out = tmp_path / "noqc.zarr"
    run([folder], out, config={"qc": {"enabled": False}})
    result = write_report(out, tmp_path / "report")
    assert "no QC in this store" in " ".join(_parse(result.page).text)


@pytest.mark.slow
def test_report_command_prints_the_page(qc_store, tmp_path, capsys):
    code = main(["report", str(qc_store), "--out", str(tmp_path / "r"), "--gallery", "2"])
    assert code == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "r" / "index.html")
    assert (tmp_path / "r" / "index.html").is_file()


def test_bad_caps_are_refused(qc_store, tmp_path):
    with pytest.raises(ValueError, match="gallery must be an integer >= 0"):
        write_report(qc_store, tmp_path, gallery=-1)


@pytest.mark.browser
@pytest.mark.slow
def test_page_in_headless_chromium(qc_store, tmp_path):
    reason = why_no_browser()
    if reason:
        pytest.skip(reason)
    result = write_report(qc_store, tmp_path / "report")
    screenshot = tmp_path / "report.png"
    check = check_page(result.page, screenshot)
    assert check.errors == []
    assert check.broken_images == []
    assert check.image_count >= 10
    assert check.title.startswith("xray-scale report")
    width, height = Image.open(screenshot).size
    assert width > 1300 and height > 1500  # the whole page, galleries included


@pytest.mark.browser
@pytest.mark.slow
def test_the_browser_check_sees_a_broken_image_and_a_console_error(tmp_path):
    reason = why_no_browser()
    if reason:
        pytest.skip(reason)
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><head><title>bad</title></head><body><img src="gone.png">'
        "<script>console.error('something broke')</script></body></html>",
        encoding="utf-8",
    )
    check = check_page(page, tmp_path / "bad.png")
    assert len(check.broken_images) == 1 and check.broken_images[0].endswith("gone.png")
    assert any("something broke" in error for error in check.errors)
    assert any("gone.png" in error or "ERR_FILE_NOT_FOUND" in error for error in check.errors)
