"""Random access into the dump's archives: which library reads a ``.tar.gz`` in place.

Usage::

    python benchmarks/bench_archives.py                     # ~0.15 GB, about a minute
    python benchmarks/bench_archives.py --gigabytes 1       # a real-size archive
    python benchmarks/bench_archives.py --run               # + whole runs from each source
    python benchmarks/bench_archives.py --startup           # 12 x 10,000 members vs a folder

NIH ships ChestX-ray8 as ``images_001.tar.gz`` ... ``images_012.tar.gz`` (~3.5 GB each,
``images/NNNNNNNN_NNN.png`` inside); a batch of the run needs K of its members, so a
``.tar.gz`` must be read at random, without decompressing it from its start each time.
This script builds, in a temporary folder, ``--gigabytes`` of copies of the 9 real
sample PNGs (distinct names, NIH's layout) as an extracted folder, a ``.tar.gz``
(``tarfile``, gzip level 6 as ``tar czf`` writes), and a ``.zip`` (deflate, as Kaggle's),
then measures each reader, each step in a fresh process (so that its memory and its
open are its own):

- ``index``: the time to build the reader's index and save it to a file, per GB of
  archive; the saved index's size; the process's peak RSS;
- ``read``: a cold open (load the saved index) then ``--members`` random members
  read, each checked against the folder's file; the process's peak RSS.

Readers: ``ratarmountcore`` (``SQLiteIndexedTar``, its SQLite index holding both the
member table and the gzip seek points), ``indexed_gzip`` and ``rapidgzip`` (each a
seekable gzip file whose seek points are exported, with the member table of ``tarfile``
saved beside it; each library's default spacing and buffers), ``xray_scale`` (what the
run uses: :mod:`xray_scale.io.sources.archives`, indexed_gzip with its own buffer size), ``zipfile``
on the ``.zip`` (its central directory is the index) and the extracted folder (the
reference). The page cache is warm for every reader alike (the files were just
written); the ratio to the folder is the figure to read. Peak RSS includes each
reader's imports (``xray_scale``'s brings numpy and dask).

``--run`` then times whole runs (``xray_scale.run``, ``--config``, default
``configs/full-dump.toml``, ``--workers`` threads) on the first ``--run-images``
images as a folder, as a ``.tar.gz`` laid out as NIH's and as a ``.zip`` laid out as
Kaggle's, each in a fresh process, ``--run-rounds`` rounds in a rotated order, and
prints each source's best rate as a ratio to the folder's. The indexes are built
before the clock (their cost is the ``index s/GB`` column).

``--startup`` alone compares the start of a run (time to its first finished batch
and peak RSS, each in a fresh process, 2 threads) on ``--startup-archives`` x
``--startup-members`` 64 x 64 phantoms (64 different ones, repeated) as ``.tar.gz``
archives against the same number of files in one folder (hard links), after
indexing the archives once.
A JSON record goes to ``benchmarks/results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

FULL_DUMP_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "full-dump.toml"
REAL_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chestxray8-sample"
READERS = ("folder", "zipfile", "ratarmountcore", "indexed_gzip", "rapidgzip", "xray_scale")
INDEXED = ("ratarmountcore", "indexed_gzip", "rapidgzip", "xray_scale")
GZIP_LEVEL = 6
"""``tar czf``'s gzip level (gzip's default); ``tarfile``'s own default is 9."""


