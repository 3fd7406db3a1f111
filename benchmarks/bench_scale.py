"""Dataset scale: start-up over 112,120 inputs, and peak memory against the image count.

Usage::

    python benchmarks/bench_scale.py startup            # 112,120 hard links + a 112,120-line list
    python benchmarks/bench_scale.py memory             # peak RSS at 200 vs 2,000 images
    python benchmarks/bench_scale.py schedulers         # threads vs processes vs distributed
    python benchmarks/bench_scale.py workers --counts 1 4 8 16 --images 1024   # CPU scaling

``startup`` makes 112,120 hard links to one real 1024x1024 ChestX-ray8 image (a
phantom when ../shared is absent) in a temporary folder, so the run sees
112,120 real files at no disk cost, then measures, in a fresh process, the
time from the start of ``xray_scale.run`` to its first processed batch and the
peak RSS of the process at that moment; once with the folder as input, once
with a 112,120-line .txt list. ``memory`` runs the same command on 200 and on
2,000 links in fresh processes and compares their peak RSS. ``schedulers`` runs
the same 72 links with 2 workers on each local scheduler, in turn, in fresh
processes, and prints each rate as a ratio to threads. ``workers`` copies the
real sample (phantoms without ../shared) to ``--images`` files and, for each
worker count in turn, round after round, measures ``xray_scale.run`` (threads
scheduler, ``--config``, ``--engine``) and the decode ceiling with as many
threads; it prints each count's speed-up over the first count ``c`` and the scaling
efficiency, ``(rate(n) / rate(c)) / (n / c)`` (1.0: perfect scaling). Each
startup, memory or schedulers measurement is a fresh ``python`` process, so the
RSS figures include the interpreter and the imported libraries. Records go to
benchmarks/results/ (git-ignored).
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

REAL_IMAGE = (
    Path(__file__).resolve().parents[1].parent / "shared/data/chestxray8-sample/00000011_000.png"
)
FULL_DUMP = 112_120

# Runs in a fresh interpreter: time and RSS at the first finished batch, then stop.
_FIRST_BATCH = r"""
import json, os, resource, sys, time
began = time.perf_counter()
import xray_scale
from xray_scale.allocator import tune_malloc
tune_malloc()  # as the xray-scale executable does

def first_batch(report):
    print(json.dumps({
        "first_batch_s": time.perf_counter() - began,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }), flush=True)
    os._exit(0)

xray_scale.run([sys.argv[1]], sys.argv[2], workers=int(sys.argv[3]), on_batch=first_batch)
"""

# Runs in a fresh interpreter: a whole run on one scheduler, then its rate.
_SCHEDULER_RUN = r"""
import json, sys
import xray_scale
from xray_scale.allocator import tune_malloc
tune_malloc()  # as the xray-scale executable does
if __name__ == "__main__":
    summary = xray_scale.run([sys.argv[1]], sys.argv[2], workers=int(sys.argv[3]),
                             scheduler=sys.argv[4])
    print(json.dumps({"images_per_s": summary.images_per_s}), flush=True)
"""

# Runs in a fresh interpreter: a whole run, then its peak RSS.
_WHOLE_RUN = r"""
import json, resource, sys, time
import xray_scale
from xray_scale.allocator import tune_malloc
tune_malloc()  # as the xray-scale executable does
began = time.perf_counter()
summary = xray_scale.run([sys.argv[1]], sys.argv[2], workers=int(sys.argv[3]))
print(json.dumps({
    "images": summary.total, "ok": summary.ok, "seconds": time.perf_counter() - began,
    "images_per_s": summary.images_per_s,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}), flush=True)
