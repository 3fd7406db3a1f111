"""The length of a PNG's image data: what its zlib stream must inflate to.

A zlib stream that ends properly (its Adler-32 right) but too soon leaves the
last rows of the image undecoded. libpng refuses such a file ("Not enough
image data"); Pillow returns the missing rows as zeros without a word. The
decoder's Pillow path (palette, colour, and whatever libpng refused) checks
the length here first, so such a file fails instead of becoming an image
with black rows.
"""

from __future__ import annotations

import struct
import zlib

from ...errors import DecodeError

__all__ = ["check_image_data_length", "image_data_size"]

_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2))
_ADAM7 += ((1, 0, 2, 1),)
"""Adam7's passes: first row, first column, row step, column step."""


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
    and their CRCs checked first, by :func:`xray_scale.io.decode.decode_image`.
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
