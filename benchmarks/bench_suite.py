"""The whole comparison in one run: tutorial loop, naive dask-image, xray-scale per engine, stages.

Usage::

    python benchmarks/bench_suite.py                     # real sample x8 = 72 images, 2 workers
    python benchmarks/bench_suite.py --images 144 --workers 4 --source /data/images

On the same images (copies of ``--source`` repeated to ``--images`` files, as in
``bench_pipeline.py``; phantoms when the real sample is absent), one after the
other in this process, with ``tune_malloc()`` applied first as the
``xray-scale`` executable does, it measures images/s of:

- ``tutorial``: the tutorial's code as a loop (``bench_pipeline.tutorial_loop``), one thread;
- ``dask-image``: what a dask-image user writes: ``imread(glob)`` (one task per
  file), ``gaussian_laplace(stack, sigma=(0, 1, 1))``, ``gaussian_gradient_magnitude(stack,
  sigma=(0, 2, 2))`` and the normalised hypot of ``sobel(stack, axis=1)`` and ``axis=2``,
  on the stack cast to float32, the three written with ``to_zarr`` and computed together
  with the threaded scheduler and ``--workers`` threads (the decoding is shared by
  the three outputs). Capped at ``--dask-image-images`` images; its rate is per image.
  Its outputs are also compared with :mod:`xray_scale.filters` applied image by image
  (design.md section 2: scipy skips the sigma=0 stack axis, so LoG and GGM gain a smoothed
  copy of the image, and sobel smooths across neighbouring images);
- ``run <engine>``: ``xray_scale.run`` with the default config, per engine installed;
- stage ceilings, each with ``--workers`` threads over batches of 8: ``decode``
  (``decode_batch``), ``bank <engine>`` (every map of the default config plus the
  statistics, on images already in memory), ``write`` (the maps of one real batch
  written shard by shard into a fresh store made by ``create_store``, i.e. the
  pipeline's ``write_maps`` alone, compression of masks included) and
  ``decode+bank <engine>`` (both in the same threads, nothing written).

It prints one line per item with its ratio to the tutorial loop, then the
pipeline's efficiency per engine: run rate / min(decode, bank, write ceilings)
and run rate / decode+bank ceiling. All figures are ratios measured side by side
in one run; a JSON record goes to ``benchmarks/results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import (  # noqa: E402
    REAL_SAMPLE,
    prepare_images,
    tutorial_loop,
    xray_scale_run,
)
from records import save_record  # noqa: E402  (a sibling script, not a package)

from xray_scale import filters  # noqa: E402
from xray_scale.allocator import tune_malloc  # noqa: E402
from xray_scale.analysis import image_statistics, map_function, output_dtypes  # noqa: E402
from xray_scale.config import load_config  # noqa: E402
from xray_scale.decode import decode_batch, read_png_header  # noqa: E402
from xray_scale.engines import EngineError, resolve_engine  # noqa: E402
from xray_scale.store import create_store, write_maps  # noqa: E402

BATCH = 8
"""Images per thread task in the stage ceilings: the default ``run.batch_size``."""

ENGINES = ("scipy", "opencv")


def available_engines() -> list[str]:
    """The concrete engines that can run here."""
    found = []
    for engine in ENGINES:
        try:
            found.append(resolve_engine(engine))
        except EngineError:
            pass
    return found


def extra_versions() -> dict[str, str]:
    """Versions of the compared libraries that ``library_versions`` does not list."""
    from importlib import metadata

    versions = {}
    for package in ("dask-image", "opencv-python", "opencv-python-headless"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def batches(items: list, size: int = BATCH) -> list[tuple[int, list]]:
    """``(start, items[start:start + size])`` for every batch."""
    return [(start, items[start : start + size]) for start in range(0, len(items), size)]


def threaded(function, work: list, workers: int) -> float:
    """Seconds to run ``function(item)`` over ``work`` with ``workers`` threads."""
    began = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(function, work):
            pass
    return time.perf_counter() - began


class Stages:
    """The pipeline's stages, one batch at a time, as ``process_batch`` does them."""

    def __init__(self, paths: list[Path], config):
        self.config = config
        header = read_png_header(paths[0])
        self.shape = (header.height, header.width)
        self.pixel_dtype = "uint16" if header.bit_depth == 16 else "uint8"
        self.map_dtypes = output_dtypes(config, self.pixel_dtype)

    def decode(self, paths: list) -> np.ndarray:
        block, decoded = decode_batch(
            [str(p) for p in paths],
            shape=self.shape,
            dtype=self.pixel_dtype,
            max_pixels=self.config.max_pixels,
            size_policy=self.config.size_policy,
        )
        failed = [image.error for image in decoded if image.error]
        if failed:
            raise SystemExit(f"decoding failed: {failed[:3]}")
        return block

    def bank(self, block: np.ndarray, engine: str) -> dict[str, np.ndarray]:
        """Statistics of every image, then map by map a (K, H, W) output, as the pipeline."""
        for pixels in block:
            image_statistics(pixels, self.config)
        maps = {}
        for name, dtype in self.map_dtypes.items():
            function = map_function(name, self.config, engine=engine)
            values = np.zeros(block.shape, dtype=dtype)
            for k in range(block.shape[0]):
                values[k] = function(block[k])
            maps[name] = values
        return maps


