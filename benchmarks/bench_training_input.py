"""Training input: 224 x 224 images per second from ImageDataset, against TorchXRayVision's way.

Usage::

    python benchmarks/bench_training_input.py                  # 512 copies of the 100 real films
    python benchmarks/bench_training_input.py --images 1024 --rounds 3
    python benchmarks/bench_training_input.py --source /data/images   # any folder of PNGs

One run, on the same images, one loader after the other, alternating which goes
first each round, each with 2 worker processes, batches of 32, shuffled:

- **TorchXRayVision's way** (its ``NIH_Dataset.__getitem__`` with ``XRayCenterCrop``
  and ``XRayResizer(224)``, written here with the same libraries): per item,
  ``skimage.io.imread`` of the 1024 x 1024 PNG, scaled to [-1024, 1024] in float32,
  centre-cropped, ``skimage.transform.resize`` to 1 x 224 x 224; labels from the
  manifest by ``str.contains`` per pathology.
- **ImageDataset** over a store made with ``configs/full-dump.toml`` (and
  ``--manifest``) from the same PNGs: the film's 256 x 256 preview, resized to 224
  (OpenCV, area) and scaled to [-1024, 1024] the same way, labels from the store.
  ``cache``: the previews decoded once into a memory-mapped file (its build time is
  printed apart); ``store``: read from the store's chunks per item.

The loader is a ``torch.utils.data.DataLoader`` when torch is installed, else a
``multiprocessing`` pool of 2 doing the same per item. Throughput is the images
delivered over the time from creating the loader's iterator to its last batch,
worker start-up included (the time to the first batch is recorded too);
ImageDataset loads ``--passes`` times as many images, so that its run is long
enough for start-up not to dominate. The record, with the machine's load
average, goes to benchmarks/results/ (git-ignored). Target: ImageDataset (cache)
>= 10x TorchXRayVision's way.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import skimage.io
import skimage.transform
from records import save_record

import xray_scale

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION = ROOT.parent / "shared" / "data" / "chestxray8-calibration"
FULL_DUMP = ROOT / "configs" / "full-dump.toml"
SIZE, WORKERS, BATCH = 224, 2, 32
TARGET = 10.0
PATHOLOGIES = sorted(
    ["Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema"]
    + ["Fibrosis", "Effusion", "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule"]
    + ["Mass", "Hernia"]
)
"""TorchXRayVision's NIH pathologies, sorted as it sorts them."""


def normalize(image: np.ndarray, maxval: float = 255) -> np.ndarray:
    """[0, maxval] to [-1024, 1024], float32 (TorchXRayVision's scaling)."""
    if image.max() > maxval:
        raise ValueError(f"max image value {image.max()} above the expected {maxval}")
    return (2 * (image.astype(np.float32) / maxval) - 1.0) * 1024


class TorchXRayVisionWay:
    """Per item what TorchXRayVision's NIH dataset does: imread, scale, crop, resize to 224."""

    def __init__(self, folder: Path, manifest: Path):
        import pandas as pd

        table = pd.read_csv(manifest)
        self.paths = [str(folder / name) for name in table["Image Index"]]
        labels = [table["Finding Labels"].str.contains(p).to_numpy() for p in PATHOLOGIES]
        self.labels = np.asarray(labels).T.astype(np.float32)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: int):
        image = skimage.io.imread(self.paths[item])
        image = normalize(image)
        if image.ndim > 2:
            image = image[:, :, 0]
        image = image[None, :, :]
        _, height, width = image.shape  # XRayCenterCrop
        side = min(height, width)
        top, left = height // 2 - side // 2, width // 2 - side // 2
        image = image[:, top : top + side, left : left + side]
        with warnings.catch_warnings():  # XRayResizer(224), its default skimage engine
            warnings.simplefilter("ignore")
            image = skimage.transform.resize(
                image, (1, SIZE, SIZE), mode="constant", preserve_range=True
            ).astype(np.float32)
        return image, self.labels[item]


def to_training_input(preview: np.ndarray) -> np.ndarray:
    """ImageDataset's transform here: the 256 x 256 preview to 1 x 224 x 224, scaled the same."""
    small = cv2.resize(preview, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return normalize(small)[None, :, :]


def prepare(source: Path, count: int, folder: Path) -> tuple[Path, Path]:
    """``count`` copies of ``source``'s PNGs with NIH names, and a manifest for them.

    A copy keeps its original's ``Finding Labels`` where the source has a
    ``Data_Entry_2017*.csv`` row for it, else ``No Finding``.
    """
    originals = sorted(p for p in source.iterdir() if p.suffix.lower() == ".png")
    if not originals:
        raise SystemExit(f"no PNG files in {source}; give --source a folder of PNG images")
    findings = {}
    for table in source.glob("Data_Entry_2017*.csv"):
        with table.open(newline="") as handle:
            rows = csv.DictReader(handle)
            findings |= {row["Image Index"]: row["Finding Labels"] for row in rows}
    images = folder / "images"
    images.mkdir(parents=True)
    rows = []
    for k in range(count):
        original = originals[k % len(originals)]
        name = f"{80000000 + k // 10:08d}_{k % 10:03d}.png"
        shutil.copyfile(original, images / name)
        patient = 80000000 + k // 10
        labels = findings.get(original.name, "No Finding")
        rows.append([name, labels, k % 10, patient, 50, "F", "PA", 1024, 1024, 0.143, 0.143])
    manifest = folder / "Data_Entry_2017.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age"]
            + ["Patient Gender", "View Position", "OriginalImage[Width", "Height]"]
            + ["OriginalImagePixelSpacing[x", "y]"]
        )
        writer.writerows(rows)
    return images, manifest


