"""Decoding each input format, against the loop a user writes, and a JPEG run against a PNG run.

Usage::

    python benchmarks/bench_formats.py                  # 40 real films, about two minutes
    python benchmarks/bench_formats.py --images 100 --rounds 3 --workers 2

From ``--images`` real ChestX-ray8 films (``../shared/data/chestxray8-calibration``, then
the sample folder; 1024 x 1024, 8-bit) it writes, in a temporary folder, the same films
as PNG (the files themselves), as JPEG (Pillow, libjpeg-turbo, quality 95: CheXpert's and
MIMIC-CXR-JPG's kind of file) and as DICOM with 12 bits stored (each value x 16) in three
transfer syntaxes (Explicit VR Little Endian, JPEG-LS lossless, JPEG 2000 lossless,
written by pydicom's encoders). Then, on one thread, best of ``--rounds`` rounds,
interleaved, in images per second of the thread's CPU time (robust to other load):

1. **Decode rate per format**, ours (:func:`xray_scale.io.decode.decode_image`: header
   checks, integrity check, decode, the grayscale rule; for DICOM also the modality LUT,
   VOI and MONOCHROME1 rule) against the loop a user writes: Pillow
   (``np.asarray(Image.open(p))``; ``.convert("L")`` for JPEG) and pydicom's
   ``dcmread(p).pixel_array``.
2. **Which JPEG decoder**: simplejpeg, PyTurboJPEG (if installed) and OpenCV, each asked
   for grayscale, checked pixel for pixel against libjpeg-turbo's own grayscale output
   (Pillow with ``draft("L")``), and timed.
3. **A full-dump-config run** (``configs/full-dump.toml``, ``--workers`` threads) on the
   JPEG folder against the PNG folder (the same films, the same pixel count): images/s
   of each and their ratio (the target is >= 0.9).

A JSON record goes to ``benchmarks/results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from records import save_record  # noqa: E402

import xray_scale  # noqa: E402
from xray_scale.io.decode import decode_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CONFIG = ROOT / "configs" / "full-dump.toml"


def real_films(count: int) -> list[Path]:
    """Up to ``count`` real ChestX-ray8 PNGs, calibration set first."""
    found = []
    for folder in ("chestxray8-calibration", "chestxray8-sample"):
        found += sorted((DATA / folder).glob("*.png"))
    if not found:
        raise SystemExit(f"no real films under {DATA}: this benchmark needs them")
    return found[:count]


def write_inputs(films: list[Path], folder: Path) -> dict[str, list[Path]]:
    """The films as PNG, JPEG and DICOM (three syntaxes); {format: files}."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        DigitalXRayImageStorageForPresentation,
        ExplicitVRLittleEndian,
        JPEG2000Lossless,
        JPEGLSLossless,
        generate_uid,
    )

    written: dict[str, list[Path]] = {"png": [], "jpeg": []}
    syntaxes = {"dicom": None, "dicom-jpeg-ls": JPEGLSLossless, "dicom-jpeg2000": JPEG2000Lossless}
    for name in syntaxes:
        written[name] = []
    for kind in written:
        (folder / kind).mkdir(parents=True)
    for film in films:
        pixels = np.asarray(Image.open(film).convert("L"))
        png = folder / "png" / film.name
        shutil.copyfile(film, png)
        written["png"].append(png)
        jpeg = folder / "jpeg" / f"{film.stem}.jpg"
        Image.fromarray(pixels).save(jpeg, "JPEG", quality=95)
        written["jpeg"].append(jpeg)
        for kind, syntax in syntaxes.items():
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, generate_uid()
            ds.Modality, ds.PatientID, ds.ViewPosition = "DX", film.stem[:8], "PA"
            ds.Rows, ds.Columns = pixels.shape
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
            ds.PixelData = (pixels.astype(np.uint16) * 16).tobytes()
            if syntax is not None:
                ds.compress(syntax)
            out = folder / kind / f"{film.stem}.dcm"
            pydicom.dcmwrite(out, ds, enforce_file_format=True)
            written[kind].append(out)
    return written


def user_loop(kind: str):
    """What a user writes to get one image's array."""
    if kind == "png":
        return lambda path: np.asarray(Image.open(path))
    if kind == "jpeg":
        return lambda path: np.asarray(Image.open(path).convert("L"))
    import pydicom

    return lambda path: pydicom.dcmread(path).pixel_array


def ours(kind: str):
    dtype = np.uint8 if kind in ("png", "jpeg") else np.uint16

    def decode(path):
        image = decode_image(path, shape=(1024, 1024), dtype=dtype)
        if not image.ok:
            raise SystemExit(f"{path}: {image.error}")
        return image.pixels

    return decode


def best_rate(function, items, rounds: int) -> float:
    """Best images/s of ``rounds`` passes of ``function`` over ``items``."""
    return best_rates({"it": function}, items, rounds)["it"]


def best_rates(functions: dict, items, rounds: int) -> dict[str, float]:
    """Best images per CPU second of each function, passes interleaved round by round.

    The decoders run on this one thread, so its CPU time (``time.thread_time``) is what
    each costs, whatever else the machine runs (wall time on a loaded 2-core VM swings 2x).
    """
    best = dict.fromkeys(functions, 0.0)
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.thread_time()
            for item in items:
                function(item)
            best[name] = max(best[name], len(items) / max(time.thread_time() - start, 1e-9))
    return best


