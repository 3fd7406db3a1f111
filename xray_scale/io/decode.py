"""PNG bytes to one 2-D grayscale array, with every failure turned into a message.

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

Bytes come from a file, or from an archive's member (``ARCHIVE::MEMBER``,
read by random access, :mod:`xray_scale.io.archives`); a member that cannot
be read fails with the archive's reason, and what is read is checked as a
file's bytes are. A name-list entry no input holds (``LIST::NAME``) fails as
"not in the inputs".

Every header is checked before any pixel is decoded: a file that is not a PNG,
is empty or truncated, or whose header claims more than ``max_pixels`` pixels
(a decompression bomb) is refused without decoding it.

Decoders: 8- and 16-bit grayscale files without a ``tRNS`` chunk (every
ChestX-ray8 image) are decoded by OpenCV's libpng, ~10 % faster than Pillow
on real images and with the same values; every other file, and any file
OpenCV cannot decode, by Pillow, whose message then explains the failure.
Both release the GIL, so a pool of threads decodes in parallel. libpng prints
one line on stderr for a file whose compressed data is corrupt although every
CRC is right (OpenCV offers no way to silence it); the image is recorded as
failed all the same.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass, replace

import cv2
import dask.array as da
import numpy as np
from dask.highlevelgraph import HighLevelGraph
from dask.tokenize import tokenize
from PIL import Image

from ..config import DEFAULT_MAX_PIXELS
from ..errors import DecodeError, UnreachableError
from .png_data import check_image_data_length
from .reading import FILE_NOT_FOUND, open_png
from .sources import parse_synthetic

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FILE_NOT_FOUND",
    "DecodeError",
    "DecodedImage",
    "PngHeader",
    "check_bit_depth",
    "check_header",
    "check_supported",
    "crc32_in_pieces",
    "decode_batch",
    "decode_image",
    "open_images",
    "parse_png_header",
    "read_png_header",
    "unpad",
]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {0: "gray", 2: "RGB", 3: "palette", 4: "gray+alpha", 6: "RGBA"}
_SIZE_POLICIES = ("fail", "pad")


@dataclass(frozen=True)
class PngHeader:
    """What a PNG's IHDR chunk says: size, bit depth and colour type."""

    width: int
    height: int
    bit_depth: int
    colour_type: int


@dataclass(frozen=True)
class DecodedImage:
    """One decoded image, or why it could not be decoded.

    Attributes
    ----------
    pixels : ndarray or None
        2-D uint8/uint16 array of the run's shape, None on failure.
    mode : str
        Pillow's mode of the file (``"L"``, ``"I;16"``, ``"RGB"``...), or ``""``.
    bit_depth : int
        Bits per sample in the file's header, or 0 if unknown.
    error : str
        One-line reason for the failure, ``""`` on success.
    padded_from : (int, int) or None
        The image's own (height, width) when it was smaller than the run and
        padded with zeros, centred (``input.size_policy = "pad"``); None when
        it was not padded. See :func:`unpad`.
    checksum : int
        CRC-32 of the file's chunk CRCs (it changes whenever the file's content
        does); 0 for a failed image or a generated phantom.
    """

    pixels: np.ndarray | None
    mode: str = ""
    bit_depth: int = 0
    error: str = ""
    padded_from: tuple[int, int] | None = None
    checksum: int = 0

    @property
    def ok(self) -> bool:
        """True when the image decoded and can be processed."""
        return not self.error


def _describe_bad_start(start: bytes) -> str:
    if start.startswith(b"\xff\xd8\xff"):
        return "not a PNG: the file holds JPEG data (starts with FF D8 FF)"
    if start.startswith((b"GIF8", b"II*\x00", b"MM\x00*", b"BM")):
        return f"not a PNG: the file holds another image format (starts with {start[:4]!r})"
    return f"not a PNG: the file starts with {start[:8]!r}, not the PNG signature"


