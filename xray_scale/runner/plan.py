"""Estimate a run before doing it: image count, output size and time, measured on a sample.

The estimate comes from a real run of the same configuration, engine and
workers on the first few inputs, into a temporary store: its bytes on disk per
image and per array, and its images per second, scaled to all inputs.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..config import Config, load_config
from ..io.sources.datasets import read_metadata
from ..io.sources.discover import discover_inputs
from ..io.sources.manifest import Manifest, select_with_manifest
from ..io.sources.urls import url_options
from ..store.access import open_store
from ..store.layout import FILTER_GROUP, MASK_GROUP, map_name
from ..store.location import parse_storage_options
from ..store.metadata import RunMetadata
from .pipeline import run

__all__ = ["Plan", "plan_run"]


@dataclass(frozen=True)
class Plan:
    """What a run over the inputs will produce and take.

    Attributes
    ----------
    images : int
        Inputs the run would process.
    sampled : int
        Images of the measured sample run.
    bytes_per_image : dict
        ``{array group or name: bytes on disk per image}`` measured on the sample;
        ``filters/<name>``, ``masks/<name>``, ``previews`` (all of an image's
        previews), and ``records`` for stats and index.
    images_per_s : float
        Throughput of the sample run.
    engine : str
        Engine the sample ran with.
    """

    images: int
    sampled: int
    bytes_per_image: dict[str, float]
    images_per_s: float
    engine: str

    @property
    def total_bytes(self) -> float:
        """Estimated size of the whole store."""
        return sum(self.bytes_per_image.values()) * self.images

    @property
    def seconds(self) -> float:
        """Estimated processing time of the whole run."""
        return self.images / self.images_per_s if self.images_per_s else float("inf")


def _bytes_under(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def plan_run(
    inputs: list[str | os.PathLike],
    *,
    config: Config | str | os.PathLike | dict | None = None,
    engine: str = "auto",
    workers: int | None = None,
    manifest: str | os.PathLike | list[str | os.PathLike] | None = None,
    sample: int | None = None,
    storage_options: dict | list[str] | None = None,
) -> Plan:
    """Measure a run of the first ``sample`` inputs and scale it to all of them.

    Parameters
    ----------
    inputs, config, engine, workers, manifest
        As for :func:`xray_scale.run`: inputs at URLs too (the sample is read
        from them; the measured rate includes that reading).
    sample : int, optional
        Images in the sample run; default two batches per worker (at most
        all inputs).
    storage_options : dict or list of str, optional
        fsspec options of the URL inputs and manifest (``endpoint_url``,
        ``key``...), or ``KEY=VALUE`` strings, as for :func:`xray_scale.run`.

    Returns
    -------
    Plan
    """
    if not isinstance(config, Config):
        config = load_config(config)
    options = parse_storage_options(storage_options)
    with url_options(options):
        paths = discover_inputs(inputs)
        if manifest is not None:
            parsed = read_metadata(manifest)
            if isinstance(parsed, Manifest):  # another dataset's metadata selects nothing
                paths, _ = select_with_manifest(paths, parsed)
    workers = workers or os.cpu_count() or 1
    sample = min(sample or 2 * workers * config.batch_size, len(paths))
    with tempfile.TemporaryDirectory(prefix="xray-scale-plan-") as folder:
        listing = Path(folder) / "sample.txt"
        listing.write_text("\n".join(paths[:sample]) + "\n", encoding="utf-8")
        store = Path(folder) / "sample.zarr"
        summary = run(
            [listing], store, config=config, engine=engine, workers=workers, input_options=options
        )
        sizes = {}
        for group in (FILTER_GROUP, MASK_GROUP):
            arrays = sorted(p for p in (store / group).glob("*") if p.is_dir())
            for array in arrays:
                sizes[map_name(group, array.name)] = _bytes_under(array) / sample
        if (store / "previews").is_dir():
            sizes["previews"] = _bytes_under(store / "previews") / sample
        sizes["records"] = (_bytes_under(store / "stats") + _bytes_under(store / "index")) / sample
        used_engine = RunMetadata.from_group(open_store(store)).engine
    return Plan(len(paths), sample, sizes, summary.images_per_s, used_engine)
