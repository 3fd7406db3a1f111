"""The asv micro-benchmarks of benchmarks/micro, each run once on a 64 x 64 image, without asv.

For every benchmark class and every combination of its parameters: ``setup(*params)``,
then each ``time_*`` / ``peakmem_*`` method once, as asv would call them. Every class
stores the function it measures as ``self.function``; the test wraps it to check that
each method calls it exactly once (``peakmem_reference`` never) and that what it
returned is right for a 64 x 64 image. It asserts nothing about time or memory.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

from xray_scale.filters import FILTERS, MASKS

MICRO = Path(__file__).resolve().parents[1] / "benchmarks" / "micro"
SIZE = 64
PREFIXES = ("time_", "timeraw_", "peakmem_", "mem_", "track_")
"""Prefixes of the methods asv runs as benchmarks."""


def _import_micro():
    """Import the package benchmarks/micro as ``micro`` (asv's name for it) and its modules."""
    if "micro" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "micro", MICRO / "__init__.py", submodule_search_locations=[str(MICRO)]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules["micro"] = package
        spec.loader.exec_module(package)
    return [importlib.import_module(f"micro.{path.stem}") for path in sorted(MICRO.glob("*.py"))]


def _benchmark_classes():
    return [
        cls
        for module in _import_micro()
        for cls in vars(module).values()
        if isinstance(cls, type)
        and cls.__module__ == module.__name__
        and any(name.startswith(PREFIXES) for name in vars(cls))
    ]


def _combinations(cls) -> list[tuple]:
    params = getattr(cls, "params", None)
    if not params:
        return [()]
    if len(getattr(cls, "param_names", ())) <= 1 and not isinstance(params[0], list | tuple):
        params = [params]
    return list(itertools.product(*params))


CLASSES = {cls.__name__: cls for cls in _benchmark_classes()}
CASES = [
    pytest.param(cls, combination, id="-".join([name, *map(str, combination)]))
    for name, cls in CLASSES.items()
    for combination in _combinations(cls)
]


def _check_filters(bench, output, engine, name):
    assert output.shape == (SIZE, SIZE)
    assert output.dtype == FILTERS[name].output_dtype


def _check_masks(bench, output, engine, name):
    np.testing.assert_array_equal(output, MASKS[name](bench.image, bench.threshold))


def _check_image_stats(bench, output):
    stats, histogram = output
    assert histogram.shape == (256,) and histogram.sum() == SIZE * SIZE
    assert stats["min"] <= stats["median"] <= stats["max"]


def _check_preview(bench, output):
    assert output.shape == (SIZE // 4, SIZE // 4) and output.dtype == np.uint8


def _check_decode(bench, output):
    assert output.ok, output.error
    np.testing.assert_array_equal(output.pixels, bench.image)


CHECKS = {
    "Filters": _check_filters,
    "Masks": _check_masks,
    "ImageStats": _check_image_stats,
    "Preview": _check_preview,
    "Decode": _check_decode,
}
"""What the measured function must return, per benchmark class (each class needs one)."""


def test_every_class_is_checked():
    assert set(CLASSES) == set(CHECKS)


def test_grids_cover_the_registry_and_both_engines():
    assert CLASSES["Filters"].param_names == ["engine", "filter"]
    engines, filters = CLASSES["Filters"].params
    assert set(engines) == {"scipy", "opencv"} and set(filters) == set(FILTERS)
    engines, masks = CLASSES["Masks"].params
    assert set(engines) == {"scipy", "opencv"} and set(masks) == set(MASKS)


@pytest.mark.parametrize(("cls", "combination"), CASES)
def test_benchmark_runs_once(cls, combination, monkeypatch):
    images = sys.modules["micro._images"]
    monkeypatch.setattr(images, "SIZE", SIZE)
    bench = cls()
    try:
        bench.setup(*combination)
    except NotImplementedError as reason:
        assert "scipy" not in combination, f"the scipy engine must run everything: {reason}"
        pytest.skip(f"setup skipped it: {reason}")
    if cls.__name__ == "Decode":
        bench.image = images.chest_image()  # what the PNG holds, to compare with
    outputs = []
    measured = bench.function

    def spy(*args, **kwargs):
        outputs.append(measured(*args, **kwargs))
        return outputs[-1]

    bench.function = spy
    methods = sorted(name for name in vars(cls) if name.startswith(PREFIXES))
    assert any(name.startswith("time_") for name in methods)
    try:
        for name in methods:
            calls = len(outputs)
            assert getattr(bench, name)(*combination) is None, name
            expected_calls = 0 if name == "peakmem_reference" else 1
            assert len(outputs) - calls == expected_calls, name
            if expected_calls:
                CHECKS[cls.__name__](bench, outputs[-1], *combination)
    finally:
        if hasattr(bench, "teardown"):
            bench.teardown(*combination)


def test_phantom_when_the_real_sample_is_missing(tmp_path, monkeypatch):
    from xray_scale.io.phantoms import phantom

    images = sys.modules["micro._images"]
    monkeypatch.setattr(images, "SIZE", SIZE)
    monkeypatch.setattr(images, "REAL_IMAGE", tmp_path / "missing.png")
    np.testing.assert_array_equal(images.chest_image(), phantom(11, 0, shape=(SIZE, SIZE)))
    bench = CLASSES["Decode"]()
    bench.setup()
    try:
        assert bench.path.parent == Path(bench.folder.name)
        np.testing.assert_array_equal(
            bench.function(bench.path, shape=bench.shape).pixels, images.chest_image()
        )
    finally:
        bench.teardown()