def parse_png_header(start: bytes) -> PngHeader:
    """Check a file's first 33 bytes (signature and IHDR chunk) and read its header.

    Raises
    ------
    DecodeError
        Empty, not a PNG (naming what it is when it can), truncated, or a
        corrupt IHDR chunk.
    """
    if not start:
        raise DecodeError("empty file (0 bytes)")
    if not start.startswith(_PNG_SIGNATURE):
        if _PNG_SIGNATURE.startswith(start):
            raise DecodeError(f"truncated PNG: only {len(start)} bytes")
        raise DecodeError(_describe_bad_start(start))
    if len(start) < 33:
        raise DecodeError(f"truncated PNG: the header needs 33 bytes, the file has {len(start)}")
    length, kind = struct.unpack(">I4s", start[8:16])
    if kind != b"IHDR" or length != 13:
        raise DecodeError("corrupt PNG: the first chunk is not a 13-byte IHDR")
    (crc,) = struct.unpack(">I", start[29:33])
    if zlib.crc32(start[12:29]) != crc:
        raise DecodeError("corrupt PNG: bad CRC in the IHDR chunk")
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", start[16:26])
    return PngHeader(width, height, bit_depth, colour_type)


def read_png_header(path: str | os.PathLike) -> PngHeader:
    """Read and check the signature and IHDR chunk of a PNG file.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    PngHeader

    Raises
    ------
    DecodeError
        With a one-line reason: unreadable, a directory, empty, not a PNG,
        truncated header, or a corrupt IHDR chunk.
    """
    synthetic = parse_synthetic(os.fspath(path))
    if synthetic is not None:
        return PngHeader(synthetic[0], synthetic[0], 8, 0)
    with open_png(path) as file:
        return parse_png_header(file.read(33))


_CRC_PIECE = 4096
"""Bytes per ``zlib.crc32`` call: under 5 KiB, CPython keeps the GIL for the call."""


def crc32_in_pieces(chunk: memoryview) -> int:
    """``zlib.crc32(chunk)``, computed without giving up the GIL.

    For more than 5 KiB, ``zlib.crc32`` releases the GIL and must win it back:
    a ChestX-ray8 PNG has ~50 IDAT chunks of 8 KiB, and while the GPU engine's
    threads hold the GIL launching kernels, each return waited its turn
    (measured: decoding beside a thread running Python went from 19.5 to 48.3
    img/s on 2 cores when the chunks were checked in 4 KiB pieces).
    """
    value = 0
    for start in range(0, len(chunk), _CRC_PIECE):
        value = zlib.crc32(chunk[start : start + _CRC_PIECE], value)
    return value


def _check_chunks(data: bytes) -> tuple[set[bytes], int]:
    """Walk every chunk after IHDR: complete, CRC correct, ending with IEND.

    Pillow does not check the CRC of image data chunks, so a flipped bit in
    a CRC would otherwise go unnoticed. Returns the chunk types seen and the
    file's checksum: the CRC-32 of every chunk's CRC, IHDR's included, so it
    changes whenever any chunk's content does, at no extra pass over the data.
    """
    view = memoryview(data)
    kinds = set()
    checksum = zlib.crc32(view[29:33])
    position = 33
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        name = kind.decode("latin-1")
        end = position + 12 + length
        if end > len(data):
            raise DecodeError(
                f"truncated PNG: the file ends inside chunk {name} at byte {len(data)} "
                f"(the chunk needs {end - len(data)} more bytes)"
            )
        (crc,) = struct.unpack_from(">I", data, end - 4)
        if crc32_in_pieces(view[position + 4 : end - 4]) != crc:
            raise DecodeError(f"corrupt PNG: bad CRC in chunk {name} at byte {position}")
        kinds.add(kind)
        checksum = zlib.crc32(view[end - 4 : end], checksum)
        if kind == b"IEND":
            return kinds, checksum
        position = end
    raise DecodeError(f"truncated PNG: no IEND chunk in {len(data)} bytes")


def check_supported(header: PngHeader, *, max_pixels: int) -> None:
    """Raise DecodeError, saying why, if no run could decode an image with this header.

    Too many pixels (``input.max_pixels``), or 16-bit colour.
    """
    pixels = header.width * header.height
    if pixels > max_pixels:
        raise DecodeError(
            f"refused before decoding: the header says {header.height}x{header.width} "
            f"(height x width) = {pixels / 1e6:.1f} Mpx, above the limit of "
            f"{max_pixels / 1e6:.1f} Mpx (input.max_pixels)"
        )
    if header.bit_depth == 16 and header.colour_type != 0:
        raise DecodeError(
            f"16-bit {_COLOUR_TYPES.get(header.colour_type, 'colour')} PNG is not supported: "
            "decoding would reduce it to 8 bits; save it as 16-bit grayscale"
        )


