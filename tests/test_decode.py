"""decode: header checks, mode rules, failures as messages, the lazy dask stack."""

from __future__ import annotations

import multiprocessing
import os
import struct
import tracemalloc
import zlib

import imageio.v3 as iio
import numpy as np
import pytest
from conftest import (
    REAL_NAMES,
    REAL_SAMPLE,
    make_bad_inputs,
    make_mode_inputs,
    needs_real_sample,
    png_bytes,
    running_as_root,
    structured_image,
    write_png,
)
from PIL import Image
from png_writer import chunk

from xray_scale.errors import DecodeError
from xray_scale.io.decode import decode_batch, decode_image, open_images, read_image_header, unpad


def test_every_bad_input_fails_with_its_own_message(tmp_path):
    expected = make_bad_inputs(tmp_path)
    for name, fragment in expected.items():
        result = decode_image(tmp_path / name, shape=(64, 64))
        assert not result.ok, name
        assert result.pixels is None
        assert fragment in result.error, (name, result.error)
        assert "\n" not in result.error


def test_missing_file_fails_with_a_message(tmp_path):
    result = decode_image(tmp_path / "gone.png", shape=(64, 64))
    assert result.error == "file not found"


def _decode_error_as_nobody(path, answer) -> None:
    os.setgid(65534)
    os.setuid(65534)
    answer.send(decode_image(path, shape=(64, 64)).error)


def test_unreadable_file_fails_with_permission_denied(tmp_path):
    path = write_png(tmp_path / "locked.png", structured_image(1))
    path.chmod(0)
    if not running_as_root():
        assert decode_image(path, shape=(64, 64)).error == "cannot read the file: permission denied"
        return
    # root reads anything: decode in a forked child that dropped to uid/gid 65534 (nobody).
    receive, send = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(
        target=_decode_error_as_nobody, args=(str(path), send)
    )
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert receive.recv() == "cannot read the file: permission denied"


def test_bomb_is_refused_from_the_header_alone(tmp_path):
    make_bad_inputs(tmp_path)
    tracemalloc.start()  # NumPy's buffers included
    try:
        result = decode_image(tmp_path / "bomb.png", shape=(64, 64))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # 900 Mpx would be 900 MB (measured: 7 kB)
    assert "900.0 Mpx, above the limit of 50.0 Mpx (input.max_pixels)" in result.error
    assert result.bit_depth == 8


def test_other_size_pads_when_asked_and_fails_otherwise(tmp_path):
    small = structured_image(3, shape=(32, 48))
    write_png(tmp_path / "small.png", small)
    assert "input.size_policy = 'pad'" in decode_image(tmp_path / "small.png", shape=(64, 64)).error
    padded = decode_image(tmp_path / "small.png", shape=(64, 64), size_policy="pad")
    assert padded.ok
    assert np.array_equal(padded.pixels[16:48, 8:56], small)
    assert padded.pixels.sum() == small.astype(np.int64).sum()
    assert padded.padded_from == (32, 48)
    assert np.array_equal(unpad(padded.pixels, padded), small)
    write_png(tmp_path / "full.png", structured_image(4))
    block, images = decode_batch(
        [str(tmp_path / "small.png"), str(tmp_path / "full.png")], shape=(64, 64), size_policy="pad"
    )
    assert [image.padded_from for image in images] == [(32, 48), None]
    assert np.array_equal(unpad(block[0], images[0]), small)
    assert np.array_equal(unpad(block[1], images[1]), structured_image(4))
    odd = structured_image(5, shape=(33, 47))  # odd margins: one more row below, column right
    write_png(tmp_path / "odd.png", odd)
    padded_odd = decode_image(tmp_path / "odd.png", shape=(64, 64), size_policy="pad")
    assert np.array_equal(padded_odd.pixels[15:48, 8:55], odd)
    assert np.array_equal(unpad(padded_odd.pixels, padded_odd), odd)
    for policy in ("pad", "fail"):
        big = decode_image(tmp_path / "small.png", shape=(16, 16), size_policy=policy)
        assert "a larger image cannot be padded: set input.size_policy = 'resize'" in big.error


def test_modes_follow_the_grayscale_rule(tmp_path):
    expected = make_mode_inputs(tmp_path)
    for name, (mode, bits, pixels) in expected.items():
        dtype = np.uint16 if bits == 16 else np.uint8
        result = decode_image(tmp_path / name, shape=(64, 64), dtype=dtype)
        assert result.ok, (name, result.error)
        assert (result.mode, result.bit_depth) == (mode, bits), name
        assert result.pixels.dtype == dtype
        assert np.array_equal(result.pixels, pixels), name


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_grayscale_files_decode_like_pillow_interlaced_or_not(tmp_path, dtype):
    """The OpenCV path (8/16-bit gray) gives Pillow's values, also for Adam7 files."""
    image = structured_image(21, shape=(61, 67), dtype=dtype)
    plain = write_png(tmp_path / "plain.png", image)
    adam7 = tmp_path / "adam7.png"
    adam7.write_bytes(_adam7_png(image))
    for path in (plain, adam7):
        result = decode_image(path, shape=(61, 67), dtype=dtype)
        assert result.ok, result.error
        assert result.mode == ("L" if dtype == np.uint8 else "I;16")
        with Image.open(path) as reference:
            assert np.array_equal(result.pixels, np.asarray(reference))


