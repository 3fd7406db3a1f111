"""The tutorial's loop against ``xray-scale run``, side by side on the same images.

Usage::

    python benchmarks/bench_pipeline.py                 # real sample x8 = 72 images
    python benchmarks/bench_pipeline.py --images 144 --source /data/images --workers 4

The images are copies of ``--source`` (default: ``../shared/data/chestxray8-sample``
if present, else generated phantoms) repeated to ``--images`` files. Both sides
run in this process tree, one after the other, ``--rounds`` times; the ratio is
computed per round and the best round of each is reported too. A JSON record
goes to ``benchmarks/results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from records import save_record
from scipy import ndimage

import xray_scale
from xray_scale.allocator import tune_malloc

REAL_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared/data/chestxray8-sample"


def tutorial_loop(paths: list[Path]) -> float:
    """The tutorial's code, image by image, as a user would loop it; returns seconds."""
    began = time.perf_counter()
    for path in paths:
        xray_image = iio.imread(path)
        ndimage.gaussian_laplace(xray_image, sigma=1)
        ndimage.gaussian_gradient_magnitude(xray_image, sigma=2)
        x_sobel = ndimage.sobel(xray_image, axis=0)
        y_sobel = ndimage.sobel(xray_image, axis=1)
        xray_image_sobel = np.hypot(x_sobel, y_sobel)
        xray_image_sobel *= 255.0 / np.max(xray_image_sobel)
        xray_image_sobel = xray_image_sobel.astype("float32")
        fourier_gaussian = ndimage.fourier_gaussian(xray_image, sigma=0.05)
        x_prewitt = ndimage.prewitt(fourier_gaussian, axis=0)
        y_prewitt = ndimage.prewitt(fourier_gaussian, axis=1)
        xray_image_canny = np.hypot(x_prewitt, y_prewitt)
        xray_image_canny *= 255.0 / np.max(xray_image_canny)
        np.min(xray_image), np.max(xray_image), np.mean(xray_image), np.median(xray_image)
        ndimage.histogram(xray_image, min=np.min(xray_image), max=np.max(xray_image), bins=256)
        np.where(xray_image > 150, xray_image, 0)
        np.where(xray_image > 150, 1, 0)
    return time.perf_counter() - began


def prepare_images(source: Path | None, count: int, folder: Path) -> list[Path]:
    """Copy the source PNGs round-robin into ``folder`` until there are ``count``."""
    if source is None:
        from xray_scale.synth import write_phantoms

        originals = write_phantoms(folder / "originals", patients=1, follow_ups=9)
    else:
        originals = sorted(p for p in source.iterdir() if p.suffix.lower() == ".png")
    if not originals:
        raise SystemExit(f"no PNG files in {source}")
    images = folder / "images"
    images.mkdir()
    paths = []
    for k in range(count):
        original = originals[k % len(originals)]
        target = images / f"{k:06d}_{original.name}"
        shutil.copyfile(original, target)
        paths.append(target)
    return paths


def xray_scale_run(
    folder: Path, store: Path, *, workers: int, config: str | None, engine: str
) -> float:
    shutil.rmtree(store, ignore_errors=True)  # the previous round's store, outside the clock
    began = time.perf_counter()
    summary = xray_scale.run([folder], store, workers=workers, config=config, engine=engine)
    elapsed = time.perf_counter() - began
    if summary.ok != summary.total:
        raise SystemExit(f"run failed on {summary.failed} images: {summary.failures[:3]}")
    return elapsed


def main() -> None:
    # The allocator policy of the xray-scale executable, for both sides of the comparison.
    tune_malloc()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=72)
    parser.add_argument("--source", type=Path, default=None, help="folder of PNGs to repeat")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--config", default=None, help="TOML config for xray-scale run")
    parser.add_argument("--engine", default="auto", choices=xray_scale.ENGINES)
    args = parser.parse_args()
    source = args.source or (REAL_SAMPLE if REAL_SAMPLE.is_dir() else None)

    with tempfile.TemporaryDirectory(prefix="xray-bench-") as tmp:
        folder = Path(tmp)
        paths = prepare_images(source, args.images, folder)
        rounds = []
        for round_number in range(args.rounds):
            tutorial_s = tutorial_loop(paths)
            run_s = xray_scale_run(
                folder / "images",
                folder / "bench.zarr",
                workers=args.workers,
                config=args.config,
                engine=args.engine,
            )
            rounds.append(
                {
                    "tutorial_img_s": len(paths) / tutorial_s,
                    "run_img_s": len(paths) / run_s,
                    "ratio": tutorial_s / run_s,
                }
            )
            print(
                f"round {round_number + 1}: "
                f"tutorial loop {rounds[-1]['tutorial_img_s']:.2f} img/s, "
                f"xray-scale run ({args.workers} workers) {rounds[-1]['run_img_s']:.2f} img/s, "
                f"ratio {rounds[-1]['ratio']:.2f}x"
            )
    best_tutorial = max(r["tutorial_img_s"] for r in rounds)
    best_run = max(r["run_img_s"] for r in rounds)
    print(
        f"best of {args.rounds}: tutorial {best_tutorial:.2f} img/s, run {best_run:.2f} img/s, "
        f"ratio {best_run / best_tutorial:.2f}x"
    )
    save_record(
        "pipeline",
        {
            "workers": args.workers,
            "images": len(paths),
            "source": str(source) if source else "phantoms",
            "config": args.config or "default (configs/tutorial.toml)",
            "engine": xray_scale.engines.resolve_engine(args.engine),
            "rounds": rounds,
            "best_ratio": best_run / best_tutorial,
        },
    )


if __name__ == "__main__":
    main()