def jpeg_decoders() -> dict:
    """Each candidate JPEG decoder, asked for grayscale."""
    import cv2
    import simplejpeg

    decoders = {
        "simplejpeg": lambda data: simplejpeg.decode_jpeg(
            data, colorspace="GRAY", fastdct=False, fastupsample=False
        )[..., 0],
        "opencv": lambda data: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE),
    }
    try:
        from turbojpeg import TJPF_GRAY, TurboJPEG

        turbo = TurboJPEG()
        decoders["pyturbojpeg"] = lambda data: turbo.decode(data, pixel_format=TJPF_GRAY)[..., 0]
    except (ImportError, RuntimeError, OSError) as error:
        print(f"PyTurboJPEG left out: {str(error).splitlines()[0]}")
    return decoders


def libjpeg_turbo_gray(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        image.draft("L", image.size)
        return np.asarray(image)


def compare_jpeg_decoders(files: list[Path], rounds: int) -> dict:
    datas = [path.read_bytes() for path in files]
    references = [libjpeg_turbo_gray(data) for data in datas]
    decoders = {"pillow draft L": libjpeg_turbo_gray, **jpeg_decoders()}
    rates = best_rates(decoders, datas, rounds)
    figures = {}
    for name, decode in decoders.items():
        equal = sum(np.array_equal(decode(d), r) for d, r in zip(datas, references, strict=True))
        figures[name] = {"rate": rates[name], "equal": f"{equal}/{len(datas)}"}
    return figures


def timed_run(folder: Path, out: Path, workers: int) -> tuple[float, float]:
    """Images per wall second and per CPU second (this process, every thread) of one run."""
    shutil.rmtree(out, ignore_errors=True)
    start, cpu = time.perf_counter(), time.process_time()
    summary = xray_scale.run([folder], out, config=CONFIG, workers=workers, engine="opencv")
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if summary.failed or summary.pending:
        raise SystemExit(f"run on {folder}: {summary.failed} failed, {summary.pending} pending")
    return summary.ok / elapsed, summary.ok / cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-run", action="store_true", help="decode rates only")
    args = parser.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-formats-") as temporary:
        folder = Path(temporary)
        files = write_inputs(real_films(args.images), folder)
        print(f"{len(files['png'])} films, load {load:.1f} on {os.cpu_count()} CPUs")
        decode_rates = {}
        for kind, paths in files.items():
            rates = best_rates({"ours": ours(kind), "user": user_loop(kind)}, paths, args.rounds)
            ours_rate, user_rate = rates["ours"], rates["user"]
            decode_rates[kind] = {
                "ours": round(ours_rate, 1),
                "user_loop": round(user_rate, 1),
                "ratio": round(ours_rate / user_rate, 3),
                "mean_file_kb": round(np.mean([p.stat().st_size for p in paths]) / 1024, 1),
            }
            print(
                f"decode {kind:15s} ours {ours_rate:7.1f} img/s   user loop "
                f"{user_rate:7.1f} img/s   ratio {ours_rate / user_rate:5.2f}"
            )
        decoders = compare_jpeg_decoders(files["jpeg"], args.rounds)
        for name, figures in decoders.items():
            print(
                f"jpeg decoder {name:15s} {figures['rate']:7.1f} img/s  {figures.get('equal', '')}"
            )
        runs = {}
        if not args.no_run:
            png, jpeg = [], []
            for _ in range(args.rounds):  # interleaved, so that load changes hit both
                png.append(timed_run(folder / "png", folder / "png.zarr", args.workers))
                jpeg.append(timed_run(folder / "jpeg", folder / "jpeg.zarr", args.workers))
            wall = (max(r[0] for r in png), max(r[0] for r in jpeg))
            cpu = (max(r[1] for r in png), max(r[1] for r in jpeg))
            runs = {
                "config": str(CONFIG.relative_to(ROOT)),
                "workers": args.workers,
                "png_img_s": round(wall[0], 2),
                "jpeg_img_s": round(wall[1], 2),
                "jpeg_over_png": round(wall[1] / wall[0], 3),
                "png_img_per_cpu_s": round(cpu[0], 2),
                "jpeg_img_per_cpu_s": round(cpu[1], 2),
                "jpeg_over_png_cpu": round(cpu[1] / cpu[0], 3),
            }
            print(
                f"full-dump run, {args.workers} threads: PNG {wall[0]:.2f} img/s, JPEG "
                f"{wall[1]:.2f} img/s, ratio {runs['jpeg_over_png']:.3f}; per CPU second: PNG "
                f"{cpu[0]:.2f}, JPEG {cpu[1]:.2f}, ratio {runs['jpeg_over_png_cpu']:.3f}"
            )
    figures = {
        "images": args.images,
        "rounds": args.rounds,
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "decode": decode_rates,
        "jpeg_decoders": {k: {**v, "rate": round(v["rate"], 1)} for k, v in decoders.items()},
        "runs": runs,
    }
    save_record("formats", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
