"""The body of every dask task of a run: one batch of K images, decoded, analysed, written.

:func:`process_batch` decodes the batch's files once (on the CPU, or onto the
engine's GPU with ``--decoder gpu``), hands the block to
:func:`xray_scale.analysis.batch.analyse_block`, which gives each batch-sized
array to the writer (:class:`xray_scale.store.writer.StoreWriter` in a run:
exactly one shard per array), and returns the batch's small per-image records
for the pipeline's own process to store.
"""

from __future__ import annotations

import numpy as np

from ..analysis.batch import analyse_block
from ..analysis.qc import batch_qc
from ..engines.registry import get_engine
from ..io.formats.registry import ensure_registered
from ..records import STAT_FIELDS, BatchRecord, BatchSpec, BatchWriter, batch_record

__all__ = ["process_batch"]


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
    ensure_registered(spec.formats)  # a worker process knows only the built-in formats
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
