"""Writing a batch's arrays into the store: :class:`StoreWriter`, the run's batch writer.

:class:`StoreWriter` is the :class:`~xray_scale.records.BatchWriter` of a run.
Each full-resolution array of a batch is written as exactly one whole shard
(:func:`xray_scale.store.access.write_maps`), ``previews`` as one chunk; the
arrays are opened once per process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import zarr

from .access import image_array_depth, write_maps
from .location import StoreLocation, reaching

__all__ = ["StoreWriter"]


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
