"""One decoded batch of K images analysed, every output handed to a writer.

:func:`analyse_block` computes the statistics of each image, then the maps map
by map (at most one ``(K, H, W)`` output in memory at a time) and the
previews, and gives each batch-sized array to a writer: in a run,
:class:`xray_scale.store.writer.StoreWriter`, which writes exactly one shard
(one chunk of ``previews``) per array; :func:`xray_scale.runner.task.process_batch`,
the body of every dask task of a run, decodes the batch and calls it. The
benchmarks give the same code a writer that keeps nothing, so the compute
ceiling they measure is the pipeline's own code without its writes. Nothing
here opens a store.
"""

from __future__ import annotations

import numpy as np

from ..engines.registry import get_engine
from ..io.decode import DecodedImage, unpad
from ..records import STATUS_OK, BatchRecord, BatchSpec, BatchWriter, batch_record
from .image import image_statistics, map_function
from .previews import to_preview
from .qc import batch_qc
from .stack import analyse_on_device
from .stats import STAT_FIELDS

__all__ = ["analyse_block"]


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
        record = analyse_on_device(block, decoded, start, spec=spec, writer=writer, engine=engine)
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
