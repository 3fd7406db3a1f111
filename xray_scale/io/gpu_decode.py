"""A batch decoded on the GPU, by the GPU decoder the format registry names.

The registry's entries say which formats have a GPU decoder
(:attr:`~xray_scale.io.formats.registry.ImageFormat.gpu_decoder`: PNG's is
:mod:`xray_scale.io.formats.png_gpu`). This module reads the batch's files
(:func:`xray_scale.io.sources.reading.read_input`, so every kind of input is
read as the CPU decoder reads it) and hands them to that decoder with the
format-independent CPU decoder (:func:`xray_scale.io.decode.decode_image`)
for every file the GPU path does not cover: another format, a ``synth:``
phantom, a colour PNG... Every image thus gets the CPU decoder's status and
message. CuPy is imported only by the GPU decoder, when a batch is decoded.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from ..errors import DecodeError, EngineError
from .decode import decode_image
from .formats.image import DEFAULT_MAX_PIXELS
from .formats.registry import formats
from .sources.discover import parse_synthetic
from .sources.reading import read_input

__all__ = ["check_usable", "decode_batch_gpu", "gpu_decoder"]


def gpu_decoder():
    """The module of the first registered format's GPU decoder (PNG's).

    Raises
    ------
    EngineError
        If no registered format has a GPU decoder.
    """
    for image_format in formats():
        if image_format.gpu_decoder is not None:
            return image_format.load_gpu_decoder()
    raise EngineError("no registered image format has a GPU decoder; use --decoder cpu")


def check_usable() -> None:
    """Raise, saying why (CuPy, nvCOMP or a device missing), unless the GPU decoder can run."""
    gpu_decoder().check_usable()


def _read(path: str) -> bytes | DecodeError | None:
    """A file's bytes, the DecodeError reading it gives, or None for a phantom (no file)."""
    if parse_synthetic(path) is not None:
        return None
    try:
        return read_input(path)
    except DecodeError as error:
        return error


def decode_batch_gpu(
    paths: list[str],
    *,
    shape: tuple[int, int],
    dtype: np.dtype | str = np.uint8,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    size_policy: str = "fail",
    contents: list[bytes] | None = None,
    stream=None,
    format_options: dict[str, dict] | None = None,
):
    """Decode K files into a ``(K, H, W)`` CuPy array on the GPU.

    Parameters
    ----------
    paths : list of str
        The files.
    shape, dtype, max_pixels, size_policy
        The run's, as for :func:`xray_scale.io.decode.decode_image`.
    contents : list of bytes, optional
        The files' bytes, already read (the paths are then read only for a
        file the CPU decoder decodes).
    stream : cupy.cuda.Stream, optional
        Where the copies and kernels run (not the null stream); default: a
        non-blocking stream of this thread's own.
    format_options : dict, optional
        For the files the CPU decodes (other formats), as for
        :func:`xray_scale.io.decode.decode_image`.

    Returns
    -------
    block : cupy.ndarray
        ``(K, H, W)`` of ``dtype`` on the current device; failed images are zeros.
    images : list of DecodedImage
        One per path, as :func:`xray_scale.io.decode.decode_batch` returns them.

    Raises
    ------
    GpuDecoderUnavailable
        When CuPy, nvCOMP or a CUDA device is missing (an EngineError).
    """
    decoder = gpu_decoder()
    decoder.check_usable()  # before reading anything
    if contents is None:
        given = [_read(os.fspath(path)) for path in paths]
    else:  # a phantom has no bytes: the CPU decoder renders it
        given = [
            None if parse_synthetic(os.fspath(p)) is not None else data
            for p, data in zip(paths, contents, strict=True)
        ]
    return decoder.decode_batch_gpu(
        paths,
        shape=shape,
        dtype=dtype,
        max_pixels=max_pixels,
        size_policy=size_policy,
        cpu_decode=functools.partial(decode_image, format_options=format_options),
        contents=given,
        stream=stream,
    )
