"""pipeline + store: a real run into a real zarr store, read back value by value."""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr
from conftest import (
    make_bad_inputs,
    make_mode_inputs,
    png_with_header,
    structured_image,
    write_png,
)

import xray_scale
from xray_scale.analysis.image import analyse_image, map_function
from xray_scale.analysis.stats import STAT_FIELDS, histogram256
from xray_scale.config import load_config
from xray_scale.engines.registry import resolve_engine
from xray_scale.errors import ConfigError, StoreError
from xray_scale.filters.compat import tutorial_histogram
from xray_scale.io.decode import decode_image
from xray_scale.store.access import pending_batches
from xray_scale.store.encoding import read_index, stored_values


def check_image_against_direct_analysis(group, index, path, config, compat=None):
    attrs = group.attrs["xray_scale"]
    image = decode_image(path, shape=tuple(attrs["image_shape"]), dtype=attrs["pixel_dtype"])
    expected = analyse_image(image.pixels, config, compat=compat, engine=attrs["engine"])
    for name, values in expected.maps.items():
        stored = group[name][index]
        assert stored.dtype == values.dtype, name
        assert np.array_equal(stored, values), (name, index)
    for field in STAT_FIELDS:
        assert group[f"stats/{field}"][index] == expected.stats[field], field
    assert np.array_equal(group["stats/histogram"][index], expected.histogram)


def test_run_writes_every_output_value_by_value(phantom_folder, tmp_path):
    summary = xray_scale.run([phantom_folder], tmp_path / "out.zarr", workers=2, batch_size=5)
    assert (summary.total, summary.ok, summary.failed, summary.pending) == (12, 12, 0, 0)
    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    paths = read_index(group, "path")
    assert list(paths) == sorted(str(p) for p in phantom_folder.glob("*.png"))
    for index, path in enumerate(paths):
        check_image_against_direct_analysis(group, index, path, load_config())
    assert list(read_index(group, "status")) == ["ok"] * 12
    assert list(read_index(group, "patient_id")) == ["21"] * 6 + ["22"] * 6
    assert list(group["index/follow_up"][:]) == list(range(6)) * 2
    assert list(read_index(group, "mode")) == ["L"] * 12
    assert list(group["index/bit_depth"][:]) == [8] * 12
    assert list(read_index(group, "error")) == [""] * 12


def test_store_layout_shards_are_batches(phantom_folder, tmp_path):
    xray_scale.run([phantom_folder], tmp_path / "out.zarr", workers=1, batch_size=5)
    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    expected = {
        "filters/laplace_gaussian": "float32",
        "filters/gaussian_gradient_magnitude": "float32",
        "filters/sobel": "float32",
        "filters/tutorial_canny": "float32",
        "masks/mask_values": "uint8",
        "masks/mask_binary": "bool",
    }
    for name, dtype in expected.items():
        array = group[name]
        assert (array.shape, array.chunks, array.shards) == ((12, 64, 64), (1, 64, 64), (5, 64, 64))
        assert array.dtype == dtype
        assert array.metadata.dimension_names == ("image", "y", "x")
    assert group["stats/histogram"].shape == (12, 256)
    assert group["stats/histogram"][:].sum(axis=1).tolist() == [64 * 64] * 12
    attrs = group.attrs["xray_scale"]
    assert attrs["batch_size"] == 5 and attrs["compat"] is None
    assert attrs["engine"] == resolve_engine("auto")
    assert attrs["config"] == load_config().to_dict() | {"run": {"batch_size": 5}}
    assert {"numpy", "scipy", "zarr", "dask", "python"} <= set(attrs["libraries"])
    assert attrs["inputs"] == [str(phantom_folder)]
    assert len(attrs["runs"]) == 1 and attrs["runs"][0]["processed"] == 12
    run = attrs["runs"][0]  # the end-of-run phase (QC over the whole run) is timed on its own
    assert 0 < run["end_of_run_s"] <= run["elapsed_s"]


