"""The GPU decoder's CUDA kernels (png_kernels) and batch packing (gpu_png), run on the CPU.

The kernels' source is the one the GPU compiles; nvCOMP's inflate is replaced
by zlib on the same packed streams. What only a GPU can check (CuPy, nvCOMP,
the copies) is in test_gpu_png.py.
"""

from __future__ import annotations

import zlib
from contextlib import nullcontext

import cv2
import numpy as np
import pytest
from conftest import structured_image
from cuda_on_cpu import COMPILER, build, pointer
from png_writer import chunk, filtered_png

from xray_scale.errors import DecodeError
from xray_scale.io.formats import png_gpu as gpu_png
from xray_scale.io.formats.png_chunks import CRC_PIECE, X2N, check_crcs, walk_png
from xray_scale.io.formats.png_kernels import SOURCE, crc_table
from xray_scale.io.formats.png_unfilter import ADLER_PIECE

pytestmark = [
    pytest.mark.slow,  # g++ builds the kernels first: seconds
    pytest.mark.skipif(COMPILER is None, reason="no g++ to compile the kernels for the CPU"),
]


@pytest.fixture(scope="module")
def kernels():
    return build(SOURCE)


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x04
    return bytes(out)


def _files(dtype, shape):
    rng = np.random.default_rng(7)
    images = [structured_image(seed, shape=shape, dtype=dtype) for seed in range(3)]
    images.append(rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype))
    text = chunk(b"tEXt", b"Comment\0" + bytes(range(256)) * 5)  # a chunk of two CRC pieces
    files = [
        filtered_png(images[0], [4] * shape[0], idat_size=700),
        filtered_png(images[1], rng.integers(0, 5, shape[0]), idat_size=CRC_PIECE, extra=text),
        filtered_png(images[2], [3] * shape[0], idat_size=64),
        filtered_png(images[3], rng.integers(0, 5, shape[0])),
    ]
    return images, files


