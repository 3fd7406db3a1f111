"""GPU-side PNG decoding on a GPU node: every figure it is judged by, from one command.

Usage (from the repository root, on a node with CuPy and nvCOMP: ``pip install -e ".[gpu]"``)::

    python benchmarks/bench_gpu_decode.py                     # 2,048 copies, 2 rounds
    python benchmarks/bench_gpu_decode.py --images 4096 --rounds 3

The images are copies of the real sample (``../shared/data/chestxray8-sample``
beside the repository; 9 generated 1024 x 1024 phantoms when it is absent)
repeated to ``--images`` files in a temporary folder. One after the other, in
this one process, images/s of:

- ``cpu decode ceiling``: the CPU decoder (OpenCV's libpng, every chunk CRC
  checked) over every file, batches of the config's size on as many threads
  as the node has cores: what no CPU-decoding pipeline can pass here;
- ``gpu decode alone``: :func:`xray_scale.io.gpu_decode.decode_batch_gpu` on 64 files
  already in host memory, pixels left on the GPU (best of 5 calls, one thread),
  after checking they equal the CPU decoder's pixels and records;
- ``run opencv``, ``run cupy`` (CPU decode) and ``run cupy, gpu decoder``:
  ``xray_scale.run`` with ``configs/full-dump.toml`` and ``--workers`` threads,
  each into a fresh store, best of ``--rounds``; the GPU-decoded store is
  compared with the CPU-decoded cupy store array by array before it is deleted.

Then the ratios (the GPU-decoder run over the CPU decode ceiling, over the
cupy run and over the opencv run) and the projected time for the 112,120
images of the dump. A JSON record goes to benchmarks/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from records import save_record

from xray_scale import run
from xray_scale.allocator import tune_malloc
from xray_scale.bench.benchmark import REAL_SAMPLE, prepare_images
from xray_scale.bench.stages import Stages
from xray_scale.config import load_config
from xray_scale.io.decode import decode_batch

REPOSITORY = Path(__file__).resolve().parents[1]
FULL_DUMP = 112_120
GPU_BATCH = 64


def _stores_differ(first: Path, second: Path) -> list[str]:
    """Names of the arrays that differ between two stores."""
    import zarr

    one, two = zarr.open_group(first, mode="r"), zarr.open_group(second, mode="r")
    differ = []

    def walk(a, b, prefix):
        for name in sorted(a.array_keys()):
            x, y = a[name][...], b[name][...]
            if not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
                differ.append(f"{prefix}{name}")
        for name in sorted(a.group_keys()):
            walk(a[name], b[name], f"{prefix}{name}/")

    walk(one, two, "")
    return differ


def _timed_run(folder: Path, config, label: str, workers: int, **options) -> tuple[float, Path]:
    store = folder / f"run-{label}.zarr"
    shutil.rmtree(store, ignore_errors=True)
    began = time.perf_counter()
    summary = run([folder / "images"], store, config=config, workers=workers, **options)
    seconds = time.perf_counter() - began
    if summary.ok != summary.total:
        raise SystemExit(
            f"the {label} run failed on {summary.failed} images: {summary.failures[:1]}"
        )
    return summary.total / seconds, store


def _gpu_decode_alone(paths: list[Path], shape, dtype, repeats: int = 5) -> float:
    """Images/s of decode_batch_gpu on GPU_BATCH files in host memory; checks them first."""
    import cupy

    from xray_scale.io.gpu_decode import decode_batch_gpu

    batch = [str(p) for p in paths[:GPU_BATCH]]
    contents = [Path(p).read_bytes() for p in batch]
    stream = cupy.cuda.Stream(non_blocking=True)
    block, images = decode_batch_gpu(
        batch, shape=shape, dtype=dtype, contents=contents, stream=stream
    )
    cpu_block, cpu_images = decode_batch(batch, shape=shape, dtype=dtype)
    if images != cpu_images or not np.array_equal(block.get(), cpu_block):
        raise SystemExit("the GPU decoder's pixels or records differ from the CPU decoder's")
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        decode_batch_gpu(batch, shape=shape, dtype=dtype, contents=contents, stream=stream)
        stream.synchronize()
        best = min(best, time.perf_counter() - began)
    return len(batch) / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2048, help="files (copies of the source)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each run; best kept")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="threads (cores)")
    parser.add_argument("--source", type=Path, default=None, help="folder of PNGs to repeat")
    parser.add_argument(
        "--config", type=Path, default=REPOSITORY / "configs/full-dump.toml", help="run config"
    )
    args = parser.parse_args(argv)
    tune_malloc()  # as the xray-scale executable does
    from xray_scale.io.formats.png_gpu import GpuDecoderUnavailable, check_usable

    try:
        check_usable()  # before any copying
    except GpuDecoderUnavailable as error:
        raise SystemExit(f"bench_gpu_decode: {error}") from None
    source = args.source or (REAL_SAMPLE if REAL_SAMPLE.is_dir() else None)
    config = load_config(args.config)
    rates: dict[str, list[float]] = {}

    def measured(name: str, rate: float) -> None:
        rates.setdefault(name, []).append(rate)
        print(f"  {name}: {rate:,.0f} img/s", flush=True)

    with tempfile.TemporaryDirectory(prefix="xray-scale-gpu-decode-") as tmp:
        folder = Path(tmp)
        paths = prepare_images(source, args.images, folder)
        stages = Stages(paths, args.workers)
        dtype = np.uint16 if stages.bit_depth == 16 else np.uint8
        print(
            f"{args.images} images {stages.shape[0]}x{stages.shape[1]} from "
            f"{source or 'phantoms'}, {args.workers} threads, config {args.config.name}"
        )
        spec = stages.spec(config, "opencv")
        measured("cpu decode ceiling", stages.decode_alone(spec))
        measured("gpu decode alone", _gpu_decode_alone(paths, stages.shape, dtype))
        differ = None
        for round_number in range(1, args.rounds + 1):
            print(f"round {round_number} of {args.rounds}")
            measured("run opencv", _timed_run(folder, config, "opencv", args.workers,
                                              engine="opencv")[0])  # fmt: skip
            rate, cpu_store = _timed_run(folder, config, "cupy", args.workers, engine="cupy")
            measured("run cupy", rate)
            rate, gpu_store = _timed_run(
                folder, config, "cupy-gpu", args.workers, engine="cupy", decoder="gpu"
            )
            measured("run cupy, gpu decoder", rate)
            if differ is None:
                differ = _stores_differ(cpu_store, gpu_store)
            for store in folder.glob("run-*.zarr"):
                shutil.rmtree(store)

    best = {name: max(values) for name, values in rates.items()}
    gpu_run = best["run cupy, gpu decoder"]
    ratios = {
        "gpu-decoder run / cpu decode ceiling": gpu_run / best["cpu decode ceiling"],
        "gpu-decoder run / cupy run": gpu_run / best["run cupy"],
        "gpu-decoder run / opencv run": gpu_run / best["run opencv"],
        "gpu decode alone / cpu decode ceiling": best["gpu decode alone"]
        / best["cpu decode ceiling"],
    }
    projected = {
        name: FULL_DUMP / rate / 60 for name, rate in best.items() if name.startswith("run")
    }
    print("\nbest of each (img/s):")
    for name, rate in best.items():
        print(f"  {name:<40} {rate:>9,.0f}")
    print("ratios (target: gpu-decoder run >= 2.0x the cpu decode ceiling):")
    for name, ratio in ratios.items():
        print(f"  {name:<40} {ratio:>9.2f}x")
    print(f"projected minutes for {FULL_DUMP:,} images:")
    for name, minutes in projected.items():
        print(f"  {name:<40} {minutes:>9.1f}")
    print(f"gpu-decoded store equal to the cpu-decoded one: {not differ} {differ or ''}")
    save_record(
        "gpu-decode",
        {
            "images": args.images,
            "source": str(source or "phantoms"),
            "workers": args.workers,
            "rounds": args.rounds,
            "config": str(args.config),
            "rates": rates,
            "best": best,
            "ratios": ratios,
            "projected_minutes_full_dump": projected,
            "stores_differ": differ,
        },
    )
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
