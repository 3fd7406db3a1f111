"""A whole batch analysed as one ``(K, H, W)`` stack on an array backend (the GPU engine's path).

:func:`xray_scale.analysis.batch.analyse_block` works image by image on the CPU.
A GPU wants the opposite: one copy of the batch to the device, one kernel per
filter pass for all K images (each filter's ``FilterSpec.stack``,
:mod:`xray_scale.filters.stack`), the value
counts of every image and the previews computed there, and only what the
config stores copied back. :func:`analyse_stack` does that for any
:class:`~xray_scale.engines.base.ArrayBackend`: ``cupy``, the ``cupy`` engine's
(:mod:`xray_scale.engines.cupy`, which supplies the backend and calls nothing
here), ``numpy`` + ``scipy.ndimage`` for the tests, which run the same code on
machines without a GPU. Its results equal ``analyse_block``'s: statistics
exactly, maps within 1e-4 of their range, previews within one level.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as scipy_ndimage

from ..engines.base import ArrayBackend, Engine
from ..filters import stack as stack_filters
from ..filters.registry import FILTERS, HOST_ONLY
from ..io.decode import DecodedImage
from ..records import MASK_GROUP, BatchRecord, BatchSpec, BatchWriter, batch_record, split_map_name
from .previews import to_preview
from .stats import STAT_FIELDS, stats_from_counts

__all__ = [
    "NUMPY_BACKEND",
    "StackOutputs",
    "analyse_on_device",
    "analyse_stack",
    "bank_batch",
    "bank_rate_on_device",
    "bank_stack",
    "compute_stack",
    "warm_up",
]


NUMPY_BACKEND = ArrayBackend("numpy", np, scipy_ndimage, np.asarray, np.asarray)
"""The CPU backend: the same code on ``numpy`` and ``scipy.ndimage``."""


@dataclass
class StackOutputs:
    """What :func:`compute_stack` brings back to the host.

    Attributes
    ----------
    counts : ndarray
        ``(K, levels)`` value counts of every image.
    maps : dict
        ``{name: (K, H, W) ndarray}`` in storage dtype, only when the spec keeps
        full-resolution maps.
    previews : ndarray or None
        ``(K, M, h, w)`` uint8, in :attr:`BatchSpec.preview_maps` order.
    """

    counts: np.ndarray
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    previews: np.ndarray | None = None


def _filter_stack(name: str, pixels, images, spec: BatchSpec, backend):
    """One filter's ``(K, H, W)`` map of the batch on the device, in its storage dtype.

    The filter's stack version (``FilterSpec.stack``); for a ``HOST_ONLY`` filter
    the backend's own, else the reference on the host, image by image.
    """
    filter_spec = FILTERS[name]
    params = spec.config.params(name)
    if name in backend.device_filters:
        values = backend.device_filters[name](pixels, **params)
    elif filter_spec.stack is HOST_ONLY:
        maps = [filter_spec.function(image, **params) for image in backend.to_host(pixels)]
        values = backend.to_device(np.stack(maps))
    else:
        values = filter_spec.stack(images, xp=backend.xp, ndimage=backend.ndimage, **params)
    if filter_spec.output_dtype != "float32":
        return values
    return stack_filters.to_storage_dtype(values, spec.config.filter_dtype, backend.xp)


def _mask_stack(name: str, pixels, spec: BatchSpec, backend):
    """One mask of the batch on the device: the reference's exact values."""
    above = pixels > spec.config.threshold
    if name == "mask_binary":
        return above
    return backend.xp.where(above, pixels, pixels.dtype.type(0))


def _preview_divides(spec: BatchSpec) -> bool:
    """Whether the preview shape divides the image shape: whole area blocks, on the device."""
    (height, width), (rows, columns) = spec.shape, spec.preview_shape
    return height % rows == 0 and width % columns == 0


def _preview_step(values, spec: BatchSpec, backend):
    """A map's share of the previews, for :func:`_finish_previews`.

    Its area means on the device when the preview shape divides the image shape,
    else its finished previews on the host (OpenCV's ``INTER_AREA`` with
    fractional weights, image by image).
    """
    if _preview_divides(spec):
        return stack_filters.area_means(values, spec.preview_shape)
    return np.stack([to_preview(image, spec.preview_shape) for image in backend.to_host(values)])


