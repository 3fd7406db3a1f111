"""The stage ceilings of ``xray-scale bench``: decode, compute, decode+compute, decode+bank, write.

Each through the pipeline's own batch code (:mod:`xray_scale.analysis.batch`),
over the same batches with the same threads, with writes replaced by a writer
that keeps nothing (or only records what it was given).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..analysis.batch import analyse_block
from ..analysis.image import image_statistics, map_function
from ..analysis.maps import batch_spec
from ..analysis.stack import bank_batch
from ..config import Config
from ..engines.registry import get_engine
from ..io.decode import DecodedImage, read_image_header
from ..records import BatchSpec
from ..store.create import create_store
from ..store.writer import StoreWriter

__all__ = ["Stages"]


class _DiscardWriter:
    """A :class:`xray_scale.records.BatchWriter` that keeps nothing: compute ceilings."""

    def write(self, name: str, start: int, values: np.ndarray) -> None:
        pass

    def erase(self, name: str, start: int, k: int) -> None:
        pass

    def clear(self, name: str, start: int, count: int) -> None:
        pass


class _RecordingWriter(_DiscardWriter):
    """Keeps the arrays of one batch, to replay them in the write ceiling."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def write(self, name: str, start: int, values: np.ndarray) -> None:
        self.arrays[name] = values


def _threaded(function: Callable, work: list, workers: int) -> float:
    """Seconds to run ``function(item)`` for every item of ``work`` on ``workers`` threads."""
    began = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(function, work):
            pass
    return time.perf_counter() - began


class Stages:
    """The stage ceilings of one set of PNG files, through the pipeline's own batch code.

    Every method returns images/s over all the files, ``workers`` threads working
    through the batches of the config's batch size.

    Parameters
    ----------
    paths : list of path
        The files; the first one's header gives the shape and bit depth.
    workers : int
        Threads.
    """

    def __init__(self, paths: list[Path], workers: int):
        header = read_image_header(paths[0])
        self.paths = [str(p) for p in paths]
        self.shape = (header.height, header.width)
        self.bit_depth = 16 if header.bit_depth == 16 else 8
        self.workers = workers

    def spec(self, config: Config, engine: str) -> BatchSpec:
        """The :class:`~xray_scale.records.BatchSpec` of a run of ``config`` here."""
        return batch_spec(
            config, shape=self.shape, bit_depth=self.bit_depth, compat=None, engine=engine
        )

    def batches(self, size: int) -> list[tuple[int, list[str]]]:
        return [(s, self.paths[s : s + size]) for s in range(0, len(self.paths), size)]

    def decode(self, spec: BatchSpec, batch: list[str]) -> tuple[np.ndarray, list[DecodedImage]]:
        block, decoded = spec.decode(batch)
        failed = [f"{p}: {d.error}" for p, d in zip(batch, decoded, strict=True) if d.error]
        if failed:
            raise ValueError(f"benchmark images must decode; {failed[0]}")
        return block, decoded

    def rate(self, function: Callable, work: list) -> float:
        return len(self.paths) / _threaded(function, work, self.workers)

    def decoded(self, spec: BatchSpec) -> list[tuple[int, np.ndarray, list[DecodedImage]]]:
        """Every batch decoded, ``(start, block, decoded)``: the input of :meth:`compute`."""
        return [(s, *self.decode(spec, b)) for s, b in self.batches(spec.config.batch_size)]

    def compute(self, spec: BatchSpec, blocks) -> float:
        """Images/s of everything ``spec`` computes from decoded images, nothing written."""

        def analyse(item):
            start, block, decoded = item
            analyse_block(block, decoded, start, spec=spec, writer=_DiscardWriter())

        return self.rate(analyse, blocks)

    def decode_alone(self, spec: BatchSpec) -> float:
        """Images/s of decoding every batch, nothing else."""
        return self.rate(
            lambda item: self.decode(spec, item[1]), self.batches(spec.config.batch_size)
        )

    def decode_and_compute(self, spec: BatchSpec) -> float:
        """Images/s of decoding and everything ``spec`` computes, nothing written."""

        def both(item):
            start, batch = item
            analyse_block(*self.decode(spec, batch), start, spec=spec, writer=_DiscardWriter())

        return self.rate(both, self.batches(spec.config.batch_size))

    def decode_and_bank(self, spec: BatchSpec) -> float:
        """Images/s of decoding, then the statistics and every map of each image, dropped."""

        def bank(item):
            block, decoded = self.decode(spec, item[1])
            engine = get_engine(spec.engine)
            if engine.analyses_batches:  # a GPU engine's bank: the whole batch at once
                bank_batch(block, spec, engine)
                return
            for pixels in block:
                image_statistics(pixels, spec.config)
            for name in spec.map_dtypes:
                function = map_function(name, spec.config, engine=spec.engine)
                for pixels in block:
                    function(pixels)

        return self.rate(bank, self.batches(spec.config.batch_size))

    def write(self, spec: BatchSpec, blocks, folder: Path) -> tuple[float, float] | None:
        """Writing the config's outputs of one batch into every batch of a fresh store.

        Returns
        -------
        (float, float) or None
            Images/s and bytes on disk per image; None when the config stores
            no image arrays (statistics only).
        """
        recorder = _RecordingWriter()
        start, block, decoded = blocks[0]
        analyse_block(block, decoded, start, spec=spec, writer=recorder)
        if not recorder.arrays:
            return None  # statistics only: nothing but per-image records to write
        store = folder / "write.zarr"
        shutil.rmtree(store, ignore_errors=True)
        create_store(store, paths=self.paths, config=spec.config, **spec.store_layout())
        writer = StoreWriter(str(store), f"bench-{time.monotonic_ns()}")

        def write_batch(item):
            start, batch = item
            for name, values in recorder.arrays.items():
                writer.write(name, start, values[: len(batch)])

        rate = self.rate(write_batch, self.batches(spec.config.batch_size))
        arrays = [store / name for name in recorder.arrays]  # not the per-image records
        size = sum(p.stat().st_size for a in arrays for p in a.rglob("*") if p.is_file())
        shutil.rmtree(store)
        return rate, size / len(self.paths)
