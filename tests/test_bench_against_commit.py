"""benchmarks/bench_against_commit.py: its run, its CPU figures and its store comparison.

The benchmark's verdict on a refactor rests on two parts: the CPU time of one
``xray-scale run`` process, split into user and system time, and the comparison of
two stores that must find any array that differs. Both run here on real runs into real
stores; nothing asserts a speed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import zarr

pytestmark = pytest.mark.slow  # each test starts xray-scale processes

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    """The benchmark script as a module (it imports ``records`` from its own folder)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(
            "bench_against_commit", BENCHMARKS / "bench_against_commit.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture
def two_stores(bench, phantom_folder, tmp_path) -> tuple[Path, Path]:
    """The same run twice, each in its own process, as the benchmark runs its sides."""
    stores = (tmp_path / "old.zarr", tmp_path / "new.zarr")
    for store in stores:
        user, system = bench.cpu_seconds(bench.ROOT, phantom_folder, bench.DEFAULT, store, 1)
        assert user > 0 and system >= 0
    return stores


def test_the_same_run_twice_gives_bit_identical_stores(bench, two_stores):
    assert bench.array_differences(*two_stores) == []
    assert bench.stores_verdict([]) == "bit-identical"


def test_a_changed_value_and_a_missing_array_are_found(bench, two_stores):
    old, new = two_stores
    group = zarr.open_group(new, mode="r+")
    mean = group["stats/mean"]
    mean[0] = mean[0] + 1
    del group["stats/max"]
    assert bench.array_differences(old, new) == [
        "stats/max: in one store only",
        "stats/mean: values differ",
    ]


def test_a_failed_run_stops_the_benchmark_with_its_error(bench, tmp_path):
    with pytest.raises(SystemExit, match="the run from .* failed"):
        bench.cpu_seconds(bench.ROOT, tmp_path / "absent", bench.DEFAULT, tmp_path / "x.zarr", 1)