def _finish_previews(steps: list, spec: BatchSpec, backend) -> np.ndarray:
    """``(K, M, h, w)`` uint8 previews on the host: every map scaled at once, one copy back."""
    if _preview_divides(spec):
        xp = backend.xp
        return backend.to_host(stack_filters.scale_to_uint8(xp.stack(steps, axis=1), xp))
    return np.stack(steps, axis=1)


def _check_not_compat(spec: BatchSpec) -> None:
    if spec.compat is not None:
        raise ValueError("compat mode runs the tutorial's own code, image by image, on the CPU")


def compute_stack(block: np.ndarray, spec: BatchSpec, backend: ArrayBackend) -> StackOutputs:
    """Everything ``spec`` computes from a decoded batch, on ``backend``; host results.

    Parameters
    ----------
    block : ndarray, or an array of ``backend.xp``
        ``(K, H, W)`` uint8 or uint16 pixels (failed images are zeros): on the
        host, or already on the backend's device (a batch the GPU decoded;
        ``backend.to_device`` hands it on as it is).
    spec : BatchSpec
        Must have ``compat`` None: the tutorial's own code runs on the CPU.
    backend : ArrayBackend

    Returns
    -------
    StackOutputs

    Raises
    ------
    ValueError
        If ``spec.compat`` is set.
    """
    _check_not_compat(spec)
    pixels = backend.to_device(block)
    counts = stack_filters.value_counts(pixels, backend.xp)
    maps = {}
    previews = [_preview_step(pixels, spec, backend)] if spec.preview_shape else []
    if spec.computes_maps:
        images = pixels.astype(np.float32)
        for name in spec.map_dtypes:
            group, key = split_map_name(name)
            if group == MASK_GROUP:
                values = _mask_stack(key, pixels, spec, backend)
            else:
                values = _filter_stack(key, pixels, images, spec, backend)
            if spec.full_resolution:
                maps[name] = backend.to_host(values)
            if previews:
                previews.append(_preview_step(values, spec, backend))
            del values
    # Each copy back waits for the device: the previews and counts come back last.
    return StackOutputs(
        previews=_finish_previews(previews, spec, backend) if previews else None,
        counts=backend.to_host(counts),
        maps=maps,
    )


def bank_stack(pixels, spec: BatchSpec, backend: ArrayBackend):
    """The essential work on a batch already on the device: value counts, every map, each dropped.

    What the benchmarks time as the filter bank of the GPU engine ("decode+bank",
    and "bank on device" with the batch copied there beforehand).

    Parameters
    ----------
    pixels : array of ``backend.xp``
        ``(K, H, W)`` uint8 or uint16.

    Returns
    -------
    array of ``backend.xp``
        The value counts, once every map has been computed.
    """
    counts = stack_filters.value_counts(pixels, backend.xp)
    images = pixels.astype(np.float32)
    for name in spec.map_dtypes:
        group, key = split_map_name(name)
        if group == MASK_GROUP:
            _mask_stack(key, pixels, spec, backend)
        else:
            _filter_stack(key, pixels, images, spec, backend)
    return counts


def _own_counts(counts: np.ndarray, image: DecodedImage, shape: tuple[int, int]) -> np.ndarray:
    """An image's value counts without its padding's zeros (see :func:`xray_scale.io.decode.unpad`).

    A padded image's ``shape`` array holds its own pixels and exactly
    ``H * W - h * w`` zeros of padding around them.
    """
    if image.padded_from is None:
        return counts
    (height, width), (own_height, own_width) = shape, image.padded_from
    own = counts.copy()
    own[0] -= height * width - own_height * own_width
    return own