def check_header(
    header: PngHeader, *, shape: tuple[int, int], max_pixels: int, size_policy: str
) -> None:
    """Raise DecodeError, saying why, unless this run decodes an image with this header.

    :func:`check_supported`, then the size: the run's, or smaller with
    ``size_policy = "pad"``.
    """
    check_supported(header, max_pixels=max_pixels)
    height, width = shape
    same = (header.height, header.width) == (height, width)
    fits = header.height <= height and header.width <= width
    if not same and not (size_policy == "pad" and fits):
        hint = (
            "set input.size_policy = 'pad' to pad smaller images"
            if fits
            else "a larger image cannot be padded (if the run's size is wrong, set input.size "
            f"= [{header.height}, {header.width}] or whatever the run's should be)"
        )
        raise DecodeError(
            f"image is {header.height}x{header.width} (height x width) but the run's size is "
            f"{height}x{width}; {hint}"
        )


def check_bit_depth(header: PngHeader, dtype: np.dtype) -> None:
    """Raise DecodeError if the file has more bits per sample than the run's ``dtype`` holds."""
    if header.bit_depth > dtype.itemsize * 8:
        raise DecodeError(
            f"{header.bit_depth}-bit image in a {dtype.itemsize * 8}-bit run: its values do "
            "not fit; set input.bit_depth = 16 or run 16-bit images separately"
        )


def _to_grayscale(image: Image.Image) -> np.ndarray:
    if image.mode in ("L", "I;16"):
        return np.asarray(image)
    if image.mode in ("I;16B", "I;16L", "I"):
        return np.asarray(image).astype(np.uint16)
    if image.mode == "LA":
        return np.asarray(image.getchannel("L"))
    return np.asarray(image.convert("L"))


def _decode_gray(data: bytes) -> np.ndarray | None:
    """Decode an 8- or 16-bit grayscale PNG with OpenCV (libpng), or None if it cannot.

    On ChestX-ray8 images OpenCV decodes in ~7.6 ms where Pillow takes ~8.4 ms,
    with the same values and with the GIL released. A file OpenCV cannot decode
    is then decoded by Pillow, whose error message ends up in ``index/error``.
    """
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.ndim != 2:
        return None
    return pixels


