"""input.size_policy = "resize" (xray_scale/io/resize.py): images of any size in one run."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from conftest import structured_image, write_png

import xray_scale
from xray_scale.analysis.stats import histogram256
from xray_scale.config import load_config
from xray_scale.io.decode import decode_image, unpad
from xray_scale.io.resize import fit_size, resize_to_fit
from xray_scale.store.encoding import read_index


@pytest.mark.parametrize(
    ("inner", "outer", "expected"),
    [
        ((2828, 2320), (1024, 1024), (1024, 840)),  # CheXpert-like portrait film
        ((2320, 2828), (1024, 1024), (840, 1024)),  # landscape
        ((3000, 3000), (1024, 1024), (1024, 1024)),
        ((100, 400), (64, 128), (32, 128)),  # the width limits
        ((5000, 1), (64, 64), (64, 1)),  # never 0 pixels wide
        ((32, 32), (64, 64), (64, 64)),  # smaller images are enlarged too
    ],
)
def test_fit_size_keeps_the_aspect_ratio_and_fills_the_limiting_side(inner, outer, expected):
    assert fit_size(inner, outer) == expected


def test_area_interpolation_by_a_whole_factor_is_the_block_mean():
    pixels = structured_image(4, shape=(128, 96), dtype=np.uint16) * 97  # 16-bit values
    shrunk = resize_to_fit(pixels, (32, 32))
    assert shrunk.shape == (32, 24) and shrunk.dtype == np.uint16
    blocks = pixels.astype(np.int64).reshape(32, 4, 24, 4).mean(axis=(1, 3))
    assert np.abs(shrunk - blocks).max() <= 0.5  # the mean of 16 pixels, rounded


def test_decode_resizes_pads_and_records_the_original_size(tmp_path):
    film = structured_image(5, shape=(200, 150))
    path = write_png(tmp_path / "film.png", film)
    assert "input.size_policy = 'resize'" in decode_image(path, shape=(64, 64)).error
    image = decode_image(path, shape=(64, 64), size_policy="resize")
    assert image.ok and image.pixels.shape == (64, 64)
    assert image.original_size == (200, 150) and image.padded_from == (64, 48)
    assert np.array_equal(unpad(image.pixels, image), resize_to_fit(film, (64, 64)))
    assert not image.pixels[:, :8].any() and not image.pixels[:, -8:].any()  # the padding
    same = decode_image(
        write_png(tmp_path / "same.png", film[:64, :64]), shape=(64, 64), size_policy="resize"
    )
    assert same.padded_from is None and np.array_equal(same.pixels, film[:64, :64])


def test_a_run_of_mixed_sizes_stores_statistics_of_the_resized_image_and_each_size(tmp_path):
    folder = tmp_path / "any size"
    sizes = [(64, 64), (200, 150), (90, 300), (40, 40)]
    films = [structured_image(k + 1, shape=size) for k, size in enumerate(sizes)]
    paths = [write_png(folder / f"{k}.png", film) for k, film in enumerate(films)]
    overrides = {"input": {"size": [64, 64], "size_policy": "resize"}}
    summary = xray_scale.run([folder], tmp_path / "out.zarr", config=overrides, workers=1)
    assert (summary.ok, summary.failed) == (4, 0)
    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    assert list(read_index(group, "path")) == [str(p) for p in paths]
    assert [int(h) for h in group["index/file_height"][:]] == [s[0] for s in sizes]
    assert [int(w) for w in group["index/file_width"][:]] == [s[1] for s in sizes]
    assert load_config(overrides).size_policy == "resize"
    for k, film in enumerate(films):  # statistics of what the filters saw, padding excluded
        own = resize_to_fit(film, (64, 64))
        assert np.array_equal(group["stats/histogram"][k], histogram256(own)), k
        assert group["stats/mean"][k] == pytest.approx(own.mean(), rel=1e-12)
        assert group["stats/mean"][k] == pytest.approx(film.mean(), abs=1.0)  # area keeps it


def test_a_run_without_resize_has_no_original_size_arrays(tmp_path):
    write_png(tmp_path / "in" / "a.png", structured_image(1))
    xray_scale.run([tmp_path / "in"], tmp_path / "out.zarr", workers=1)
    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    assert "index/file_height" not in group and "index/file_width" not in group