def measure_dask_image(folder: Path, out: Path, workers: int) -> float:
    """Seconds for the naive dask-image version of the bank (LoG, GGM, Sobel) into zarr."""
    import dask
    import dask.array as da
    from dask_image import imread, ndfilters

    began = time.perf_counter()
    stack = imread.imread(str(folder / "*.png")).astype(np.float32)
    log = ndfilters.gaussian_laplace(stack, sigma=(0, 1, 1))
    ggm = ndfilters.gaussian_gradient_magnitude(stack, sigma=(0, 2, 2))
    sobel = da.hypot(ndfilters.sobel(stack, axis=1), ndfilters.sobel(stack, axis=2))
    sobel = sobel * (255.0 / sobel.max(axis=(1, 2), keepdims=True))
    writes = [
        array.to_zarr(str(out / f"{name}.zarr"), compute=False)
        for name, array in (("laplace_gaussian", log), ("ggm", ggm), ("sobel", sobel))
    ]
    dask.compute(*writes, scheduler="threads", num_workers=workers)
    return time.perf_counter() - began


def dask_image_differences(paths: list[Path], out: Path, stages: Stages, count: int) -> dict:
    """Max |dask-image - per-image| on the first ``count`` images, absolute and / range."""
    import zarr

    block = stages.decode(paths[:count])
    references = {
        "laplace_gaussian": lambda image: filters.laplace_gaussian(image, sigma=1.0),
        "ggm": lambda image: filters.gaussian_gradient_magnitude(image, sigma=2.0),
        "sobel": filters.sobel,
    }
    differences = {}
    for name, reference in references.items():
        stacked = zarr.open_array(str(out / f"{name}.zarr"), mode="r")[:count]
        worst_abs, worst_rel = 0.0, 0.0
        for k in range(count):
            expected = reference(block[k])
            difference = float(np.max(np.abs(stacked[k].astype(np.float64) - expected)))
            spread = float(expected.max() - expected.min()) or 1.0
            worst_abs, worst_rel = max(worst_abs, difference), max(worst_rel, difference / spread)
        differences[name] = {"max_abs": worst_abs, "relative_to_range": worst_rel}
    return differences


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=72)
    parser.add_argument("--source", type=Path, default=None, help="folder of PNGs to repeat")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--dask-image-images",
        type=int,
        default=24,
        help="cap on the images given to dask-image (its rate is per image)",
    )
    parser.add_argument(
        "--diff-images", type=int, default=4, help="images compared with per-image filtering"
    )
    parser.add_argument(
        "--results", type=Path, default=Path(__file__).parent / "results", help="JSON folder"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    """Run the suite; returns the path of the JSON record."""
    malloc_tuned = tune_malloc()  # the allocator policy of the xray-scale executable
    args = parse_args(argv)
    source = args.source or (REAL_SAMPLE if REAL_SAMPLE.is_dir() else None)
    workers = args.workers
    config = load_config(None)
    engines = available_engines()
    rates: dict[str, float] = {}
    notes: list[str] = []

    with tempfile.TemporaryDirectory(prefix="xray-suite-") as tmp:
        folder = Path(tmp)
        paths = prepare_images(source, args.images, folder)
        count = len(paths)
        stages = Stages(paths, config)
        work = batches(paths)

        def log(line: str) -> None:
            print(line, flush=True)

        log(
            f"{count} images {stages.shape[0]}x{stages.shape[1]} {stages.pixel_dtype}, "
            f"{workers} workers, engines {', '.join(engines)}"
        )

        # 1. the tutorial loop
        rates["tutorial"] = count / tutorial_loop(paths)
        log(f"  tutorial loop: {rates['tutorial']:.2f} img/s")

        # 2. dask-image as a user writes it, on its own folder of the first images
        dask_count = min(count, args.dask_image_images)
        dask_folder = folder / "dask-images"
        dask_folder.mkdir()
        for path in paths[:dask_count]:
            os.link(path, dask_folder / path.name)
        dask_out = folder / "dask-out"
        dask_out.mkdir()
        rates["dask-image"] = dask_count / measure_dask_image(dask_folder, dask_out, workers)
        if dask_count < count:
            notes.append(f"dask-image ran on the first {dask_count} of {count} images")
        diff_count = min(args.diff_images, dask_count)
        differences = dask_image_differences(paths, dask_out, stages, diff_count)
        shutil.rmtree(dask_out)
        log(f"  dask-image ({dask_count} images): {rates['dask-image']:.2f} img/s")

        # 3. xray_scale.run per engine (the store is deleted outside the clock)
        for engine in engines:
            seconds = xray_scale_run(
                folder / "images", folder / "run.zarr", workers=workers, config=None, engine=engine
            )
            rates[f"run {engine}"] = count / seconds
            log(f"  run {engine}: {rates[f'run {engine}']:.2f} img/s")
        shutil.rmtree(folder / "run.zarr", ignore_errors=True)

        # 4. stage ceilings, W threads over batches of 8
        rates["decode"] = count / threaded(lambda b: stages.decode(b[1]), work, workers)
        blocks = [(start, stages.decode(chunk)) for start, chunk in work]
        for engine in engines:
            seconds = threaded(lambda b, e=engine: stages.bank(b[1], e), blocks, workers)
            rates[f"bank {engine}"] = count / seconds
        maps = stages.bank(blocks[0][1], engines[0])
        store = folder / "write.zarr"
        create_store(
            store,
            paths=[str(p) for p in paths],
            shape=stages.shape,
            map_dtypes=stages.map_dtypes,
            config=config,
            attrs={"batch_size": config.batch_size},
        )

        def write(batch: tuple[int, list]) -> None:
            import zarr

            start, chunk = batch
            group = zarr.open_group(str(store), mode="r+")
            write_maps(group, start, {n: v[: len(chunk)] for n, v in maps.items()})

        rates["write"] = count / threaded(write, work, workers)
        shutil.rmtree(store)
        del blocks
        for engine in engines:
            seconds = threaded(
                lambda b, e=engine: stages.bank(stages.decode(b[1]), e), work, workers
            )
            rates[f"decode+bank {engine}"] = count / seconds

    efficiency = {}
    for engine in engines:
        run_rate = rates[f"run {engine}"]
        stage_min = min(rates["decode"], rates[f"bank {engine}"], rates["write"])
        efficiency[engine] = {
            "vs_min_stage": run_rate / stage_min,
            "vs_decode_bank": run_rate / rates[f"decode+bank {engine}"],
        }

    tutorial = rates["tutorial"]
    print(f"\n{'item':<22} {'img/s':>9} {'x tutorial':>11}")
    for name, rate in rates.items():
        label = f"{name} ({dask_count})" if name == "dask-image" else name
        print(f"{label:<22} {rate:>9.2f} {rate / tutorial:>10.2f}x")
    print("\npipeline efficiency (run rate / ceiling):")
    for engine, ratios in efficiency.items():
        print(
            f"  {engine:<7} / min(decode, bank, write) {ratios['vs_min_stage']:.2f}   "
            f"/ decode+bank {ratios['vs_decode_bank']:.2f}"
        )
    print(f"\ndask-image vs per-image filtering (first {diff_count} images):")
    for name, difference in differences.items():
        print(
            f"  {name:<17} max |diff| {difference['max_abs']:10.3f}   "
            f"/ range {difference['relative_to_range']:.3f}"
        )
    for note in notes:
        print(f"note: {note}")

    record = {
        "workers": workers,
        "malloc_tuned": malloc_tuned,
        "images": count,
        "image_shape": list(stages.shape),
        "pixel_dtype": stages.pixel_dtype,
        "source": str(source) if source else "phantoms",
        "config": "default (configs/tutorial.toml)",
        "engines": engines,
        "other_libraries": extra_versions(),
        "dask_image_images": dask_count,
        "rates_img_s": rates,
        "ratios_to_tutorial": {name: rate / tutorial for name, rate in rates.items()},
        "efficiency": efficiency,
        "dask_image_differences": {"images": diff_count, **differences},
        "notes": notes,
    }
    return save_record("suite", record, folder=args.results)


if __name__ == "__main__":
    main()