def _torch_loader(dataset, samples: int, seed: int):
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    generator = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(dataset, num_samples=samples, generator=generator)
    loader = DataLoader(dataset, batch_size=BATCH, sampler=sampler, num_workers=WORKERS)
    for images, _ in loader:
        yield len(images)


_POOL_DATASET = None


def _keep(dataset) -> None:
    global _POOL_DATASET
    _POOL_DATASET = dataset


def _batch(items: list[int]):
    """One batch, stacked as a loader's collate would."""
    pairs = [_POOL_DATASET[item] for item in items]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _pool_loader(dataset, samples: int, seed: int):
    import multiprocessing

    order = np.random.default_rng(seed).integers(0, len(dataset), samples).tolist()
    batches = [order[k : k + BATCH] for k in range(0, samples, BATCH)]
    with multiprocessing.Pool(WORKERS, initializer=_keep, initargs=(dataset,)) as pool:
        for images, _ in pool.imap(_batch, batches):
            yield len(images)


def measure(dataset, samples: int, *, seed: int, use_torch: bool) -> dict:
    """Load ``samples`` shuffled items with 2 workers: images/s, start-up included."""
    loader = (_torch_loader if use_torch else _pool_loader)(dataset, samples, seed)
    began = time.perf_counter()
    first = next(loader)
    first_at = time.perf_counter()
    count = first + sum(loader)
    ended = time.perf_counter()
    return {
        "images": count,
        "images_per_s": count / (ended - began),
        "first_batch_s": first_at - began,
        "wall_s": ended - began,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=CALIBRATION)
    parser.add_argument("--images", type=int, default=512, help="copies of the source's films")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--passes", type=int, default=8, help="ImageDataset loads this many times the images"
    )
    parser.add_argument("--no-torch", action="store_true", help="a multiprocessing pool instead")
    args = parser.parse_args(argv)
    use_torch = not args.no_torch
    if use_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch is not installed: a multiprocessing pool of 2 is the loader")
            use_torch = False
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        folder = Path(tmp)
        images, manifest = prepare(args.source, args.images, folder)
        store = folder / "store.zarr"
        began = time.perf_counter()
        summary = xray_scale.run([images], store, config=FULL_DUMP, manifest=manifest)
        run_s = time.perf_counter() - began
        began = time.perf_counter()
        cached = xray_scale.ImageDataset(store, transform=to_training_input, cache=folder)
        cache_s = time.perf_counter() - began
        datasets = {
            "torchxrayvision_way": (TorchXRayVisionWay(images, manifest), args.images),
            "image_dataset_cache": (cached, args.images * args.passes),
            "image_dataset_store": (
                xray_scale.ImageDataset(store, transform=to_training_input),
                args.images,
            ),
        }
        shapes = {name: ds[0][0].shape for name, (ds, _) in datasets.items()}
        if len(set(shapes.values())) != 1:
            raise SystemExit(f"the loaders deliver different shapes: {shapes}")
        rounds = []
        for r in range(args.rounds):
            names = list(datasets) if r % 2 == 0 else list(reversed(datasets))
            result = {}
            for name in names:
                dataset, samples = datasets[name]
                result[name] = measure(dataset, samples, seed=r, use_torch=use_torch)
                print(f"round {r + 1} {name}: {result[name]['images_per_s']:.1f} img/s")
            rounds.append(result)
    best = {name: max(r[name]["images_per_s"] for r in rounds) for name in datasets}
    baseline = best["torchxrayvision_way"]
    ratios = {name: rate / baseline for name, rate in best.items()}
    per_round = [
        {name: r[name]["images_per_s"] / r["torchxrayvision_way"]["images_per_s"] for name in r}
        for r in rounds
    ]
    load_after = os.getloadavg()
    print(
        f"\n{args.images} films ({args.source.name}), {SIZE}x{SIZE} float32, {WORKERS} workers, "
        f"batches of {BATCH}, loader: {'torch DataLoader' if use_torch else 'multiprocessing'}"
    )
    for name in datasets:
        print(f"  {name:22s} {best[name]:9.1f} img/s  {ratios[name]:7.1f}x")
    print(
        f"store: {summary.ok} ok in {run_s:.1f} s (full-dump config); "
        f"cache built in {cache_s:.2f} s; load average {load_before[0]:.1f} -> {load_after[0]:.1f}"
    )
    met = ratios["image_dataset_cache"] >= TARGET
    print(f"target ImageDataset (cache) >= {TARGET:.0f}x: {'met' if met else 'NOT met'}")
    save_record(
        "training_input",
        {
            "images": args.images,
            "source": str(args.source),
            "loader": "torch" if use_torch else "multiprocessing",
            "workers": WORKERS,
            "batch": BATCH,
            "best_images_per_s": best,
            "ratios": ratios,
            "per_round_ratios": per_round,
            "rounds": rounds,
            "store_run_s": run_s,
            "cache_build_s": cache_s,
            "load_average": {"before": load_before, "after": load_after},
            "python": sys.version.split()[0],
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