def _decode_with_pillow(data: bytes) -> tuple[str, np.ndarray]:
    """Pillow's mode of the file and its pixels by the grayscale rule.

    The image data's length is checked first: Pillow fills what a stream that
    ends early leaves out with zeros.
    """
    check_image_data_length(data)
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            mode = image.mode
            image.load()
            return mode, _to_grayscale(image)
    except (OSError, SyntaxError, ValueError, zlib.error, Image.DecompressionBombError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        kind = "truncated PNG" if "truncated" in message else "corrupt PNG"
        raise DecodeError(f"{kind}: {message}") from None


def _centred(inner: tuple[int, int], outer: tuple[int, int]) -> tuple[slice, slice]:
    """Where an ``inner``-sized image sits, centred, in an ``outer``-sized one."""
    top, left = (outer[0] - inner[0]) // 2, (outer[1] - inner[1]) // 2
    return slice(top, top + inner[0]), slice(left, left + inner[1])


def _pad_centred(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    padded = np.zeros(shape, dtype=pixels.dtype)
    padded[_centred(pixels.shape, shape)] = pixels
    return padded


def unpad(pixels: np.ndarray, image: DecodedImage) -> np.ndarray:
    """The image's own pixels: ``pixels`` without the zeros its padding added.

    Parameters
    ----------
    pixels : ndarray
        The run-shaped 2-D array decoded for ``image`` (``image.pixels``, or
        its row of :func:`decode_batch`'s block).
    image : DecodedImage
        Its record, whose ``padded_from`` says how large the image itself is.

    Returns
    -------
    ndarray
        The centred ``image.padded_from`` region of ``pixels`` (a view), or
        ``pixels`` itself when the image was not padded.

    Examples
    --------
    >>> pixels = np.array([[0, 0, 0, 0], [0, 7, 9, 0], [0, 0, 0, 0]], dtype=np.uint8)
    >>> unpad(pixels, DecodedImage(None, "L", 8, padded_from=(1, 2)))
    array([[7, 9]], dtype=uint8)
    """
    if image.padded_from is None:
        return pixels
    return pixels[_centred(image.padded_from, pixels.shape)]


def decode_image(
    path: str | os.PathLike,
    *,
    shape: tuple[int, int],
    dtype: np.dtype | str = np.uint8,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    size_policy: str = "fail",
) -> DecodedImage:
    """Decode one PNG into a 2-D grayscale array of the run's shape and dtype.

    Never raises for a bad file: the reason is returned in ``error``.

    Parameters
    ----------
    path : str or path-like
        The PNG file.
    shape : (int, int)
        The run's (height, width).
    dtype : uint8 or uint16
        The run's pixel dtype. A file with more bits per sample fails.
    max_pixels : int
        Refuse, before decoding, any header with more pixels than this.
    size_policy : {"fail", "pad"}
        What to do with an image of another size: fail it, or pad a smaller
        one with zeros, centred (a larger one always fails).

    Returns
    -------
    DecodedImage
    """
    if size_policy not in _SIZE_POLICIES:
        raise ValueError(f"size_policy must be one of {_SIZE_POLICIES}, got {size_policy!r}")
    dtype = np.dtype(dtype)
    if parse_synthetic(os.fspath(path)) is not None:
        return _decode_synthetic(os.fspath(path), shape=shape, dtype=dtype, size_policy=size_policy)
    mode = ""
    bit_depth = 0
    try:
        with open_png(path) as file:
            header = parse_png_header(file.read(33))
            bit_depth = header.bit_depth
            check_header(header, shape=shape, max_pixels=max_pixels, size_policy=size_policy)
            check_bit_depth(header, dtype)
            file.seek(0)
            data = file.read()
        kinds, checksum = _check_chunks(data)
        pixels = None
        if header.colour_type == 0 and header.bit_depth in (8, 16) and b"tRNS" not in kinds:
            mode, pixels = ("L" if header.bit_depth == 8 else "I;16"), _decode_gray(data)
        if pixels is None:
            mode, pixels = _decode_with_pillow(data)
    except DecodeError as error:
        return DecodedImage(None, mode, bit_depth, str(error))
    except UnreachableError:
        raise  # a bucket or server down: the batch stays pending and the run stops (exit 3)
    except OSError as error:  # a read failing after open (I/O error, file vanished)
        return DecodedImage(None, mode, bit_depth, f"cannot read the file: {error}")
    padded_from = None
    if pixels.shape != tuple(shape):
        padded_from = pixels.shape
        pixels = _pad_centred(pixels, shape)
    return DecodedImage(
        pixels.astype(dtype, copy=False), mode, bit_depth, "", padded_from, checksum
    )


def _decode_synthetic(path: str, *, shape, dtype, size_policy: str) -> DecodedImage:
    from .synth import phantom

    size, patient_id, follow_up = parse_synthetic(path)
    try:
        check_header(
            PngHeader(size, size, 8, 0),
            shape=shape,
            max_pixels=size * size,
            size_policy=size_policy,
        )
    except DecodeError as error:
        return DecodedImage(None, "L", 8, str(error))
    pixels = phantom(patient_id, follow_up, shape=(size, size))
    padded_from = None
    if pixels.shape != tuple(shape):
        padded_from = pixels.shape
        pixels = _pad_centred(pixels, shape)
    return DecodedImage(pixels.astype(dtype, copy=False), "L", 8, "", padded_from)


def decode_batch(
    paths: list[str], *, shape: tuple[int, int], dtype: np.dtype | str = np.uint8, **options
) -> tuple[np.ndarray, list[DecodedImage]]:
    """Decode several PNGs into one ``(K, H, W)`` block.

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
    """Lazily stack PNG files into a dask array, one task per ``batch_size`` files.

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
        raise ValueError("paths is empty: give at least one PNG file")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if on_error not in ("raise", "zero"):
        raise ValueError(f"on_error must be 'raise' or 'zero', got {on_error!r}")
    if shape is None or dtype is None:
        header = read_png_header(paths[0])
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