def test_all_zero_shards_are_written_without_a_scan_for_emptiness(phantom_folder, tmp_path):
    # zarr skips chunks equal to the fill value unless told not to, after scanning each
    config = load_config({"masks": {"threshold": 255}})  # no 8-bit pixel is above it
    store = tmp_path / "out.zarr"
    xray_scale.run([phantom_folder], store, config=config, workers=1, batch_size=5)
    shards = store / "masks" / "mask_binary" / "c"
    assert sorted(p.name for p in shards.iterdir()) == ["0", "1", "2"]
    assert not zarr.open_group(store, mode="r")["masks/mask_binary"][:].any()


def test_bad_inputs_fail_alone_and_the_rest_of_their_batch_is_processed(tmp_path):
    folder = tmp_path / "mixed dir ü"
    expected_errors = make_bad_inputs(folder)
    modes = make_mode_inputs(folder)
    del modes["gray16.png"]  # 16-bit, in a run whose first image is 8-bit: it must fail
    expected_errors["gray16.png"] = "16-bit image in a 8-bit run: its values do not fit"
    good = {f"good {k} é.png": structured_image(k) for k in range(5)}
    for name, image in good.items():
        write_png(folder / name, image)
    summary = xray_scale.run([folder], tmp_path / "out.zarr", workers=2, batch_size=4)
    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    names = [os.path.basename(p) for p in read_index(group, "path")]
    status = dict(zip(names, read_index(group, "status"), strict=True))
    errors = dict(zip(names, read_index(group, "error"), strict=True))
    for name, fragment in expected_errors.items():
        assert status[name] == "failed" and fragment in errors[name], (name, errors[name])
    for name in [*good, *modes]:
        assert status[name] == "ok", (name, errors[name])
        assert errors[name] == ""
    config = load_config()
    for name in good:
        index = names.index(name)
        check_image_against_direct_analysis(group, index, str(folder / name), config)
        assert np.array_equal(
            group["masks/mask_values"][index], np.where(good[name] > 150, good[name], 0)
        )
    for name, (mode, bits, _) in modes.items():
        index = names.index(name)
        assert (read_index(group, "mode", index), group["index/bit_depth"][index]) == (mode, bits)
    failed = [i for i, n in enumerate(names) if n in expected_errors]
    assert np.isnan(group["stats/mean"][failed]).all()
    assert not group["filters/sobel"].get_orthogonal_selection((failed,)).any()
    assert summary.failed == len(expected_errors)
    assert summary.ok == len(good) + len(modes)
    assert {os.path.basename(p) for p, _ in summary.failures} == set(expected_errors)


def test_sixteen_bit_runs_keep_values(tmp_path):
    folder = tmp_path / "wide"
    images = [structured_image(k, dtype=np.uint16) for k in range(3)]
    for k, image in enumerate(images):
        write_png(folder / f"{k}.png", image)
    config = {"masks": {"threshold": 40000}}
    xray_scale.run([folder], tmp_path / "out.zarr", workers=1, config=config)
    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    assert group["masks/mask_values"].dtype == np.uint16
    assert group.attrs["xray_scale"]["pixel_dtype"] == "uint16"
    for k, image in enumerate(images):
        assert np.array_equal(group["masks/mask_values"][k], np.where(image > 40000, image, 0))
        assert group["stats/max"][k] == image.max() and group["stats/median"][k] == np.median(image)


