"""An image's bytes to one 2-D grayscale array, with every failure turned into a message.

Grayscale rule (applied in this order, recorded per image as ``mode`` and
``bit_depth``):

- 8-bit grayscale (``L``) and 16-bit grayscale (``I;16``) are kept as they
  are: uint8 or uint16, values untouched.
- ``LA`` (gray + alpha): the gray channel; alpha is dropped.
- ``RGB``, ``RGBA``, palette (``P``, ``PA``) and 1-bit (``1``) images are
  converted by Pillow's ``convert("L")``: ITU-R 601-2 luma
  ``L = (299 R + 587 G + 114 B) / 1000``, alpha ignored. A colour image whose
  three channels are equal (how X-rays are usually saved as RGB) comes out
  exactly equal to its channel.
- 16-bit colour PNGs (RGB, RGBA, LA at 16 bits per channel) fail with a
  message: Pillow reduces them to 8 bits, which would silently rescale them.
- An image with a higher bit depth than the run (a 16-bit image in an 8-bit
  run) fails instead of being wrapped or rescaled; an 8-bit image in a 16-bit
  run keeps its values.

Bytes come from a file, an archive's member (``ARCHIVE::MEMBER``, read by
random access), a URL, or a name-list entry no input holds (``LIST::NAME``,
which fails as "not in the inputs"): :mod:`xray_scale.io.sources.reading`
opens each, and a member or object that cannot be read fails with its reason.
A ``synth:`` path is a generated phantom (:mod:`xray_scale.io.phantoms`).

What the bytes are is the format registry's business
(:mod:`xray_scale.io.formats.registry`): the file's leading bytes pick its
format, whose ``read_header`` reads the header, ``checksum`` checks the whole
file, and ``decode`` gives its pixels. This module is what every format shares:
the checks of a header against the run (a decompression bomb, a size or bit
depth the run cannot take) before any pixel is decoded, the padding, the
record of each image, a batch, and the lazy stack. A file no format claims, an
empty or a truncated one, is refused without decoding it.
"""

from __future__ import annotations

import os
from dataclasses import replace

import dask.array as da
import numpy as np
from dask.highlevelgraph import HighLevelGraph
from dask.tokenize import tokenize

from ..errors import DecodeError, UnreachableError
from .formats.image import (
    DEFAULT_MAX_PIXELS,
    SIZE_POLICIES,
    DecodedImage,
    Header,
    ImageHeader,
    check_bit_depth,
    check_header,
    check_supported,
    pad_centred,
    unpad,
)
from .formats.registry import header_size, identify
from .resize import resize_to_fit
from .sources.discover import parse_synthetic
from .sources.reading import FILE_NOT_FOUND, open_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FILE_NOT_FOUND",
    "DecodeError",
    "DecodedImage",
    "check_bit_depth",
    "check_header",
    "check_supported",
    "decode_batch",
    "decode_image",
    "fit_to_run",
    "open_images",
    "read_image_header",
    "unpad",
]


def read_image_header(path: str | os.PathLike) -> Header:
    """Read and check the header of an image file, whatever its registered format.

    Parameters
    ----------
    path : str or path-like
        The file (or archive member, URL, ``synth:`` phantom).

    Returns
    -------
    Header
        The format's header (width, height, bit depth, whether it is supported).

    Raises
    ------
    DecodeError
        With a one-line reason: unreadable, a directory, empty, no registered
        format, truncated header, or a corrupt one.
    """
    synthetic = parse_synthetic(os.fspath(path))
    if synthetic is not None:
        return ImageHeader(synthetic[0], synthetic[0], 8)
    with open_image(path) as file:
        start = file.read(header_size())
    return identify(start).read_header(start)