ADAM7_PASSES = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2)]
ADAM7_PASSES.append((1, 0, 2, 1))  # (first row, first column, row step, column step)


def _adam7_png(image: np.ndarray) -> bytes:
    """A grayscale ``image`` as an Adam7-interlaced PNG (Pillow cannot write one)."""
    height, width = image.shape
    wide = image.dtype == np.uint16
    raw = b""
    for top, left, row_step, column_step in ADAM7_PASSES:
        sub = image[top::row_step, left::column_step]
        if sub.size == 0:
            continue
        rows = sub.astype(">u2") if wide else sub
        raw += b"".join(b"\0" + row.tobytes() for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 16 if wide else 8, 0, 0, 0, 1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def test_transparent_gray_and_corrupt_streams_go_to_pillow(tmp_path):
    image = structured_image(22)
    Image.fromarray(image).save(tmp_path / "trns.png", transparency=7)
    result = decode_image(tmp_path / "trns.png", shape=(64, 64))
    assert (result.ok, result.mode) == (True, "L")
    assert np.array_equal(result.pixels, image)
    # Compressed data that does not inflate, with every CRC recomputed to be right.
    data = bytearray(png_bytes(image))
    start = data.index(b"IDAT") + 4
    length = struct.unpack(">I", data[start - 8 : start - 4])[0]
    data[start + 2 : start + 12] = bytes(10)
    crc = zlib.crc32(bytes(data[start - 4 : start + length]))
    data[start + length : start + length + 4] = struct.pack(">I", crc)
    (tmp_path / "inflate.png").write_bytes(bytes(data))
    result = decode_image(tmp_path / "inflate.png", shape=(64, 64))
    assert not result.ok and result.error.startswith("corrupt PNG: "), result.error


def test_rgb_with_different_channels_uses_itu_601_luma(tmp_path):
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    write_png(tmp_path / "colour.png", rgb)
    result = decode_image(tmp_path / "colour.png", shape=(64, 64))
    assert int(result.pixels[0, 0]) == round((299 * 200 + 587 * 100 + 114 * 50) / 1000)


def test_sixteen_bit_values_are_never_wrapped(tmp_path):
    wide = np.full((64, 64), 40000, np.uint16)
    wide[0, 0] = 65535
    write_png(tmp_path / "wide.png", wide)
    assert np.array_equal(
        decode_image(tmp_path / "wide.png", shape=(64, 64), dtype="uint16").pixels, wide
    )
    in_8bit_run = decode_image(tmp_path / "wide.png", shape=(64, 64), dtype="uint8")
    assert "16-bit image in a 8-bit run" in in_8bit_run.error


@needs_real_sample
@pytest.mark.real_data
def test_real_images_decode_exactly_like_imageio():
    for name in REAL_NAMES[:3]:
        result = decode_image(REAL_SAMPLE / name, shape=(1024, 1024))
        assert (result.mode, result.bit_depth) == ("L", 8)
        assert np.array_equal(result.pixels, iio.imread(REAL_SAMPLE / name))


def test_decode_batch_keeps_good_images_beside_bad_ones(tmp_path):
    make_bad_inputs(tmp_path)
    good = [write_png(tmp_path / f"g{k}.png", structured_image(k)) for k in range(2)]
    paths = [str(good[0]), str(tmp_path / "truncated.png"), str(good[1])]
    block, images = decode_batch(paths, shape=(64, 64))
    assert [image.ok for image in images] == [True, False, True]
    assert np.array_equal(block[0], structured_image(0))
    assert not block[1].any()
    assert np.array_equal(block[2], structured_image(1))


def test_read_image_header(tmp_path):
    write_png(tmp_path / "a.png", structured_image(0, shape=(40, 30)))
    header = read_image_header(tmp_path / "a.png")
    assert (header.height, header.width, header.bit_depth, header.colour_type) == (40, 30, 8, 0)
    (tmp_path / "b.png").write_bytes(b"GIF89a....")
    with pytest.raises(DecodeError, match="another image format"):
        read_image_header(tmp_path / "b.png")


def test_open_images_is_lazy_and_chunked_one_task_per_batch(tmp_path):
    paths = [write_png(tmp_path / f"{k:02d}.png", structured_image(k)) for k in range(10)]
    stack = open_images(paths, batch_size=4)
    assert stack.shape == (10, 64, 64) and stack.dtype == np.uint8
    assert stack.chunks[0] == (4, 4, 2)
    assert len(stack.__dask_graph__()) == 3
    computed = stack.compute(scheduler="threads")
    for k in range(10):
        assert np.array_equal(computed[k], structured_image(k))


def test_open_images_names_the_bad_file_or_zeroes_it(tmp_path):
    paths = [write_png(tmp_path / f"{k}.png", structured_image(k)) for k in range(3)]
    (tmp_path / "1.png").write_bytes(b"")
    with pytest.raises(DecodeError, match=r"1\.png: empty file"):
        open_images(paths, batch_size=2).compute(scheduler="sync")
    zeroed = open_images(paths, batch_size=2, on_error="zero").compute(scheduler="sync")
    assert not zeroed[1].any() and np.array_equal(zeroed[2], structured_image(2))


def test_open_images_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="paths is empty"):
        open_images([])
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        open_images([tmp_path / "x.png"], batch_size=0)


