"""JPEG decoding (io/formats/jpeg.py) against files libjpeg-turbo (Pillow) really wrote."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from conftest import structured_image
from PIL import Image

from xray_scale.errors import DecodeError
from xray_scale.io.formats.jpeg import JPEG_MAGIC, decode_jpeg, parse_jpeg_header

MAX = 50_000_000


def jpeg_bytes(image: Image.Image, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", **options)
    return out.getvalue()


def libjpeg_turbo_gray(data: bytes) -> np.ndarray:
    """libjpeg-turbo's own grayscale output, through Pillow (``draft`` asks the decoder for L)."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("L", image.size)
        assert image.mode == "L"
        return np.asarray(image)


@pytest.mark.parametrize("quality", [50, 75, 90, 100])
@pytest.mark.parametrize("shape", [(64, 64), (301, 217), (1024, 768)])
def test_gray_jpegs_equal_libjpeg_turbo_at_each_quality_and_size(quality, shape):
    pixels = structured_image(quality + shape[0], shape=shape)
    data = jpeg_bytes(Image.fromarray(pixels), quality=quality)
    header, decoded = decode_jpeg(data, max_pixels=MAX)
    assert (header.height, header.width, header.components, header.mode) == (*shape, 1, "L")
    assert decoded.dtype == np.uint8 and decoded.shape == shape
    assert np.array_equal(decoded, libjpeg_turbo_gray(data))
    if quality == 100:  # lossy, but close at the top quality
        assert np.abs(decoded.astype(int) - pixels).mean() < 1.5


def test_progressive_and_subsampled_colour_jpegs_equal_libjpeg_turbo():
    gray = structured_image(3, shape=(120, 90))
    rgb = Image.merge(
        "RGB", [Image.fromarray(gray), Image.fromarray(gray // 2), Image.fromarray(255 - gray)]
    )
    for options in ({"progressive": True}, {"subsampling": 2}, {"subsampling": 0, "quality": 95}):
        data = jpeg_bytes(rgb, **options)
        header, decoded = decode_jpeg(data, max_pixels=MAX)
        assert header.mode == "RGB"
        assert np.array_equal(decoded, libjpeg_turbo_gray(data)), options


def test_a_colour_xray_with_equal_channels_becomes_its_gray_channel():
    """The luma of R = G = B is that value: the existing rule (ITU-R 601-2), no RGB round trip."""
    gray = structured_image(5, shape=(96, 80))
    data = jpeg_bytes(Image.fromarray(gray).convert("RGB"), quality=100, subsampling=0)
    _, decoded = decode_jpeg(data, max_pixels=MAX)
    with Image.open(io.BytesIO(data)) as image:
        via_rgb = np.asarray(image.convert("L"))  # Pillow's convert("L") of the decoded RGB
    assert np.abs(decoded.astype(int) - via_rgb).max() <= 1
    assert np.abs(decoded.astype(int) - gray).mean() < 1.0


def test_header_is_read_without_decoding_and_after_other_segments():
    data = jpeg_bytes(Image.fromarray(structured_image(1, shape=(40, 30))), quality=80)
    assert data.startswith(JPEG_MAGIC)
    # an APP1 segment (as EXIF writes) before the frame header
    app1 = b"\xff\xe1" + struct.pack(">H", 8) + b"Exif\x00\x00"
    header = parse_jpeg_header(data[:2] + app1 + data[2:])
    assert (header.height, header.width, header.precision, header.process) == (
        40,
        30,
        8,
        "baseline",
    )


def refused(data: bytes, *, max_pixels: int = MAX) -> str:
    with pytest.raises(DecodeError) as caught:
        decode_jpeg(data, max_pixels=max_pixels)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_bad_jpegs_each_give_a_one_line_reason():
    data = jpeg_bytes(Image.fromarray(structured_image(2, shape=(200, 150))), quality=90)
    assert refused(b"") == "empty file (0 bytes)"
    assert refused(b"\x89PNG\r\n\x1a\n....").startswith("not a JPEG")
    assert refused(data[:30]).startswith("truncated JPEG: the file ends")
    assert "no end-of-image marker" in refused(data[: len(data) // 2])
    truncated_scan = data[: len(data) // 2] + b"\xff\xd9"
    assert refused(truncated_scan).startswith("truncated JPEG")
    corrupt = data[:700] + b"\xff" * 40 + data[740:]
    assert refused(corrupt).startswith("corrupt JPEG")
    assert "above the limit" in refused(data, max_pixels=1000)
    cmyk = jpeg_bytes(Image.new("CMYK", (16, 16), (0, 10, 20, 30)))
    assert refused(cmyk).startswith("CMYK JPEG (4 components) is not supported")


def test_twelve_bit_and_lossless_jpegs_are_refused_before_decoding():
    def frame(marker: int, precision: int) -> bytes:
        sof = (
            bytes([0xFF, marker]) + struct.pack(">HBHHB", 11, precision, 8, 8, 1) + b"\x01\x11\x00"
        )
        return b"\xff\xd8" + sof + b"\xff\xd9"

    assert refused(frame(0xC1, 12)).startswith("12-bit JPEG is not supported")
    assert refused(frame(0xC3, 8)).startswith("lossless JPEG is not supported")
    assert refused(frame(0xC9, 8)).startswith("arithmetic sequential JPEG is not supported")


def test_a_frame_header_past_the_first_64_kib_is_named_as_such():
    from xray_scale.io.formats.jpeg import HEADER_SIZE

    pixels = structured_image(6, shape=(32, 32))
    data = jpeg_bytes(Image.fromarray(pixels), quality=90)
    app2 = b"\xff\xe2" + struct.pack(">H", 65_000) + bytes(64_998)  # an ICC-sized segment
    padded = data[:2] + app2 * 2 + data[2:]
    with pytest.raises(DecodeError, match="frame header not in the first 64 KiB"):
        parse_jpeg_header(padded[:HEADER_SIZE])
    header, decoded = decode_jpeg(padded, max_pixels=MAX)  # the whole file: found
    assert (header.height, header.width) == (32, 32)
    assert np.array_equal(decoded, libjpeg_turbo_gray(data))
