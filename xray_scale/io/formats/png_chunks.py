"""A PNG file's chunks, walked on the CPU for the GPU decoder: no inflate, no unfilter.

:func:`walk_png` checks what the CPU decoder (:func:`xray_scale.io.decode.decode_image`)
checks before it decodes, in the same order and with the same messages: the
signature and IHDR chunk, the header against the run (too many pixels, 16-bit
colour, another size, more bits than the run), then every chunk: complete, and
an IEND at the end. It does not compute the chunks' CRCs: it records, for
every chunk, the CRC stored in the file and the bytes that CRC covers, so that
the GPU checks them (:func:`crc32_by_pieces` is the algorithm the GPU kernel
uses, written in plain Python). :func:`check_crcs` is the same check on the
CPU, with the CPU decoder's message for the first bad chunk.

A file the walk accepts is either one the GPU path decodes (8- or 16-bit
grayscale, not interlaced, the run's size, no transparency, one zlib stream in
consecutive IDAT chunks) or one the CPU decoder decodes; the layout's
``gpu_reason`` says why, in a few words.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ...errors import DecodeError
from .image import DEFAULT_MAX_PIXELS, check_bit_depth, check_header
from .png import PngHeader, crc32_in_pieces, parse_png_header

__all__ = [
    "Chunk",
    "PngLayout",
    "check_crcs",
    "crc32_by_pieces",
    "crc32_shift",
    "walk_png",
]

CRC_PIECE = 1024
"""Bytes of chunk data one GPU thread checks (its piece's CRC, then shifted into place)."""


@dataclass(frozen=True)
class Chunk:
    """One chunk of a PNG file.

    Attributes
    ----------
    kind : bytes
        Its 4-byte type (``b"IDAT"``).
    position : int
        File offset of its length field (where the CPU decoder's messages point).
    length : int
        Bytes of data.
    crc : int
        The CRC stored in the file; it covers the type and the data, that is
        ``data[position + 4 : position + 8 + length]``.
    """

    kind: bytes
    position: int
    length: int
    crc: int

    @property
    def data_start(self) -> int:
        """File offset of the chunk's data."""
        return self.position + 8

    def bad_crc_message(self) -> str:
        """The CPU decoder's message for this chunk's CRC being wrong."""
        return (
            f"corrupt PNG: bad CRC in chunk {self.kind.decode('latin-1')} at byte {self.position}"
        )


@dataclass(frozen=True)
class PngLayout:
    """What :func:`walk_png` found in one file.

    Attributes
    ----------
    header : PngHeader
    chunks : tuple of Chunk
        Every chunk from IHDR to IEND, in file order.
    checksum : int
        The CPU decoder's ``checksum``: CRC-32 of the stored chunk CRCs.
    gpu_reason : str
        ``""`` when the GPU path decodes the file, else why the CPU decoder does.
    idat : tuple of int
        Indices in ``chunks`` of the IDAT chunks (consecutive when the GPU decodes it).
    """

    header: PngHeader
    chunks: tuple[Chunk, ...]
    checksum: int
    gpu_reason: str
    idat: tuple[int, ...]

    @property
    def stream_length(self) -> int:
        """Bytes of the zlib stream: the IDAT chunks' data, concatenated."""
        return sum(self.chunks[i].length for i in self.idat)

    def zlib_stream(self, data: bytes) -> bytes:
        """The zlib stream of ``data`` (the file this layout was walked from)."""
        view = memoryview(data)
        return b"".join(
            view[c.data_start : c.data_start + c.length]
            for c in (self.chunks[i] for i in self.idat)
        )

    @property
    def raw_row_bytes(self) -> int:
        """Bytes of one inflated row: its filter-type byte and the row's samples."""
        return 1 + self.header.width * (self.header.bit_depth // 8)

    @property
    def raw_size(self) -> int:
        """Bytes the zlib stream inflates to (rows of filter byte + samples)."""
        return self.header.height * self.raw_row_bytes


def _walk_chunks(data: bytes) -> tuple[Chunk, ...]:
    """Every chunk after the signature, IHDR to IEND, complete; CRCs not computed.

    The same walk as the CPU decoder's chunk check, in the same order: where
    the file ends inside a chunk or has no IEND, the chunks before are checked
    on the CPU, so that a bad CRC earlier in the file gives the CPU decoder's
    message (it checks each chunk's CRC as it walks).
    """
    chunks = [Chunk(b"IHDR", 8, 13, struct.unpack_from(">I", data, 29)[0])]
    position = 33
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        end = position + 12 + length
        if end > len(data):
            _check_crcs_before(data, chunks)
            raise DecodeError(
                f"truncated PNG: the file ends inside chunk {kind.decode('latin-1')} at byte "
                f"{len(data)} (the chunk needs {end - len(data)} more bytes)"
            )
        chunks.append(Chunk(kind, position, length, struct.unpack_from(">I", data, end - 4)[0]))
        if kind == b"IEND":
            return tuple(chunks)
        position = end
    _check_crcs_before(data, chunks)
    raise DecodeError(f"truncated PNG: no IEND chunk in {len(data)} bytes")


def _check_crcs_before(data: bytes, chunks: list[Chunk]) -> None:
    check_crcs(data, chunks[1:])  # IHDR's CRC was checked with the header


def check_crcs(data: bytes, chunks) -> None:
    """Check chunk CRCs on the CPU; raise the CPU decoder's DecodeError for the first bad one.

    Parameters
    ----------
    data : bytes
        The file.
    chunks : iterable of Chunk
        The chunks to check, in file order (a layout's ``chunks``).
    """
    view = memoryview(data)
    for chunk in chunks:
        if crc32_in_pieces(view[chunk.position + 4 : chunk.data_start + chunk.length]) != chunk.crc:
            raise DecodeError(chunk.bad_crc_message())


def _checksum(chunks: tuple[Chunk, ...]) -> int:
    value = 0
    for chunk in chunks:
        value = zlib.crc32(struct.pack(">I", chunk.crc), value)
    return value


def _gpu_reason(
    data: bytes, header: PngHeader, chunks: tuple[Chunk, ...], idat: tuple[int, ...], shape
) -> str:
    """Why the GPU path cannot decode this file, or ``""``."""
    compression, filter_method, interlace = struct.unpack_from(">BBB", data, 26)
    if header.colour_type != 0 or header.bit_depth not in (8, 16):
        return f"colour type {header.colour_type} at {header.bit_depth} bits, not 8/16-bit gray"
    if interlace != 0:
        return "interlaced"
    if compression != 0 or filter_method != 0:
        return "unknown compression or filter method"
    if (header.height, header.width) != tuple(shape):
        return "another size than the run's (padded)"
    if any(chunk.kind == b"tRNS" for chunk in chunks):
        return "has a tRNS chunk"
    if not idat:
        return "no IDAT chunk"
    if idat != tuple(range(idat[0], idat[0] + len(idat))):
        return "IDAT chunks not consecutive"
    first, last = chunks[idat[0]], chunks[idat[-1]]
    if first.length < 2 or last.length < 4 or sum(chunks[i].length for i in idat) < 7:
        return "zlib header or Adler-32 split across IDAT chunks"
    cmf, flg = data[first.data_start], data[first.data_start + 1]
    if cmf & 0x0F != 8 or cmf >> 4 > 7 or flg & 0x20 or (cmf * 256 + flg) % 31:
        return "not a plain zlib stream"
    return ""


def walk_png(
    data: bytes,
    *,
    shape: tuple[int, int],
    dtype: np.dtype | str = np.uint8,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    size_policy: str = "fail",
) -> PngLayout:
    """Walk a PNG file's chunks and check it as the CPU decoder would, CRCs aside.

    Parameters
    ----------
    data : bytes
        The whole file.
    shape, dtype, max_pixels, size_policy
        The run's, as for :func:`xray_scale.io.decode.decode_image`.

    Returns
    -------
    PngLayout

    Raises
    ------
    DecodeError
        The CPU decoder's message for the same file, for everything it checks
        before decoding except the CRCs of complete chunks (empty, not a PNG,
        truncated, a bad IHDR, too many pixels, 16-bit colour, another size,
        more bits than the run, no IEND).
    """
    header = parse_png_header(data[:33])
    check_header(header, shape=shape, max_pixels=max_pixels, size_policy=size_policy)
    check_bit_depth(header, np.dtype(dtype))
    chunks = _walk_chunks(data)
    idat = tuple(i for i, chunk in enumerate(chunks) if chunk.kind == b"IDAT")
    reason = _gpu_reason(data, header, chunks, idat, shape)
    return PngLayout(header, chunks, _checksum(chunks), reason, idat)


# ------------------------------------------------------------ CRC-32 in pieces
# The GPU kernel (crc_pieces in png_kernels.py) checks a chunk's CRC in independent
# pieces of CRC_PIECE bytes: for bytes A then B, crc(AB) = shift(crc(A), |B|) ^
# crc(B), where shift multiplies by x^(8|B|) modulo the CRC polynomial. So each
# thread takes one piece, computes its CRC, shifts it by the bytes after it in
# the chunk, and XORs it into the chunk's sum; the chunk's type contributes its
# CRC shifted by the data's length. The functions below are that algorithm
# (zlib's crc32_combine arithmetic), line for line with the kernel.

_POLY = 0xEDB88320  # CRC-32, reflected


def _multiply(a: int, b: int) -> int:
    """a(x) * b(x) modulo the CRC polynomial, reflected (kernel: multiply_mod_p)."""
    m, product = 1 << 31, 0
    while True:
        if a & m:
            product ^= b
            if a & (m - 1) == 0:
                return product
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


def _powers() -> list[int]:
    """x^(2^k) modulo the polynomial, k = 0..31 (kernel: X2N, uploaded from this list)."""
    table, p = [], 1 << 30  # x^1
    for _ in range(32):
        table.append(p)
        p = _multiply(p, p)
    return table


X2N = _powers()


def crc32_shift(crc: int, length: int) -> int:
    """The CRC ``crc`` moved past ``length`` more bytes (kernel: shift_crc).

    ``zlib.crc32(a + b) == crc32_shift(zlib.crc32(a), len(b)) ^ zlib.crc32(b)``.

    Examples
    --------
    >>> crc32_shift(zlib.crc32(b"IDAT"), 3) ^ zlib.crc32(b"abc") == zlib.crc32(b"IDATabc")
    True
    """
    power, k, n = 1 << 31, 3, length  # x^0; x^(8n) = product of x^(2^k) for the bits of 8n
    while n:
        if n & 1:
            power = _multiply(X2N[k & 31], power)
        n >>= 1
        k += 1
    return _multiply(power, crc)


def crc32_by_pieces(buffer: bytes, starts, lengths, seeds, *, piece: int = CRC_PIECE) -> np.ndarray:
    """Each range's CRC-32, seeded with the chunk type's CRC, computed as the GPU does.

    Parameters
    ----------
    buffer : bytes
        Where the chunks' data lie.
    starts, lengths : sequences of int
        Each chunk's data: ``buffer[start : start + length]``.
    seeds : sequence of int
        ``zlib.crc32(kind)`` of each chunk's type.
    piece : int
        Bytes per piece (per GPU thread).

    Returns
    -------
    ndarray of uint32
        ``zlib.crc32(kind + data)`` of each chunk, the value stored in the file
        when the chunk is intact.
    """
    sums = np.zeros(len(starts), dtype=np.uint32)
    for chunk, (start, length, seed) in enumerate(zip(starts, lengths, seeds, strict=True)):
        total = crc32_shift(int(seed), int(length))  # the piece-0 thread adds the type's part
        for first in range(0, int(length), piece):  # one GPU thread per piece
            size = min(piece, int(length) - first)
            part = zlib.crc32(buffer[start + first : start + first + size])
            total ^= crc32_shift(part, int(length) - first - size)
        sums[chunk] = total
    return sums
