"""stack_analysis: a whole batch as one stack equals the per-image path (numpy backend, CPU)."""

from __future__ import annotations

import dataclasses

import imageio.v3 as iio
import numpy as np
import pytest
from conftest import REAL_NAMES, REAL_SAMPLE, needs_real_sample, structured_image, write_png
from stack_parity import (
    ALL_FILTERS,
    CONFIGS,
    RecordingWriter,
    assert_backend_matches_reference,
    decoded_for,
    spec_for,
)

from xray_scale.analysis.batch import analyse_block
from xray_scale.analysis.stack import (
    NUMPY_BACKEND,
    analyse_on_device,
    analyse_stack,
    bank_batch,
    bank_rate_on_device,
    bank_stack,
    compute_stack,
)
from xray_scale.analysis.stats import histogram256
from xray_scale.engines.base import ArrayBackend, Engine
from xray_scale.io.phantoms import phantom


def structured_block(count: int = 3, shape=(64, 80), dtype=np.uint8) -> np.ndarray:
    return np.stack([structured_image(seed, shape=shape, dtype=dtype) for seed in range(count)])


@pytest.mark.parametrize("overrides", CONFIGS.values(), ids=CONFIGS.keys())
def test_numpy_backend_matches_the_per_image_path(overrides):
    assert_backend_matches_reference(structured_block(), overrides, NUMPY_BACKEND)


def test_16_bit_phantoms():
    block = np.stack([phantom(5, k, shape=(96, 96), bit_depth=16) for k in range(2)])
    assert block.dtype == np.uint16
    assert_backend_matches_reference(block, {"store": {"preview_size": 32}}, NUMPY_BACKEND)


def test_failed_images_stay_failed_and_zero():
    assert_backend_matches_reference(
        structured_block(4), {"store": {"preview_size": 16}}, NUMPY_BACKEND, failed=(1, 3)
    )


@needs_real_sample
@pytest.mark.real_data
def test_real_images_full_size():
    block = np.stack([iio.imread(REAL_SAMPLE / name) for name in REAL_NAMES[:2]])
    assert_backend_matches_reference(block, {"store": {"preview_size": 256}}, NUMPY_BACKEND)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_a_padded_image_has_the_statistics_of_the_image_itself(tmp_path, dtype):
    full = structured_image(1, dtype=dtype)
    small = structured_image(2, shape=(40, 48), dtype=dtype)
    small[:3, :5] = 0  # its own zeros count, the padding's do not
    threshold = int(np.iinfo(dtype).max * 0.5)
    paths = [write_png(tmp_path / "full.png", full), write_png(tmp_path / "small.png", small)]
    overrides = {"input": {"size_policy": "pad"}, "masks": {"threshold": threshold}}
    spec = spec_for(full[np.newaxis], overrides)
    block, decoded = spec.decode([str(path) for path in paths])
    stack = analyse_stack(
        block, decoded, 0, spec=spec, writer=RecordingWriter(), backend=NUMPY_BACKEND
    )
    reference = analyse_block(block, decoded, 0, spec=spec, writer=RecordingWriter())
    for record in (stack, reference):
        assert record.status == ["ok", "ok"]
        for k, image in enumerate((full, small)):
            expected = {
                "min": image.min(),
                "max": image.max(),
                "mean": np.mean(image),
                "std": np.std(image),
                "median": np.median(image),
                "p01": np.percentile(image, 1),
                "p99": np.percentile(image, 99),
                "mask_fraction": np.mean(image > threshold),
            }
            for field, value in expected.items():
                assert record.stats[field][k] == pytest.approx(value, rel=1e-12), (field, k)
            assert np.array_equal(record.histogram[k], histogram256(image))


class _BrokenNdimage:
    """An ndimage module whose every filter fails, as a GPU out of memory would."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise MemoryError("out of device memory")

        return fail


def test_an_error_on_the_device_fails_the_whole_batch_and_writes_nothing():
    broken = ArrayBackend("numpy", np, _BrokenNdimage(), np.asarray, np.asarray)
    block = structured_block(3)
    writer = RecordingWriter()
    record = analyse_stack(
        block,
        decoded_for(block, failed=(2,)),
        0,
        spec=spec_for(block, {}),
        writer=writer,
        backend=broken,
    )
    assert record.status == ["failed"] * 3
    message = "processing failed on numpy: MemoryError: out of device memory"
    assert record.error == [message, message, "bad file"]
    assert writer.arrays == {}
    assert np.isnan(record.stats["mean"]).all() and not record.histogram.any()


def test_compat_mode_is_refused():
    block = structured_block(1)
    spec = dataclasses.replace(spec_for(block, {}), compat="tutorial")
    with pytest.raises(ValueError, match="compat mode runs the tutorial's own code"):
        analyse_stack(
            block, decoded_for(block), 0, spec=spec, writer=RecordingWriter(), backend=NUMPY_BACKEND
        )


def test_bank_stack_computes_every_map_and_returns_the_counts():
    block = structured_block(3)
    spec = spec_for(block, {"filters": {"enabled": [*ALL_FILTERS, "canny"]}})
    counts = bank_stack(block, spec, NUMPY_BACKEND)
    np.testing.assert_array_equal(counts, compute_stack(block, spec, NUMPY_BACKEND).counts)


def _stack_engine(checks: list[str]) -> Engine:
    """An engine that analyses whole batches on the NumPy backend, counting its usability checks."""
    return Engine(
        name="numpy-stack",
        filters={},
        backend=NUMPY_BACKEND,
        check_usable=lambda: checks.append("checked"),
    )


def test_an_engine_with_a_backend_is_analysed_by_the_stack_path_after_its_check():
    block = structured_block(3)
    spec = spec_for(block, {"store": {"preview_size": 16}})
    checks: list[str] = []
    on_device, direct = RecordingWriter(), RecordingWriter()
    record = analyse_on_device(
        block, decoded_for(block), 0, spec=spec, writer=on_device, engine=_stack_engine(checks)
    )
    expected = analyse_stack(
        block, decoded_for(block), 0, spec=spec, writer=direct, backend=NUMPY_BACKEND
    )
    assert checks == ["checked"]
    assert record.status == expected.status == ["ok"] * 3
    np.testing.assert_array_equal(record.histogram, expected.histogram)
    assert on_device.arrays.keys() == direct.arrays.keys() and on_device.arrays
    for name, values in direct.arrays.items():
        np.testing.assert_array_equal(on_device.arrays[name], values)


def test_the_bank_stages_run_on_an_engine_backend():
    block = structured_block(2)
    spec = spec_for(block, {})
    checks: list[str] = []
    engine = _stack_engine(checks)
    assert bank_batch(block, spec, engine) is None
    assert bank_rate_on_device(block, spec, engine, repeats=2) > 0
    assert checks == ["checked", "checked"]
