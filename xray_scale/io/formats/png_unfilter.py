"""The GPU PNG decoder's steps after the chunk walk, in NumPy: the reference its kernels follow.

A PNG's zlib stream inflates to one row after another, each a filter-type byte
and the row's filtered bytes (16-bit samples big-endian). Undoing a filter
needs the byte one pixel to the left (``a``), the byte above (``b``) and the
byte above-left (``c``), all already undone: Sub, Average and Paeth make
every row a chain from left to right, and Up, Average and Paeth chain the rows.
So the GPU kernel (``unfilter`` in :mod:`xray_scale.io.formats.png_kernels`) runs a
*wavefront*: one thread block per image, thread ``i`` owns row ``band + i``,
and at step ``t`` it undoes pixel ``t - i`` of its row; pixel ``(r, p)``
depends only on ``(r, p - 1)``, ``(r - 1, p)`` and ``(r - 1, p - 1)``, done at
steps ``t - 1`` and ``t - 2``, so one barrier per step suffices. A 1024 x 1024
image takes 2,047 steps of 1,024 threads; taller images go in bands of
``block_rows`` rows, one after the other.

:func:`unfilter` is that kernel step for step, vectorised over the threads
and over the images of a batch (the blocks). :func:`adler32_by_pieces` is the
Adler-32 check the GPU does on the inflated bytes, and :func:`inflate_batch`
is the inflate (nvCOMP's on the GPU; ``zlib`` here).
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = [
    "ADLER_PIECE",
    "FILTER_NAMES",
    "adler32_by_pieces",
    "inflate_batch",
    "pixels_from_rows",
    "unfilter",
]

FILTER_NAMES = ("None", "Sub", "Up", "Average", "Paeth")
"""PNG's five row filters, by filter-type byte."""

ADLER_PIECE = 4096
"""Inflated bytes one GPU thread sums for the Adler-32 check."""

_ADLER_MOD = 65521


