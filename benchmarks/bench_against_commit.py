"""This checkout against an older commit: the same runs interleaved, by CPU time; stores compared.

Usage::

    python benchmarks/bench_against_commit.py 99c0b6d          # 100 calibration films, 2 configs
    python benchmarks/bench_against_commit.py 99c0b6d --rounds 7 --source ../data/pngs
    python benchmarks/bench_against_commit.py main --config default --config configs/tutorial.toml
    python benchmarks/bench_against_commit.py 822dd42 --instructions --source SAMPLE_FOLDER

A refactor promises "no behaviour change": the same stores, bit for bit, and the same
speed. This checks both in one call. The older commit is checked out with ``git worktree``
into a temporary folder and imported from there through ``PYTHONPATH`` (which comes
before this virtualenv's editable install), so both sides run with the same packages.
Each round runs ``xray-scale run SOURCE`` once per side and per config, old and new
alternating (the side that goes first alternates too), each in a fresh process into a
fresh store. The figure is the CPU time (user + system) of that process and its children,
from ``wait4``: on this shared machine wall time moves with the neighbours, CPU time much
less. Printed: the median CPU time of each side, the ratio new / old (target <= 1.05), the
same ratio for user and for system time apart (system time is mostly the kernel writing the
store's files, and moves with the page cache more than with the code), and
whether every array of the last round's two stores is equal, bit for bit, with the same
dtype, shape and chunking. The run records (timings, versions, dates) differ by nature and
are not compared. The record goes to benchmarks/results/ (git-ignored).

CPU time on a shared VM still moves by 10-20 % from one run to the next (the neighbours
share the caches and the clock), more than the 5 % a refactor may cost. ``--instructions``
counts instead: each side runs once, on one thread (``--workers 1``, one BLAS thread),
under valgrind's callgrind, both sides at once; the count of instructions run is nearly
the same from one run to the next (within 0.2 % here) and tells a real change of the work
done from the noise. It is ~50 times slower than a plain run: use the 9-image sample or a
few dozen films.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import zarr
from records import save_record

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [ROOT / "configs" / "tutorial.toml", ROOT / "configs" / "full-dump.toml"]
DEFAULT = Path("default")
"""``--config default``: the run without ``--config``, the built-in configuration."""
CALIBRATION = ROOT.parent / "shared" / "data" / "chestxray8-calibration"
TARGET_CPU_RATIO = 1.05


def run_command(source: Path, config: Path, out: Path, workers: int) -> list[str]:
    """``xray-scale run`` as a command line for the interpreter in use."""
    return [
        sys.executable, "-c", "from xray_scale.cli import console_script; console_script()",
        "run", str(source), "--out", str(out),
        *([] if config == DEFAULT else ["--config", str(config)]),
        "--workers", str(workers), "-q",
    ]  # fmt: skip


def cpu_seconds(
    source_tree: Path, source: Path, config: Path, out: Path, workers: int
) -> tuple[float, float]:
    """Run ``xray-scale run`` with the package imported from ``source_tree``: (user, system) s."""
    command = run_command(source, config, out, workers)
    environment = {**os.environ, "PYTHONPATH": str(source_tree)}
    process = subprocess.Popen(command, env=environment, stderr=subprocess.PIPE, cwd=source_tree)
    _, status, usage = os.wait4(process.pid, 0)
    stderr = process.stderr.read().decode()
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the run from {source_tree} failed:\n{stderr}")
    return usage.ru_utime, usage.ru_stime


def start_counting_instructions(
    source_tree: Path, source: Path, config: Path, out: Path
) -> subprocess.Popen:
    """Start ``xray-scale run`` on one thread under valgrind's callgrind (instruction counts)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind: apt-get install valgrind")
    counts = out.with_suffix(".callgrind")
    command = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={counts}",
        *run_command(source, config, out, workers=1),
    ]  # fmt: skip
    single_threaded = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    environment = {**os.environ, "PYTHONPATH": str(source_tree), **single_threaded}
    return subprocess.Popen(
        command, env=environment, stderr=subprocess.PIPE, text=True, cwd=source_tree
    )


def instructions_counted(process: subprocess.Popen) -> int:
    """Wait for a run started by :func:`start_counting_instructions`; the instructions it ran."""
    _, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"the run under valgrind failed:\n{stderr}")
    totals = [line for line in stderr.splitlines() if "Collected :" in line]
    if len(totals) != 1:
        raise SystemExit(f"no instruction count in valgrind's output:\n{stderr}")
    return int(totals[0].rsplit(":", 1)[1])


def arrays(group: zarr.Group, prefix: str = "") -> dict[str, zarr.Array]:
    """Every array under ``group``, by its path."""
    found = {f"{prefix}{name}": array for name, array in group.arrays()}
    for name, subgroup in group.groups():
        found |= arrays(subgroup, f"{prefix}{name}/")
    return found


def array_differences(old: Path, new: Path) -> list[str]:
    """Every array path whose values, dtype, shape or chunks differ between two stores."""
    old_arrays = arrays(zarr.open_group(old, mode="r"))
    new_arrays = arrays(zarr.open_group(new, mode="r"))
    differences = [f"{name}: in one store only" for name in old_arrays.keys() ^ new_arrays.keys()]
    for name in sorted(old_arrays.keys() & new_arrays.keys()):
        a, b = old_arrays[name], new_arrays[name]
        old_form, new_form = (a.dtype, a.shape, a.chunks), (b.dtype, b.shape, b.chunks)
        if old_form != new_form:
            differences.append(f"{name}: dtype, shape, chunks {old_form} vs {new_form}")
        elif not np.array_equal(a[...], b[...], equal_nan=a.dtype.kind == "f"):
            differences.append(f"{name}: values differ")
    return differences


