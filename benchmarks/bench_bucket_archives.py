"""A ``.tar.gz`` kept in a bucket: its index built by one streaming pass, then members by range.

Usage::

    python benchmarks/bench_bucket_archives.py                   # 0.25 GB, about a minute
    python benchmarks/bench_bucket_archives.py --gigabytes 1     # a real-size archive

Builds, in a temporary folder, a ``.tar.gz`` of ``--gigabytes`` of copies of the 9 real
sample PNGs (distinct names, NIH's layout ``images/NNNNNNNN_NNN.png``, gzip level 6 as
``tar czf``), or of 1024 x 1024 phantoms when the sample is absent, and puts it into a
bucket of a local S3 server (moto's server mode, in a process of its own on 127.0.0.1).
Then, each in a fresh process, with the indexes in a fresh cache folder:

- ``index``: :func:`xray_scale.io.sources.archives.list_members` on the archive in the bucket
  (one streaming pass by range requests, the index saved), and on the same archive on
  the local disk; seconds per GB of archive for each, and their ratio;
- ``read``: a cold open (the saved index loaded) then ``--members`` random members read
  with :func:`xray_scale.io.sources.archives.read_member`, each checked against the local copy;
  milliseconds per member from the bucket and from the disk, and the bytes and requests
  asked of the server per member (from s3fs's own log of each range it fetches);
- ``probe``: the server's own time for a one-byte range request on the archive.

The server runs on this machine, and moto answers each range request of a large object
in time that grows with the object (about a second per request on 1 GB), where S3 takes
tens of milliseconds: its wall-clock times are not S3's. What the figures say of the code
is the bytes and requests it asks for, and its time once the server's share (requests x
probe) is taken out. A JSON record goes to ``benchmarks/results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from moto_server import start_server

REAL_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chestxray8-sample"
RESULTS = Path(__file__).resolve().parent / "results"
BUCKET = "bench"


def payloads() -> list[bytes]:
    """The 9 real sample PNGs, or 9 phantoms of the real size when the sample is absent."""
    sources = sorted(REAL_SAMPLE.glob("*.png"))
    if sources:
        return [path.read_bytes() for path in sources]
    from xray_scale.io.phantoms import write_phantoms

    with tempfile.TemporaryDirectory() as folder:
        written = write_phantoms(Path(folder), patients=1, follow_ups=9, shape=(1024, 1024))
        return [path.read_bytes() for path in written]


def build_archive(path: Path, gigabytes: float) -> dict:
    """A ``.tar.gz`` of copies of :func:`payloads` under distinct NIH names."""
    data = payloads()
    names, total, k = [], 0, 0
    with tarfile.open(path, "w:gz", compresslevel=6) as archive:
        while total < gigabytes * 1e9:
            name = f"images/{1 + k // 100:08d}_{k % 100:03d}.png"
            payload = data[k % len(data)]
            member = tarfile.TarInfo(name)
            member.size, member.mtime, member.mode = len(payload), 1_700_000_000, 0o644
            archive.addfile(member, io.BytesIO(payload))
            names.append(name)
            total += len(payload)
            k += 1
    return {"members": len(names), "png_bytes": total, "tar_gz_bytes": path.stat().st_size}


def child(step: str, source: str, local: str, names: list[str]) -> dict:
    """One step in this fresh process: ``index`` or ``read`` of ``source``."""
    import logging

    from xray_scale.io.sources import archives

    fetched: list[int] = []

    class Ranges(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("Fetch: "):
                start, end = record.args[-2:]
                fetched.append(end - start)

    logging.getLogger("s3fs").setLevel(logging.DEBUG)
    logging.getLogger("s3fs").addHandler(Ranges())
    started = time.perf_counter()
    if step == "index":
        count = len(archives.list_members(source))
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "members": count, "asked": sum(fetched), "reads": len(fetched)}
    if step == "probe":  # the server's own time per range request on this object
        import fsspec

        with fsspec.open(source, "rb") as file:
            started = time.perf_counter()
            for k in range(5):
                file.fs.cat_file(file.path, start=k * 4096, end=k * 4096 + 1)
        return {"seconds": (time.perf_counter() - started) / 5}
    checked = 0
    with tarfile.open(local) as tar:
        expected = {name: tar.extractfile(name).read() for name in names}
    started = time.perf_counter()
    for name in names:
        data = archives.read_member(archives.member_path(source, name))
        checked += data == expected[name]
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "checked": checked, "asked": sum(fetched), "reads": len(fetched)}


def run_child(step: str, source: str, local: Path, names: list[str], env: dict) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", step, source, str(local), json.dumps(names)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"{step} of {source} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=0.25, help="PNG bytes to archive")
    parser.add_argument("--members", type=int, default=32, help="random members read")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        step, source, local, names = options.child
        print(json.dumps(child(step, source, local, json.loads(names))))
        return
    with tempfile.TemporaryDirectory(prefix="bench-bucket-") as folder:
        work = Path(folder)
        archive = work / "images_001.tar.gz"
        started = time.perf_counter()
        data = build_archive(archive, options.gigabytes)
        print(
            f"built {data['tar_gz_bytes'] / 1e9:.2f} GB, {data['members']} members "
            f"in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        server, endpoint = start_server()
        try:
            env = {
                **os.environ,
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
            import fsspec

            os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
            s3 = fsspec.filesystem("s3", skip_instance_cache=True)
            s3.mkdir(BUCKET)
            s3.put_file(str(archive), f"{BUCKET}/images_001.tar.gz")
            url = f"s3://{BUCKET}/images_001.tar.gz"
            with tarfile.open(archive) as tar:
                all_names = [m.name for m in tar if m.isfile()]
            names = random.Random(options.seed).sample(all_names, options.members)
            rows = {}
            for where, source in (("bucket", url), ("disk", str(archive))):
                env["XDG_CACHE_HOME"] = str(work / f"cache-{where}")
                index = run_child("index", source, archive, [], env)
                read = run_child("read", source, archive, names, env)
                probe = run_child("probe", source, archive, [], env) if where == "bucket" else {}
                per_request = probe.get("seconds", 0.0)
                index["own_seconds"] = index["seconds"] - index["reads"] * per_request
                read["own_seconds"] = read["seconds"] - read["reads"] * per_request
                rows[where] = {"index": index, "read": read, "probe": probe}
                gigabytes = data["tar_gz_bytes"] / 1e9
                own_read = (  # below 0: the probe's time is all of the reads' time
                    f"{1e3 * read['own_seconds'] / len(names):5.1f}"
                    if read["own_seconds"] > 0
                    else "no time left"
                )
                print(
                    f"{where:6s} index {index['seconds'] / gigabytes:6.2f} s/GB"
                    f" ({index['own_seconds'] / gigabytes:5.2f} without the server's"
                    f" {index['reads']} requests; asked {index['asked'] / data['tar_gz_bytes']:.3f}"
                    f"x the archive)  read {1e3 * read['seconds'] / len(names):6.1f} ms/member"
                    f" ({own_read} without)"
                    f"  asked {read['asked'] / len(names) / 1e6:5.2f} MB"
                    f" in {read['reads'] / len(names):.1f} requests/member"
                    f"  ({read['checked']}/{len(names)} equal)",
                    flush=True,
                )
        finally:
            server.kill()
            server.wait()
    ratio_index = rows["bucket"]["index"]["own_seconds"] / rows["disk"]["index"]["seconds"]
    print(
        f"bucket / disk, the server's time taken out: index {ratio_index:.2f}x; "
        f"moto's time per range request "
        f"{1e3 * rows['bucket']['probe']['seconds']:.0f} ms"
    )
    RESULTS.mkdir(exist_ok=True)
    record = RESULTS / f"bucket-archives-{time.strftime('%Y%m%d-%H%M%S')}.json"
    load = os.getloadavg()
    record.write_text(json.dumps({"data": data, "rows": rows, "load": load}, indent=1))
    print(f"load average {load[0]:.1f}; record: {record}")


if __name__ == "__main__":
    main()
