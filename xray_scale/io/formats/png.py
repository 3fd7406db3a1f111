"""PNG, the first registered input format: its header, integrity check, checksum and decoder.

The registry's entry (:data:`xray_scale.io.formats.registry.PNG`) is made of
:func:`parse_png_header`, :func:`checksum` and :func:`decode`; the GPU decoder
beside it is :mod:`xray_scale.io.formats.png_gpu`.

Every chunk is checked before any pixel is decoded (:func:`checksum`:
complete, CRC right, ending with IEND): Pillow does not check the CRC of image
data chunks, so a flipped bit would otherwise go unnoticed.

Decoders: 8- and 16-bit grayscale files without a ``tRNS`` chunk (every
ChestX-ray8 image) are decoded by OpenCV's libpng, ~10 % faster than Pillow
on real images and with the same values; every other file, and any file
OpenCV cannot decode, by Pillow, whose message then explains the failure.
Both release the GIL, so a pool of threads decodes in parallel. libpng prints
one line on stderr for a file whose compressed data is corrupt although every
CRC is right (OpenCV offers no way to silence it); the image is recorded as
failed all the same.

The length of the image data: a zlib stream that ends properly (its Adler-32
right) but too soon leaves the last rows of the image undecoded. libpng
refuses such a file ("Not enough image data"); Pillow returns the missing rows
as zeros without a word. The Pillow path (palette, colour, and whatever libpng
refused) checks the length first (:func:`check_image_data_length`), so such a
file fails instead of becoming an image with black rows.

OpenCV and Pillow are imported when a file is decoded, not with this module,
so that the registry stays light to import.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from functools import cache

import numpy as np

from ...errors import DecodeError
from .signatures import describe_foreign

__all__ = [
    "HEADER_SIZE",
    "SIGNATURE",
    "PngHeader",
    "UndecodedPng",
    "check_image_data_length",
    "checksum",
    "crc32_in_pieces",
    "decode",
    "image_data_size",
    "parse_png_header",
]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
"""The 8 bytes every PNG file starts with."""

HEADER_SIZE = 33
"""The signature and the IHDR chunk: what :func:`parse_png_header` reads."""

_COLOUR_TYPES = {0: "gray", 2: "RGB", 3: "palette", 4: "gray+alpha", 6: "RGBA"}


_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2))
_ADAM7 += ((1, 0, 2, 1),)
"""Adam7's passes: first row, first column, row step, column step."""


@dataclass(frozen=True)
class PngHeader:
    """What a PNG's IHDR chunk says: size, bit depth and colour type."""

    width: int
    height: int
    bit_depth: int
    colour_type: int

    @property
    def unsupported(self) -> str:
        """Why no run decodes this PNG (16-bit colour), or ``""``."""
        if self.bit_depth == 16 and self.colour_type != 0:
            colour = _COLOUR_TYPES.get(self.colour_type, "colour")
            return (
                f"16-bit {colour} PNG is not supported: "
                "decoding would reduce it to 8 bits; save it as 16-bit grayscale"
            )
        return ""


def parse_png_header(start: bytes) -> PngHeader:
    """Check a file's first 33 bytes (signature and IHDR chunk) and read its header.

    The format's ``read_header`` in the registry.

    Raises
    ------
    DecodeError
        Empty, not a PNG (naming what it is when it can), truncated, or a
        corrupt IHDR chunk.
    """
    if not start:
        raise DecodeError("empty file (0 bytes)")
    if not start.startswith(SIGNATURE):
        if SIGNATURE.startswith(start):
            raise DecodeError(f"truncated PNG: only {len(start)} bytes")
        raise DecodeError(describe_foreign(start, expected="PNG", signature="the PNG signature"))
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


def checksum(data: bytes) -> int:
    """Check every chunk after IHDR (complete, CRC right, ending with IEND); the file's checksum.

    The format's ``checksum`` in the registry. The checksum is the CRC-32 of
    every chunk's CRC, IHDR's included, so it changes whenever any chunk's
    content does, at no extra pass over the data.

    Raises
    ------
    DecodeError
        The file ends inside a chunk or has no IEND (truncated), or a chunk's
        CRC is wrong (corrupt).
    """
    view = memoryview(data)
    value = zlib.crc32(view[29:33])
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
        value = zlib.crc32(view[end - 4 : end], value)
        if kind == b"IEND":
            return value
        position = end
    raise DecodeError(f"truncated PNG: no IEND chunk in {len(data)} bytes")


