"""One batch of K images: decode, analyse, hand every output to a writer.

:func:`process_batch` is the body of every dask task of a run. It decodes the
batch's files once, computes the statistics of each image, then the maps map
by map (at most one ``(K, H, W)`` output in memory at a time) and the
previews, and gives each batch-sized array to a writer: :class:`StoreWriter`
in a run, which writes exactly one shard (one chunk of ``previews``) per
array. The benchmarks give the same code a writer that keeps nothing, so the
compute ceiling they measure is the pipeline's own code without its writes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import zarr

from ..engines.registry import get_engine
from ..io.decode import DecodedImage, unpad
from ..store.access import image_array_depth, write_maps
from ..store.layout import STATUS_OK
from ..store.location import StoreLocation, reaching
from .image import image_statistics, map_function
from .previews import to_preview
from .qc import batch_qc
from .records import BatchRecord, BatchSpec, BatchWriter, batch_record
from .stats import STAT_FIELDS

__all__ = ["BatchSpec", "BatchWriter", "StoreWriter", "analyse_block", "process_batch"]


@dataclass(frozen=True)
class StoreWriter:
    """Writes each array of a batch as its one whole shard of the store.

    Attributes
    ----------
    store_path : str or StoreLocation
        The store's folder, or its place at a URL (:mod:`xray_scale.store.location`).
    fingerprint : str
        The store's fingerprint (``attrs["xray_scale"]["fingerprint"]``): two
        stores with the same path and fingerprint have the same layout, so
        arrays opened for one stay right for the other.
    """

    store_path: str | StoreLocation
    fingerprint: str

    def write(self, name: str, start: int, values: np.ndarray) -> None:
        """Write one batch's shard of ``name`` (see :func:`xray_scale.store.access.write_maps`).

        Raises
        ------
        UnreachableError
            If the store is at a URL whose server cannot be reached: the
            task stops, so its batch stays ``pending``.
        """
        with reaching(self.store_path):
            write_maps({name: self._array(name)}, start, {name: values})

    def erase(self, name: str, start: int, k: int) -> None:
        """Zero image ``start + k`` in its shard, rewriting the shard whole."""
        with reaching(self.store_path):
            array = self._array(name)
            batch = array[start : start + image_array_depth(array)]
            batch[k] = 0
            write_maps({name: array}, start, {name: batch})

    def clear(self, name: str, start: int, count: int) -> None:
        """Remove the batch's shard of ``name``, if an earlier run wrote one.

        Written as the fill value through the array opened without
        ``write_empty_chunks``, which zarr stores as no shard at all (and a
        missing shard reads back as the fill value).
        """
        with reaching(self.store_path):
            array = _open_array(self.store_path, self.fingerprint, name, empty=False)
            zeros = np.zeros((count, *array.shape[1:]), array.dtype)
            write_maps({name: array}, start, {name: zeros})

    def _array(self, name: str) -> zarr.Array:
        return _open_array(self.store_path, self.fingerprint, name)


@functools.lru_cache(maxsize=64)
def _open_array(
    store_path: str | StoreLocation, fingerprint: str, name: str, *, empty: bool = True
) -> zarr.Array:
    """One array of a store, opened once per process, writing every chunk it is given.

    Opening reads and parses the array's metadata, which batch after batch held
    the GIL for a sizeable share of a run. ``write_empty_chunks`` is a runtime
    setting, not stored metadata: without it zarr compares every chunk with the
    fill value before writing it, a full scan of every map (measured: 3.4 % of a
    GPU run's CPU time). ``empty=False`` opens it with the scan, for
    :meth:`StoreWriter.clear`: a chunk of fill values is then deleted, not written.
    """
    target = store_path if isinstance(store_path, str) else store_path.zarr_store()
    with zarr.config.set({"array.write_empty_chunks": empty}):
        return zarr.open_group(target, mode="r+", zarr_format=3)[name]


def process_batch(
    paths: list[str], start: int, *, spec: BatchSpec, writer: BatchWriter
) -> BatchRecord:
    """Decode and analyse one batch, writing its arrays; the body of every dask task.

    A bad file or an exception while analysing one image marks that image
    ``failed`` with a one-line message; the rest of the batch is unaffected.
    A batch none of whose files decodes writes no shard (absent or
    undecodable files cost no disk).

    Returns
    -------
    BatchRecord
        The batch's per-image records, for the pipeline to store once this
        task has returned (its arrays are written by then).
    """
    if spec.decoder == "gpu":  # decoded onto the engine's GPU, where the batch is analysed
        block, decoded = get_engine(spec.engine).decode_batch(paths, spec)
    else:
        block, decoded = spec.decode(paths)
    if all(image.error for image in decoded):  # nothing to analyse, nothing kept of the batch
        for name in spec.image_arrays:
            writer.clear(name, start, len(decoded))
        count = len(decoded)
        stats = {field: np.full(count, np.nan) for field in STAT_FIELDS}
        histogram = np.zeros((count, 256), dtype=np.int64)
        record = batch_record(start, stats, histogram, [i.error for i in decoded], decoded)
        if spec.qc is not None:  # every image failed: the QC arrays' "none" values
            record.qc = batch_qc([None] * count, [None] * count, config=spec.qc)
        return record
    return analyse_block(block, decoded, start, spec=spec, writer=writer)


def analyse_block(
    block: np.ndarray,
    decoded: list[DecodedImage],
    start: int,
    *,
    spec: BatchSpec,
    writer: BatchWriter,
) -> BatchRecord:
    """Statistics, maps, previews and QC of a decoded batch, each array given to ``writer``.

    The maps and previews of a padded image are those of the padded array; its
    statistics, histogram and QC are those of the image itself, without the padding.

    Parameters
    ----------
    block : ndarray
        ``(K, H, W)`` pixels, as :func:`xray_scale.io.decode.decode_batch` returns them.
    decoded : list of DecodedImage
        Per image: mode, bit depth and the decoding error, if any.
    start : int
        Index of the batch's first image in the run.
    spec : BatchSpec
    writer : BatchWriter

    Returns
    -------
    BatchRecord
    """
    engine = get_engine(spec.engine)
    if engine.analyses_batches and spec.compat is None:  # the whole batch at once (a GPU)
        record = engine.analyse_batch(block, decoded, start, spec=spec, writer=writer)
    else:
        record = _analyse_images(block, decoded, start, spec=spec, writer=writer)
    if spec.qc is not None:
        record.qc = _batch_qc(block, decoded, record, spec)
    return record


def _batch_qc(
    block: np.ndarray, decoded: list[DecodedImage], record: BatchRecord, spec: BatchSpec
) -> dict[str, np.ndarray]:
    """The QC of a batch's ok images, from their own pixels (never the padding).

    The record's histograms are the 256-bin counts of each image's own pixels,
    except in the tutorial's compat mode (its min..max histogram): then QC counts them.
    A batch decoded onto the GPU (``--decoder gpu``) is copied back to the host once.
    """
    if hasattr(block, "__cuda_array_interface__"):  # decoded onto the GPU: QC reads a host copy
        block = block.get()
    ok = [status == STATUS_OK for status in record.status]
    images = [unpad(block[k], decoded[k]) if ok[k] else None for k in range(len(ok))]
    histograms = [record.histogram[k] if spec.compat is None else None for k in range(len(ok))]
    return batch_qc(images, histograms, config=spec.qc, hash_kind=spec.pixel_hash)


def _analyse_images(
    block: np.ndarray,
    decoded: list[DecodedImage],
    start: int,
    *,
    spec: BatchSpec,
    writer: BatchWriter,
) -> BatchRecord:
    """:func:`analyse_block` image by image, on the host."""
    count = len(decoded)
    errors = [image.error for image in decoded]
    stats = {field: np.full(count, np.nan) for field in STAT_FIELDS}
    histogram = np.zeros((count, 256), dtype=np.int64)
    for k in range(count):
        if not errors[k]:
            own_pixels = unpad(block[k], decoded[k])  # the padding is not part of the image
            values, histogram[k] = image_statistics(own_pixels, spec.config, compat=spec.compat)
            for field, value in values.items():
                stats[field][k] = value
    previews = None
    if spec.preview_shape:  # every preview of the batch, written once at the end
        previews = np.zeros((count, len(spec.preview_maps), *spec.preview_shape), np.uint8)
        for k in range(count):
            if not errors[k]:
                previews[k, 0] = to_preview(block[k], spec.preview_shape)
    written: list[str] = []  # full-resolution arrays that hold this batch already
    computed = spec.map_dtypes if spec.computes_maps else {}
    for m, (name, dtype) in enumerate(computed.items(), start=1):
        function = map_function(name, spec.config, compat=spec.compat, engine=spec.engine)
        values = np.zeros((count, *spec.shape), dtype=dtype) if spec.full_resolution else None
        for k in range(count):
            if errors[k]:
                continue
            try:
                image_map = function(block[k])
            except Exception as exc:  # one image's failure must not stop its batch
                errors[k] = f"processing failed in {name}: {type(exc).__name__}: {exc}"
                for done in written:
                    writer.erase(done, start, k)
                if previews is not None:
                    previews[k] = 0
                continue
            if values is not None:
                values[k] = image_map
            if previews is not None:
                previews[k, m] = to_preview(image_map, spec.preview_shape)
        if values is not None:
            writer.write(name, start, values)
            written.append(name)
    if previews is not None:
        writer.write("previews", start, previews)
    failed = [k for k in range(count) if errors[k]]  # also those that failed in a map
    for field in stats:
        stats[field][failed] = np.nan
    histogram[failed] = 0
    return batch_record(start, stats, histogram, errors, decoded)
