"""``xray-scale bench``: the tutorial's loop, naive dask-image and xray-scale, side by side.

On the same images (copies of a folder of PNGs, of the real sample, or of
generated phantoms, repeated to ``images`` files), one after the other in this
process, it measures images/s of:

- ``tutorial``: the tutorial's code as a loop, one image after another (the 1.00x
  reference of every ratio);
- ``dask-image``: what a dask-image user writes, ``imread`` + ``ndfilters`` on the
  ``(N, H, W)`` stack with sigma 0 on the stack axis + ``to_zarr``, and how far its
  results are from per-image filtering (they are wrong: docs/architecture.md, "Correctness traps");
- ``run <engine> <config>``: :func:`xray_scale.run` for each engine and config;
- ``run <engine> <config> qc-off``: a threaded run with QC and one with
  ``qc.enabled = false``, side by side in every round, their order swapped every
  round (first engine only), so QC's cost is a ratio measured side by side:
  ``qc_time_ratio``, the median over rounds of each round's run time with QC /
  without (each pair close in time, so a shared machine's slow spells cancel out),
  and ``qc_cpu_ratio``, the same for the process's CPU time;
- ``bank-on-device <engine> <config>`` (a GPU engine only): every map and the value
  counts of a batch of 32 images already on the GPU, nothing copied back;
- the stage ceilings, each over the same batches with the same threads, through
  the pipeline's own code (:mod:`xray_scale.analysis.batch`) with writes replaced by a
  writer that keeps nothing: ``decode``; ``compute <engine> <config>``
  (everything the config computes from decoded images: maps in their batch
  buffers, previews, statistics); ``decode+compute`` (the same from the files);
  ``decode+bank`` (decoding, statistics and each filter map and mask, each
  dropped once computed: the essential work); and ``write <config>`` (the
  config's outputs of one batch written into every batch of a fresh store, as a
  run writes them).

The pipeline's efficiency is then printed as ratios: run / its slowest stage,
run / decode+compute (the compute ceiling of the config: what writing and
scheduling cost), run / decode+bank (decode + filters + statistics), and run /
"compute, then write" (``1 / (1/decode+compute + 1/write)``: each stage alone
had every core, in a run they share them, so on CPU-bound stages this is the
bound; 1.0 means writing and scheduling cost nothing beyond their own work).
The tutorial loop and the runs are measured ``rounds`` times each; every
figure is the best of its rounds, all measured in this one run; the record is
JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from ..config import Config, load_config
from ..engines.registry import ENGINES, get_engine, resolve_engine
from ..errors import DecodeError, EngineError, InputError
from ..io.decode import decode_image, read_image_header
from ..io.formats.registry import format_names, is_image_name
from ..runner.pipeline import run
from ..store.metadata import library_versions
from .baselines import dask_image_differences, dask_image_loop, tutorial_loop
from .stages import Stages

__all__ = [
    "BenchConfig",
    "BenchResult",
    "Stages",
    "available_engines",
    "dask_image_differences",
    "dask_image_loop",
    "format_table",
    "prepare_images",
    "run_bench",
    "time_run",
    "timed_run",
    "tutorial_loop",
]

DEVICE_BATCH = 32
"""Images in the GPU engine's "bank on device" batch (already on the GPU when timed)."""

REAL_SAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "chestxray8-sample"
"""The tutorial's 9 real images, when the repository sits beside ``shared/``."""


def prepare_images(source: Path | None, count: int, folder: Path) -> list[Path]:
    """Copy the PNGs of ``source`` round-robin into ``folder`` until there are ``count``.

    ``source`` None: 9 generated 1024 x 1024 phantoms (one patient's follow-ups).
    """
    if source is None:
        from ..io.phantoms import write_phantoms

        originals = write_phantoms(folder / "originals", patients=1, follow_ups=9)
    else:
        originals = sorted(
            p for p in Path(source).iterdir() if is_image_name(p.name) and p.is_file()
        )
        if not originals:
            raise InputError(
                f"no {format_names()} files in {source}; give a folder of {format_names()} images"
            )
        _check_decodable(originals[:count])
    images = folder / "images"
    images.mkdir(parents=True)
    paths = []
    for k in range(count):
        original = originals[k % len(originals)]
        target = images / f"{k:06d}_{original.name}"
        shutil.copyfile(original, target)
        paths.append(target)
    return paths