def compare(config: Path, old_tree: Path, folder: Path, arguments) -> dict:
    """CPU times of both sides over the rounds, the ratios, and the stores' differences."""
    user = {"old": [], "new": []}
    system = {"old": [], "new": []}
    source = arguments.source.resolve()
    sides = [("old", old_tree), ("new", ROOT)]
    for round_number in range(arguments.rounds):
        for side, tree in sides if round_number % 2 == 0 else sides[::-1]:
            out = store_path(folder, side, config)
            shutil.rmtree(out, ignore_errors=True)
            user_s, system_s = cpu_seconds(tree, source, config, out, arguments.workers)
            user[side].append(user_s)
            system[side].append(system_s)
    times = {side: [u + s for u, s in zip(user[side], system[side], strict=True)] for side in user}
    return {
        "cpu_s": times,
        "user_s": user,
        "system_s": system,
        "ratio": median_ratio(times),
        "user_ratio": median_ratio(user),
        "system_ratio": median_ratio(system),
        "differences": array_differences(*(store_path(folder, s, config) for s in ("old", "new"))),
    }


def store_path(folder: Path, side: str, config: Path) -> Path:
    """Where one side's run of one config writes its store."""
    return folder / f"{side}-{config.stem}.zarr"


def median_ratio(seconds: dict[str, list[float]]) -> float:
    """The median of the new side over the median of the old."""
    return statistics.median(seconds["new"]) / statistics.median(seconds["old"])


def compare_instructions(config: Path, old_tree: Path, folder: Path, arguments) -> dict:
    """Instructions each side runs, both at once on one thread each, and the stores' differences."""
    source = arguments.source.resolve()
    sides = [("old", old_tree), ("new", ROOT)]
    stores = [store_path(folder, side, config) for side, _ in sides]
    for store in stores:
        shutil.rmtree(store, ignore_errors=True)
    processes = [
        start_counting_instructions(tree, source, config, store)
        for (_, tree), store in zip(sides, stores, strict=True)
    ]
    old, new = (instructions_counted(process) for process in processes)
    return {
        "instructions": {"old": old, "new": new},
        "ratio": new / old,
        "differences": array_differences(*stores),
    }


def report_instructions(config: Path, result: dict) -> None:
    """One line: both counts, their ratio against the target, and whether the stores match."""
    counts = result["instructions"]
    verdict = "met" if result["ratio"] <= TARGET_CPU_RATIO else "NOT met"
    print(
        f"{config.stem}: instructions old {counts['old']:,}, new {counts['new']:,}, "
        f"ratio {result['ratio']:.4f} (<= {TARGET_CPU_RATIO}: {verdict}); "
        f"stores {stores_verdict(result['differences'])}"
    )


def stores_verdict(differences: list[str]) -> str:
    """The stores' verdict: bit-identical, or every difference."""
    return "bit-identical" if not differences else "DIFFER: " + "; ".join(differences)


def report(config: Path, result: dict) -> None:
    """One line: medians, ratio against the target, and whether the stores are identical."""
    old, new = (statistics.median(result["cpu_s"][side]) for side in ("old", "new"))
    verdict = "met" if result["ratio"] <= TARGET_CPU_RATIO else "NOT met"
    print(
        f"{config.stem}: CPU old {old:.2f} s, new {new:.2f} s (medians of "
        f"{len(result['cpu_s']['old'])}), ratio {result['ratio']:.3f} "
        f"(<= {TARGET_CPU_RATIO}: {verdict}); user {result['user_ratio']:.3f}, "
        f"system {result['system_ratio']:.3f}; stores {stores_verdict(result['differences'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("commit", help="the older commit (any git revision)")
    parser.add_argument(
        "--source", type=Path, default=CALIBRATION, help="PNG folder (default: calibration films)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions under valgrind (one run per side, one thread) instead of CPU time",
    )
    parser.add_argument(
        "--config",
        type=Path,
        action="append",
        help="config file, or 'default' for none (repeatable; default: tutorial and full-dump)",
    )
    arguments = parser.parse_args()
    configs = [c if c == DEFAULT else c.resolve() for c in arguments.config or CONFIGS]
    if not arguments.source.is_dir():
        raise SystemExit(f"{arguments.source} is not a folder of PNGs: pass --source")

    git = ["git", "-C", str(ROOT), "worktree"]
    with tempfile.TemporaryDirectory(prefix="bench-against-") as folder:
        folder = Path(folder)
        old_tree = folder / "old"
        subprocess.run([*git, "add", "--detach", "-q", str(old_tree), arguments.commit], check=True)
        try:
            results = {}
            for config in configs:
                if arguments.instructions:
                    results[config.stem] = compare_instructions(config, old_tree, folder, arguments)
                    report_instructions(config, results[config.stem])
                else:
                    results[config.stem] = compare(config, old_tree, folder, arguments)
                    report(config, results[config.stem])
        finally:
            subprocess.run([*git, "remove", "--force", str(old_tree)], check=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    record = {"commit": arguments.commit, "source": str(arguments.source), "results": results}
    save_record("against_commit", record)


if __name__ == "__main__":
    main()
