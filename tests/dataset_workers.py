"""What a loader's worker process does with an ImageDataset (importable by spawned workers)."""

from __future__ import annotations

import hashlib
import os

import numpy as np

_DATASET = None


def keep(dataset) -> None:
    """Pool initializer: this worker's dataset (inherited by fork, unpickled by spawn)."""
    global _DATASET
    _DATASET = dataset


def read(item: int) -> tuple[int, int, str, list[float], bool]:
    """``(item, pid, digest of the image bytes, labels, whether this process opened the store)``."""
    image, labels = _DATASET[item]
    opened_here = _DATASET._opened is not None and _DATASET._opened[0] == os.getpid()
    return item, os.getpid(), digest(image), labels.tolist(), opened_here


def digest(image) -> str:
    arrays = image if isinstance(image, tuple) else (image,)
    h = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        h.update(f"{array.dtype}{array.shape}".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def scale(image: np.ndarray) -> np.ndarray:
    """A transform defined at a module's top level (spawned workers unpickle it by name)."""
    return image.astype(np.float32) / 255
