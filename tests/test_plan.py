"""plan: counts, sizes and time measured on a sample, scaled to all inputs."""

from __future__ import annotations

import pytest

from xray_scale.cli import main
from xray_scale.runner.plan import plan_run


def test_plan_scales_a_measured_sample(phantom_folder):
    config = {"run": {"batch_size": 2}, "store": {"compressor": "none"}}
    estimate = plan_run([phantom_folder], workers=1, sample=4, config=config)
    assert (estimate.images, estimate.sampled) == (12, 4)
    # 64 x 64 float32 maps stored uncompressed: the values, plus < 400 bytes per image of
    # shard index and array metadata (zarr.json) at this tiny size
    assert 0 <= estimate.bytes_per_image["filters/sobel"] - 64 * 64 * 4 < 400
    # masks are zstd-compressed: a boolean mask takes far less than a byte per pixel
    assert 0 < estimate.bytes_per_image["masks/mask_binary"] < 64 * 64 / 2
    assert estimate.images_per_s > 0
    assert estimate.total_bytes == pytest.approx(sum(estimate.bytes_per_image.values()) * 12)
    assert estimate.seconds == pytest.approx(12 / estimate.images_per_s)


def test_plan_command_prints_sizes_and_time(phantom_folder, capsys):
    assert main(["plan", str(phantom_folder), "--workers", "1", "--sample", "4"]) == 0
    printed = capsys.readouterr().out
    assert "images: 12" in printed and "measured on 4 of them" in printed
    assert "filters/laplace_gaussian" in printed and "store size:" in printed
    assert "img/s here" in printed


def test_plan_runs_on_a_phantom_source():
    config = {"run": {"batch_size": 2}, "store": {"compressor": "none"}}
    estimate = plan_run(["synth:6x64"], workers=1, config=config)
    assert (estimate.images, estimate.sampled) == (6, 4)
    assert 0 <= estimate.bytes_per_image["filters/sobel"] - 64 * 64 * 4 < 400
