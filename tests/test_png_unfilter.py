"""png_unfilter: the GPU kernels' NumPy reference decodes like libpng, bit for bit."""

from __future__ import annotations

import io
import zlib

import cv2
import numpy as np
import pytest
from conftest import REAL_NAMES, REAL_SAMPLE, needs_real_sample, structured_image
from PIL import Image
from png_writer import filtered_png, filtered_rows, png_from_stream

from xray_scale.io.formats.png_chunks import walk_png
from xray_scale.io.formats.png_unfilter import (
    FILTER_NAMES,
    adler32_by_pieces,
    inflate_batch,
    pixels_from_rows,
    unfilter,
)
from xray_scale.io.phantoms import phantom
from xray_scale.io.sources.reading import read_input


def reference_decode(files: list[bytes], *, shape, dtype=np.uint8, block_rows=1024):
    """Walk, inflate, check Adler-32, unfilter K files as the GPU decoder does, in NumPy."""
    layouts = [walk_png(data, shape=shape, dtype=dtype) for data in files]
    assert all(layout.gpu_reason == "" for layout in layouts)
    streams = [layout.zlib_stream(data) for layout, data in zip(layouts, files, strict=True)]
    raw, sizes = inflate_batch([s[2:-4] for s in streams], layouts[0].raw_size)
    assert list(sizes) == [layouts[0].raw_size] * len(files)
    adlers = adler32_by_pieces(raw)
    assert list(adlers) == [int.from_bytes(s[-4:], "big") for s in streams]
    bpp = layouts[0].header.bit_depth // 8
    rows, bad = unfilter(raw, height=shape[0], width=shape[1], bpp=bpp, block_rows=block_rows)
    assert not bad.any()
    return pixels_from_rows(rows, bpp=bpp, dtype=dtype)


def libpng(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def pillow(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image).astype(np.uint16 if image.mode.startswith("I") else np.uint8)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("kind", range(5), ids=FILTER_NAMES)
def test_each_filter_forced_decodes_like_libpng(kind, dtype):
    shapes = [(23, 1), (17, 3), (40, 29), (33, 67)]  # odd widths, one column, bands of 8 rows
    for shape in shapes:
        images = [structured_image(seed, shape=shape, dtype=dtype) for seed in range(3)]
        files = [filtered_png(image, [kind] * shape[0]) for image in images]
        decoded = reference_decode(files, shape=shape, dtype=dtype, block_rows=8)
        for k, data in enumerate(files):
            assert np.array_equal(libpng(data), images[k]), shape
            assert np.array_equal(pillow(data), images[k]), shape
            assert decoded.dtype == dtype
            assert np.array_equal(decoded[k], libpng(data)), (FILTER_NAMES[kind], shape, k)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_mixed_filters_full_range_and_noise(dtype):
    rng = np.random.default_rng(3)
    top = np.iinfo(dtype).max
    shape = (50, 45)
    images = [
        rng.integers(0, top + 1, shape, dtype=dtype),  # noise: every byte value, carries
        np.full(shape, top, dtype=dtype),
        np.zeros(shape, dtype=dtype),
        structured_image(9, shape=shape, dtype=dtype),
    ]
    filters = rng.integers(0, 5, shape[0])
    files = [filtered_png(image, filters, idat_size=300) for image in images]
    for block_rows in (1, 7, 64):
        decoded = reference_decode(files, shape=shape, dtype=dtype, block_rows=block_rows)
        for k, data in enumerate(files):
            assert np.array_equal(decoded[k], libpng(data)), (block_rows, k)
            assert np.array_equal(decoded[k], images[k])


def test_eight_bit_files_in_a_sixteen_bit_run_keep_their_values():
    image = structured_image(11, shape=(20, 21))
    data = filtered_png(image, [4] * 20)
    decoded = reference_decode([data], shape=(20, 21), dtype=np.uint16)
    assert decoded.dtype == np.uint16 and np.array_equal(decoded[0], image)


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_phantoms_written_by_pillow_and_opencv(bit_depth):
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    images = [phantom(1, k, shape=(96, 80), bit_depth=bit_depth) for k in range(3)]
    files = []
    for k, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        files.append(buffer.getvalue())
        strategy = [cv2.IMWRITE_PNG_STRATEGY_DEFAULT, cv2.IMWRITE_PNG_STRATEGY_FILTERED][k % 2]
        ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_STRATEGY, strategy])
        assert ok
        files.append(encoded.tobytes())
    decoded = reference_decode(files, shape=(96, 80), dtype=dtype, block_rows=32)
    for k, data in enumerate(files):
        assert np.array_equal(decoded[k], libpng(data)), k
        assert np.array_equal(decoded[k], images[k // 2]), k


def test_an_unknown_filter_type_is_flagged_not_decoded():
    image = structured_image(12, shape=(8, 8))
    raw = bytearray(filtered_rows(image, [0] * 8))
    raw[9 * 5] = 7  # row 5's filter type
    stream = zlib.compress(bytes(raw))
    data = png_from_stream(8, 8, 8, stream)
    assert libpng(data) is None  # libpng refuses it too
    layout = walk_png(data, shape=(8, 8))
    inflated, _ = inflate_batch([layout.zlib_stream(data)[2:-4]] * 2, layout.raw_size)
    inflated[1] = np.frombuffer(filtered_rows(image, [0] * 8), np.uint8)
    _, bad = unfilter(inflated, height=8, width=8, bpp=1)
    assert list(bad) == [True, False]


def test_inflate_reports_streams_that_end_early_or_are_corrupt():
    raw = bytes(range(256)) * 40
    stream = zlib.compress(raw)[2:-4]
    blocks, sizes = inflate_batch([stream, stream[: len(stream) // 2], b"\xff" * 50], len(raw))
    assert sizes[0] == len(raw) and bytes(blocks[0]) == raw
    assert sizes[1] == -1 and sizes[2] == -1
    short = zlib.compress(raw[:1000])[2:-4]
    _, sizes = inflate_batch([short], len(raw))
    assert sizes[0] == 1000  # ends early: a short image, caught by the size check


def test_adler32_by_pieces_equals_zlib():
    rng = np.random.default_rng(4)
    data = rng.integers(0, 256, (3, 70_001), dtype=np.uint8)
    data[1] = 255  # the largest sums
    for piece in (3, 13, 4096, 100_000):
        expected = [zlib.adler32(row.tobytes()) for row in data]
        assert list(adler32_by_pieces(data, piece=piece)) == expected, piece


@needs_real_sample
@pytest.mark.real_data
def test_real_sample_decodes_like_libpng():
    files = [read_input(REAL_SAMPLE / name) for name in REAL_NAMES]
    decoded = reference_decode(files, shape=(1024, 1024))
    for k, data in enumerate(files):
        assert np.array_equal(decoded[k], libpng(data)), REAL_NAMES[k]
