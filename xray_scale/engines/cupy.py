"""The ``cupy`` engine: each batch filtered, counted and previewed on an NVIDIA GPU.

By default a GPU node decodes the PNGs on its CPU cores (nvJPEG and nvImageCodec
read no PNG) and the GPU does everything after: the run's dask threads each decode a
batch, then the analysis (:func:`xray_scale.analysis.stack.analyse_on_device`,
on this engine's :data:`BACKEND`) copies it to the device
through a pinned buffer of that thread on that thread's own non-blocking CUDA
stream, runs the filter bank as one kernel per 1-D pass over the whole batch
(:mod:`xray_scale.filters.stack` on ``cupyx.scipy.ndimage``, float32), counts
every image's values and shrinks the previews there, and copies back only the
counts, the previews and the maps the config stores. While one thread's batch
is on the GPU, the other threads decode: copies, kernels and decoding overlap
across threads, and each stream keeps a thread's work in order. The real
``canny`` runs on the GPU with cuCIM when it is installed, else on the CPU.

With ``--decoder gpu``, :func:`decode_batch` decodes the batch on the GPU
instead (:mod:`xray_scale.io.formats.png_gpu`: the CPU only reads the files and walks
their chunks), on the thread's stream, and the analysis takes the
decoded block where it already is: the pixels never visit the host.

The per-image filter functions (``laplace_gaussian`` ... ``canny``) make the
engine usable wherever one image is filtered (``render``, ``estimate``): each
is a batch of one. Masks of one image run on the CPU, where they cost less
than the copy.

Importing this module needs CuPy (``pip install "xray-scale[gpu]"``);
:func:`check_usable` says whether a GPU can run it.
"""

from __future__ import annotations

import logging
import threading
from functools import cache

import numpy as np

from ..errors import EngineError
from ..filters import reference
from ..filters import stack as stack_filters
from ..io import gpu_decode
from ..records import BatchSpec
from .base import ArrayBackend, Engine

try:
    import cupy
    import cupyx
    from cupyx.scipy import ndimage
except ImportError as error:
    raise ImportError(
        f"the cupy engine needs CuPy ({error}): pip install 'xray-scale[gpu]' "
        "(CuPy for CUDA 12; for CUDA 13 install cupy-cuda13x instead)"
    ) from error

__all__ = [
    "BACKEND",
    "ENGINE",
    "canny",
    "check_decoder",
    "check_usable",
    "decode_batch",
    "gaussian_gradient_magnitude",
    "laplace_gaussian",
    "sobel",
    "tutorial_canny",
]

log = logging.getLogger(__name__)
_thread = threading.local()


@cache
def check_usable() -> None:
    """Raise RuntimeError, saying why, unless a CUDA GPU can run CuPy kernels here."""
    try:
        devices = cupy.cuda.runtime.getDeviceCount()
        if devices < 1:
            raise RuntimeError("no CUDA device is visible")
        int(cupy.arange(4, dtype=cupy.int32).sum())  # compiles and runs one kernel
    except Exception as exc:  # CUDARuntimeError, CompileException, missing libraries...
        reason = str(exc).strip() or type(exc).__name__
        raise RuntimeError(f"CuPy cannot use a GPU here: {reason}") from None


def _stream():
    """This thread's non-blocking CUDA stream (the legacy default stream would serialise them)."""
    if not hasattr(_thread, "stream"):
        _thread.stream = cupy.cuda.Stream(non_blocking=True)
    return _thread.stream