def decode_image(
    path: str | os.PathLike,
    *,
    shape: tuple[int, int],
    dtype: np.dtype | str = np.uint8,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    size_policy: str = "fail",
    format_options: dict[str, dict] | None = None,
) -> DecodedImage:
    """Decode one image into a 2-D grayscale array of the run's shape and dtype.

    Never raises for a bad file: the reason is returned in ``error``.

    Parameters
    ----------
    path : str or path-like
        The file, in any registered format (or archive member, URL, phantom).
    shape : (int, int)
        The run's (height, width).
    dtype : uint8 or uint16
        The run's pixel dtype. A file with more bits per sample fails.
    max_pixels : int
        Refuse, before decoding, any header with more pixels than this.
    size_policy : {"fail", "pad", "resize"}
        What to do with an image of another size: fail it, pad a smaller one
        with zeros, centred (a larger one then fails), or scale it to fit and
        pad (:mod:`xray_scale.io.resize`).
    format_options : dict, optional
        ``{format name: {option: value}}`` handed to that format's decoder
        (``{"dicom": {"voi": "window"}}``; :meth:`xray_scale.config.Config.format_options`).

    Returns
    -------
    DecodedImage
    """
    if size_policy not in SIZE_POLICIES:
        raise ValueError(f"size_policy must be one of {SIZE_POLICIES}, got {size_policy!r}")
    dtype = np.dtype(dtype)
    if parse_synthetic(os.fspath(path)) is not None:
        return _decode_synthetic(os.fspath(path), shape=shape, dtype=dtype, size_policy=size_policy)
    mode = ""
    bit_depth = 0
    try:
        with open_image(path) as file:
            start = file.read(header_size())
            image_format = identify(start)
            header = image_format.read_header(start)
            bit_depth = header.bit_depth
            check_header(header, shape=shape, max_pixels=max_pixels, size_policy=size_policy)
            check_bit_depth(header, dtype)
            file.seek(0)
            data = file.read()
        checksum = image_format.checksum(data)
        options = (format_options or {}).get(image_format.name, {})
        mode, pixels, *read_out = image_format.decode(data, header, **options)
    except DecodeError as error:  # a format's decode may say the mode it had read
        return DecodedImage(None, getattr(error, "mode", mode), bit_depth, str(error))
    except UnreachableError:
        raise  # a bucket or server down: the batch stays pending and the run stops (exit 3)
    except OSError as error:  # a read failing after open (I/O error, file vanished)
        return DecodedImage(None, mode, bit_depth, f"cannot read the file: {error}")
    original_size = pixels.shape
    pixels, padded_from = fit_to_run(pixels, shape, size_policy)
    tags = read_out[0] if read_out else None
    return DecodedImage(
        pixels.astype(dtype, copy=False),
        mode,
        bit_depth,
        "",
        padded_from,
        checksum,
        original_size,
        tags,
    )


def fit_to_run(
    pixels: np.ndarray, shape: tuple[int, int], size_policy: str
) -> tuple[np.ndarray, tuple[int, int] | None]:
    """An image's pixels at the run's shape, and its own region's size when padded.

    With ``size_policy = "resize"`` an image of another size is first scaled
    to fit (:func:`xray_scale.io.resize.resize_to_fit`); then a smaller image
    is padded with zeros, centred. The caller has checked the size against the
    policy (:func:`check_header`).
    """
    if size_policy == "resize" and pixels.shape != tuple(shape):
        pixels = resize_to_fit(pixels, shape)
    if pixels.shape == tuple(shape):
        return pixels, None
    return pad_centred(pixels, shape), pixels.shape


def _decode_synthetic(path: str, *, shape, dtype, size_policy: str) -> DecodedImage:
    from .phantoms import phantom

    size, patient_id, follow_up = parse_synthetic(path)
    try:
        check_header(
            ImageHeader(size, size, 8),
            shape=shape,
            max_pixels=size * size,
            size_policy=size_policy,
        )
    except DecodeError as error:
        return DecodedImage(None, "L", 8, str(error))
    pixels = phantom(patient_id, follow_up, shape=(size, size))
    pixels, padded_from = fit_to_run(pixels, shape, size_policy)
    return DecodedImage(
        pixels.astype(dtype, copy=False), "L", 8, "", padded_from, original_size=(size, size)
    )


