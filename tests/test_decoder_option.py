"""--decoder cpu|gpu|auto: checked before any work; auto falls back to the CPU; same outputs."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
import zarr
from conftest import assert_stores_equal

import xray_scale
from xray_scale.analysis.maps import batch_spec
from xray_scale.cli import main
from xray_scale.config import load_config
from xray_scale.engines.registry import resolve_decoder, resolve_engine
from xray_scale.errors import EngineError
from xray_scale.store.metadata import run_fingerprint


def _gpu_decoder_here() -> bool:
    try:
        return (
            importlib.util.find_spec("cupy") is not None
            and resolve_decoder("auto", "cupy") == "gpu"
        )
    except EngineError:
        return False


def test_cpu_engines_and_compat_resolve_auto_to_cpu_and_refuse_gpu():
    for engine in ("scipy", "opencv"):
        assert resolve_decoder("cpu", engine) == "cpu"
        assert resolve_decoder("auto", engine) == "cpu"
        with pytest.raises(EngineError, match=f"--decoder gpu needs the cupy engine.*{engine}"):
            resolve_decoder("gpu", engine)
    with pytest.raises(EngineError, match="unknown decoder 'nvjpeg'; choose one of cpu, gpu, auto"):
        resolve_decoder("nvjpeg", "scipy")


@pytest.mark.skipif(_gpu_decoder_here(), reason="the GPU decoder can run here")
def test_auto_is_cpu_where_the_gpu_decoder_cannot_run():
    assert resolve_decoder("auto", resolve_engine("auto")) == "cpu"


def test_gpu_with_a_cpu_engine_is_one_line_and_exit_2_before_any_work(
    phantom_folder, tmp_path, capsys
):
    out = tmp_path / "out.zarr"
    code = main(["run", str(phantom_folder), "-o", str(out), "--engine", "opencv",
                 "--decoder", "gpu", "-q"])  # fmt: skip
    error = capsys.readouterr().err
    assert code == 2
    assert "--decoder gpu needs the cupy engine without --compat, not the opencv engine" in error
    assert error.count("\n") == 1 and not out.exists()
    assert main(["run", str(phantom_folder), "-o", str(out), "--decoder", "nvjpeg", "-q"]) == 2
    assert not out.exists()
    with pytest.raises(EngineError, match="needs the cupy engine"):
        xray_scale.run([phantom_folder], out, engine="scipy", decoder="gpu")
    assert not out.exists()


def test_auto_decoder_run_equals_a_cpu_run_and_records_its_decoder(phantom_folder, tmp_path):
    engine = "opencv"
    cpu, auto = tmp_path / "cpu.zarr", tmp_path / "auto.zarr"
    xray_scale.run([phantom_folder], cpu, engine=engine, workers=2)
    assert main(["run", str(phantom_folder), "-o", str(auto), "--engine", engine,
                 "--decoder", "auto", "--workers", "2", "-q"]) == 0  # fmt: skip
    assert_stores_equal(cpu, auto)
    runs = zarr.open_group(auto, mode="r").attrs["xray_scale"]["runs"]
    assert [entry["decoder"] for entry in runs] == ["cpu"]


def test_the_decoder_is_not_part_of_the_run_fingerprint(phantom_folder):
    spec = batch_spec(load_config(None), shape=(64, 64), bit_depth=8, compat=None, engine="opencv")
    assert spec.decoder == "cpu"
    paths = sorted(str(p) for p in phantom_folder.iterdir())
    on_gpu = dataclasses.replace(spec, decoder="gpu")
    same = run_fingerprint(paths, spec, bit_depth=8, manifest_digest=None)
    assert same == run_fingerprint(paths, on_gpu, bit_depth=8, manifest_digest=None)