def analyse_stack(
    block: np.ndarray,
    decoded: list[DecodedImage],
    start: int,
    *,
    spec: BatchSpec,
    writer: BatchWriter,
    backend: ArrayBackend,
) -> BatchRecord:
    """:func:`~xray_scale.analysis.batch.analyse_block`, the batch as one stack on ``backend``.

    An error while computing (a GPU out of memory, say) fails every image of the
    batch with the message, and nothing of the batch is written: resuming with
    ``retry_failed`` (``--retry-failed``) computes it again. As there, a padded
    image's statistics leave out its padding; its maps and previews are those of
    the padded array.

    Returns
    -------
    BatchRecord

    Raises
    ------
    ValueError
        If ``spec.compat`` is set.
    """
    _check_not_compat(spec)
    count = len(decoded)
    errors = [image.error for image in decoded]
    try:
        with backend.context():
            outputs = compute_stack(block, spec, backend)
    except Exception as exc:  # the whole batch, on the device: no image is known to be good
        message = f"processing failed on {backend.name}: {type(exc).__name__}: {exc}"
        errors = [error or message for error in errors]
        outputs = None
    failed = [k for k in range(count) if errors[k]]
    stats = {field: np.full(count, np.nan) for field in STAT_FIELDS}
    histogram = np.zeros((count, 256), dtype=np.int64)
    if outputs is not None:
        for k in range(count):
            if not errors[k]:
                counts = _own_counts(outputs.counts[k], decoded[k], spec.shape)
                values, histogram[k] = stats_from_counts(counts, threshold=spec.config.threshold)
                for name, value in values.items():
                    stats[name][k] = value
        for name, values in outputs.maps.items():
            values[failed] = 0
            writer.write(name, start, values)
        if outputs.previews is not None:
            outputs.previews[failed] = 0
            writer.write("previews", start, outputs.previews)
    return batch_record(start, stats, histogram, errors, decoded)


_warmed: set[tuple] = set()
_warming = threading.Lock()


def warm_up(spec: BatchSpec, backend: ArrayBackend) -> None:
    """Compile every kernel a batch of ``spec`` needs on ``backend``, once per process.

    CuPy compiles a kernel the first time it sees a dtype, filter size or mode;
    doing it here, on one blank image, keeps that out of the first real batch
    of every worker.
    """
    key = (backend.name, spec.shape, spec.pixel_dtype, tuple(spec.map_dtypes), spec.preview_shape)
    with _warming:
        if key in _warmed:
            return
        with backend.context():
            compute_stack(np.zeros((1, *spec.shape), dtype=spec.pixel_dtype), spec, backend)
        _warmed.add(key)


def analyse_on_device(
    block: np.ndarray,
    decoded: list[DecodedImage],
    start: int,
    *,
    spec: BatchSpec,
    writer: BatchWriter,
    engine: Engine,
) -> BatchRecord:
    """:func:`analyse_stack` on an engine's backend, once the engine is usable and warmed up.

    Raises
    ------
    RuntimeError
        If the engine cannot run here (``engine.check_usable``: no GPU, say).
    """
    engine.check_usable()
    warm_up(spec, engine.backend)
    return analyse_stack(block, decoded, start, spec=spec, writer=writer, backend=engine.backend)


def bank_batch(block: np.ndarray, spec: BatchSpec, engine: Engine) -> None:
    """Copy a batch to the engine's device, compute its counts and every map, drop them.

    The benchmarks' "decode+bank" stage for an engine that analyses whole batches.
    """
    backend = engine.backend
    engine.check_usable()
    warm_up(spec, backend)
    with backend.context():
        backend.to_host(bank_stack(backend.to_device(block), spec, backend))


def bank_rate_on_device(
    block: np.ndarray, spec: BatchSpec, engine: Engine, *, repeats: int = 5
) -> float:
    """Images/s of :func:`bank_stack` on a batch already on the engine's device.

    The batch is copied once before timing; then ``repeats`` passes in the
    backend's context (the GPU engine: one stream), synchronised before and after.
    """
    backend = engine.backend
    engine.check_usable()
    warm_up(spec, backend)
    with backend.context():
        pixels = backend.to_device(block)
        backend.synchronize()
        began = time.perf_counter()
        for _ in range(repeats):
            bank_stack(pixels, spec, backend)
        backend.synchronize()
    return repeats * len(block) / (time.perf_counter() - began)