def test_a_sixteen_bit_run_with_a_threshold_of_the_8_bit_scale_is_warned(tmp_path, caplog):
    folder = tmp_path / "wide"
    for k in range(2):
        write_png(folder / f"{k}.png", structured_image(k, dtype=np.uint16))
    write_png(tmp_path / "narrow" / "0.png", structured_image(0))
    runs = {  # images, config, the warnings the run gives
        "default": (folder, {}, 1),
        "16-bit threshold": (folder, {"masks": {"threshold": 38550}}, 0),
        "no masks": (folder, {"masks": {"enabled": []}}, 0),
        "8-bit images": (tmp_path / "narrow", {}, 0),
    }
    for name, (images, config, count) in runs.items():
        caplog.clear()
        with caplog.at_level("WARNING", logger="xray_scale.runner.prepare"):
            xray_scale.run([images], tmp_path / f"{name}.zarr", workers=1, config=config)
        warnings = [r.getMessage() for r in caplog.records if "masks.threshold" in r.getMessage()]
        assert len(warnings) == count, name
        assert all("16-bit" in w and "150 x 257 = 38550" in w for w in warnings)


@pytest.mark.parametrize("compat", [None, "tutorial"])
def test_a_padded_image_has_the_statistics_of_the_image_itself(tmp_path, compat):
    small = structured_image(2, shape=(40, 48))
    small[:3, :5] = 0  # its own zeros count, the padding's do not
    folder = tmp_path / "mixed sizes"
    paths = [
        write_png(folder / "a.png", structured_image(1)),
        write_png(folder / "b_small.png", small),
        write_png(folder / "c.png", structured_image(3)),
    ]
    overrides = {"input": {"size_policy": "pad"}, "masks": {"threshold": 120}}
    summary = xray_scale.run(
        [folder], tmp_path / "out.zarr", config=overrides, compat=compat, workers=1, batch_size=4
    )
    assert (summary.ok, summary.failed) == (3, 0)
    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    config = load_config(overrides)
    for index in (0, 2):  # the images of the run's size are unchanged
        check_image_against_direct_analysis(group, index, paths[index], config, compat)
    expected = {
        "min": small.min(),
        "max": small.max(),
        "mean": np.mean(small),
        "std": np.std(small),
        "median": np.median(small),
        "p01": np.percentile(small, 1),
        "p99": np.percentile(small, 99),
        "mask_fraction": np.mean(small > 120),
    }
    for field, value in expected.items():
        assert group[f"stats/{field}"][1] == pytest.approx(value, rel=1e-12), field
    histogram = tutorial_histogram(small) if compat else histogram256(small)
    assert np.array_equal(group["stats/histogram"][1], histogram)
    padded = decode_image(paths[1], shape=(64, 64), size_policy="pad").pixels
    maps = analyse_image(padded, config, compat=compat, engine=group.attrs["xray_scale"]["engine"])
    for name, values in maps.maps.items():  # the maps stay those of the padded image
        assert np.array_equal(group[name][1], values), name


def test_storage_dtypes_and_optional_canny(phantom_folder, tmp_path):
    config = {
        "filters": {"enabled": ["sobel", "canny"]},
        "masks": {"enabled": ["mask_binary"]},
        "store": {"filter_dtype": "uint8", "compressor": "zstd"},
    }
    xray_scale.run([phantom_folder], tmp_path / "out.zarr", workers=2, config=config, limit=3)
    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    assert sorted(group["filters"].array_keys()) == ["canny", "sobel"]
    assert list(group["masks"].array_keys()) == ["mask_binary"]
    assert group["filters/sobel"].dtype == np.uint8 and group["filters/canny"].dtype == bool
    assert group["filters/sobel"][0].max() == 255 and group["filters/sobel"][0].min() == 0
    assert group["filters/canny"][:].any()
    assert group["index/path"].shape[0] == 3
    check_image_against_direct_analysis(
        group, 2, str(read_index(group, "path", 2)), load_config(config)
    )


