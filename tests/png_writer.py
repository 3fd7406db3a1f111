"""PNG bytes written by hand: every row's filter chosen, the zlib stream and chunks built here.

Pillow and OpenCV pick the row filters themselves; these helpers force them, so
a decoder is tested on each of PNG's five filters (and on mixtures) for 8- and
16-bit grayscale, and can corrupt a stream in ways an encoder never would.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, data: bytes) -> bytes:
    """One chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def filtered_rows(image: np.ndarray, filters) -> bytes:
    """The inflated rows of ``image`` (uint8 or uint16 gray), row ``r`` filtered ``filters[r]``."""
    bpp = image.dtype.itemsize
    data = image.astype(">u2").view(np.uint8) if bpp == 2 else image
    data = data.reshape(image.shape[0], -1).astype(np.int32)
    left = np.zeros_like(data)
    left[:, bpp:] = data[:, :-bpp]
    up = np.zeros_like(data)
    up[1:] = data[:-1]
    upleft = np.zeros_like(data)
    upleft[1:, bpp:] = data[:-1, :-bpp]
    predictions = [0 * data, left, up, (left + up) // 2, _paeth(left, up, upleft)]
    out = bytearray()
    for r, kind in enumerate(filters):
        out.append(kind)
        out += ((data[r] - predictions[kind][r]) & 0xFF).astype(np.uint8).tobytes()
    return bytes(out)


def png_from_stream(
    height: int, width: int, bit_depth: int, stream: bytes, *, idat_size=8192, extra: bytes = b""
) -> bytes:
    """A grayscale PNG around a zlib ``stream``, split into IDAT chunks of ``idat_size`` bytes."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    idats = b"".join(
        chunk(b"IDAT", stream[i : i + idat_size]) for i in range(0, len(stream), idat_size)
    )
    return SIGNATURE + chunk(b"IHDR", header) + extra + idats + chunk(b"IEND", b"")


def filtered_png(
    image: np.ndarray, filters, *, idat_size: int = 8192, level: int = 6, extra: bytes = b""
) -> bytes:
    """``image`` as a grayscale PNG whose rows use ``filters`` (one type 0..4 per row)."""
    stream = zlib.compress(filtered_rows(image, filters), level)
    bits = 16 if image.dtype == np.uint16 else 8
    return png_from_stream(*image.shape, bits, stream, idat_size=idat_size, extra=extra)