"""


def source_image(folder: Path) -> Path:
    if REAL_IMAGE.is_file():
        return REAL_IMAGE
    from xray_scale.io.phantoms import write_phantoms

    return write_phantoms(folder / "original", follow_ups=1)[0]


def link_images(original: Path, folder: Path, count: int) -> Path:
    """``count`` hard links to copies of ``original``, named like ChestX-ray8 files.

    A new copy every 50,000 links: file systems cap the links of one file (ext4: 65,000).
    """
    folder.mkdir(parents=True)
    data = original.read_bytes()
    for index in range(count):
        if index % 50_000 == 0:
            local = folder.parent / f"{folder.name}-original-{index // 50_000}.png"
            local.write_bytes(data)
        name = folder / f"{10_000_000 + index // 4:08d}_{index % 4:03d}.png"
        os.link(local, name)
    return folder


def run_python(code: str, *arguments: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, arguments)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark process failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def startup(workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="xray-scale-startup-") as tmp:
        tmp = Path(tmp)
        began = time.perf_counter()
        images = link_images(source_image(tmp), tmp / "images", FULL_DUMP)
        listing = tmp / "images.txt"
        listing.write_text("\n".join(str(p) for p in sorted(images.iterdir())) + "\n")
        print(f"made {FULL_DUMP} links in {time.perf_counter() - began:.1f} s")
        results = {}
        for label, source in (("folder", images), ("list", listing)):
            result = run_python(_FIRST_BATCH, source, tmp / f"{label}.zarr", workers)
            results[label] = result
            print(
                f"{FULL_DUMP} inputs as a {label}: first batch after "
                f"{result['first_batch_s']:.2f} s, RSS {result['rss_mb']:.0f} MB "
                "(targets: < 10 s, < 500 MB)"
            )
    return results


def memory(workers: int, small: int, large: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="xray-scale-memory-") as tmp:
        tmp = Path(tmp)
        original = source_image(tmp)
        results = {}
        for count in (small, large):
            images = link_images(original, tmp / f"images-{count}", count)
            results[count] = run_python(_WHOLE_RUN, images, tmp / f"{count}.zarr", workers)
            print(
                f"{count} images: peak RSS {results[count]['peak_rss_mb']:.0f} MB, "
                f"{results[count]['images_per_s']:.1f} img/s"
            )
    ratio = results[large]["peak_rss_mb"] / results[small]["peak_rss_mb"]
    print(f"peak RSS {large} / {small} images = {ratio:.3f} (target <= 1.2)")
    return {"runs": results, "ratio": ratio}


def schedulers(workers: int, count: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="xray-scale-schedulers-") as tmp:
        tmp = Path(tmp)
        images = link_images(source_image(tmp), tmp / "images", count)
        rates = {}
        for scheduler in ("threads", "processes", "distributed"):
            result = run_python(
                _SCHEDULER_RUN, images, tmp / f"{scheduler}.zarr", workers, scheduler
            )
            rates[scheduler] = result["images_per_s"]
    for scheduler, rate in rates.items():
        print(f"{scheduler:>11}: {rate:5.1f} img/s = {rate / rates['threads']:.2f} x threads")
    return {"images": count, "images_per_s": rates}


def workers_scaling(
    counts: list[int], images: int, config: Path | None, engine: str, rounds: int
) -> dict:
    from xray_scale.bench.benchmark import (
        REAL_SAMPLE,
        BenchConfig,
        Stages,
        prepare_images,
        time_run,
    )
    from xray_scale.config import load_config
    from xray_scale.engines.registry import resolve_engine

    loaded = BenchConfig(config.stem if config else "default", load_config(config))
    engine = resolve_engine(engine)
    runs: dict[int, list[float]] = {n: [] for n in counts}
    decodes: dict[int, list[float]] = {n: [] for n in counts}
    with tempfile.TemporaryDirectory(prefix="xray-scale-workers-") as tmp:
        tmp = Path(tmp)
        source = REAL_SAMPLE if REAL_SAMPLE.is_dir() else None
        paths = prepare_images(source, images, tmp)
        for round_number in range(1, rounds + 1):
            for n in counts:
                stages = Stages(paths, n)
                decodes[n].append(stages.decode_alone(stages.spec(loaded.config, engine)))
                runs[n].append(time_run(tmp, loaded, engine, n))
                print(
                    f"round {round_number}, {n} workers: run {runs[n][-1]:.1f} img/s, "
                    f"decode {decodes[n][-1]:.1f} img/s"
                )
    best_run = {n: max(rates) for n, rates in runs.items()}
    best_decode = {n: max(rates) for n, rates in decodes.items()}
    first = counts[0]
    print(
        f"\n{images} images, {config or 'default config'}, {engine} engine, "
        f"{os.cpu_count()} CPUs, best of {rounds} rounds"
    )
    print("workers  run img/s  speed-up  efficiency  decode img/s  run/decode")
    for n in counts:
        speedup = best_run[n] / best_run[first]
        print(
            f"{n:7d}  {best_run[n]:9.1f}  {speedup:8.2f}  {speedup * first / n:10.2f}  "
            f"{best_decode[n]:12.1f}  {best_run[n] / best_decode[n]:10.2f}"
        )
    return {
        "images": images,
        "config": str(config or "default"),
        "engine": engine,
        "rounds": rounds,
        "run_images_per_s": runs,
        "decode_images_per_s": decodes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["startup", "memory", "schedulers", "workers"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=2000)
    parser.add_argument(
        "--counts",
        type=int,
        nargs="+",
        default=[1, 2],
        help="workers: the worker counts, the first is the reference",
    )
    parser.add_argument("--images", type=int, default=1024, help="workers: image files")
    parser.add_argument("--config", type=Path, help="workers: TOML config (default: built-in)")
    parser.add_argument("--engine", default="auto", help="workers: engine")
    parser.add_argument("--rounds", type=int, default=2, help="workers: rounds, best kept")
    args = parser.parse_args()
    if args.what == "startup":
        figures = startup(args.workers)
    elif args.what == "memory":
        figures = memory(args.workers, args.small, args.large)
    elif args.what == "schedulers":
        figures = schedulers(args.workers, 72)
    else:
        figures = workers_scaling(args.counts, args.images, args.config, args.engine, args.rounds)
    save_record(
        f"scale-{args.what}",
        {
            "workers": args.workers,
            "image": str(REAL_IMAGE if REAL_IMAGE.is_file() else "phantom"),
            "figures": figures,
        },
    )


if __name__ == "__main__":
    main()
