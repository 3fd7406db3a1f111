"""Smoke test of benchmarks/bench_suite.py on 8 tiny phantoms: it runs and records every item."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from xray_scale.synth import write_phantoms

SUITE = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_suite.py"


def _load_suite():
    spec = importlib.util.spec_from_file_location("bench_suite", SUITE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")  # pims, used by dask-image
def test_suite_records_every_item(tmp_path):
    suite = _load_suite()
    source = tmp_path / "source"
    write_phantoms(source, patients=1, follow_ups=8, shape=(96, 96))
    results = tmp_path / "results"
    out = suite.main(
        [
            "--source",
            str(source),
            "--images",
            "8",
            "--workers",
            "1",
            "--dask-image-images",
            "8",
            "--results",
            str(results),
        ]
    )
    assert out.is_file() and out.parent == results
    record = json.loads(out.read_text())
    assert record["images"] == 8
    engines = record["engines"]
    assert "scipy" in engines
    expected = {"tutorial", "dask-image", "decode", "write"}
    for engine in engines:
        expected |= {f"run {engine}", f"bank {engine}", f"decode+bank {engine}"}
    assert set(record["rates_img_s"]) == expected
    assert all(rate > 0 for rate in record["rates_img_s"].values())
    for engine in engines:
        assert record["efficiency"][engine]["vs_min_stage"] > 0
        assert record["efficiency"][engine]["vs_decode_bank"] > 0
    # The trap of design.md section 2 is real: the stack's LoG is not the per-image LoG.
    differences = record["dask_image_differences"]
    assert differences["laplace_gaussian"]["relative_to_range"] > 0.01
    assert set(differences) >= {"laplace_gaussian", "ggm", "sobel"}