def _check_decodable(originals: list[Path]) -> None:
    """Raise InputError unless every file decodes at the first one's size and depth."""
    try:
        header = read_image_header(originals[0])
    except DecodeError as error:
        raise InputError(
            f"{originals[0]}: {error}; the benchmark needs images that decode"
        ) from None
    dtype = "uint16" if header.bit_depth == 16 else "uint8"
    for path in originals:
        error = decode_image(path, shape=(header.height, header.width), dtype=dtype).error
        if error:
            raise InputError(
                f"{path}: {error}; the benchmark needs images that all decode at one size: "
                "remove it, or give another folder"
            )


@dataclass(frozen=True)
class BenchConfig:
    """A configuration to benchmark, with the label its figures carry."""

    label: str
    config: Config


@dataclass
class BenchResult:
    """Everything one benchmark run measured.

    Attributes
    ----------
    rates : dict
        Images/s of every item, by name (``tutorial``, ``run opencv default``...):
        the best of its rounds.
    rounds : dict
        Every measurement of every item, in order.
    efficiency : dict
        ``{"<engine> <config>": {"vs_slowest_stage", "vs_decode_compute",
        "vs_decode_bank", "vs_compute_then_write"}}``: the run's rate over each ceiling.
    qc_time_ratio, qc_cpu_ratio : dict
        ``{"<engine> <config>": run time with QC / run time without}``, the median
        over rounds of each round's pair (wall time, and the process's CPU time),
        for a config with QC on and the first engine.
    qc_rounds : dict
        ``{"<engine> <config>": [[wall ratio, CPU ratio], ...]}``: every round's pair.
    dask_image_differences : dict
        ``{"laplace_gaussian" | "ggm" | "sobel": {"max_abs", "relative_to_range"}}``.
    bytes_per_image : dict
        ``{config label: bytes on disk per image}`` of the image arrays the write
        stage wrote (per-image records excluded).
    schedulers : dict
        ``{"<engine> <config> <scheduler>": {"vs_threads", "vs_threads_processing",
        "start_s"}}`` for each scheduler run beside threads: its rate over the
        threaded run's, over the whole call and over the processing alone (best
        rounds), and the seconds before its processing began (cluster start-up
        included; median of the rounds).
    facts : dict
        Machine, images, engines, configs, library versions.
    notes : list of str
        What the reader must know (e.g. dask-image ran on fewer images).
    """

    rates: dict[str, float] = field(default_factory=dict)
    rounds: dict[str, list[float]] = field(default_factory=dict)
    efficiency: dict[str, dict[str, float]] = field(default_factory=dict)
    qc_time_ratio: dict[str, float] = field(default_factory=dict)
    qc_cpu_ratio: dict[str, float] = field(default_factory=dict)
    qc_rounds: dict[str, list[list[float]]] = field(default_factory=dict)
    dask_image_differences: dict[str, dict[str, float]] = field(default_factory=dict)
    bytes_per_image: dict[str, float] = field(default_factory=dict)
    schedulers: dict[str, dict[str, float]] = field(default_factory=dict)
    facts: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def ratio(self, name: str) -> float:
        """Rate of item ``name`` over the tutorial loop's."""
        return self.rates[name] / self.rates["tutorial"]

    def record(self) -> dict:
        """The JSON-ready record."""
        return {
            **self.facts,
            "rates_img_s": self.rates,
            "rounds_img_s": self.rounds,
            "ratios_to_tutorial": {name: self.ratio(name) for name in self.rates},
            "efficiency": self.efficiency,
            "qc_time_ratio": self.qc_time_ratio,
            "qc_cpu_ratio": self.qc_cpu_ratio,
            "qc_rounds": self.qc_rounds,
            "dask_image_differences": self.dask_image_differences,
            "store_bytes_per_image": self.bytes_per_image,
            "schedulers": self.schedulers,
            "notes": self.notes,
        }

    def save(self, path: Path) -> Path:
        """Write :meth:`record` as JSON to ``path`` (folders created); return it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.record(), indent=2))
        return path


def available_engines() -> list[str]:
    """The concrete engines that can run here, in :data:`~xray_scale.engines.ENGINES` order."""
    found = []
    for engine in ENGINES:
        if engine == "auto":
            continue
        try:
            found.append(resolve_engine(engine))
        except EngineError:
            pass
    return found


def _versions() -> dict[str, str]:
    versions = library_versions()
    for package in ("dask-image", "opencv-python-headless", "opencv-python"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def time_run(
    folder: Path, bench: BenchConfig, engine: str, workers: int, *, scheduler: str = "threads"
) -> float:
    """Images/s of ``xray_scale.run`` over ``folder/images``; its store is deleted after."""
    return timed_run(folder, bench, engine, workers, scheduler=scheduler)[0]


def timed_run(
    folder: Path, bench: BenchConfig, engine: str, workers: int, *, scheduler: str = "threads"
) -> tuple[float, float]:
    """Images/s of ``xray_scale.run``: over the whole call, and over its processing alone.

    The second leaves out what comes before the first task: finding the
    inputs, creating the store and, for a cluster scheduler, starting the
    cluster and preparing its workers (:attr:`RunSummary.elapsed_s`).
    """
    store = folder / f"run-{bench.label}-{engine}-{scheduler}.zarr"
    began = time.perf_counter()
    summary = run(
        [folder / "images"],
        store,
        config=bench.config,
        engine=engine,
        workers=workers,
        scheduler=scheduler,
    )
    seconds = time.perf_counter() - began
    if summary.ok != summary.total:
        raise ValueError(f"the run failed on {summary.failed} images: {summary.failures[:1]}")
    shutil.rmtree(store)
    return summary.total / seconds, summary.images_per_s


def _cpu_timed_run(
    folder: Path, bench: BenchConfig, engine: str, workers: int
) -> tuple[float, float, float]:
    """Images/s of a threaded ``xray_scale.run``, with its wall and its process CPU seconds."""
    store = folder / f"run-{bench.label}-{engine}-cpu.zarr"
    began, cpu = time.perf_counter(), time.process_time()
    summary = run([folder / "images"], store, config=bench.config, engine=engine, workers=workers)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    if summary.ok != summary.total:
        raise ValueError(f"the run failed on {summary.failed} images: {summary.failures[:1]}")
    shutil.rmtree(store)
    return summary.total / seconds, seconds, cpu


def _without_qc(bench: BenchConfig) -> BenchConfig:
    """The same config with ``qc.enabled = false``."""
    without = dataclasses.replace(bench.config.qc, enabled=False)
    return BenchConfig(f"{bench.label}-qc-off", dataclasses.replace(bench.config, qc=without))


def run_bench(
    *,
    source: Path | None = None,
    images: int = 72,
    workers: int = 2,
    rounds: int = 2,
    configs: list[BenchConfig] | None = None,
    engines: list[str] | None = None,
    tutorial_images: int | None = None,
    dask_image_images: int = 24,
    diff_images: int = 4,
    schedulers: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> BenchResult:
    """Measure everything listed in the module docstring, in one run.

    Parameters
    ----------
    source : path, optional
        Folder of PNGs to repeat; default the real sample beside the
        repository if present, else generated phantoms.
    images : int
        Number of image files benchmarked (copies of the source's).
    workers : int
        Threads for every parallel item (the tutorial loop is one thread).
    rounds : int
        Rounds of the tutorial loop and of every run, one after the other; each
        item's best round is its figure (all rounds are recorded). Runs write
        their stores, and on a virtual machine the first writes into memory the
        guest never used cost several times more kernel time than later ones.
    configs : list of BenchConfig, optional
        Default: the built-in default configuration, labelled ``default``.
    engines : list of str, optional
        Concrete engines to run; default every engine installed.
    tutorial_images : int, optional
        Images given to the tutorial loop (its rate is per image; default all). It
        runs on one thread, so on a many-core node it dominates the benchmark's time.
    dask_image_images : int
        Images given to dask-image (its rate is per image; 0 skips it).
    diff_images : int
        Images on which dask-image's results are compared with per-image filtering.
    schedulers : list of str, optional
        Schedulers of the runs (:data:`xray_scale.runner.schedulers.SCHEDULERS`);
        ``threads`` always, the reference of :attr:`BenchResult.schedulers`.
        Their runs alternate within each round.
    log : callable
        Receives one line per measured item.

    Returns
    -------
    BenchResult
    """
    if min(images, workers, rounds) < 1:
        raise ValueError(
            f"images, workers and rounds must be >= 1, got {images}, {workers}, {rounds}"
        )
    tutorial_images = min(images, tutorial_images or images)
    if tutorial_images < 1:
        raise ValueError(f"tutorial_images must be >= 1, got {tutorial_images}")
    if source is None and REAL_SAMPLE.is_dir():
        source = REAL_SAMPLE
    configs = configs or [BenchConfig("default", load_config(None))]
    engines = [resolve_engine(engine) for engine in engines] if engines else available_engines()
    schedulers = ["threads", *(s for s in dict.fromkeys(schedulers or []) if s != "threads")]
    result = BenchResult()
    rates = result.rates
    load_start = _load_average()  # other work on the machine: compare ratios, not rates
    qc_pairs: dict[str, list[tuple[float, float]]] = {}  # per round: (wall, CPU) on / off
    windows: dict[str, list[float]] = {}  # each run's processing-only rate, by item
    starts: dict[str, list[float]] = {}  # each run's seconds before its processing

    def measured(name: str, rate: float) -> None:
        result.rounds.setdefault(name, []).append(rate)
        rates[name] = max(result.rounds[name])
        log(f"  {name}: {rate:.2f} img/s")

    with tempfile.TemporaryDirectory(prefix="xray-scale-bench-") as tmp:
        folder = Path(tmp)
        paths = prepare_images(source, images, folder)
        stages = Stages(paths, workers)
        log(
            f"{images} images {stages.shape[0]}x{stages.shape[1]} {stages.bit_depth}-bit from "
            f"{source or 'phantoms'}, {workers} workers, engines {', '.join(engines)}, "
            f"configs {', '.join(c.label for c in configs)}"
        )
        for round_number in range(1, rounds + 1):
            log(f"round {round_number} of {rounds}")
            measured("tutorial", tutorial_images / tutorial_loop(paths[:tutorial_images]))
            for bench in configs:
                for engine in engines:
                    for scheduler in schedulers:
                        name = _run_item(engine, bench.label, scheduler)
                        whole, processing = timed_run(
                            folder, bench, engine, workers, scheduler=scheduler
                        )
                        measured(name, whole)
                        windows.setdefault(name, []).append(processing)
                        starts.setdefault(name, []).append(images / whole - images / processing)
                    if engine == engines[0] and bench.config.qc.enabled:
                        # QC on and off side by side, the order swapped every round: a
                        # run right after another pays differently on a VM (memory, caches)
                        pair = [bench, _without_qc(bench)][:: 1 if round_number % 2 else -1]
                        times = {b.label: _cpu_timed_run(folder, b, engine, workers) for b in pair}
                        on, off = times[bench.label], times[f"{bench.label}-qc-off"]
                        measured(f"run {engine} {bench.label} qc-off", off[0])
                        pairs = qc_pairs.setdefault(f"{engine} {bench.label}", [])
                        pairs.append((on[1] / off[1], on[2] / off[2]))
        if tutorial_images < images:
            result.notes.append(f"the tutorial loop ran on the first {tutorial_images} images")
        if dask_image_images:
            count = min(images, dask_image_images)
            dask_folder, dask_out = folder / "dask-images", folder / "dask-out"
            dask_folder.mkdir()
            dask_out.mkdir()
            for path in paths[:count]:
                os.link(path, dask_folder / path.name)
            measured("dask-image", count / dask_image_loop(dask_folder, dask_out, workers))
            if count < images:
                result.notes.append(f"dask-image ran on the first {count} of {images} images")
            compared = paths[: min(diff_images, count)]
            pixels = [iio.imread(p) for p in compared]
            result.dask_image_differences = dask_image_differences(pixels, dask_out)
            shutil.rmtree(dask_out)
        measured("decode", stages.decode_alone(stages.spec(configs[0].config, engines[0])))
        for bench in configs:
            blocks = stages.decoded(stages.spec(bench.config, engines[0]))
            for engine in engines:
                spec = stages.spec(bench.config, engine)
                if get_engine(engine).analyses_batches:
                    enough = blocks[: -(-DEVICE_BATCH // bench.config.batch_size)]
                    batch = np.concatenate([block for _, block, _ in enough])[:DEVICE_BATCH]
                    from ..analysis.stack import bank_rate_on_device

                    rate = bank_rate_on_device(batch, spec, get_engine(engine))
                    measured(f"bank-on-device {engine} {bench.label}", rate)
                measured(f"compute {engine} {bench.label}", stages.compute(spec, blocks))
                measured(f"decode+compute {engine} {bench.label}", stages.decode_and_compute(spec))
                measured(f"decode+bank {engine} {bench.label}", stages.decode_and_bank(spec))
            written = stages.write(stages.spec(bench.config, engines[0]), blocks, folder)
            if written is not None:
                measured(f"write {bench.label}", written[0])
                result.bytes_per_image[bench.label] = written[1]
            del blocks

    for bench in configs:
        for engine in engines:
            key = f"{engine} {bench.label}"
            run_rate = rates[f"run {key}"]
            ceilings = [rates["decode"], rates[f"compute {key}"]]
            ceilings += [rates[f"write {bench.label}"]] if f"write {bench.label}" in rates else []
            # Stages measured alone each had every core; in a run they share them, so
            # a run can at best spend the sum of their times per image.
            seconds = 1 / rates[f"decode+compute {key}"]
            seconds += 1 / rates[f"write {bench.label}"] if f"write {bench.label}" in rates else 0
            result.efficiency[key] = {
                "vs_slowest_stage": run_rate / min(ceilings),
                "vs_decode_compute": run_rate / rates[f"decode+compute {key}"],
                "vs_decode_bank": run_rate / rates[f"decode+bank {key}"],
                "vs_compute_then_write": run_rate * seconds,
            }
            for scheduler in schedulers[1:]:
                name = _run_item(engine, bench.label, scheduler)
                result.schedulers[f"{key} {scheduler}"] = {
                    "vs_threads": rates[name] / run_rate,
                    "vs_threads_processing": max(windows[name]) / max(windows[f"run {key}"]),
                    "start_s": float(np.median(starts[name])),
                }
    for key, pairs in qc_pairs.items():
        result.qc_time_ratio[key] = float(np.median([wall for wall, _ in pairs]))
        result.qc_cpu_ratio[key] = float(np.median([cpu for _, cpu in pairs]))
        result.qc_rounds[key] = [[float(wall), float(cpu)] for wall, cpu in pairs]
    result.facts = {
        "benchmark": "xray-scale bench",
        "machine": platform.node(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "workers": workers,
        "rounds": rounds,
        "images": images,
        "image_shape": list(stages.shape),
        "bit_depth": stages.bit_depth,
        "source": str(source) if source else "phantoms",
        "engines": engines,
        "schedulers": schedulers,
        "configs": {bench.label: bench.config.to_dict() for bench in configs},
        "libraries": _versions(),
        "tutorial_images": tutorial_images,
        "dask_image_images": min(images, dask_image_images),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average_start": load_start,
        "load_average_end": _load_average(),
    }
    return result


def _load_average() -> list[float] | None:
    """The machine's 1, 5 and 15-minute load averages (None where the OS has none)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _run_item(engine: str, label: str, scheduler: str) -> str:
    """The name of a run's figure: ``run <engine> <config>``, then a scheduler not threads."""
    return f"run {engine} {label}" + ("" if scheduler == "threads" else f" {scheduler}")


def format_table(result: BenchResult) -> str:
    """The printed summary: every rate with its ratio, then efficiencies and dask-image's errors."""
    lines = [f"{'item':<40} {'img/s':>9} {'x tutorial':>11}"]
    lines += [
        f"{name:<40} {rate:>9.2f} {result.ratio(name):>10.2f}x"
        for name, rate in result.rates.items()
    ]
    lines.append("")
    lines.append("pipeline efficiency, run / ceiling:")
    columns = {
        "vs_slowest_stage": "slowest stage",
        "vs_decode_compute": "decode+compute",
        "vs_decode_bank": "decode+bank",
        "vs_compute_then_write": "compute, then write",
    }
    lines.append(f"  {'run':<24}" + "".join(f" {title:>20}" for title in columns.values()))
    for key, ratios in result.efficiency.items():
        lines.append(f"  {key:<24}" + "".join(f" {ratios[c]:>20.2f}" for c in columns))
    for key, ratio in result.qc_time_ratio.items():
        lines.append(
            f"  QC: {key}, run with QC / without (median of rounds): time {ratio:.3f}, "
            f"CPU {result.qc_cpu_ratio[key]:.3f}"
        )
        walls = [wall for wall, _ in result.qc_rounds.get(key, [])]
        if walls:
            lines.append(f"      rounds' wall time ratios {min(walls):.3f} to {max(walls):.3f}")
    for label, size in result.bytes_per_image.items():
        lines.append(f"  {label}: {size / 1e6:.2f} MB of image arrays per image written")
    if result.schedulers:
        lines.append("")
        lines.append("schedulers, run / the threaded run (same engine, config and workers):")
        lines.append(f"  {'run':<36} {'whole call':>11} {'processing':>11} {'start s':>8}")
        for key, ratios in result.schedulers.items():
            lines.append(
                f"  {key:<36} {ratios['vs_threads']:>11.2f} "
                f"{ratios['vs_threads_processing']:>11.2f} {ratios['start_s']:>8.1f}"
            )
    if result.dask_image_differences:
        lines.append("")
        lines.append("dask-image's stack filters vs per-image filtering (max |difference|):")
        for name, difference in result.dask_image_differences.items():
            relative = difference["relative_to_range"]
            lines.append(
                f"  {name:<17} {difference['max_abs']:10.3f}  = {relative:.2f} x the output's range"
            )
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)
