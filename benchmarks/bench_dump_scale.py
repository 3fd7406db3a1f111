"""A dump-scale rehearsal: 112,120 phantoms end to end, beside a tenth of them, in one call.

Usage::

    python benchmarks/bench_dump_scale.py                        # 11,212 then 112,120 images
    python benchmarks/bench_dump_scale.py --counts 1121 11212    # a quicker pair, same ratios

Each count runs ``xray-scale run synth:<N>x128 --config <full-dump.toml with
preview_size = 64>`` in a fresh process, as a user would (the threads scheduler,
every core), into a store in a temporary folder deleted afterwards. For each: the
wall time of the command, the peak RSS of its process (``wait4``), and the time
of the end-of-run phase (QC's duplicate and near-duplicate grouping and outlier
scores over the whole run; the store records it as ``end_of_run_s``). Then the
ratios of the larger count to the smaller one, against the targets: the larger
run finishes, peak RSS <= 2 GB, time ratio <= 12 for 10x the images, RSS ratio
<= 1.5, end-of-run phase <= 5 % of each run. The record goes to
benchmarks/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import zarr
from records import save_record

FULL_DUMP_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "full-dump.toml"
TARGETS = {"rss_gb": 2.0, "time_ratio": 12.0, "rss_ratio": 1.5, "end_of_run_fraction": 0.05}


def _config(folder: Path) -> Path:
    """The full-dump config with 64 x 64 previews (the dump's previews at 256 are 26 GB)."""
    text = FULL_DUMP_CONFIG.read_text()
    assert tomllib.loads(text)["store"]["preview_size"] == 256, "full-dump.toml changed"
    path = folder / "full-dump-64.toml"
    path.write_text(text.replace("preview_size = 256", "preview_size = 64", 1))
    return path


def measure(count: int, folder: Path, config: Path) -> dict:
    """Run the CLI on ``count`` phantoms; wall time, peak RSS, end-of-run time."""
    out = folder / f"dump-{count}.zarr"
    script = Path(sys.executable).parent / "xray-scale"
    command = [str(script), "run", f"synth:{count}x128", "--out", str(out), "--config", str(config)]
    began = time.perf_counter()
    process = subprocess.Popen([*command, "-q"], stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    stderr = process.stderr.read().decode()
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{count} images: the run failed\n{stderr}")
    run = dict(zarr.open_group(out, mode="r").attrs["xray_scale"])["runs"][-1]
    figures = {
        "images": count,
        "ok": run["ok"],
        "wall_s": round(wall, 2),
        "peak_rss_gb": round(usage.ru_maxrss / 1024**2, 3),
        "end_of_run_s": run["end_of_run_s"],
        "end_of_run_fraction": round(run["end_of_run_s"] / wall, 4),
    }
    print(
        f"{count:>7,} images: {wall:7.1f} s, peak RSS {figures['peak_rss_gb']:.2f} GB, "
        f"end of run {run['end_of_run_s']:.2f} s ({100 * figures['end_of_run_fraction']:.1f} %)",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs=2, default=[11_212, 112_120])
    args = parser.parse_args()
    small, large = sorted(args.counts)
    with tempfile.TemporaryDirectory(prefix="xray-scale-dump-") as tmp:
        folder = Path(tmp)
        config = _config(folder)
        runs = [measure(small, folder, config), measure(large, folder, config)]
    a, b = runs
    ratios = {
        "time_ratio": round(b["wall_s"] / a["wall_s"], 3),
        "rss_ratio": round(b["peak_rss_gb"] / a["peak_rss_gb"], 3),
        "images_ratio": round(large / small, 3),
    }
    checks = {
        "finished": all(r["ok"] == r["images"] for r in runs),
        "rss_gb": b["peak_rss_gb"] <= TARGETS["rss_gb"],
        "time_ratio": ratios["time_ratio"] <= TARGETS["time_ratio"] * large / small / 10,
        "rss_ratio": ratios["rss_ratio"] <= TARGETS["rss_ratio"],
        "end_of_run_fraction": all(
            r["end_of_run_fraction"] <= TARGETS["end_of_run_fraction"] for r in runs
        ),
    }
    print(
        f"{large / small:.1f}x the images: time x{ratios['time_ratio']:.2f} "
        f"(target <= {TARGETS['time_ratio'] * large / small / 10:.1f}), "
        f"peak RSS x{ratios['rss_ratio']:.2f} (target <= {TARGETS['rss_ratio']})"
    )
    print("targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in checks.items()))
    load = os.getloadavg()[0]
    save_record("dump_scale", {"runs": runs, "ratios": ratios, "checks": checks, "load_1min": load})


if __name__ == "__main__":
    main()
