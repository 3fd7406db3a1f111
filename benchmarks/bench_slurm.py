"""A 2-job SLURM run against the threaded run on the same machine, job start-up included.

Usage::

    python benchmarks/bench_slurm.py                      # 624 phantoms, a test SLURM here
    python benchmarks/bench_slurm.py --rounds 3 --images 624 --jobs 2
    SLURM_CONF=... python benchmarks/bench_slurm.py --existing --cores 8 --memory 16GB

The inputs are 1024x1024 synthetic chest phantoms (``xray_scale.io.phantoms``, the
ChestX-ray8 size) written as PNG files once, outside the clock. Without
``--existing`` the benchmark starts the tests' one-node SLURM on 127.0.0.1
(``tests/slurm_cluster.py``: munged, slurmctld and slurmd in a temporary folder) and
stops it at the end. Each round runs, each in a fresh ``python`` process and in turn:

- ``threads``: ``xray_scale.run`` on the threaded scheduler with ``--workers`` threads;
- ``slurm``: ``xray_scale.run`` with ``cluster=JobQueue("slurm", jobs=J, cores=C, ...)``.

The clock is the wall time of the ``xray_scale.run`` call, so the SLURM figure
holds everything the cluster adds: the scheduler's start, ``sbatch``, the jobs'
start and imports, and the cancelling of the jobs at the end. The ratio printed is
the SLURM rate over the threaded rate (issue 28's target: >= 0.8 with 2 jobs of
one core on a 2-core machine). The load average before and after goes into the
record (benchmarks/results/, git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from records import save_record

TESTS = Path(__file__).resolve().parents[1] / "tests"

# Runs in a fresh interpreter: one run, timed around the xray_scale.run call.
_ONE_RUN = r"""
import json, sys, time
import xray_scale
from xray_scale.allocator import tune_malloc
from xray_scale.runner.jobqueue import JobQueue
tune_malloc()  # as the xray-scale executable does
images, out, how = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
cluster = JobQueue("slurm", **how["slurm"]) if how.get("slurm") else None
began = time.perf_counter()
summary = xray_scale.run([images], out, workers=how.get("workers"), engine=how["engine"],
                         cluster=cluster)
wall = time.perf_counter() - began
print(json.dumps({"wall_s": wall, "ok": summary.ok, "processed": summary.processed,
                  "compute_s": summary.elapsed_s}), flush=True)
"""


def one_run(images: Path, out: Path, how: dict, environment: dict) -> dict:
    """One run in a fresh process; its figures (the store is deleted afterwards)."""
    done = subprocess.run(
        [sys.executable, "-c", _ONE_RUN, str(images), str(out), json.dumps(how)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    subprocess.run(["rm", "-rf", str(out)], check=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=624)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cores", type=int, default=1, help="per job")
    parser.add_argument("--memory", default="4GB", help="per job")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="threads")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--existing", action="store_true", help="the SLURM of SLURM_CONF")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-slurm-"))
    images = work / "images"
    from xray_scale.io.phantoms import write_phantoms

    follow_ups = 8
    write_phantoms(
        images, patients=-(-args.images // follow_ups), follow_ups=follow_ups, shape=(1024, 1024)
    )
    for extra in sorted(images.glob("*.png"))[args.images :]:
        extra.unlink()
    environment = dict(os.environ)
    slurm = None
    if not args.existing:
        sys.path.insert(0, str(TESTS))
        from slurm_cluster import start_slurm

        slurm = start_slurm(work / "slurm")
        environment.update(slurm.environment)
    config = work / "dask-config"
    config.mkdir()
    (config / "jobqueue.yaml").write_text(
        f"jobqueue:\n  slurm:\n    log-directory: {work / 'job-logs'}\n"
        + ("" if args.existing else "    interface: lo\n")
    )
    environment["DASK_CONFIG"] = str(config)
    threads = {"workers": args.workers, "engine": args.engine}
    on_slurm = {
        "engine": args.engine,
        "slurm": {"jobs": args.jobs, "cores": args.cores, "memory": args.memory},
    }
    rounds = []
    load_before = os.getloadavg()
    try:
        for k in range(args.rounds):
            threaded = one_run(images, work / "threads.zarr", threads, environment)
            jobs = one_run(images, work / "slurm.zarr", on_slurm, environment)
            assert threaded["ok"] == jobs["ok"] == args.images, (threaded, jobs)
            ratio = threaded["wall_s"] / jobs["wall_s"]
            rounds.append({"threads": threaded, "slurm": jobs, "ratio": ratio})
            print(
                f"round {k + 1}: threads {args.images / threaded['wall_s']:.1f} img/s "
                f"({threaded['wall_s']:.1f} s), slurm {args.jobs} jobs x {args.cores} core "
                f"{args.images / jobs['wall_s']:.1f} img/s ({jobs['wall_s']:.1f} s, "
                f"{jobs['compute_s']:.1f} s after the first job joined): ratio {ratio:.2f}",
                flush=True,
            )
    finally:
        if slurm is not None:
            from slurm_cluster import stop_slurm

            stop_slurm(slurm)
    load_after = os.getloadavg()
    ratios = sorted(r["ratio"] for r in rounds)
    print(
        f"slurm / threads rate, start-up included: median {ratios[len(ratios) // 2]:.2f} "
        f"over {len(ratios)} round(s) (target >= 0.8); load average before "
        f"{load_before[0]:.2f}, after {load_after[0]:.2f}"
    )
    save_record(
        "slurm",
        {
            "images": args.images,
            "inputs": "1024x1024 synthetic phantoms (xray_scale.io.phantoms) as PNG files",
            "jobs": args.jobs,
            "cores_per_job": args.cores,
            "threads": args.workers,
            "engine": args.engine,
            "slurm": "SLURM_CONF's" if args.existing else "one-node test SLURM on 127.0.0.1",
            "rounds": rounds,
            "median_ratio": ratios[len(ratios) // 2],
            "load_before": load_before,
            "load_after": load_after,
            "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        },
    )
    subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