@pytest.mark.parametrize("compressor", ["none", "zstd", "blosc-zstd", "blosc-lz4"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_every_compressor_and_dtype_reads_back_the_computed_maps(
    phantom_folder, tmp_path, compressor, dtype
):
    config = {"filters": {"enabled": ["laplace_gaussian"]}, "masks": {"enabled": []}}
    config["store"] = {"filter_dtype": dtype, "compressor": compressor, "compression_level": 1}
    xray_scale.run([phantom_folder], tmp_path / "out.zarr", workers=2, config=config, limit=5)
    array = zarr.open_group(tmp_path / "out.zarr", mode="r")["filters/laplace_gaussian"]
    assert array.dtype == np.dtype(dtype)
    expected = {"none": (), "zstd": ("zstd",), "blosc-zstd": ("blosc",), "blosc-lz4": ("blosc",)}
    assert tuple(c.to_dict()["name"] for c in array.compressors) == expected[compressor]
    engine = zarr.open_group(tmp_path / "out.zarr").attrs["xray_scale"]["engine"]
    function = map_function("filters/laplace_gaussian", load_config(config), engine=engine)
    for k, path in enumerate(sorted(phantom_folder.glob("*.png"))[:5]):
        pixels = decode_image(path, shape=(64, 64)).pixels
        assert np.array_equal(array[k], function(pixels)), k  # lossless: the stored dtype's values


def test_resume_redoes_only_unfinished_batches(phantom_folder, tmp_path):
    out = tmp_path / "out.zarr"
    xray_scale.run([phantom_folder], out, workers=2, batch_size=4)
    clean = {name: zarr.open_group(out)[name][:] for name in ["filters/sobel", "stats/mean"]}
    group = zarr.open_group(out, mode="r+")
    group["index/status"][4:8] = stored_values(group["index/status"], ["pending"] * 4)
    group["filters/sobel"][4:8] = np.zeros((4, 64, 64), np.float32)
    assert pending_batches(group) == [4]
    reports = []
    summary = xray_scale.run(
        [phantom_folder], out, workers=2, batch_size=4, on_batch=reports.append
    )
    assert [(r.start, r.size) for r in reports] == [(4, 4)]
    assert summary.processed == 4 and summary.ok == 12
    group = zarr.open_group(out, mode="r")
    assert np.array_equal(group["filters/sobel"][:], clean["filters/sobel"])
    assert np.array_equal(group["stats/mean"][:], clean["stats/mean"])
    assert len(group.attrs["xray_scale"]["runs"]) == 2


def test_a_store_from_other_inputs_or_config_is_refused(phantom_folder, tmp_path):
    out = tmp_path / "out.zarr"
    xray_scale.run([phantom_folder], out, workers=1, limit=4)
    with pytest.raises(StoreError, match=r"another store layout \(4 inputs in the store, 5 now\)"):
        xray_scale.run([phantom_folder], out, workers=1, limit=5)
    with pytest.raises(StoreError, match=r"\(config run.batch_size 8 in the store, 2 now\)"):
        xray_scale.run([phantom_folder], out, workers=1, limit=4, batch_size=2)
    with pytest.raises(StoreError, match=r"\(engine opencv in the store, scipy now\); pass"):
        xray_scale.run([phantom_folder], out, workers=1, limit=4, engine="scipy")
    summary = xray_scale.run([phantom_folder], out, workers=1, limit=5, overwrite=True)
    assert summary.total == 5


def test_a_folder_that_is_not_a_store_is_refused(phantom_folder, tmp_path):
    (tmp_path / "out.zarr").mkdir()
    with pytest.raises(StoreError, match="is not a zarr store"):
        xray_scale.run([phantom_folder], tmp_path / "out.zarr")


def test_bad_arguments_fail_before_any_work(phantom_folder, tmp_path):
    out = tmp_path / "out.zarr"
    with pytest.raises(ConfigError, match="batch size must be an integer >= 1"):
        xray_scale.run([phantom_folder], out, batch_size=0)
    with pytest.raises(ConfigError, match="unknown key filters.blur"):
        xray_scale.run([phantom_folder], out, config={"filters": {"blur": {}}})
    with pytest.raises(ValueError, match="compat must be None or one of"):
        xray_scale.run([phantom_folder], out, compat="numpy")
    assert not out.exists()


def test_no_readable_image_is_a_clear_error(tmp_path):
    make_bad_inputs(tmp_path / "bad")
    for name in ["small.png", "rgb16.png", "truncated.png", "bad_crc.png"]:  # sound headers
        (tmp_path / "bad" / name).unlink()
    with pytest.raises(xray_scale.InputError, match="usable PNG or JPEG or DICOM header"):
        xray_scale.run([tmp_path / "bad"], tmp_path / "out.zarr")


def test_phantom_source_runs_without_files(tmp_path):
    from xray_scale.io.phantoms import phantom

    summary = xray_scale.run(["synth:10x96"], tmp_path / "out.zarr", workers=2, batch_size=4)
    assert summary.ok == 10
    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    assert group.attrs["xray_scale"]["inputs"] == ["synth:10x96"]
    assert read_index(group, "path", 9) == "synth:96/90000002_000.png"
    expected = phantom(90000002, 0, shape=(96, 96))
    assert np.array_equal(group["masks/mask_values"][9], np.where(expected > 150, expected, 0))
    check_image_against_direct_analysis(group, 9, "synth:96/90000002_000.png", load_config())


def test_an_image_failing_inside_a_filter_fails_alone_and_leaves_no_partial_maps(
    phantom_folder, tmp_path, monkeypatch
):
    """Fault injection: the scipy sobel raises for one image (by its content)."""
    from xray_scale.engines.registry import engine_filters

    victim = structured_image(5)  # 00000021_005.png
    real_sobel = engine_filters("scipy")["sobel"]

    def sobel_failing_on_victim(image):
        if np.array_equal(image, victim):
            raise FloatingPointError("injected failure")
        return real_sobel(image)

    monkeypatch.setitem(engine_filters("scipy"), "sobel", sobel_failing_on_victim)
    out = tmp_path / "out.zarr"
    config = {"store": {"preview_size": 16}}
    summary = xray_scale.run(
        [phantom_folder], out, workers=1, batch_size=4, engine="scipy", config=config
    )
    assert summary.failed == 1 and summary.ok == 11
    group = zarr.open_group(out, mode="r")
    assert read_index(group, "status", 5) == "failed"
    assert read_index(group, "error", 5) == (
        "processing failed in filters/sobel: FloatingPointError: injected failure"
    )
    for name in [
        "filters/laplace_gaussian",
        "filters/gaussian_gradient_magnitude",
        "filters/sobel",
    ]:
        assert not group[name][5].any(), name  # written before the failure, then erased
        assert group[name][4].any() and group[name][6].any(), name  # its batch mates are kept
    assert not group["previews"][5].any()  # no preview of a failed image, not even the original
    assert group["previews"][4].any(axis=(1, 2)).all()  # its batch mate: every preview kept
    assert np.isnan(group["stats/mean"][5]) and not group["stats/histogram"][5].any()


def test_previews_without_full_resolution_maps(phantom_folder, tmp_path):
    from xray_scale.analysis.previews import to_preview

    config = {"store": {"full_resolution": False, "preview_size": 32}, "run": {"batch_size": 5}}
    make_bad_inputs(phantom_folder / "bad")
    summary = xray_scale.run([phantom_folder], tmp_path / "out.zarr", config=config, workers=2)
    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    assert "filters" not in group and "masks" not in group
    previews = group["previews"]
    maps = previews.attrs["maps"]
    assert maps == [
        "original",
        "laplace_gaussian",
        "gaussian_gradient_magnitude",
        "sobel",
        "tutorial_canny",
        "mask_values",
        "mask_binary",
    ]
    assert previews.shape == (21, 7, 32, 32) and previews.dtype == np.uint8
    assert previews.chunks == (5, 7, 32, 32) and previews.shards is None  # one write per batch
    paths = list(read_index(group, "path"))
    status = read_index(group, "status")
    loaded = load_config(config)
    engine = group.attrs["xray_scale"]["engine"]
    for index, path in enumerate(paths):
        if status[index] != "ok":
            assert not previews[index].any()  # failed: nothing to browse
            continue
        pixels = decode_image(path, shape=(64, 64)).pixels
        assert np.array_equal(previews[index, 0], to_preview(pixels, (32, 32)))
        for m, name in enumerate(maps[1:], start=1):
            kind = "masks" if name.startswith("mask") else "filters"
            image_map = map_function(f"{kind}/{name}", loaded, engine=engine)(pixels)
            assert np.array_equal(previews[index, m], to_preview(image_map, (32, 32))), name
    assert summary.ok == 12 and np.isfinite(group["stats/median"][:12]).all()


def test_statistics_only_run_computes_no_maps(phantom_folder, tmp_path):
    config = {"store": {"full_resolution": False}}
    summary = xray_scale.run([phantom_folder], tmp_path / "out.zarr", config=config, workers=1)
    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    assert summary.ok == 12 and sorted(group.group_keys()) == ["index", "qc", "stats"]
    assert group["stats/histogram"][:].sum() == 12 * 64 * 64


class _Result:
    """A task result that can be watched with a weak reference."""


def _make_result(_):
    return _Result()


def test_local_runs_never_hold_more_than_one_call_of_results(monkeypatch):
    """dask keeps every requested result until its call returns: calls are bounded."""
    import weakref

    from xray_scale.runner import execute

    graph = {("batch", k): (_make_result, k) for k in range(200)}

    def most_alive_during_run() -> int:
        handed, most = [], 0

        def on_record(result):
            nonlocal most
            handed.append(weakref.ref(result))
            most = max(most, sum(ref() is not None for ref in handed))

        execute.compute_locally(graph, "threads", 1, on_record)
        assert len(handed) == 200
        return most

    monkeypatch.setattr(execute, "BATCHES_PER_CALL", 1)  # calls of 64 batches (per worker)
    assert most_alive_during_run() <= 64 + 1
    monkeypatch.setattr(execute, "BATCHES_PER_CALL", 1000)  # one call: all 200 held
    assert most_alive_during_run() == 200


def test_an_odd_file_sorted_first_does_not_set_the_run_format(tmp_path):
    folder = tmp_path / "images"
    images = [structured_image(k) for k in range(4)]  # 64x64, 8-bit gray
    for k, image in enumerate(images):
        write_png(folder / f"1_{k}.png", image)
    (folder / "0_rgb16.png").write_bytes(png_with_header(64, 64, bit_depth=16, colour_type=2))
    write_png(folder / "0_small.png", structured_image(9)[:32, :32])
    summary = xray_scale.run([folder], tmp_path / "out.zarr", workers=1)
    group = zarr.open_group(tmp_path / "out.zarr", mode="r")
    assert group.attrs["xray_scale"]["pixel_dtype"] == "uint8"
    assert group.attrs["xray_scale"]["image_shape"] == [64, 64]
    assert {os.path.basename(p) for p, _ in summary.failures} == {"0_rgb16.png", "0_small.png"}
    for k, image in enumerate(images):
        assert np.array_equal(group["stats/histogram"][2 + k], histogram256(image))


def test_the_run_format_is_found_past_many_unusable_inputs(tmp_path):
    images = [structured_image(k) for k in range(3)]
    for k, image in enumerate(images):
        write_png(tmp_path / f"b{k}.png", image)
    listing = tmp_path / "list.txt"  # 70 listed files absent (a partial download), sorted first
    absent = [f"a{k:03d}.png" for k in range(70)]
    listing.write_text("\n".join([*absent, "b0.png", "b1.png", "b2.png"]) + "\n")
    summary = xray_scale.run([listing], tmp_path / "out.zarr", workers=1)
    assert (summary.ok, summary.failed) == (3, 70)
