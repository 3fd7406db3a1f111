"""Output cost: bytes per image and write throughput per storage dtype and compressor.

Usage::

    python benchmarks/bench_storage.py                  # real sample repeated to 48 images
    python benchmarks/bench_storage.py --images 96 --workers 4 --source /data/images

On the same images (as ``xray-scale bench``), the four filter maps of the default
config (two masks included, always zstd level 1) are computed once per batch by the
pipeline's own code, then written into a fresh store with every combination of
``store.filter_dtype`` (float32, float16, uint8 normalised per image) and
``store.compressor`` / ``store.compression_level``, through the pipeline's writer
(:meth:`xray_scale.bench.benchmark.Stages.write`). Each combination is measured in
``--rounds`` rounds, in a rotated order, and the best round is kept: on virtual
machines the first writes into never-used memory cost far more kernel time than
later ones, and the order must not decide the ranking. Printed per combination:
MB per image on disk, write img/s, both as ratios to uncompressed float32, and the
largest error of the stored maps against float32 as a fraction of each map's range.
A JSON record goes to ``benchmarks/results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from records import save_record

from xray_scale.allocator import tune_malloc
from xray_scale.analysis.image import map_function
from xray_scale.analysis.maps import to_storage_dtype
from xray_scale.bench.benchmark import REAL_SAMPLE, Stages, prepare_images
from xray_scale.config import STORE_DTYPES, load_config

COMPRESSORS = [
    ("none", 1),  # the level is not used without a compressor
    ("zstd", 1),
    ("zstd", 3),
    ("blosc-zstd", 1),
    ("blosc-zstd", 3),
    ("blosc-lz4", 5),
]
"""(store.compressor, store.compression_level) pairs measured."""


def storage_error(maps: list[np.ndarray], dtype: str) -> float:
    """Largest |stored - float32| / range over ``maps``, in the units a reader gets back.

    float16 is read back as is; uint8 maps are normalised per image, so they are
    scaled back to each map's own min..max before comparing.
    """
    worst = 0.0
    for values in maps:
        stored = to_storage_dtype(values, dtype).astype(np.float64)
        low, high = float(values.min()), float(values.max())
        if dtype == "uint8":
            stored = low + stored * (high - low) / 255.0
        worst = max(worst, float(np.abs(stored - values).max()) / ((high - low) or 1.0))
    return worst


def main() -> None:
    tune_malloc()  # the allocator policy of the xray-scale executable
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--source", type=Path, default=None, help="folder of PNGs to repeat")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    source = args.source or (REAL_SAMPLE if REAL_SAMPLE.is_dir() else None)
    combinations = [(d, c, level) for d in STORE_DTYPES for c, level in COMPRESSORS]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="xray-storage-") as tmp:
        folder = Path(tmp)
        stages = Stages(prepare_images(source, args.images, folder), args.workers)
        for round_number in range(args.rounds):
            shift = round_number * len(combinations) // args.rounds
            for dtype, compressor, level in combinations[shift:] + combinations[:shift]:
                store = {"filter_dtype": dtype, "compressor": compressor}
                store["compression_level"] = level
                spec = stages.spec(load_config({"store": store}), "opencv")
                rate, size = stages.write(spec, stages.decoded(spec), folder)
                name = f"{dtype} {compressor}" + (f"-{level}" if compressor != "none" else "")
                best = results.setdefault(name, {"img_s": 0.0})
                best.update(img_s=max(best["img_s"], rate), mb_per_image=size / 1e6)
                print(f"  round {round_number + 1} {name}: {rate:.1f} img/s, {size / 1e6:.2f} MB")
        default = stages.spec(load_config(None), "opencv")
        first_block = stages.decoded(default)[0][1]
    float_maps = [
        map_function(f"filters/{name}", default.config, engine="opencv")(pixels)
        for name in default.config.filters
        for pixels in first_block
    ]
    errors = {dtype: storage_error(float_maps, dtype) for dtype in STORE_DTYPES}
    reference = results["float32 none"]
    print(
        f"\n{'dtype compressor':<24} {'MB/img':>7} {'x float32':>10} {'img/s':>7} "
        f"{'x float32':>10} {'max error / range':>18}"
    )
    for name, figures in results.items():
        figures["size_ratio"] = figures["mb_per_image"] / reference["mb_per_image"]
        figures["speed_ratio"] = figures["img_s"] / reference["img_s"]
        figures["max_error_over_range"] = errors[name.split()[0]]
        print(
            f"{name:<24} {figures['mb_per_image']:>7.2f} {figures['size_ratio']:>9.2f}x "
            f"{figures['img_s']:>7.1f} {figures['speed_ratio']:>9.2f}x "
            f"{figures['max_error_over_range']:>18.1e}"
        )
    save_record(
        "storage",
        {
            "workers": args.workers,
            "images": args.images,
            "rounds": args.rounds,
            "source": str(source) if source else "phantoms",
            "maps": "default config: 4 filter maps (stored dtype) + 2 masks (zstd-1)",
            "combinations": results,
        },
    )


if __name__ == "__main__":
    main()