def decode_batch(
    paths: list[str], *, shape: tuple[int, int], dtype: np.dtype | str = np.uint8, **options
) -> tuple[np.ndarray, list[DecodedImage]]:
    """Decode several images into one ``(K, H, W)`` block.

    Parameters
    ----------
    paths : list of str
        The K files.
    shape, dtype, **options
        As for :func:`decode_image`.

    Returns
    -------
    block : ndarray
        ``(K, H, W)``; the rows of failed images are zeros.
    images : list of DecodedImage
        One per path, in order, with ``pixels`` set to None (they are in
        ``block``) to avoid holding two copies; ``padded_from`` is kept.
    """
    block = np.zeros((len(paths), *shape), dtype=dtype)
    images = []
    for k, path in enumerate(paths):
        image = decode_image(path, shape=shape, dtype=dtype, **options)
        if image.ok:
            block[k] = image.pixels
        images.append(replace(image, pixels=None))
    return block, images


def _decode_block_or_raise(paths: tuple[str, ...], shape, dtype, options) -> np.ndarray:
    block, images = decode_batch(list(paths), shape=shape, dtype=dtype, **options)
    for path, image in zip(paths, images, strict=True):
        if not image.ok:
            raise DecodeError(f"{path}: {image.error}")
    return block


def _decode_block_or_zero(paths: tuple[str, ...], shape, dtype, options) -> np.ndarray:
    return decode_batch(list(paths), shape=shape, dtype=dtype, **options)[0]


def open_images(
    paths: list[str | os.PathLike],
    *,
    batch_size: int = 8,
    shape: tuple[int, int] | None = None,
    dtype: np.dtype | str | None = None,
    on_error: str = "raise",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    size_policy: str = "fail",
) -> da.Array:
    """Lazily stack image files into a dask array, one task per ``batch_size`` files.

    Parameters
    ----------
    paths : list of str or path-like
        The files, in the order of the first axis.
    batch_size : int
        Images per chunk along the first axis (and per task).
    shape : (int, int), optional
        (height, width) of every image. Default: read from the first file's
        header (only that header is read now; nothing is decoded).
    dtype : uint8 or uint16, optional
        Default: uint16 if the first file is 16-bit, else uint8.
    on_error : {"raise", "zero"}
        On a bad file, raise :class:`DecodeError` naming it when its chunk is
        computed, or leave its image as zeros.
    max_pixels, size_policy
        As for :func:`decode_image`.

    Returns
    -------
    dask.array.Array
        Shape ``(N, H, W)``, chunks ``(batch_size, H, W)``; computing chunk
        ``i`` decodes files ``[i * batch_size, (i + 1) * batch_size)`` in one task.
    """
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("paths is empty: give at least one image file")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if on_error not in ("raise", "zero"):
        raise ValueError(f"on_error must be 'raise' or 'zero', got {on_error!r}")
    if shape is None or dtype is None:
        header = read_image_header(paths[0])
        shape = shape or (header.height, header.width)
        dtype = dtype or (np.uint16 if header.bit_depth == 16 else np.uint8)
    shape = tuple(int(n) for n in shape)
    dtype = np.dtype(dtype)
    options = {"max_pixels": max_pixels, "size_policy": size_policy}
    decode = _decode_block_or_raise if on_error == "raise" else _decode_block_or_zero
    name = "open-images-" + tokenize(paths, batch_size, shape, dtype, on_error, options)
    starts = range(0, len(paths), batch_size)
    graph = {
        (name, i, 0, 0): (decode, tuple(paths[start : start + batch_size]), shape, dtype, options)
        for i, start in enumerate(starts)
    }
    sizes = tuple(min(batch_size, len(paths) - start) for start in starts)
    chunks = (sizes, (shape[0],), (shape[1],))
    hlg = HighLevelGraph.from_collections(name, graph, dependencies=())
    return da.Array(hlg, name, chunks, dtype=dtype)