_CHUNK_HEAD = struct.Struct(">I4s")


def _has_chunk(data: bytes, wanted: bytes) -> bool:
    """Whether a chunk of type ``wanted`` comes before IEND (the chunks already checked)."""
    unpack, position, last = _CHUNK_HEAD.unpack_from, 33, len(data) - 8
    while position <= last:
        length, kind = unpack(data, position)
        if kind == wanted:
            return True
        if kind == b"IEND":
            return False
        position += 12 + length
    return False


class UndecodedPng(DecodeError):
    """A PNG whose pixels could not be decoded, with the mode its header had already given.

    Attributes
    ----------
    mode : str
        ``"L"`` or ``"I;16"`` for the grayscale files OpenCV was given, else ``""``.
    """

    def __init__(self, message: str, mode: str):
        super().__init__(message)
        self.mode = mode


def decode(data: bytes, header: PngHeader) -> tuple[str, np.ndarray]:
    """Pillow's mode of the file and its pixels by the grayscale rule.

    The format's ``decode`` in the registry; ``data`` has passed
    :func:`checksum`. OpenCV for 8- and 16-bit grayscale without ``tRNS``,
    Pillow for everything else and whatever OpenCV cannot decode.

    Raises
    ------
    UndecodedPng
        With Pillow's reason, and the mode known before decoding.
    """
    mode = ""
    if header.colour_type == 0 and header.bit_depth in (8, 16) and not _has_chunk(data, b"tRNS"):
        mode = "L" if header.bit_depth == 8 else "I;16"
        pixels = _decode_gray(data)
        if pixels is not None:
            return mode, pixels
    try:
        return _decode_with_pillow(data)
    except DecodeError as error:
        raise UndecodedPng(str(error), mode) from None


@cache
def _opencv():
    """OpenCV, imported on the first decode (an import statement per call costs ~35 us)."""
    import cv2

    return cv2


@cache
def _pillow():
    """Pillow's Image module, imported on the first decode that needs it."""
    from PIL import Image

    return Image


def _to_grayscale(image) -> np.ndarray:
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
    cv2 = _opencv()
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.ndim != 2:
        return None
    return pixels


def _decode_with_pillow(data: bytes) -> tuple[str, np.ndarray]:
    """Pillow's mode of the file and its pixels by the grayscale rule.

    The image data's length is checked first: Pillow fills what a stream that
    ends early leaves out with zeros.
    """
    Image = _pillow()
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


def image_data_size(data: bytes) -> int:
    """Bytes the zlib stream must inflate to: every row of every pass, filter bytes included."""
    width, height, bit_depth, colour_type = struct.unpack_from(">IIBB", data, 16)
    interlace = data[28]
    bits_per_pixel = bit_depth * _CHANNELS.get(colour_type, 1)
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    size = 0
    for top, left, row_step, column_step in passes:
        rows = max(0, -(-(height - top) // row_step))
        columns = max(0, -(-(width - left) // column_step))
        if rows and columns:
            size += rows * (1 + -(-columns * bits_per_pixel // 8))
    return size


def check_image_data_length(data: bytes) -> None:
    """Raise DecodeError if the IDAT stream inflates to fewer bytes than the header needs.

    A zlib stream that ends properly (Adler-32 right) but too soon leaves the
    last rows undecoded; libpng refuses it ("Not enough image data"), but
    Pillow returns those rows as zeros without a word. The chunks were walked
    and their CRCs checked first, by :func:`checksum`.
    """
    needed = image_data_size(data)
    inflater = zlib.decompressobj()
    inflated = 0
    position = 33
    while position + 8 <= len(data) and inflated < needed:
        length, kind = struct.unpack_from(">I4s", data, position)
        if kind == b"IDAT":
            start = position + 8
            try:
                piece = inflater.decompress(data[start : start + length], needed - inflated)
            except zlib.error:
                return  # Pillow names the corrupt stream itself
            inflated += len(piece)
        position += 12 + length
    if inflated < needed:
        raise DecodeError(
            f"truncated PNG: the image data inflates to {inflated} of the {needed} bytes "
            "its header needs (the zlib stream ends early)"
        )