def inflate_batch(streams: list[bytes], raw_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Inflate K zlib streams into a ``(K, raw_size)`` block, as nvCOMP does on the GPU.

    Parameters
    ----------
    streams : list of bytes
        Each image's raw deflate data: its zlib stream without the 2-byte
        header and the 4-byte Adler-32 (what nvCOMP is given).
    raw_size : int
        Bytes every image inflates to (height x (1 + row bytes)).

    Returns
    -------
    raw : ndarray of uint8, shape (K, raw_size)
        The inflated bytes; zeros after the end of a stream that stopped early.
    sizes : ndarray of int64
        Bytes each stream inflated to before it ended, at most ``raw_size``;
        -1 where the stream is corrupt or does not end.
    """
    raw = np.zeros((len(streams), raw_size), dtype=np.uint8)
    sizes = np.full(len(streams), -1, dtype=np.int64)
    for k, stream in enumerate(streams):
        inflater = zlib.decompressobj(wbits=-15)
        try:
            out = inflater.decompress(stream, raw_size)
        except zlib.error:
            continue
        raw[k, : len(out)] = np.frombuffer(out, dtype=np.uint8)
        if inflater.eof:
            sizes[k] = len(out)
    return raw, sizes


def adler32_by_pieces(raw: np.ndarray, *, piece: int = ADLER_PIECE) -> np.ndarray:
    """Adler-32 of each row of ``raw`` (K, n), summed in independent pieces as the GPU does.

    With ``n`` bytes ``d[0..n-1]``: ``A = 1 + sum d[i]`` and
    ``B = n + sum (n - i) d[i]``, both modulo 65521, so each thread sums its
    piece's ``d[i]`` and ``(n - i) d[i]``, reduces them modulo 65521 and adds
    them into the image's two totals (kernel: ``adler_pieces``).

    Returns
    -------
    ndarray of uint32
        ``zlib.adler32`` of each row.

    Examples
    --------
    >>> data = np.frombuffer(b"Wikipedia", dtype=np.uint8)[None]
    >>> int(adler32_by_pieces(data, piece=4)[0]) == zlib.adler32(b"Wikipedia")
    True
    """
    images, n = raw.shape
    first_sum = np.zeros(images, dtype=np.uint64)
    second_sum = np.zeros(images, dtype=np.uint64)
    for start in range(0, n, piece):  # one GPU thread per (piece, image)
        d = raw[:, start : start + piece].astype(np.uint64)
        weights = (n - np.arange(start, start + d.shape[1], dtype=np.uint64))[None]
        first_sum += d.sum(axis=1) % _ADLER_MOD
        second_sum += (d * weights).sum(axis=1) % _ADLER_MOD
    a = (1 + first_sum) % _ADLER_MOD
    b = (n % _ADLER_MOD + second_sum) % _ADLER_MOD
    return ((b << np.uint64(16)) | a).astype(np.uint32)


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """PNG's Paeth predictor on int32 arrays (kernel: paeth)."""
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def unfilter(
    raw: np.ndarray, *, height: int, width: int, bpp: int, block_rows: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Undo the row filters of K images in place, by the GPU kernel's wavefront.

    Parameters
    ----------
    raw : ndarray of uint8, shape (K, height * (1 + width * bpp))
        Inflated rows: a filter-type byte, then ``width * bpp`` bytes. Undone
        in place (each row's bytes become the image's, the type bytes stay).
    height, width : int
        The images' size.
    bpp : {1, 2}
        Bytes per pixel: 1 for 8-bit, 2 for 16-bit grayscale.
    block_rows : int
        Rows per band (the kernel's threads per block).

    Returns
    -------
    rows : ndarray of uint8, shape (K, height, width * bpp)
        A view of ``raw`` without the filter-type bytes: the unfiltered bytes.
    bad : ndarray of bool, shape (K,)
        Images with a filter-type byte above 4 (the CPU decoder then decides).
    """
    images = raw.shape[0]
    stride = 1 + width * bpp
    lines = raw.reshape(images, height, stride)
    bad = np.zeros(images, dtype=bool)
    k = np.arange(images)[:, None]  # blockIdx.x
    thread = np.arange(min(block_rows, height))[None, :]  # threadIdx.x
    for band in range(0, height, block_rows):
        row = band + thread
        active = np.broadcast_to(row < height, (images, thread.shape[1]))
        safe_row = np.minimum(row, height - 1)
        filters = np.where(active, lines[k, safe_row, 0], 0).astype(np.int32)
        bad |= (active & (filters > 4)).any(axis=1)
        rows_in_band = min(block_rows, height - band)
        for t in range(rows_in_band + width - 1):  # one step per barrier
            p = t - thread
            on = active & (p >= 0) & (p < width)
            if not on.any():
                continue
            kk, tt = np.nonzero(on)
            r, px, f = safe_row[0, tt], p[0, tt], filters[kk, tt]
            for j in range(bpp):
                x = 1 + px * bpp + j  # +1: past the row's filter-type byte
                has_left, has_above = x - bpp >= 1, r >= 1
                left, above = np.maximum(x - bpp, 1), np.maximum(r - 1, 0)
                a = np.where(has_left, lines[kk, r, left], 0).astype(np.int32)
                b = np.where(has_above, lines[kk, above, x], 0).astype(np.int32)
                c = np.where(has_left & has_above, lines[kk, above, left], 0).astype(np.int32)
                filtered = lines[kk, r, x].astype(np.int32)
                paeth = _paeth(a, b, c)
                value = np.select(
                    [f == 1, f == 2, f == 3, f == 4],
                    [filtered + a, filtered + b, filtered + (a + b) // 2, filtered + paeth],
                    filtered,  # None, and an unknown type (flagged in bad)
                )
                lines[kk, r, x] = (value & 0xFF).astype(np.uint8)
    return lines[:, :, 1:], bad


def pixels_from_rows(rows: np.ndarray, *, bpp: int, dtype: np.dtype | str) -> np.ndarray:
    """Unfiltered row bytes (K, H, W * bpp) to pixels (K, H, W) of ``dtype`` (16-bit big-endian).

    The kernel writes each pixel to the output as it undoes it; this is that store.
    """
    if bpp == 1:
        return rows.astype(dtype)
    pairs = rows.reshape(*rows.shape[:2], -1, 2).astype(np.uint16)
    return ((pairs[..., 0] << 8) | pairs[..., 1]).astype(dtype)
