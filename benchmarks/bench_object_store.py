"""A store on S3: zarr v3 over fsspec (``FsspecStore``) against obstore (``ObjectStore``).

Usage::

    python benchmarks/bench_object_store.py                 # 1024 images, 3 rounds
    python benchmarks/bench_object_store.py --images 4096 --rounds 2 --run 64
    python benchmarks/bench_object_store.py --rounds 0 --inputs 144   # inputs in the bucket

A local S3 server (moto's, in a process of its own on 127.0.0.1, so that it
does not share this process's interpreter lock) receives the store of the
full-dump config (``configs/full-dump.toml``: statistics, histograms and
256x256 previews of the original and six maps, 16 images a batch) for
``--images`` images of 1024x1024, written by the run's own writers: the store
created by :func:`xray_scale.store.create.create_store`, each batch's chunk of
``previews`` by :func:`xray_scale.store.access.write_maps` from
``--workers`` threads (as the pipeline's tasks do), and the per-image records
by :class:`xray_scale.store.access.RecordWriter`. Only the writes are timed:
the filters cost the same whatever the store. The same writes go into a local
folder, the baseline. Each round measures the three in a rotated order, and
the best round is kept. With ``--run N``, ``xray-scale``'s whole pipeline
also runs N phantom images into the folder and into the S3 store (fsspec),
for the rate beside the folder's. With ``--inputs N``, N phantom PNGs of
1024x1024 are put in the S3 server and in a folder, and the whole pipeline
runs the full-dump config on each into a local store, in ``--input-rounds``
rounds of alternating order: the rate of reading the inputs from S3 beside
the folder's, and their ratio, measured in one run (best round of each).
``--rounds 0`` skips the store's writes. A JSON record goes to
``benchmarks/results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from moto_server import start_server
from records import save_record

import xray_scale
from xray_scale.analysis.maps import batch_spec
from xray_scale.analysis.stats import STAT_FIELDS
from xray_scale.config import load_config
from xray_scale.records import BatchRecord, BatchSpec
from xray_scale.store.access import RecordWriter, write_maps
from xray_scale.store.create import create_store
from xray_scale.store.location import StoreLocation

FULL_DUMP = Path(__file__).resolve().parents[1] / "configs" / "full-dump.toml"


class ObstoreLocation(StoreLocation):
    """A URL store written through zarr's ``ObjectStore`` (obstore) instead of fsspec."""

    def zarr_store(self, *, read_only: bool = False):
        from obstore.store import from_url
        from zarr.storage import ObjectStore

        endpoint = os.environ["AWS_ENDPOINT_URL"]
        backend = from_url(self.url, client_options={"allow_http": endpoint.startswith("http:")})
        return ObjectStore(backend, read_only=read_only)


def batch_data(spec: BatchSpec, start: int, size: int):
    """A batch's previews (smooth, like real ones, so compressed as much) and its records."""
    rng = np.random.default_rng(start)
    height, width = spec.preview_shape
    ramp = np.add.outer(np.arange(height), np.arange(width)) % 256
    previews = np.empty((size, len(spec.preview_maps), height, width), np.uint8)
    previews[:] = ramp.astype(np.uint8)
    previews += rng.integers(0, 8, previews.shape, dtype=np.uint8)
    record = BatchRecord(
        start=start,
        stats={field: rng.random(size) for field in STAT_FIELDS},
        histogram=rng.integers(0, 5000, (size, 256)),
        status=["ok"] * size,
        error=[""] * size,
        mode=["L"] * size,
        bit_depth=[8] * size,
        checksum=[int(v) for v in rng.integers(0, 2**32, size)],
    )
    return previews, record


def write_store(location, spec: BatchSpec, count: int, workers: int) -> dict:
    """Create the store and write every batch; seconds for each part."""
    paths = [f"synth:1024/{90000000 + k // 8:08d}_{k % 8:03d}.png" for k in range(count)]
    began = time.perf_counter()
    group = create_store(location, paths=paths, config=spec.config, **spec.store_layout())
    created = time.perf_counter()
    records = RecordWriter(group)
    batch = spec.config.batch_size

    def one(start: int) -> BatchRecord:
        previews, record = batch_data(spec, start, min(batch, count - start))
        write_maps(group, start, {"previews": previews})
        return record

    with ThreadPoolExecutor(workers) as pool:
        for record in pool.map(one, range(0, count, batch)):
            records.add(record)
    records.flush()
    done = time.perf_counter()
    return {"create_s": created - began, "write_s": done - created, "total_s": done - began}