def build_dataset(work: Path, gigabytes: float) -> dict:
    """The folder, ``.tar.gz`` and ``.zip`` of copies of the sample; their sizes and times."""
    sources = sorted(REAL_SAMPLE.glob("*.png"))
    if not sources:
        sys.exit(f"no sample PNGs in {REAL_SAMPLE}; the benchmark needs the real sample")
    payloads = [path.read_bytes() for path in sources]
    folder = work / "extracted" / "images"
    folder.mkdir(parents=True)
    names, total, k = [], 0, 0
    while total < gigabytes * 1e9:
        name = f"images/{1 + k // 100:08d}_{k % 100:03d}.png"
        (work / "extracted" / name).write_bytes(payloads[k % len(payloads)])
        names.append(name)
        total += len(payloads[k % len(payloads)])
        k += 1
    started = time.perf_counter()
    with tarfile.open(work / "images.tar.gz", "w:gz", compresslevel=GZIP_LEVEL) as archive:
        for name in names:
            archive.add(work / "extracted" / name, arcname=name)
    tar_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with zipfile.ZipFile(work / "images.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for name in names:
            z.write(work / "extracted" / name, arcname=f"images_001/{name}")
    zip_seconds = time.perf_counter() - started
    return {
        "members": len(names),
        "png_bytes": total,
        "tar_gz_bytes": (work / "images.tar.gz").stat().st_size,
        "zip_bytes": (work / "images.zip").stat().st_size,
        "tar_gz_write_s": tar_seconds,
        "zip_write_s": zip_seconds,
    }


# --- the readers, each run in a child process -----------------------------------------


def _tar_members(fileobj) -> dict[str, list[int]]:
    """``{name: [data offset, size]}`` of a tar stream's regular files (one pass)."""
    with tarfile.open(fileobj=fileobj, mode="r:") as archive:
        return {m.name: [m.offset_data, m.size] for m in archive if m.isfile()}


def index_ratarmountcore(work: Path) -> list[Path]:
    from ratarmountcore.mountsource.formats.tar import SQLiteIndexedTar

    index = work / "ratarmountcore.index.sqlite"
    SQLiteIndexedTar(str(work / "images.tar.gz"), writeIndex=True, indexFilePath=str(index)).close()
    return [index]


def open_ratarmountcore(work: Path):
    from ratarmountcore.mountsource.formats.tar import SQLiteIndexedTar

    archive = SQLiteIndexedTar(
        str(work / "images.tar.gz"),
        writeIndex=False,
        indexFilePath=str(work / "ratarmountcore.index.sqlite"),
    )

    def fetch(name: str) -> bytes:
        with archive.open(archive.lookup("/" + name)) as member:
            return member.read()

    return fetch


def index_indexed_gzip(work: Path) -> list[Path]:
    import indexed_gzip

    with indexed_gzip.IndexedGzipFile(str(work / "images.tar.gz")) as stream:
        members = _tar_members(stream)
        stream.build_full_index()
        stream.export_index(str(work / "indexed_gzip.gzidx"))
    (work / "indexed_gzip.members.json").write_text(json.dumps(members))
    return [work / "indexed_gzip.gzidx", work / "indexed_gzip.members.json"]


def open_indexed_gzip(work: Path):
    import indexed_gzip

    members = json.loads((work / "indexed_gzip.members.json").read_text())
    stream = indexed_gzip.IndexedGzipFile(
        str(work / "images.tar.gz"), index_file=str(work / "indexed_gzip.gzidx")
    )
    return _seek_reader(stream, members)


def _seek_reader(stream, members: dict[str, list[int]]):
    def fetch(name: str) -> bytes:
        offset, size = members[name]
        stream.seek(offset)
        return stream.read(size)

    return fetch


def index_rapidgzip(work: Path) -> list[Path]:
    import rapidgzip

    with rapidgzip.open(str(work / "images.tar.gz"), parallelization=os.cpu_count()) as stream:
        members = _tar_members(stream)
        stream.export_index(str(work / "rapidgzip.gzidx"))
    (work / "rapidgzip.members.json").write_text(json.dumps(members))
    return [work / "rapidgzip.gzidx", work / "rapidgzip.members.json"]


def open_rapidgzip(work: Path):
    import rapidgzip

    members = json.loads((work / "rapidgzip.members.json").read_text())
    stream = rapidgzip.open(str(work / "images.tar.gz"), parallelization=1)
    stream.import_index(str(work / "rapidgzip.gzidx"))
    return _seek_reader(stream, members)


def index_xray_scale(work: Path) -> list[Path]:
    from xray_scale.io.sources.archive_index import index_location
    from xray_scale.io.sources.archives import list_members

    list_members(work / "images.tar.gz")
    return [index_location(work / "images.tar.gz")]


def open_xray_scale(work: Path):
    from xray_scale.io.sources.archives import member_path, read_member

    archive = str(work / "images.tar.gz")
    read_member(member_path(archive, "images/00000001_000.png"))  # opens the archive
    return lambda name: read_member(member_path(archive, name))


def open_zipfile(work: Path):
    archive = zipfile.ZipFile(work / "images.zip")
    return lambda name: archive.read(f"images_001/{name}")


def open_folder(work: Path):
    return lambda name: (work / "extracted" / name).read_bytes()


IMPORTS = {
    "ratarmountcore": "ratarmountcore.mountsource.formats.tar",
    "indexed_gzip": "indexed_gzip",
    "rapidgzip": "rapidgzip",
    "xray_scale": "xray_scale.io.sources.archives",
}


def child(reader: str, step: str, work: Path, names: list[str]) -> dict:
    """One step of one reader, timed; runs in its own process."""
    if reader in IMPORTS:
        importlib.import_module(IMPORTS[reader])  # the import is not the reader's cost
    started = time.perf_counter()
    if step == "index":
        saved = globals()[f"index_{reader}"](work)
        seconds = time.perf_counter() - started
        result = {"seconds": seconds, "index_bytes": sum(p.stat().st_size for p in saved)}
    else:
        fetch = globals()[f"open_{reader}"](work)
        opened = time.perf_counter()
        found = [fetch(name) for name in names]
        seconds = time.perf_counter() - started
        expected = [zlib.crc32((work / "extracted" / name).read_bytes()) for name in names]
        if [zlib.crc32(data) for data in found] != expected:
            raise SystemExit(f"{reader} read other bytes than the folder's files")
        result = {"seconds": seconds, "open_seconds": opened - started}
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def run_child(reader: str, step: str, work: Path, names: list[str]) -> dict:
    command = [sys.executable, __file__, "--child", reader, step, str(work), json.dumps(names)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{reader} {step} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# Runs in a fresh interpreter: one whole run, then its rate (the pipeline's own clock).
_RUN = r"""
import json, sys
import xray_scale
from xray_scale.allocator import tune_malloc
tune_malloc()  # as the xray-scale executable does
inputs, out, workers, config = json.loads(sys.argv[1])
summary = xray_scale.run(inputs, out, config=config, workers=workers)
print(json.dumps({"images": summary.total, "ok": summary.ok,
                  "images_per_s": summary.images_per_s}), flush=True)
"""


def build_run_inputs(work: Path, count: int) -> dict[str, Path]:
    """The first ``count`` images as a folder, a ``.tar.gz`` (NIH's) and a ``.zip`` (Kaggle's)."""
    names = sorted(p.name for p in (work / "extracted" / "images").iterdir())[:count]
    folder = work / "run" / "images"
    folder.mkdir(parents=True)
    for name in names:
        os.link(work / "extracted" / "images" / name, folder / name)
    with tarfile.open(work / "run.tar.gz", "w:gz", compresslevel=GZIP_LEVEL) as archive:
        for name in names:
            archive.add(folder / name, arcname=f"images/{name}")
    with zipfile.ZipFile(work / "run.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for name in names:
            z.write(folder / name, arcname=f"images_001/images/{name}")
    return {"folder": folder, ".tar.gz": work / "run.tar.gz", ".zip": work / "run.zip"}


def run_rates(work: Path, options) -> dict:
    """The full-dump config's rate from the folder, the ``.tar.gz`` and the ``.zip``, in rounds."""
    from xray_scale.io.sources.archives import list_members

    inputs = build_run_inputs(work, options.run_images)
    for source in (inputs[".tar.gz"], inputs[".zip"]):
        list_members(source)  # the index is built once, before any clock (reported above)
    rates: dict[str, list[float]] = {label: [] for label in inputs}
    labels = list(inputs)
    for round_ in range(options.run_rounds):
        for label in labels[round_ % 3 :] + labels[: round_ % 3]:  # rotated order
            out = work / f"run-{round_}-{label.strip('.')}.zarr"
            arguments = [[str(inputs[label])], str(out), options.workers, str(options.config)]
            done = subprocess.run(
                [sys.executable, "-c", _RUN, json.dumps(arguments)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode:
                raise SystemExit(f"run on the {label} failed:\n{done.stderr[-2000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if result["ok"] != options.run_images:
                raise SystemExit(f"run on the {label}: {result['ok']} ok of {options.run_images}")
            rates[label].append(result["images_per_s"])
            shutil.rmtree(out)
    best = {label: max(values) for label, values in rates.items()}
    print(
        f"\nrun, {Path(options.config).name}, {options.run_images} images, "
        f"{options.workers} workers, best of {options.run_rounds} rotated rounds:"
    )
    for label, rate in best.items():
        print(f"  {label:<8} {rate:6.2f} img/s   {rate / best['folder']:.2f} x folder")
    return {"rates": rates, "best": best}


# Runs in a fresh interpreter: time and peak RSS at the first finished batch, then stop.
_FIRST_BATCH = r"""
import json, os, resource, sys, time
began = time.perf_counter()
import xray_scale
from xray_scale.allocator import tune_malloc
tune_malloc()  # as the xray-scale executable does

def first_batch(record):
    print(json.dumps({
        "first_batch_s": time.perf_counter() - began,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }), flush=True)
    os._exit(0)

inputs, out, workers = json.loads(sys.argv[1])
xray_scale.run(inputs, out, workers=workers, on_batch=first_batch)
"""

# Runs in a fresh interpreter: every archive's index built (or loaded), timed.
_INDEX = r"""
import json, sys, time
from xray_scale.io.sources.archives import list_members
began = time.perf_counter()
count = sum(len(list_members(path)) for path in json.loads(sys.argv[1]))
print(json.dumps({"members": count, "seconds": time.perf_counter() - began}), flush=True)
"""


def _fresh_python(code: str, arguments) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(arguments)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"benchmark process failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def startup(work: Path, options) -> dict:
    """First batch of a run on ``--startup-archives`` x ``--startup-members`` phantoms.

    The same number of files in one folder (hard links to 64 different 64 x 64
    phantoms, distinct names) against the same images as ``.tar.gz`` archives; the
    archives' indexes are built first, in a process of their own, and timed.
    """
    from xray_scale.io.phantoms import write_phantoms

    # 64 different images, so that gzip (a 32 KiB window) cannot fold repeats away
    originals = write_phantoms(work / "original", patients=8, follow_ups=8, shape=(64, 64))
    payloads = [path.read_bytes() for path in originals]
    count = options.startup_archives * options.startup_members
    names = [f"{10_000_000 + k // 9:08d}_{k % 9:03d}.png" for k in range(count)]
    folder = work / "startup" / "images"
    folder.mkdir(parents=True)
    for k, name in enumerate(names):
        os.link(originals[k % len(originals)], folder / name)
    archives = []
    began = time.perf_counter()
    for a in range(options.startup_archives):
        path = work / f"images_{a + 1:03d}.tar.gz"
        with tarfile.open(path, "w:gz", compresslevel=GZIP_LEVEL) as archive:
            first = a * options.startup_members
            for k in range(first, first + options.startup_members):
                data = payloads[k % len(payloads)]
                member = tarfile.TarInfo(f"images/{names[k]}")
                member.size, member.mtime = len(data), 1_700_000_000
                archive.addfile(member, io.BytesIO(data))
        archives.append(str(path))
    print(
        f"{count} phantoms: a folder of links, and {len(archives)} .tar.gz "
        f"({sum(Path(p).stat().st_size for p in archives) / 1e6:.0f} MB, written in "
        f"{time.perf_counter() - began:.0f} s)"
    )
    index = _fresh_python(_INDEX, archives)
    folder_run = _fresh_python(_FIRST_BATCH, [[str(folder)], str(work / "f.zarr"), 2])
    archive_run = _fresh_python(_FIRST_BATCH, [archives, str(work / "a.zarr"), 2])
    print(f"indexing the {len(archives)} archives: {index['seconds']:.1f} s (once)")
    for label, result in (("folder", folder_run), ("archives", archive_run)):
        print(
            f"  {label:<9} first batch after {result['first_batch_s']:6.2f} s "
            f"({result['first_batch_s'] / folder_run['first_batch_s']:.2f} x folder), "
            f"peak RSS {result['rss_mb']:5.0f} MB ({result['rss_mb'] / folder_run['rss_mb']:.2f} x)"
        )
    return {"index": index, "folder": folder_run, "archives": archive_run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=0.15, help="PNG bytes to archive")
    parser.add_argument("--members", type=int, default=16, help="random members read (K)")
    parser.add_argument("--rounds", type=int, default=3, help="read rounds; the best is kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="where to build (tmp)")
    parser.add_argument(
        "--run", action="store_true", help="also time whole runs: folder, .tar.gz and .zip"
    )
    parser.add_argument("--run-images", type=int, default=144, help="images of each run")
    parser.add_argument("--run-rounds", type=int, default=2, help="rounds of the three runs")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="run threads")
    parser.add_argument("--config", type=Path, default=FULL_DUMP_CONFIG, help="run config")
    parser.add_argument(
        "--startup",
        action="store_true",
        help="only the start-up comparison: many archives of phantoms against one folder",
    )
    parser.add_argument("--startup-archives", type=int, default=12)
    parser.add_argument("--startup-members", type=int, default=10_000)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        reader, step, work, names = options.child
        print(json.dumps(child(reader, step, Path(work), json.loads(names))))
        return

    work = Path(tempfile.mkdtemp(prefix="bench-archives-", dir=options.workdir))
    if options.startup:
        try:
            record = {"startup": startup(work, options)}
            from records import save_record  # not in the measured children: it imports numpy

            save_record("archives-startup", record)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    try:
        data = build_dataset(work, options.gigabytes)
        gigabytes = data["tar_gz_bytes"] / 1e9
        print(
            f"{data['members']} members, {data['png_bytes'] / 1e9:.2f} GB of PNG; "
            f".tar.gz {gigabytes:.2f} GB (written in {data['tar_gz_write_s']:.1f} s), "
            f".zip {data['zip_bytes'] / 1e9:.2f} GB (written in {data['zip_write_s']:.1f} s)"
        )
        rng = random.Random(options.seed)
        all_names = [f"images/{1 + k // 100:08d}_{k % 100:03d}.png" for k in range(data["members"])]
        rows = {}
        for reader in READERS:
            row = {}
            if reader in INDEXED:
                row["index"] = run_child(reader, "index", work, [])
            reads = []
            for _ in range(options.rounds):
                names = rng.sample(all_names, min(options.members, len(all_names)))
                reads.append(run_child(reader, "read", work, names))
            row["reads"] = reads
            row["read"] = min(reads, key=lambda r: r["seconds"])
            rows[reader] = row
        report(rows, data, options.members)
        record = {"dataset": data, "members": options.members, "readers": rows}
        if options.run:
            record["run"] = run_rates(work, options)
        from records import save_record  # not in the measured children: it imports numpy

        save_record("archives", record)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(rows: dict, data: dict, members: int) -> None:
    """Print one line per reader and the ratios to the folder's read time."""
    gigabytes = data["tar_gz_bytes"] / 1e9
    folder = rows["folder"]["read"]["seconds"]
    print(
        f"{'reader':<16}{'index s/GB':>11}{'index MB':>10}{'index RSS':>10}"
        f"{'open ms':>9}{'open+read K':>13}{'ms/member':>10}{'x folder':>9}{'read RSS':>9}"
    )
    for reader, row in rows.items():
        index = row.get("index")
        read = row["read"]
        print(
            f"{reader:<16}"
            + (
                f"{index['seconds'] / gigabytes:>11.1f}{index['index_bytes'] / 1e6:>10.2f}"
                f"{index['peak_rss_mb']:>9.0f}M"
                if index
                else f"{'-':>11}{'-':>10}{'-':>10}"
            )
            + f"{read['open_seconds'] * 1e3:>9.1f}"
            f"{read['seconds'] * 1e3:>11.1f}ms{read['seconds'] * 1e3 / members:>10.2f}"
            f"{read['seconds'] / folder:>9.1f}{read['peak_rss_mb']:>8.0f}M"
        )


if __name__ == "__main__":
    main()