def test_crc_of_chunks_longer_than_one_crc_piece(tmp_path):
    # the CRC is computed in 4 KiB pieces (keeping the GIL): a long IDAT checks whole
    noise = np.random.default_rng(5).integers(0, 256, size=(256, 256), dtype=np.uint8)
    write_png(tmp_path / "noise.png", noise)
    data = bytearray((tmp_path / "noise.png").read_bytes())
    start = data.index(b"IDAT") + 4
    assert struct.unpack(">I", data[start - 8 : start - 4])[0] > 3 * 4096
    result = decode_image(tmp_path / "noise.png", shape=(256, 256))
    assert result.ok and np.array_equal(result.pixels, noise)
    data[start + 3 * 4096 - 100] ^= 0x01  # in the chunk's third piece
    (tmp_path / "flipped.png").write_bytes(bytes(data))
    result = decode_image(tmp_path / "flipped.png", shape=(256, 256))
    assert result.error.startswith("corrupt PNG: bad CRC in chunk IDAT"), result.error


def test_the_checksum_follows_the_file_content(tmp_path):
    image = structured_image(2)
    first = decode_image(write_png(tmp_path / "a.png", image), shape=(64, 64))
    again = decode_image(write_png(tmp_path / "b.png", image), shape=(64, 64))
    mirrored = decode_image(write_png(tmp_path / "c.png", image[:, ::-1]), shape=(64, 64))
    assert first.checksum == again.checksum != 0
    assert mirrored.checksum not in (0, first.checksum)
    (tmp_path / "d.png").write_bytes((tmp_path / "a.png").read_bytes()[:100])
    assert decode_image(tmp_path / "d.png", shape=(64, 64)).checksum == 0  # failed
    assert decode_image("synth:64/90000001_000.png", shape=(64, 64)).checksum == 0


def _with_image_data_cut(png: bytes, keep: float) -> bytes:
    """``png`` with its zlib stream re-made from the first ``keep`` of its inflated bytes.

    The stream then ends properly (Adler-32 right) but too soon, and every CRC is right.
    """
    chunks, position = [], 8
    while position < len(png):
        length, kind = struct.unpack_from(">I4s", png, position)
        chunks.append((kind, png[position + 8 : position + 8 + length]))
        position += 12 + length
    raw = zlib.decompress(b"".join(data for kind, data in chunks if kind == b"IDAT"))
    short = zlib.compress(raw[: int(len(raw) * keep)])
    body = b""
    for kind, data in chunks:
        if kind == b"IDAT":
            body += chunk(kind, short) if short else b""
            short = b""
        else:
            body += chunk(kind, data)
    return png[:8] + body


@pytest.mark.parametrize(
    "make",
    [
        lambda image: png_bytes(image),
        lambda image: png_bytes(image.astype(np.uint16) * 257),
        lambda image: png_bytes(np.stack([image] * 3, axis=-1)),
        lambda image: png_bytes(image, mode="P"),
        lambda image: _adam7_png(image),
    ],
    ids=["gray8", "gray16", "rgb", "palette", "interlaced"],
)
def test_image_data_ending_early_fails_instead_of_zero_rows(tmp_path, make):
    image = structured_image(31) | 1  # no zero pixel: zero rows would show
    complete = make(image)
    path = tmp_path / "short.png"
    path.write_bytes(_with_image_data_cut(complete, 1.0))
    whole = decode_image(path, shape=(64, 64), dtype=np.uint16)
    assert whole.ok, whole.error  # re-made but complete: still decodes
    path.write_bytes(_with_image_data_cut(complete, 0.6))
    result = decode_image(path, shape=(64, 64), dtype=np.uint16)
    assert not result.ok and result.pixels is None
    assert result.error.startswith("truncated PNG: the image data inflates to "), result.error
    assert "(the zlib stream ends early)" in result.error