def input_rates(scratch: Path, config, endpoint: str, options) -> dict:
    """img/s of the full-dump config reading ``--inputs`` phantoms from a folder and from S3."""
    import boto3

    from xray_scale.io.phantoms import write_phantoms

    count = options.inputs
    written = write_phantoms(scratch / "images", patients=-(-count // 8), follow_ups=8)
    for extra in written[count:]:
        extra.unlink()
    client = boto3.client("s3", endpoint_url=endpoint)
    for path in written[:count]:
        client.put_object(Bucket="bench", Key=f"inputs/images/{path.name}", Body=path.read_bytes())
    sources = {"folder": str(scratch / "images"), "s3": "s3://bench/inputs/images/"}
    rates: dict[str, list[float]] = {label: [] for label in sources}
    for round_ in range(options.input_rounds):
        order = list(sources) if round_ % 2 == 0 else list(sources)[::-1]
        for label in order:
            out = scratch / f"inputs-{round_}-{label}.zarr"
            summary = xray_scale.run([sources[label]], out, config=config, workers=options.workers)
            if summary.ok != count:
                raise SystemExit(f"the run from the {label}: {summary.ok} ok of {count}")
            rates[label].append(summary.images_per_s)
            print(f"inputs round {round_} {label}: {rates[label][-1]:.2f} img/s", flush=True)
    best = {label: max(values) for label, values in rates.items()}
    print(
        f"\ninputs, full-dump config, {count} phantoms 1024x1024, {options.workers} workers, "
        f"local store, best of {options.input_rounds} rounds (alternating order):"
    )
    for label, rate in best.items():
        print(f"  {label:<7} {rate:6.2f} img/s   {rate / best['folder']:.2f} x folder")
    return {"rates": rates, "best": best, "ratio": best["s3"] / best["folder"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--run", type=int, default=0, help="also a whole run of N phantoms")
    parser.add_argument("--inputs", type=int, default=0, help="N phantoms from S3 and a folder")
    parser.add_argument("--input-rounds", type=int, default=2)
    options = parser.parse_args()

    server, endpoint = start_server()
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
        config = load_config(FULL_DUMP)
        spec = batch_spec(config, shape=(1024, 1024), bit_depth=8, compat=None, engine="scipy")
        results: dict[str, list[dict]] = {"folder": [], "fsspec": [], "obstore": []}
        with tempfile.TemporaryDirectory() as scratch:
            for round_ in range(options.rounds):
                order = list(results)[round_ % 3 :] + list(results)[: round_ % 3]
                for kind in order:
                    name = f"r{round_}-{kind}.zarr"
                    location = {
                        "folder": Path(scratch) / name,
                        "fsspec": StoreLocation(f"s3://bench/{name}"),
                        "obstore": ObstoreLocation(f"s3://bench/{name}"),
                    }[kind]
                    results[kind].append(
                        write_store(location, spec, options.images, options.workers)
                    )
                    print(f"round {round_} {kind}: {results[kind][-1]}", flush=True)
            done = {kind: runs for kind, runs in results.items() if runs}
            best = {kind: min(runs, key=lambda r: r["total_s"]) for kind, runs in done.items()}
            if best:
                print(f"\n{options.images} images, full-dump store, {options.workers} writers")
                print("| store | create s | write s | img/s (writes) | x folder |")
                print("|---|---|---|---|---|")
            for kind, figures in best.items():
                rate = options.images / figures["total_s"]
                ratio = best["folder"]["total_s"] / figures["total_s"]
                print(
                    f"| {kind} | {figures['create_s']:.2f} | {figures['write_s']:.2f} "
                    f"| {rate:.0f} | {ratio:.2f} |"
                )
            runs = {}
            if options.run:
                inputs = [f"synth:{options.run}x1024"]
                for kind, out in (
                    ("folder", Path(scratch) / "run.zarr"),
                    ("fsspec", "s3://bench/run.zarr"),
                ):
                    summary = xray_scale.run(inputs, out, config=config, workers=options.workers)
                    runs[kind] = summary.processed / summary.elapsed_s
                    print(
                        f"whole run, {options.run} phantoms into the {kind}: {runs[kind]:.1f} img/s"
                    )
            inputs = input_rates(Path(scratch), config, endpoint, options) if options.inputs else {}
        save_record(
            "object-store",
            {
                "images": options.images,
                "rounds": results,
                "best": best,
                "runs": runs,
                "inputs": inputs,
            },
        )
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
