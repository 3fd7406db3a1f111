"""What a batch task is given and gives back: :class:`BatchSpec`, :class:`BatchRecord`.

And :class:`BatchWriter`, where it puts its arrays. A leaf: the per-image path
(:mod:`.batch`), the stack path (:mod:`.stack`), the engines and the store all
use these types, and this module imports none of those modules, so none of
them can form an import cycle through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..config import Config
from ..io.decode import DecodedImage, decode_batch
from ..store.layout import STATUS_FAILED, STATUS_OK, split_map_name
from .maps import output_dtypes
from .previews import preview_shape
from .qc import QCConfig

__all__ = ["BatchRecord", "BatchSpec", "BatchWriter", "batch_record"]


@dataclass(frozen=True)
class BatchSpec:
    """What every batch of a run computes and keeps.

    Attributes
    ----------
    shape : (int, int)
        The run's (height, width).
    pixel_dtype : str
        ``"uint8"`` or ``"uint16"``.
    map_dtypes : dict
        ``{"filters/<name>" or "masks/<name>": storage dtype}``, in output order.
    full_resolution : bool
        Whether the maps are kept at full resolution (``filters/*``, ``masks/*``).
    preview_shape : (int, int) or None
        (height, width) of the previews, None for none.
    config : Config
        Parameters, thresholds, decoding policies.
    compat : {None, "tutorial"}
        The tutorial's arrays bit for bit.
    engine : str
        The concrete engine (``"scipy"``, ``"opencv"``, ``"cupy"``).
    qc : QCConfig or None
        The QC thresholds when the run computes QC (``qc/*``), else None.
    decoder : {"cpu", "gpu"}
        Where the PNGs are decoded: by :meth:`decode` on the CPU, or onto the
        engine's GPU by the engine's ``decode_batch`` (``--decoder gpu``). It
        changes no output, so it is not part of the run's fingerprint.
    pixel_hash : {"crc32c", "sha1"}
        What ``qc/pixel_hash`` digests (:func:`xray_scale.analysis.qc.pixel_hash`):
        ``"sha1"`` when resuming a store made before ``qc/outlier`` existed
        (:func:`xray_scale.store.qc.stored_qc`), so its duplicates still group.
    """

    shape: tuple[int, int]
    pixel_dtype: str
    map_dtypes: dict[str, str]
    full_resolution: bool
    preview_shape: tuple[int, int] | None
    config: Config
    compat: str | None
    engine: str
    qc: QCConfig | None = None
    decoder: str = "cpu"
    pixel_hash: str = "crc32c"

    @classmethod
    def for_run(
        cls,
        config: Config,
        *,
        shape: tuple[int, int],
        bit_depth: int,
        compat: str | None,
        engine: str,
        decoder: str = "cpu",
    ) -> BatchSpec:
        """The spec of a run over images of ``shape`` and ``bit_depth`` (8 or 16)."""
        pixel_dtype = "uint16" if bit_depth == 16 else "uint8"
        map_dtypes = output_dtypes(config, pixel_dtype, compat=compat)
        small = preview_shape(shape, config.preview_size) if config.preview_size else None
        return cls(
            shape=tuple(shape),
            pixel_dtype=pixel_dtype,
            map_dtypes={name: str(dtype) for name, dtype in map_dtypes.items()},
            full_resolution=config.full_resolution,
            preview_shape=small,
            config=config,
            compat=compat,
            engine=engine,
            qc=config.qc if config.qc.enabled else None,
            decoder=decoder,
        )

    @property
    def preview_maps(self) -> tuple[str, ...]:
        """What ``previews[:, m]`` shows: ``"original"``, then each map's name; () for none."""
        if self.preview_shape is None:
            return ()
        return ("original", *(split_map_name(name)[1] for name in self.map_dtypes))

    def decode(self, paths: list[str]) -> tuple[np.ndarray, list[DecodedImage]]:
        """Decode a batch of files by this run's shape, dtype and input policies.

        See :func:`xray_scale.io.decode.decode_batch`.
        """
        return decode_batch(
            paths,
            shape=self.shape,
            dtype=self.pixel_dtype,
            max_pixels=self.config.max_pixels,
            size_policy=self.config.size_policy,
            format_options=self.config.format_options(),
        )

    def store_layout(self) -> dict:
        """The image arrays' keyword arguments of :func:`xray_scale.store.create.create_store`."""
        return {
            "shape": self.shape,
            "map_dtypes": self.map_dtypes if self.full_resolution else {},
            "preview_maps": self.preview_maps,
            "preview_shape": self.preview_shape,
        }

    @property
    def image_arrays(self) -> tuple[str, ...]:
        """The arrays each batch writes one shard (one chunk of ``previews``) of."""
        maps = tuple(self.map_dtypes) if self.full_resolution else ()
        return (*maps, "previews") if self.preview_shape else maps

    @property
    def computes_maps(self) -> bool:
        """Whether the maps are computed at all (not for a statistics-only run)."""
        return self.full_resolution or self.preview_shape is not None


class BatchWriter(Protocol):
    """Where :func:`xray_scale.analysis.batch.analyse_block` puts a batch's arrays."""

    def write(self, name: str, start: int, values: np.ndarray) -> None:
        """Store ``values``, the whole batch of array ``name``, at image ``start``."""

    def erase(self, name: str, start: int, k: int) -> None:
        """Zero image ``start + k`` of a batch of ``name`` already written."""

    def clear(self, name: str, start: int, count: int) -> None:
        """Keep nothing of the ``count`` images of the batch at ``start`` in ``name``."""


@dataclass
class BatchRecord:
    """The small per-image results of one batch, for images ``[start, start + K)``.

    What a batch task returns once its maps are written; the pipeline's
    :class:`~xray_scale.store.access.RecordWriter` stores it.

    Attributes
    ----------
    start : int
        Index of the batch's first image.
    stats : dict
        ``{field: (K,) float64}`` for each of STAT_FIELDS (NaN where failed).
    histogram : ndarray
        ``(K, 256)`` counts.
    status, error, mode : list of str
        Per image.
    bit_depth, checksum : list of int
        Per image (:attr:`xray_scale.io.decode.DecodedImage.checksum`).
    original_size : list of (int, int)
        Each image's own (height, width) before any resizing, (0, 0) when it failed.
    tags : list of dict or None
        What each image's format read out for the index (a DICOM file's tags), or None.
    qc : dict or None
        ``{field: array}`` of :func:`xray_scale.analysis.qc.batch_qc` when the run
        computes QC, else None.
    """

    start: int
    stats: dict[str, np.ndarray]
    histogram: np.ndarray
    status: list[str]
    error: list[str]
    mode: list[str]
    bit_depth: list[int]
    checksum: list[int]
    qc: dict[str, np.ndarray] | None = None
    original_size: list[tuple[int, int]] | None = None
    tags: list[dict[str, str] | None] | None = None

    @property
    def size(self) -> int:
        """Number of images in the batch."""
        return len(self.status)

    @property
    def failures(self) -> list[tuple[int, str]]:
        """``(store index, error)`` of each failed image."""
        return [(self.start + k, e) for k, e in enumerate(self.error) if e]


def batch_record(
    start: int,
    stats: dict[str, np.ndarray],
    histogram: np.ndarray,
    errors: list[str | None],
    decoded: list[DecodedImage],
) -> BatchRecord:
    """The per-image records of an analysed batch: a status from each image's error."""
    return BatchRecord(
        start=start,
        stats=stats,
        histogram=histogram,
        status=[STATUS_FAILED if error else STATUS_OK for error in errors],
        error=errors,
        mode=[image.mode for image in decoded],
        bit_depth=[image.bit_depth for image in decoded],
        checksum=[image.checksum for image in decoded],
        original_size=[image.original_size or (0, 0) for image in decoded],
        tags=[image.tags for image in decoded],
    )
