"""The run's shared types: what a batch task is given and gives back, and the names of its results.

:class:`BatchSpec` (what every batch computes and keeps), :class:`BatchRecord`
(what a batch gives back), :class:`BatchWriter` (where it puts its arrays), and
the names of the statuses, statistics, QC fields and maps (:func:`map_name`).

A leaf that ``analysis``, ``engines``, ``store`` and ``runner`` all import: it
imports nothing of the package at run time but the configuration's types for
annotations and, when a batch is decoded, :mod:`xray_scale.io.decode`. So
importing it costs nothing (no NumPy-heavy library, no zarr), and no import
cycle or wrong-way import can run through it. The store's layout
(:mod:`xray_scale.store.layout`) re-exports the names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from .config import Config, QCConfig
    from .io.decode import DecodedImage
    from .io.formats.registry import ImageFormat

__all__ = [
    "FILTER_GROUP",
    "MASK_GROUP",
    "QC_FEATURES",
    "QC_FLAGS",
    "QC_RECORD_FIELDS",
    "SIGNATURE_SIZE",
    "STATUS_FAILED",
    "STATUS_OK",
    "STATUS_PENDING",
    "STAT_FIELDS",
    "BatchRecord",
    "BatchSpec",
    "BatchWriter",
    "batch_record",
    "map_name",
    "split_map_name",
]

STATUS_PENDING, STATUS_OK, STATUS_FAILED = "pending", "ok", "failed"

STAT_FIELDS: tuple[str, ...] = (
    "min",
    "max",
    "mean",
    "std",
    "median",
    "p01",
    "p99",
    "mask_fraction",
)
"""Names of the scalar statistics, in store order (``stats/<name>``)."""
FILTER_GROUP, MASK_GROUP = "filters", "masks"
"""The groups holding the full-resolution maps."""
QC_FLAGS: tuple[str, ...] = ("framed", "inverted", "blank", "low_contrast", "saturated")
"""The per-image QC flags, in store order (``qc/<name>``)."""
SIGNATURE_SIZE = 32 * 32
"""Values in one image's QC detail signature (``qc/signature``): its 32 x 32 downscale."""
QC_FEATURES: tuple[str, ...] = ("concentration", "chest_correlation", "fine_detail")
"""The per-image measurements besides ``frame_fraction`` that the outlier score reads
(``qc/<name>``; stores made before ``qc/outlier`` existed have none)."""
QC_RECORD_FIELDS: tuple[str, ...] = (
    *QC_FLAGS,
    "frame_fraction",
    *QC_FEATURES,
    "pixel_hash",
    "perceptual_hash",
    "signature",
)
"""The ``qc/*`` arrays written with each batch's records, in store order."""


def map_name(group: str, name: str) -> str:
    """The store name of a map: ``"filters/<name>"`` or ``"masks/<name>"``.

    Examples
    --------
    >>> map_name("filters", "sobel")
    'filters/sobel'
    """
    if group not in (FILTER_GROUP, MASK_GROUP):
        raise ValueError(f"a map is in {FILTER_GROUP}/ or {MASK_GROUP}/, not {group!r}")
    return f"{group}/{name}"


def split_map_name(name: str) -> tuple[str, str]:
    """``(group, name)`` of a map's store name, the inverse of :func:`map_name`.

    Examples
    --------
    >>> split_map_name("masks/mask_binary")
    ('masks', 'mask_binary')
    """
    group, _, key = name.partition("/")
    if group not in (FILTER_GROUP, MASK_GROUP) or not key:
        raise ValueError(f"{name!r} is not a map name (filters/<name> or masks/<name>)")
    return group, key


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
    formats : tuple of ImageFormat
        The input formats registered in the run's own process besides the
        built-in ones (:func:`xray_scale.io.formats.registry.added_formats`):
        each task registers them where they are missing, so that worker
        processes and cluster workers decode them too.
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
    formats: tuple[ImageFormat, ...] = ()

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
        from .io.decode import decode_batch  # decoding needs OpenCV: imported when decoding

        return decode_batch(
            paths,
            shape=self.shape,
            dtype=self.pixel_dtype,
            **self.config.decode_options(),
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
