"""Figures from a store: selection, comparison grid, GIF, histogram and summary plots, CLI."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import zarr
from conftest import structured_image, write_png
from PIL import Image

import xray_scale
from xray_scale.analysis.image import map_function
from xray_scale.cli import main
from xray_scale.config import Config, load_config
from xray_scale.errors import SelectionError, StoreError
from xray_scale.filters import sobel
from xray_scale.render import (
    DEFAULT_PANELS,
    Selection,
    failure_reason,
    failures_figure,
    grid_figure,
    histogram_figure,
    render_gif,
    render_store,
    save_figure,
    select_images,
)
from xray_scale.store.access import open_store
from xray_scale.store.create import create_store
from xray_scale.store.encoding import read_index
from xray_scale.store.query import RowQuery

TUTORIAL_TITLES = [
    "Original",
    "Laplace-Gaussian (edges)",
    "Gaussian gradient (edges)",
    "Sobel (edges) - grayscale",
    "Sobel (edges) - hot",
    "Canny (edges) - prism",
    "Canny (edges) - nipy_spectral",
    "Mask (> 150, noisy)",
    "Mask (> 150, less noisy)",
]
TUTORIAL_CMAPS = ["gray", "gray", "gray", "gray", "hot", "prism", "nipy_spectral", "gray", "gray"]
LAPLACE_ONLY = {"filters": {"enabled": ["laplace_gaussian"]}}


def write_images(folder: Path) -> dict[str, np.ndarray]:
    """Patient 11 follow-ups 0..4 (0 in a subfolder, so it is stored last), a corrupt
    follow-up 5, and patient 12 follow-ups 0..1.

    Store order: 11_001..11_004 (0..3), 11_005 failed (4), 12_000 (5), 12_001 (6), 11_000 (7).
    """
    images = {}
    for follow_up in range(5):
        name = f"00000011_{follow_up:03d}"
        sub = folder / "late" if follow_up == 0 else folder
        images[name] = structured_image(follow_up)
        write_png(sub / f"{name}.png", images[name])
    for follow_up in range(2):
        name = f"00000012_{follow_up:03d}"
        images[name] = structured_image(10 + follow_up)
        write_png(folder / f"{name}.png", images[name])
    good = (folder / "00000011_004.png").read_bytes()
    (folder / "00000011_005.png").write_bytes(good[: len(good) // 2])
    return images


def make_store(folder: Path, out: Path, config: dict | None = None) -> dict[str, np.ndarray]:
    images = write_images(folder)
    summary = xray_scale.run([folder], out, workers=1, config=config)
    assert (summary.ok, summary.failed) == (7, 1)
    return images


@pytest.fixture(scope="module")
def drawn_store(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("render")
    images = make_store(root / "images", root / "s.zarr")
    return root / "s.zarr", images


@pytest.fixture(scope="module")
def laplace_store(tmp_path_factory) -> Path:
    """A store that kept only laplace_gaussian (and both masks)."""
    root = tmp_path_factory.mktemp("render-laplace")
    make_store(root / "images", root / "s.zarr", config=LAPLACE_ONLY)
    return root / "s.zarr"


def panel_regions(figure, png: np.ndarray) -> list[np.ndarray]:
    """The pixels of each axes of a saved figure (RGB), from its window extent."""
    height = png.shape[0]
    regions = []
    for ax in figure.axes:
        x0, y0, x1, y1 = np.round(ax.get_window_extent().extents).astype(int)
        regions.append(png[height - y1 : height - y0, x0:x1, :3])
    return regions


# -- selection ---------------------------------------------------------------------------------


def test_default_selection_is_the_first_ok_images(drawn_store):
    path, _ = drawn_store
    assert select_images(path) == Selection([0, 1, 2, 3], [])


def test_selection_by_names_and_patient_excludes_failed_images(drawn_store):
    path, _ = drawn_store
    group = open_store(path)
    chosen = select_images(group, names=["00000011_002", "images/00000011_005.png"])
    assert chosen.indices == [1]
    assert [i for i, _ in chosen.excluded] == [4]
    assert chosen.excluded[0][1].startswith("failed: truncated PNG")
    for patient in ("11", 11, "00000011"):
        by_patient = select_images(group, patient=patient)
        assert by_patient.indices == [0, 1, 2, 3, 7]
        assert [i for i, _ in by_patient.excluded] == [4]
    union = select_images(group, names=["00000012_001"], patient="11")
    assert union.indices == [0, 1, 2, 3, 6, 7]


def test_sample_is_reproducible_and_only_ok(drawn_store):
    path, _ = drawn_store
    group = open_store(path)
    draws = [select_images(group, query=RowQuery(sample=3, seed=seed)) for seed in range(6)]
    assert select_images(group, query=RowQuery(sample=3, seed=0)) == draws[0]
    for draw in draws:
        assert len(draw.indices) == 3 and 4 not in draw.indices
        assert draw.indices == sorted(draw.indices)
        assert [i for i, _ in draw.excluded] == [4]
    assert len({tuple(d.indices) for d in draws}) > 1
    assert select_images(group, patient="12", query=RowQuery(sample=5)).indices == [5, 6]


def test_a_sample_below_one_is_refused_when_the_query_is_made():
    with pytest.raises(SelectionError, match="sample must be an integer >= 1, got 0"):
        RowQuery(sample=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"names": ["00000099_000"]}, "unknown image name '00000099_000'"),
        ({"names": ["a", "00000011_001", "b"]}, "unknown image names 'a', 'b'"),
        ({"patient": "99"}, "patient '99' has no images in the store (patients in the store: 11"),
    ],
)
def test_selection_errors_are_one_clear_line(drawn_store, options, message):
    path, _ = drawn_store
    with pytest.raises(SelectionError) as raised:
        select_images(path, **options)
    assert isinstance(raised.value, ValueError)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_missing_and_empty_stores(tmp_path):
    with pytest.raises(StoreError, match="is not a zarr store"):
        select_images(tmp_path / "missing.zarr")
    with pytest.raises(StoreError, match="is not a zarr store"):
        render_store(tmp_path / "missing.zarr", tmp_path / "out")
    empty = tmp_path / "empty.zarr"
    create_store(empty, paths=[], shape=(8, 8), map_dtypes={}, config=Config())
    with pytest.raises(SelectionError, match="the store holds no images"):
        select_images(empty)
    pending = tmp_path / "pending.zarr"
    paths = [str(tmp_path / f"00000011_00{k}.png") for k in range(2)]
    create_store(pending, paths=paths, shape=(8, 8), map_dtypes={}, config=Config())
    chosen = select_images(pending)
    assert chosen.indices == [] and [i for i, _ in chosen.excluded] == [0, 1]
    assert chosen.excluded[0][1].startswith("pending: not processed yet")


# -- comparison grid ---------------------------------------------------------------------------


def test_grid_is_the_tutorials_figure_and_no_panel_is_blank(drawn_store, tmp_path):
    path, images = drawn_store
    figure, notes = grid_figure(path, 0, dpi=40)
    assert notes == []
    assert len(figure.axes) == 9
    assert [ax.get_title() for ax in figure.axes] == TUTORIAL_TITLES
    assert [ax.images[0].get_cmap().name for ax in figure.axes] == TUTORIAL_CMAPS
    assert all(not ax.axison for ax in figure.axes)
    assert figure.get_suptitle() == "00000011_001 (patient 11, follow-up 1)"
    np.testing.assert_array_equal(figure.axes[0].images[0].get_array(), images["00000011_001"])

    (written,) = save_figure(figure, tmp_path / "grid")
    assert written == tmp_path / "grid.png"
    png = iio.imread(written)
    width, height = figure.get_size_inches() * 40
    assert png.shape[:2] == (round(height), round(width))
    for title, region in zip(TUTORIAL_TITLES, panel_regions(figure, png), strict=True):
        assert min(region.shape[:2]) > 50, title
        assert region.reshape(-1, 3).std(axis=0).max() > 10, f"panel {title!r} is blank"


def test_grid_size_layout_panels_and_formats_are_configurable(drawn_store, tmp_path):
    path, _ = drawn_store
    panels = [
        ("original", "gray", "Original"),
        ("sobel", "CMRmap", "Sobel (edges) - CMRmap"),
        ("tutorial_canny", "terrain", "Canny (edges) - terrain"),
    ]
    figure, _ = grid_figure(path, 1, panels=panels, ncols=3, figsize=(6, 2.5), dpi=50)
    assert [ax.images[0].get_cmap().name for ax in figure.axes] == ["gray", "CMRmap", "terrain"]
    paths = save_figure(figure, tmp_path / "row", ["png", "svg", "pdf"])
    assert [p.suffix for p in paths] == [".png", ".svg", ".pdf"]
    assert iio.imread(paths[0]).shape[:2] == (125, 300)
    assert paths[1].read_text().lstrip().startswith("<?xml")
    assert paths[2].read_bytes().startswith(b"%PDF")
    with pytest.raises(ValueError, match="is not a matplotlib colormap"):
        grid_figure(path, 1, panels=[("sobel", "no-such-map", "x")])
    with pytest.raises(ValueError, match="panel source must be one of original"):
        grid_figure(path, 1, panels=[("blur", "gray", "x")])
    with pytest.raises(ValueError, match="formats must be some of png, svg, pdf"):
        save_figure(figure, tmp_path / "x", ["jpg"])
    with pytest.raises(ValueError, match="is failed: truncated PNG"):
        grid_figure(path, 4)


def test_filters_the_store_did_not_keep_are_recomputed(laplace_store):
    figure, notes = grid_figure(laplace_store, 0, dpi=30)
    assert notes == []
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == [
        "Original",
        "Laplace-Gaussian (edges)",
        "Gaussian gradient (edges) (recomputed)",
        "Sobel (edges) - grayscale (recomputed)",
        "Sobel (edges) - hot (recomputed)",
        "Canny (edges) - prism (recomputed)",
        "Canny (edges) - nipy_spectral (recomputed)",
        "Mask (> 150, noisy)",
        "Mask (> 150, less noisy)",
    ]
    original = figure.axes[0].images[0].get_array()
    np.testing.assert_array_equal(figure.axes[3].images[0].get_array(), sobel(original))


@pytest.mark.slow
def test_a_missing_source_file_leaves_its_panels_out_with_a_note(tmp_path):
    make_store(tmp_path / "images", tmp_path / "s.zarr", config=LAPLACE_ONLY)
    (tmp_path / "images" / "00000011_002.png").unlink()
    figure, notes = grid_figure(tmp_path / "s.zarr", 1, dpi=30)
    assert [ax.get_title() for ax in figure.axes] == [
        "Laplace-Gaussian (edges)",
        "Mask (> 150, noisy)",
        "Mask (> 150, less noisy)",
    ]
    assert len(notes) == 1
    assert notes[0].startswith("left out Original, Gaussian gradient (edges), Sobel")
    assert "00000011_002.png: file not found" in notes[0]
    assert " ".join(notes[0].split()) in " ".join(figure.get_suptitle().split())

    report = render_store(tmp_path / "s.zarr", tmp_path / "out", patient="11", dpi=30)
    assert len(report.grids) == 5 and len(report.gifs) == 1
    assert any(n.startswith("00000011_002: left out Original") for n in report.notes)
    assert any("GIF of patient 11: left out 00000011_002" in n for n in report.notes)
    assert Image.open(report.gifs[0]).n_frames == 4


def test_a_source_changed_since_the_run_is_noted_and_a_padded_one_is_not(tmp_path):
    config = {"store": {"full_resolution": False, "preview_size": 32}, "input": {"size": [64, 64]}}
    config["input"]["size_policy"] = "pad"
    images = make_store(tmp_path / "images", tmp_path / "s.zarr", config=config)
    write_png(tmp_path / "images" / "00000011_007.png", structured_image(7, shape=(40, 50)))
    xray_scale.run([tmp_path / "images"], tmp_path / "p.zarr", workers=1, config=config)
    padded = open_store(tmp_path / "p.zarr")
    index = list(read_index(padded, "path")).index(str(tmp_path / "images" / "00000011_007.png"))
    assert grid_figure(padded, index, dpi=30)[1] == []  # its stats leave out the padding: no alarm
    paths = list(read_index(open_store(tmp_path / "s.zarr"), "path"))
    index = paths.index(str(tmp_path / "images" / "00000011_002.png"))
    assert grid_figure(tmp_path / "s.zarr", index, dpi=30)[1] == []
    mirrored = images["00000011_002"][:, ::-1]  # the same values: mean and histogram unchanged
    write_png(tmp_path / "images" / "00000011_002.png", mirrored)
    figure, notes = grid_figure(tmp_path / "s.zarr", index, dpi=30)
    assert notes == ["source file of 00000011_002 changed since the run (checksum differs)"]
    gif = render_gif(tmp_path / "s.zarr", "11", tmp_path / "11.gif")
    assert "source file of 00000011_002 changed since the run (checksum differs)" in gif.notes
    zarr.open_group(tmp_path / "s.zarr", mode="r+").__delitem__("index/checksum")  # an old store
    assert grid_figure(tmp_path / "s.zarr", index, dpi=30)[1] == []


# -- GIF ---------------------------------------------------------------------------------------


def test_gif_has_one_labelled_frame_per_follow_up_in_order(drawn_store, tmp_path):
    path, images = drawn_store
    result = render_gif(path, "11", tmp_path / "gifs" / "p11.gif", duration_ms=250)
    names = [f"00000011_{k:03d}" for k in range(5)]
    assert result.labels == [f"{name}  follow-up {k}" for k, name in enumerate(names)]
    assert result.notes == []
    gif = Image.open(result.path)
    assert gif.n_frames == 5
    assert gif.info["duration"] == 250 and gif.info["loop"] == 0
    stored = list(images.values())
    bands = []
    for k, name in enumerate(names):
        gif.seek(k)
        frame = np.asarray(gif.convert("L"))
        left = (frame.shape[1] - 64) // 2
        content = frame[-64:, left : left + 64]
        np.testing.assert_array_equal(content, images[name])
        distances = [np.abs(content.astype(int) - other).mean() for other in stored]
        assert int(np.argmin(distances)) == list(images).index(name)
        bands.append(frame[: frame.shape[0] - 64])
        assert (bands[-1] > 200).sum() > 20, "the label band has no text"
    assert len({band.tobytes() for band in bands}) == 5, "two frames have the same label"


def test_gif_side_by_side_downscaled_and_too_few_frames(drawn_store, tmp_path):
    path, _ = drawn_store
    result = render_gif(
        path, 11, tmp_path / "beside.gif", beside="sobel", beside_cmap="hot", max_size=32
    )
    assert result.labels[0] == "00000011_000  follow-up 0   original | sobel"
    gif = Image.open(result.path)
    assert gif.n_frames == 5 and gif.info["duration"] == 1000
    frame = np.asarray(gif.convert("RGB"))
    left = (frame.shape[1] - 68) // 2
    right = frame[-32:, left + 36 : left + 68]
    assert (right[..., 0].astype(int) - right[..., 2]).mean() > 20, "the hot map is not red"
    alone = render_gif(path, "11", tmp_path / "one.gif", indices=[0])
    assert alone.path is None and not (tmp_path / "one.gif").exists()
    assert "a GIF needs 2" in alone.notes[0]
    with pytest.raises(ValueError, match="duration_ms must be a number > 0"):
        render_gif(path, "11", tmp_path / "x.gif", duration_ms=0)


# -- histogram, summaries, everything -----------------------------------------------------------


def test_histogram_comes_from_the_store(drawn_store):
    path, _ = drawn_store
    group = open_store(path)
    figure = histogram_figure(group, 2, dpi=40)
    (ax,) = figure.axes
    assert ax.get_title() == "Pixel intensity distribution"
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), group["stats/histogram"][2])
    assert ax.lines[1].get_xdata()[0] == 150.0


def test_failures_are_grouped_by_reason(drawn_store):
    path, _ = drawn_store
    figure = failures_figure(path)
    (ax,) = figure.axes
    assert [label.get_text() for label in ax.get_yticklabels()] == ["truncated PNG"]
    assert [bar.get_width() for bar in ax.patches] == [1]
    assert failure_reason("processing failed: ValueError: x") == "processing failed"
    assert failure_reason("x" * 80).endswith("...") and len(failure_reason("x" * 80)) == 48


@pytest.mark.slow
def test_render_store_writes_everything_and_reports_progress(drawn_store, tmp_path):
    path, _ = drawn_store
    calls = []
    report = render_store(
        path,
        tmp_path / "out",
        patient="11",
        formats=("png", "svg"),
        dpi=30,
        gif_ms=400,
        gif_max_size=48,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(k, 5) for k in range(1, 6)]
    assert report.selected == [0, 1, 2, 3, 7]
    assert [i for i, _ in report.excluded] == [4]
    assert report.notes[0].startswith("excluded 00000011_005: failed: truncated PNG")
    out = tmp_path / "out"
    assert {p.relative_to(out).as_posix() for p in report.grids if p.suffix == ".png"} == {
        f"grids/00000011_{k:03d}.png" for k in range(5)
    }
    assert len(report.histograms) == 10
    assert report.gifs == [out / "gifs" / "patient_11.gif"]
    assert Image.open(report.gifs[0]).info["duration"] == 400
    assert Image.open(report.gifs[0]).size[1] < 80
    assert sorted(p.name for p in report.summaries) == sorted(
        f"{n}.{f}" for n in ("intensity", "mask_fraction", "failures") for f in ("png", "svg")
    )
    for written in report.paths:
        assert written.is_file() and written.stat().st_size > 0
        if written.suffix in (".png", ".gif"):
            assert iio.imread(written, index=0).size > 0


# -- command line ------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_render_prints_the_written_paths(drawn_store, tmp_path, capsys):
    path, _ = drawn_store
    out = tmp_path / "figures"
    code = main(["render", str(path), "00000011_002", "00000012_000", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out.split()
    assert str(out / "grids" / "00000011_002.png") in printed
    assert str(out / "histograms" / "00000012_000.png") in printed
    assert all(Path(p).is_file() for p in printed)
    assert not (out / "gifs").exists()  # one image per patient: no GIF

    code = main(
        [
            "render",
            str(path),
            "-o",
            str(out),
            "--patient",
            "11",
            "--format",
            "png",
            "--format",
            "pdf",
            "--dpi",
            "30",
            "--gif-ms",
            "300",
            "-q",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert str(out / "gifs" / "patient_11.gif") in captured.out.split()
    assert (out / "grids" / "00000011_000.pdf").is_file()
    assert Image.open(out / "gifs" / "patient_11.gif").info["duration"] == 300
    assert main(["render", str(path), "-o", str(out), "--sample", "2", "--no-gif", "-q"]) == 0
    assert ".gif" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["{store}", "00000099_000"], "unknown image name '00000099_000'"),
        (["{store}", "--patient", "99"], "patient '99' has no images"),
        (["{tmp}/missing.zarr"], "is not a zarr store"),
        (["{store}", "--sample", "0"], "--sample"),
        (["{store}", "--format", "jpg"], "'jpg' is not one of"),
        (["{store}", "--panel", "sobel:no_such_map"], "'no_such_map' is not a matplotlib"),
        (["{store}", "--panel", "blur:gray"], "blur"),
        (["{store}", "--panel", "sobel"], "must be SOURCE:CMAP or SOURCE:CMAP:TITLE"),
    ],
)
def test_cli_render_errors_are_one_line(drawn_store, tmp_path, capsys, arguments, message):
    values = {"store": str(drawn_store[0]), "tmp": str(tmp_path)}
    argv = ["render", *(a.format(**values) for a in arguments), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("xray-scale: error: ") and message in error
    assert len(error.splitlines()) == 1 and "Traceback" not in error


@pytest.mark.slow
def test_cli_panels_sizes_and_gif_beside(drawn_store, tmp_path, capsys):
    path, _ = drawn_store
    out = tmp_path / "chosen"
    argv = ["render", str(path), "00000011_001", "--patient", "11", "--out", str(out), "-q"]
    argv += ["--panel", "original:gray", "--panel", "sobel:CMRmap:Sobel (edges) - CMRmap"]
    argv += ["--panel", "tutorial_canny:terrain", "--grid-size", "6", "2.5", "--dpi", "40"]
    argv += ["--gif-beside", "sobel"]
    assert main(argv) == 0, capsys.readouterr().err
    grid = iio.imread(out / "grids" / "00000011_001.png")
    assert grid.shape[:2] == (100, 240)  # 2.5 x 6 inches at 40 dpi
    plain = tmp_path / "plain"
    assert main(["render", str(path), "--patient", "11", "--out", str(plain), "-q"]) == 0
    beside = Image.open(out / "gifs" / "patient_11.gif")
    alone = Image.open(plain / "gifs" / "patient_11.gif")
    assert beside.n_frames == alone.n_frames
    beside_frame = np.asarray(beside.convert("L"))
    alone_frame = np.asarray(alone.convert("L"))
    # the original with the Sobel map beside it: 64 + 4 + 64 pixels of content per row
    assert (beside_frame[-1] > 0).sum() > (alone_frame[-1] > 0).sum()


def test_default_panels_are_the_tutorials():
    assert [p.title.replace("{threshold}", "150") for p in DEFAULT_PANELS] == TUTORIAL_TITLES
    assert [p.cmap for p in DEFAULT_PANELS] == TUTORIAL_CMAPS


def test_a_recomputed_map_is_what_the_run_would_have_stored(tmp_path):
    """Recomputation goes through the run's own map dispatch: its storage dtype and engine."""
    config = {"filters": {"enabled": ["laplace_gaussian"]}, "store": {"filter_dtype": "uint8"}}
    make_store(tmp_path / "images", tmp_path / "s.zarr", config=config)
    figure, _ = grid_figure(tmp_path / "s.zarr", 0, dpi=30)
    assert figure.axes[3].get_title() == "Sobel (edges) - grayscale (recomputed)"
    original = np.asarray(figure.axes[0].images[0].get_array())
    engine = zarr.open_group(tmp_path / "s.zarr", mode="r").attrs["xray_scale"]["engine"]
    expected = map_function("filters/sobel", load_config(config), engine=engine)(original)
    shown = np.asarray(figure.axes[3].images[0].get_array())
    assert expected.dtype == np.uint8
    np.testing.assert_array_equal(shown, expected)