def _crc_and_inflate(kernels, files, shape, dtype):
    layouts = [walk_png(data, shape=shape, dtype=dtype) for data in files]
    batch = gpu_png._Batch(list(zip(files, layouts, strict=True)))
    pinned = np.zeros(batch.nbytes + 64, dtype=np.uint8)  # larger, as a reused buffer is
    batch.fill(pinned)
    tables = pinned[batch.table_at : batch.nbytes].view(np.int64)
    pieces = batch.offsets["piece_chunk"][1]
    sums = np.zeros(len(batch.chunk_crc), dtype=np.uint32)
    x2n, table = np.array(X2N, dtype=np.int64), crc_table()  # kept alive: pointers
    kernels.run_crc_pieces(
        -(-pieces // 32), 32, pointer(pinned),
        *(pointer(batch.table(tables, name)) for name in ("chunk_start", "chunk_length",
          "chunk_seed", "piece_chunk", "piece_first")),
        pieces, CRC_PIECE, pointer(table), pointer(x2n), pointer(sums),
    )  # fmt: skip
    bad = sums.astype(np.int64) != batch.chunk_crc
    return layouts, batch, pinned, bad


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_kernels_decode_a_packed_batch_like_libpng(kernels, dtype):
    shape = (37, 29)
    images, files = _files(dtype, shape)
    layouts, batch, pinned, bad = _crc_and_inflate(kernels, files, shape, dtype)
    assert not bad.any()
    bpp = np.dtype(dtype).itemsize
    raw_size = shape[0] * (1 + shape[1] * bpp)
    slot = gpu_png._aligned(raw_size)
    raw = np.zeros(len(files) * slot, dtype=np.uint8)
    for k, (start, length) in enumerate(batch.streams):
        assert start % 16 == 0
        inflated = zlib.decompress(pinned[start : start + length].tobytes(), wbits=-15)
        raw[k * slot : k * slot + raw_size] = np.frombuffer(inflated, np.uint8)
    starts = np.arange(len(files), dtype=np.int64) * slot
    adler_pieces = -(-raw_size // ADLER_PIECE)
    adler_sums = np.zeros(2 * len(files), dtype=np.uint64)
    kernels.run_adler_pieces(
        -(-adler_pieces // 8), len(files), 8, pointer(raw), pointer(starts), raw_size,
        ADLER_PIECE, adler_pieces, pointer(adler_sums),
    )  # fmt: skip
    a = (1 + adler_sums[0::2]) % 65521
    b = (raw_size % 65521 + adler_sums[1::2]) % 65521
    assert list((b << np.uint64(16)) | a) == batch.adler
    out = np.zeros((len(files) + 1, *shape), dtype=dtype)  # the last row: another image's
    out_index = np.arange(len(files), dtype=np.int64)
    flags = np.zeros(len(files), dtype=np.int32)
    for threads in (16, 37):  # bands of 16 rows, and one band
        work = raw.copy()
        kernels.run_unfilter(
            len(files), threads, pointer(work), pointer(starts), shape[0], shape[1], bpp,
            pointer(out), pointer(out_index), out.itemsize, pointer(flags),
        )  # fmt: skip
        assert not flags.any()
        for k, data in enumerate(files):
            expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(out[k], expected), (threads, k)
            assert np.array_equal(out[k], images[k])
        assert not out[-1].any()


def test_crc_kernel_finds_the_first_bad_chunk_in_file_order(kernels):
    shape = (40, 33)
    _, files = _files(np.uint8, shape)
    layouts = [walk_png(data, shape=shape) for data in files]
    text = layouts[1].chunks[1]
    assert text.kind == b"tEXt"
    idat = layouts[1].chunks[layouts[1].idat[-1]]
    files[1] = _flip(_flip(files[1], idat.data_start + 5), text.data_start + 300)
    files[2] = _flip(files[2], layouts[2].chunks[-1].position + 9)  # IEND's CRC
    _, batch, _, bad = _crc_and_inflate(kernels, files, shape, np.uint8)
    assert bad.sum() == 3  # tEXt and an IDAT of file 1, IEND of file 2
    found = []
    for owner, data in enumerate(files):
        chunk = batch.first_bad_chunk(owner, bad)
        with pytest.raises(DecodeError) if chunk else nullcontext() as error:
            check_crcs(data, walk_png(data, shape=shape).chunks[1:])
        found.append(chunk and chunk.bad_crc_message())
        assert found[-1] == (chunk and str(error.value)), owner
    assert [message and message.split()[6] for message in found] == [None, "tEXt", "IEND", None]


def test_unfilter_kernel_flags_an_unknown_filter_type(kernels):
    rows = bytearray(zlib.decompress(zlib.compress(bytes(9 * 9))))
    rows[9 * 4] = 5
    raw = np.frombuffer(bytes(rows) + bytes(rows), np.uint8).copy()
    raw[81 + 9 * 4] = 0
    out = np.zeros((2, 9, 8), np.uint8)
    flags = np.zeros(2, np.int32)
    starts = np.array([0, 81], np.int64)
    out_index = np.arange(2, dtype=np.int64)
    kernels.run_unfilter(
        2, 9, pointer(raw), pointer(starts), 9, 8, 1, pointer(out), pointer(out_index), 1,
        pointer(flags),
    )  # fmt: skip
    assert list(flags) == [1, 0]


def test_a_sixteen_bit_run_takes_eight_bit_files(kernels):
    image = structured_image(5, shape=(12, 10))
    data = filtered_png(image, [4] * 12)
    layout = walk_png(data, shape=(12, 10), dtype=np.uint16)
    raw = np.frombuffer(zlib.decompress(layout.zlib_stream(data)), np.uint8).copy()
    out = np.zeros((1, 12, 10), np.uint16)
    zero, flags = np.zeros(1, np.int64), np.zeros(1, np.int32)
    kernels.run_unfilter(
        1, 12, pointer(raw), pointer(zero), 12, 10, 1, pointer(out), pointer(zero), 2,
        pointer(flags),
    )  # fmt: skip
    assert np.array_equal(out[0], image)


def test_packed_streams_start_aligned_and_hold_each_file():
    _, files = _files(np.uint8, (20, 21))
    layouts = [walk_png(data, shape=(20, 21)) for data in files]
    batch = gpu_png._Batch(list(zip(files, layouts, strict=True)))
    pinned = np.zeros(batch.nbytes, np.uint8)
    batch.fill(pinned)
    for (start, length), layout, data in zip(batch.streams, layouts, files, strict=True):
        assert start % gpu_png._ALIGN == 0
        assert pinned[start - 2 : start + length + 4].tobytes() == layout.zlib_stream(data)