def _pinned(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """This thread's page-locked host buffer of ``shape`` and ``dtype``, reused batch after batch.

    Reuse is safe: a thread's next copy into it comes after :func:`_to_host` has
    waited for everything queued on the thread's stream, its last copy included.
    """
    buffers = _thread.__dict__.setdefault("pinned", {})
    key = (tuple(shape), np.dtype(dtype).str)
    if key not in buffers:
        buffers[key] = cupyx.empty_pinned(shape, dtype=dtype)
    return buffers[key]


def _to_device(host: np.ndarray):
    """Copy a host array to the GPU through this thread's pinned buffer, on its stream.

    An array already on the GPU (a batch the GPU decoder decoded) is returned as it is.
    """
    if isinstance(host, cupy.ndarray):
        return host
    host = np.ascontiguousarray(host)
    staging = _pinned(host.shape, host.dtype)
    staging[...] = host
    device = cupy.empty(host.shape, dtype=host.dtype)
    device.set(staging, stream=_stream())
    return device


def _to_host(device) -> np.ndarray:
    """Copy a device array back, once everything queued on this thread's stream is done."""
    return device.get(stream=_stream())


def _cucim_canny(pixels, *, sigma: float, low_threshold: float, high_threshold: float):
    """cuCIM's Canny of each image, thresholds as fractions of full scale (the reference's)."""
    from cucim.skimage import feature

    scaled = pixels.astype(cupy.float32) / cupy.float32(np.iinfo(pixels.dtype).max)
    edges = [
        feature.canny(
            image, sigma=sigma, low_threshold=low_threshold, high_threshold=high_threshold
        )
        for image in scaled
    ]
    return cupy.stack(edges)


def _has_cucim() -> bool:
    try:
        from cucim.skimage import feature  # noqa: F401
    except ImportError:
        return False
    return True


BACKEND = ArrayBackend(
    name="cupy",
    xp=cupy,
    ndimage=ndimage,
    to_device=_to_device,
    to_host=_to_host,
    context=_stream,
    device_filters={"canny": _cucim_canny} if _has_cucim() else {},
    synchronize=lambda: _stream().synchronize(),
)
"""The GPU backend on which :func:`xray_scale.analysis.stack.analyse_on_device` runs a batch."""


def check_decoder() -> None:
    """Raise EngineError, saying why, unless the GPU decoder can run here (nvCOMP and all)."""
    check_usable()
    gpu_decode.check_usable()


def decode_batch(paths: list[str], spec: BatchSpec):
    """Decode a batch's PNGs on the GPU, on this thread's stream: ``(device block, decoded)``.

    See :func:`xray_scale.io.gpu_decode.decode_batch_gpu`; every image gets the
    CPU decoder's status and message. Should the GPU fail as a whole (out of
    memory, say), the batch is decoded on the CPU instead, with a warning.
    """
    try:
        return gpu_decode.decode_batch_gpu(
            paths,
            shape=spec.shape,
            dtype=spec.pixel_dtype,
            stream=_stream(),
            **spec.config.decode_options(),
        )
    except EngineError:
        raise
    except Exception as exc:  # CUDA errors: the CPU decoder still gives the right answer
        reason = f"{type(exc).__name__}: {exc}"
        log.warning("GPU decoding failed (%s); this batch is decoded on the CPU", reason)
        return spec.decode(paths)


def _one_image(function, image: np.ndarray, **params) -> np.ndarray:
    """``function`` of a float32 stack of one image, on the GPU, back on the host."""
    check_usable()
    with _stream():
        stack = _to_device(np.asarray(image)[None]).astype(np.float32)
        return _to_host(function(stack, xp=cupy, ndimage=ndimage, **params))[0]


def laplace_gaussian(image: np.ndarray, *, sigma: float = 1.0) -> np.ndarray:
    """:func:`xray_scale.filters.reference.laplace_gaussian` of one image, on the GPU."""
    return _one_image(stack_filters.laplace_gaussian, image, sigma=sigma)


def gaussian_gradient_magnitude(image: np.ndarray, *, sigma: float = 2.0) -> np.ndarray:
    """:func:`~xray_scale.filters.reference.gaussian_gradient_magnitude` of one image, on a GPU."""
    return _one_image(stack_filters.gaussian_gradient_magnitude, image, sigma=sigma)


def sobel(image: np.ndarray) -> np.ndarray:
    """:func:`xray_scale.filters.reference.sobel` of one image, on the GPU."""
    return _one_image(stack_filters.sobel, image)


def tutorial_canny(image: np.ndarray, *, sigma: float = 0.05) -> np.ndarray:
    """:func:`xray_scale.filters.reference.tutorial_canny` of one image, on the GPU."""
    return _one_image(stack_filters.tutorial_canny, image, sigma=sigma)


def canny(
    image: np.ndarray,
    *,
    sigma: float = 1.0,
    low_threshold: float = 0.1,
    high_threshold: float = 0.2,
) -> np.ndarray:
    """:func:`xray_scale.filters.reference.canny` of one image: cuCIM's GPU one when installed."""
    params = {"sigma": sigma, "low_threshold": low_threshold, "high_threshold": high_threshold}
    if "canny" not in BACKEND.device_filters:
        return reference.canny(image, **params)
    check_usable()
    with _stream():
        on_device = BACKEND.device_filters["canny"](_to_device(np.asarray(image)[None]), **params)
        return _to_host(on_device)[0]


ENGINE = Engine(
    name="cupy",
    filters={
        "laplace_gaussian": laplace_gaussian,
        "gaussian_gradient_magnitude": gaussian_gradient_magnitude,
        "sobel": sobel,
        "tutorial_canny": tutorial_canny,
        "canny": canny,
    },
    backend=BACKEND,
    decode_batch=decode_batch,
    check_decoder=check_decoder,
    processes=False,
    check_usable=check_usable,
)
"""Every filter on the GPU (masks of one image on the CPU), whole batches as one stack.

dask's worker processes crash in CUDA: the engine runs as threads of one process per GPU.
"""
