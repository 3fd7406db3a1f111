"""benchmark: ``xray-scale bench`` runs every item on tiny phantoms and records it.

Nothing here asserts a speed: the machine is shared and noisy. The tests check
that every item is measured, recorded and printed, and that the dask-image trap
of design.md section 2 shows in the record.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REAL_SAMPLE

from xray_scale.bench.benchmark import (
    REAL_SAMPLE as BENCH_SAMPLE,
)
from xray_scale.bench.benchmark import (
    BenchConfig,
    format_table,
    prepare_images,
    run_bench,
)
from xray_scale.cli import main
from xray_scale.config import load_config
from xray_scale.io.phantoms import write_phantoms


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "source"
    write_phantoms(folder, patients=1, follow_ups=4, shape=(96, 96))
    return folder


@pytest.mark.slow
def test_every_item_is_measured_for_every_engine_and_config(source):
    configs = [
        BenchConfig("default", load_config(None)),
        BenchConfig(
            "previews", load_config({"store": {"full_resolution": False, "preview_size": 32}})
        ),
    ]
    lines = []
    result = run_bench(
        source=source,
        images=6,
        workers=2,
        configs=configs,
        engines=["scipy", "opencv"],
        dask_image_images=4,
        log=lines.append,
    )
    expected = {"tutorial", "dask-image", "decode"}
    for label in ("default", "previews"):
        expected.add(f"write {label}")
        for engine in ("scipy", "opencv"):
            expected |= {
                f"run {engine} {label}",
                f"compute {engine} {label}",
                f"decode+compute {engine} {label}",
                f"decode+bank {engine} {label}",
            }
        expected.add(f"run scipy {label} qc-off")  # QC off, side by side, first engine only
    assert set(result.rates) == expected
    assert (
        set(result.qc_time_ratio) == set(result.qc_cpu_ratio) == {"scipy default", "scipy previews"}
    )
    assert all(0 < r < 10 for r in [*result.qc_time_ratio.values(), *result.qc_cpu_ratio.values()])
    assert "qc_time_ratio" in result.record() and "qc_cpu_ratio" in result.record()
    assert [len(pairs) for pairs in result.qc_rounds.values()] == [2, 2]  # every round's pair
    assert result.qc_time_ratio["scipy default"] == np.median(
        [wall for wall, _ in result.qc_rounds["scipy default"]]
    )
    assert all(rate > 0 for rate in result.rates.values())
    assert set(result.efficiency) == {
        f"{e} {c}" for e in ("scipy", "opencv") for c in ("default", "previews")
    }
    for ratios in result.efficiency.values():
        assert set(ratios) == {
            "vs_slowest_stage",
            "vs_decode_compute",
            "vs_decode_bank",
            "vs_compute_then_write",
        }
        assert all(value > 0 for value in ratios.values())
    assert result.ratio("tutorial") == 1.0
    # 96 x 96 phantoms: four float32 maps of 36 kB each, plus two masks, all compressed
    assert 2 * 96 * 96 * 4 < result.bytes_per_image["default"] < 6 * 96 * 96 * 4
    assert 0 < result.bytes_per_image["previews"] < 7 * 32 * 32
    # one line per measurement after the header; tutorial and runs once per round
    assert len(lines) == 1 + 2 + len(expected) + 1 + 4 + 2
    assert all(len(result.rounds[f"run {e} default"]) == 2 for e in ("scipy", "opencv"))
    assert result.rates["tutorial"] == max(result.rounds["tutorial"])
    # The trap of design.md section 2: the stack's filters are not the per-image filters.
    differences = result.dask_image_differences
    assert differences["laplace_gaussian"]["relative_to_range"] > 0.5
    assert differences["ggm"]["relative_to_range"] > 0.5
    assert differences["sobel"]["relative_to_range"] > 0.01
    assert result.notes == ["dask-image ran on the first 4 of 6 images"]


def test_statistics_only_config_has_no_write_stage(source):
    stats_only = BenchConfig("stats", load_config({"store": {"full_resolution": False}}))
    result = run_bench(
        source=source,
        images=3,
        workers=1,
        configs=[stats_only],
        engines=["opencv"],
        dask_image_images=0,
        log=lambda line: None,
    )
    assert "write stats" not in result.rates and "dask-image" not in result.rates
    assert result.efficiency["opencv stats"]["vs_slowest_stage"] > 0


@pytest.mark.slow
def test_bench_command_prints_the_table_and_writes_the_record(source, tmp_path, capsys):
    record = tmp_path / "records" / "bench.json"
    code = main(
        [
            "bench",
            str(source),
            "--images",
            "3",
            "--workers",
            "1",
            "--engine",
            "opencv",
            "--tutorial-images",
            "2",
            "--dask-image-images",
            "2",
            "--record",
            str(record),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "pipeline efficiency, run / ceiling:" in printed
    assert "x the output's range" in printed and f"record: {record}" in printed
    data = json.loads(record.read_text())
    assert data["images"] == 3 and data["engines"] == ["opencv"] and data["workers"] == 1
    assert data["tutorial_images"] == 2
    assert "note: the tutorial loop ran on the first 2 images" in printed
    assert data["configs"]["default"] == load_config(None).to_dict()
    assert set(data["ratios_to_tutorial"]) == set(data["rates_img_s"])
    assert data["libraries"]["numpy"] == np.__version__


def test_bench_command_refuses_bad_engines_and_duplicate_config_names(source, tmp_path, capsys):
    assert main(["bench", str(source), "--engine", "cuda"]) == 2
    assert "--engine must be one of scipy, opencv, cupy; got 'cuda'" in capsys.readouterr().err
    one, two = tmp_path / "a" / "x.toml", tmp_path / "b" / "x.toml"
    for path in (one, two):
        path.parent.mkdir()
        path.write_text("")
    assert main(["bench", str(source), "--config", str(one), "--config", str(two)]) == 2
    assert "share the name" in capsys.readouterr().err


def test_prepare_images_repeats_the_source_and_refuses_an_empty_folder(source, tmp_path):
    paths = prepare_images(source, 10, tmp_path / "copies")
    assert len(paths) == 10 and paths[4].read_bytes() == paths[0].read_bytes()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no PNG or JPEG or DICOM files in"):
        prepare_images(tmp_path / "empty", 2, tmp_path / "more")


@pytest.mark.slow
def test_format_table_lists_every_item_with_its_ratio(source):
    result = run_bench(
        source=source,
        images=2,
        workers=1,
        engines=["opencv"],
        dask_image_images=0,
        log=lambda line: None,
    )
    table = format_table(result)
    for name in result.rates:
        assert name in table
    assert "1.00x" in table


def test_the_bench_looks_for_the_real_sample_where_the_tests_do():
    """Beside the repository (``../shared/data/chestxray8-sample``), wherever the module sits."""
    assert BENCH_SAMPLE == REAL_SAMPLE


@pytest.mark.cluster
@pytest.mark.slow
def test_a_scheduler_runs_beside_threads_and_its_ratio_is_printed(source):
    result = run_bench(
        source=source,
        images=8,
        workers=2,
        rounds=1,
        engines=["opencv"],
        dask_image_images=0,
        schedulers=["distributed"],
        log=lambda line: None,
    )
    assert {"run opencv default", "run opencv default distributed"} <= set(result.rates)
    ratios = result.schedulers["opencv default distributed"]
    assert ratios["vs_threads"] == pytest.approx(
        result.rates["run opencv default distributed"] / result.rates["run opencv default"]
    )
    assert ratios["vs_threads_processing"] > 0 and ratios["start_s"] > 0
    assert result.record()["schedulers"] == result.schedulers
    table = format_table(result)
    assert "schedulers, run / the threaded run" in table
    assert "opencv default distributed" in table.split("schedulers, run")[1]
