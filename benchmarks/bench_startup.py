"""Start-up: how long the everyday commands take, as a ratio to ``python -c pass``.

Usage::

    python benchmarks/bench_startup.py                 # 112,120-image store, 5 runs each
    python benchmarks/bench_startup.py --images 20000 --runs 3

Each command runs in a fresh process, ``--runs`` times, one command after the
other round by round (so a busy minute on a shared machine hits every command
alike); its figure is the median. Measured: ``xray-scale --help``, the
``--help`` of every command, ``--version``, a mistyped option, and ``info``
and ``export`` on a store of ``--images`` images (112,120, the whole
ChestX-ray8 dump, by default).

The store is built without decoding a single file: the store API creates the
run's arrays for that many images (``configs/full-dump.toml``'s layout, with
the NIH metadata columns), then the per-image arrays are filled directly, as
a finished run leaves them: 97 % ``ok`` with statistics, the rest ``failed``
with three reasons. Building it takes a few seconds; it is deleted at the end.

The command runs as the ``xray-scale`` executable does
(``xray_scale.cli.console_script``), with this interpreter. Prints one line
per command (median seconds, ratio to ``python -c pass``, the target) and
writes a record to benchmarks/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from records import save_record

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ("run", "info", "export", "render", "plan", "bench", "synth", "demo")
TARGETS = {"help": 0.4, "version": 0.4, "bad option": 0.4, "info": 2.0, "export": 2.0}
"""Seconds each kind of command should take at most on the project's 2-core VM."""


def build_store(path: Path, count: int) -> Path:
    """A finished-looking full-dump store of ``count`` images, built without decoding."""
    from xray_scale.analysis.maps import batch_spec
    from xray_scale.config import load_config
    from xray_scale.io.sources.manifest import MANIFEST_FIELDS
    from xray_scale.store.create import create_store
    from xray_scale.store.encoding import stored_values
    from xray_scale.store.layout import STAT_FIELDS
    from xray_scale.store.metadata import RunMetadata, utc_now

    config = load_config(ROOT / "configs" / "full-dump.toml")
    spec = batch_spec(config, shape=(1024, 1024), bit_depth=8, compat=None, engine="opencv")
    names = [f"{k // 4 + 1:08d}_{k % 4:03d}.png" for k in range(count)]
    paths = [f"/data/chestxray8/images/{name}" for name in names]
    rng = np.random.default_rng(0)
    labels = np.array(["No Finding", "Cardiomegaly", "Effusion|Infiltration", "Atelectasis"])
    columns = {}
    for name, (_, dtype) in MANIFEST_FIELDS.items():
        if dtype == "str":
            choices = {"patient_gender": ["M", "F"], "view_position": ["PA", "AP"]}.get(name)
            values = rng.choice(np.array(choices) if choices else labels, count)
            columns[name] = values.astype(object)
        else:
            columns[name] = rng.integers(1, 3000, count).astype(dtype)
    metadata = RunMetadata.for_run(
        spec,
        version="bench",
        fingerprint="bench",
        inputs=["/data/chestxray8/images"],
        manifest=None,
    ).with_run(
        {"started": utc_now(), "finished": utc_now(), "processed": count, "elapsed_s": 3600.0}
    )
    group = create_store(
        path, paths=paths, config=config, metadata=metadata, columns=columns, **spec.store_layout()
    )
    status = np.full(count, "ok", dtype=object)
    error = np.full(count, "", dtype=object)
    reasons = ["file not found", "truncated PNG: 812 of 4096 bytes", "bad CRC in IDAT chunk 3"]
    failed = rng.choice(count, size=count * 3 // 100, replace=False)
    status[failed] = "failed"
    error[failed] = [reasons[k % 3] for k in range(failed.size)]
    for field in STAT_FIELDS:
        values = rng.uniform(0, 255, count)
        values[failed] = np.nan
        group[f"stats/{field}"][:] = values
    modes = np.where(status == "ok", "L", "").astype(object)
    for name, values in (("index/error", error), ("index/mode", modes), ("index/status", status)):
        array = group[name]
        array[:] = stored_values(array, values)
    group["index/bit_depth"][:] = np.where(status == "ok", 8, 0).astype(np.uint8)
    return path


def seconds(argv: list[str]) -> float:
    """Wall-clock seconds of one fresh process running ``argv``."""
    began = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=112_120, help="images in the store")
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (median)")
    options = parser.parse_args()
    cli = [sys.executable, "-c", "from xray_scale.cli import console_script; console_script()"]
    with tempfile.TemporaryDirectory(prefix="xray-scale-startup-") as tmp:
        began = time.perf_counter()
        store = build_store(Path(tmp) / "dump.zarr", options.images)
        print(f"store of {options.images} images built in {time.perf_counter() - began:.1f} s")
        table = Path(tmp) / "stats.parquet"
        commands = {
            "python -c pass": ("baseline", [sys.executable, "-c", "pass"]),
            "xray-scale --help": ("help", [*cli, "--help"]),
            **{f"xray-scale {c} --help": ("help", [*cli, c, "--help"]) for c in COMMANDS},
            "xray-scale --version": ("version", [*cli, "--version"]),
            "xray-scale info --jsn (bad option)": ("bad option", [*cli, "info", "--jsn"]),
            "xray-scale info STORE": ("info", [*cli, "info", str(store)]),
            "xray-scale export STORE --to x.parquet": (
                "export",
                [*cli, "export", str(store), "--to", str(table)],
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(options.runs):
            for name, (_, argv) in commands.items():
                times[name].append(seconds(argv))
    medians = {name: statistics.median(values) for name, values in times.items()}
    baseline = medians["python -c pass"]
    print(f"{'command':<42} {'median s':>9} {'x pass':>8} {'target s':>9}")
    for name, (kind, _) in commands.items():
        target = TARGETS.get(kind)
        verdict = "" if target is None else ("ok" if medians[name] < target else "MISSED")
        print(
            f"{name:<42} {medians[name]:>9.3f} {medians[name] / baseline:>8.1f} "
            f"{target or '':>9} {verdict}"
        )
    save_record(
        "startup",
        {
            "images": options.images,
            "runs": options.runs,
            "seconds": times,
            "median_s": medians,
            "ratio_to_python": {name: value / baseline for name, value in medians.items()},
        },
    )


if __name__ == "__main__":
    main()
