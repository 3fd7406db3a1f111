"""png_chunks: the GPU decoder's CPU chunk walk gives the CPU decoder's statuses and messages."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from conftest import (
    REAL_NAMES,
    REAL_SAMPLE,
    make_bad_inputs,
    needs_real_sample,
    png_bytes,
    structured_image,
    write_png,
)
from PIL import Image
from png_writer import chunk, filtered_png

from xray_scale.errors import DecodeError
from xray_scale.io.decode import decode_image
from xray_scale.io.formats.png_chunks import (
    check_crcs,
    crc32_by_pieces,
    crc32_shift,
    walk_png,
)
from xray_scale.io.sources.reading import read_input


def walked(path, **run):
    """The walk, then the CRCs on the CPU: a layout, or the message of the first failure."""
    run.setdefault("shape", (64, 64))
    try:
        data = read_input(path)
        layout = walk_png(data, **run)
        check_crcs(data, layout.chunks[1:])
    except DecodeError as error:
        return str(error)
    return layout


def test_every_bad_input_gets_the_cpu_decoders_message(tmp_path):
    for name in make_bad_inputs(tmp_path):
        path = tmp_path / name
        if path.is_file() and path.read_bytes()[:1] not in (b"", b"\x89"):
            continue  # not a PNG: png_gpu hands it to the CPU decoder, which names the formats
        expected = decode_image(path, shape=(64, 64)).error
        assert expected, name
        assert walked(tmp_path / name) == expected, name


def _with_crc_flipped(data: bytes, kind: bytes) -> bytes:
    out = bytearray(data)
    start = out.index(kind) - 4
    length = struct.unpack_from(">I", out, start)[0]
    out[start + 8 + length] ^= 0x01
    return bytes(out)


def test_more_bad_files_get_the_cpu_decoders_message(tmp_path):
    image = structured_image(4)
    good = filtered_png(image, [4] * 64, idat_size=500)
    gamma = chunk(b"gAMA", struct.pack(">I", 45455))
    with_gamma = filtered_png(image, [1] * 64, idat_size=500, extra=gamma)
    cases = {
        "missing.png": None,
        "ihdr_crc.png": _with_crc_flipped(good, b"IHDR"),
        "early_crc_then_truncated.png": _with_crc_flipped(with_gamma, b"gAMA")[:-40],
        "early_crc_then_no_iend.png": _with_crc_flipped(with_gamma, b"gAMA")[:-12],
        "no_iend.png": good[:-12],
        "junk_tail.png": good[:-12] + b"1234567",
        "signature_only.png": good[:5],
        "header_only.png": good[:33],
        "idat_crc.png": _with_crc_flipped(good, b"IDAT"),
        "iend_crc.png": _with_crc_flipped(good, b"IEND"),
    }
    for name, data in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        expected = decode_image(tmp_path / name, shape=(64, 64)).error
        assert expected, name
        assert walked(tmp_path / name) == expected, name
    wide = write_png(tmp_path / "wide.png", structured_image(5, dtype=np.uint16))
    expected = decode_image(wide, shape=(64, 64), dtype=np.uint8).error
    assert "16-bit image in a 8-bit run" in expected
    assert walked(wide, dtype=np.uint8) == expected
    bomb = decode_image(tmp_path / "ihdr_crc.png", shape=(64, 64), max_pixels=10).error
    assert walked(tmp_path / "ihdr_crc.png", max_pixels=10) == bomb


def test_good_files_are_for_the_gpu_with_the_cpu_decoders_checksum(tmp_path):
    files = {
        "pillow8.png": png_bytes(structured_image(1)),
        "pillow16.png": png_bytes(structured_image(2, dtype=np.uint16)),
        "paeth_small_idats.png": filtered_png(structured_image(3), [4] * 64, idat_size=100),
        "mixed16.png": filtered_png(
            structured_image(4, dtype=np.uint16), [k % 5 for k in range(64)]
        ),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        dtype = np.uint16 if "16" in name else np.uint8
        layout = walked(tmp_path / name, dtype=dtype)
        assert not isinstance(layout, str), (name, layout)
        assert layout.gpu_reason == "", name
        reference = decode_image(tmp_path / name, shape=(64, 64), dtype=dtype)
        assert reference.ok and layout.checksum == reference.checksum, name
        stream = layout.zlib_stream(data)
        bits = 16 if "16" in name else 8
        assert len(zlib.decompress(stream)) == layout.raw_size == 64 * (1 + 64 * bits // 8)
    # an 8-bit file in a 16-bit run keeps its values: the GPU path writes it into uint16
    eight = walked(tmp_path / "pillow8.png", dtype=np.uint16)
    assert eight.gpu_reason == ""


def _patched_header(data: bytes, **fields) -> bytes:
    width, height, depth, colour, compression, method, interlace = struct.unpack_from(
        ">IIBBBBB", data, 16
    )
    values = dict(
        width=width,
        height=height,
        depth=depth,
        colour=colour,
        compression=compression,
        method=method,
        interlace=interlace,
    )
    values.update(fields)
    header = struct.pack(">IIBBBBB", *values.values())
    return data[:8] + chunk(b"IHDR", header) + data[33:]


def test_files_the_gpu_does_not_cover_say_why(tmp_path):
    gray = structured_image(6)
    plain = filtered_png(gray, [2] * 64)
    rgb = np.stack([gray] * 3, axis=-1)
    transparent = tmp_path / "trns.png"
    Image.fromarray(gray).save(transparent, transparency=7)
    stream = zlib.compress(b"\0" * 65 * 64)
    split = filtered_png(gray, [0] * 64)
    idat_end = split.index(b"IEND") - 4
    cases = {
        "rgb.png": (png_bytes(rgb), "colour type 2"),
        "palette.png": (png_bytes(gray, "P"), "colour type 3"),
        "interlaced.png": (_patched_header(plain, interlace=1), "interlaced"),
        "method.png": (_patched_header(plain, method=1), "unknown compression or filter method"),
        "trns.png": (transparent.read_bytes(), "tRNS"),
        "no_idat.png": (plain[:33] + chunk(b"IEND", b""), "no IDAT chunk"),
        "apart.png": (
            split[:idat_end] + chunk(b"tEXt", b"a\0b") + chunk(b"IDAT", b"") + split[idat_end:],
            "IDAT chunks not consecutive",
        ),
        "dictionary.png": (
            plain[:33] + chunk(b"IDAT", bytes([0x78, 0xBB]) + stream[2:]) + chunk(b"IEND", b""),
            "not a plain zlib stream",
        ),
        "split_header.png": (
            plain[:33]
            + chunk(b"IDAT", stream[:1])
            + chunk(b"IDAT", stream[1:])
            + chunk(b"IEND", b""),
            "zlib header or Adler-32 split",
        ),
    }
    for name, (data, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        layout = walked(tmp_path / name)
        assert not isinstance(layout, str), (name, layout)
        assert reason in layout.gpu_reason, (name, layout.gpu_reason)
    write_png(tmp_path / "small.png", structured_image(7, shape=(32, 48)))
    padded = walked(tmp_path / "small.png", size_policy="pad")
    assert "another size" in padded.gpu_reason


def test_crc_by_pieces_equals_zlib():
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, 10_000, dtype=np.uint8).tobytes()
    starts, lengths = [0, 17, 5000, 9999, 10_000], [10_000, 4096, 1, 1, 0]
    kinds = [b"IDAT", b"IDAT", b"tEXt", b"gAMA", b"IEND"]
    seeds = [zlib.crc32(kind) for kind in kinds]
    expected = [
        zlib.crc32(kind + data[s : s + n])
        for kind, s, n in zip(kinds, starts, lengths, strict=True)
    ]
    for piece in (1, 7, 1024, 20_000):
        assert list(crc32_by_pieces(data, starts, lengths, seeds, piece=piece)) == expected, piece
    assert crc32_shift(zlib.crc32(data[:3]), 9997) ^ zlib.crc32(data[3:]) == zlib.crc32(data)


def test_a_bad_crc_is_found_by_pieces_in_the_chunk_it_is_in(tmp_path):
    noise = np.random.default_rng(2).integers(0, 256, (128, 128), dtype=np.uint8)
    data = bytearray(filtered_png(noise, [0] * 128, idat_size=5000))
    layout = walk_png(bytes(data), shape=(128, 128))
    second = layout.chunks[layout.idat[1]]
    data[second.data_start + 3000] ^= 0x10
    sums = crc32_by_pieces(
        bytes(data),
        [c.data_start for c in layout.chunks],
        [c.length for c in layout.chunks],
        [zlib.crc32(c.kind) for c in layout.chunks],
    )
    bad = [i for i, c in enumerate(layout.chunks) if sums[i] != c.crc]
    assert bad == [layout.idat[1]]
    (tmp_path / "flipped.png").write_bytes(bytes(data))
    message = decode_image(tmp_path / "flipped.png", shape=(128, 128)).error
    assert layout.chunks[bad[0]].bad_crc_message() == message


@needs_real_sample
@pytest.mark.real_data
def test_real_sample_is_for_the_gpu_and_its_crcs_check_by_pieces():
    for name in REAL_NAMES:
        data = read_input(REAL_SAMPLE / name)
        layout = walk_png(data, shape=(1024, 1024))
        assert layout.gpu_reason == "", name
        assert layout.checksum == decode_image(REAL_SAMPLE / name, shape=(1024, 1024)).checksum
        sums = crc32_by_pieces(
            data,
            [c.data_start for c in layout.chunks],
            [c.length for c in layout.chunks],
            [zlib.crc32(c.kind) for c in layout.chunks],
        )
        assert list(sums) == [c.crc for c in layout.chunks], name


def test_walk_refuses_before_reading_chunks(tmp_path):
    with pytest.raises(DecodeError, match="empty file"):
        walk_png(b"", shape=(64, 64))
