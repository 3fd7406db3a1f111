"""A training set's images decoded once into a file that every worker maps into memory.

A shuffled loader asks for images in random order, and each ``previews`` chunk
holds a whole batch of images and maps: served from the store, every item
decompresses a chunk for one image of it. :func:`cached_images` decodes the
images a dataset serves once, in store order (each chunk once), into one
``.npy`` file; each process then memory-maps it, so the operating system keeps
one copy in RAM for all workers and an item costs a copy of its bytes. For the
original film at 256 x 256 that is 64 KiB per image (7.3 GB for the dump's
112,120 images), smaller than the PNGs it stands for.

The file's name says what it holds: the store's run fingerprint, the array,
the map and the images, so another store, selection or resumed store (whose
``ok`` images changed) gets a file of its own, and a file is only ever
complete (written under a temporary name, then renamed).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import numpy as np
import zarr

from ..errors import StoreError

__all__ = ["cache_path", "cached_images"]


def cache_path(
    folder: str | os.PathLike,
    *,
    fingerprint: str,
    source: str,
    where: int | None,
    indices: np.ndarray,
) -> Path:
    """The file of ``folder`` holding images ``indices`` of array ``source`` (map ``where``).

    Examples
    --------
    >>> cache_path("c", fingerprint="f", source="previews", where=0, indices=np.arange(3)).name
    'previews-0-5b85c00cf06b7184.npy'
    """
    key = json.dumps([fingerprint, source, where, np.asarray(indices, np.int64).tolist()])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    name = source.replace("/", "-") + ("" if where is None else f"-{where}")
    return Path(folder) / f"{name}-{digest}.npy"


def cached_images(path: Path, array: zarr.Array, *, where: int | None, indices: np.ndarray) -> Path:
    """Make ``path`` hold ``array[indices]`` (``array[indices, where]`` for previews), if absent.

    Reads the array chunk by chunk, each chunk once, and writes a ``.npy``
    file that ``numpy.load(path, mmap_mode="r")`` opens. ``indices`` must be
    ascending (store order), as a dataset's are.

    Raises
    ------
    StoreError
        If the file cannot be written (with the folder, and what to do).
    """
    if path.is_file():
        return path
    depth = array.chunks[0]
    shape = (len(indices), *array.shape[1 if where is None else 2 :])
    partial = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=array.dtype, shape=shape)
        starts = indices // depth * depth  # ascending: the images in store order
        groups = np.split(np.arange(len(indices)), np.flatnonzero(np.diff(starts)) + 1)
        for items in (group for group in groups if len(group)):
            start = int(starts[items[0]])
            selection = (slice(start, start + depth),)
            block = array[selection if where is None else (*selection, where)]
            out[items] = block[indices[items] - start]
        out.flush()
        del out
        os.replace(partial, path)
    except OSError as error:
        raise StoreError(
            f"cannot write the image cache {path}: {error.strerror or error}; give cache= a "
            "folder on a local disk with room for it, or cache=None to read from the store"
        ) from None
    finally:
        partial.unlink(missing_ok=True)
    return path
