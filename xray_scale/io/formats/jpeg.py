"""JPEG bytes to one 2-D grayscale uint8 array, with every failure turned into a message.

CheXpert and MIMIC-CXR-JPG ship their radiographs as 8-bit JPEGs (baseline or
progressive, gray or YCbCr colour). This module reads the frame header without
decoding, then decodes with libjpeg-turbo straight to grayscale.

Grayscale rule: a one-component JPEG is decoded as it is. A YCbCr (three
component) JPEG is decoded to its luma channel only, by libjpeg-turbo's own
``JCS_YCbCr -> JCS_GRAYSCALE`` path, with no RGB round trip. JFIF defines that
luma as ``Y = 0.299 R + 0.587 G + 0.114 B``: the same ITU-R 601-2 rule
:mod:`xray_scale.io.decode` applies to a colour PNG (Pillow's
``convert("L")``), computed by the encoder before compression instead of by
us after it. A colour X-ray whose three channels are equal has its gray
values in ``Y`` and neutral chroma, so nothing is lost. ``mode`` is recorded
as ``"L"`` or ``"RGB"`` (Pillow's names), ``bit_depth`` as 8.

Refused with a reason, before any pixel is decoded: an empty file, bytes that
are not a JPEG, a file that ends before its frame header, 12- or 16-bit
samples (lossless or extended JPEG: save them as 16-bit PNG or DICOM), CMYK
or other 2- or 4-component images, and headers above ``max_pixels``. A file
whose scan ends early (no end-of-image marker, or one the decoder reports as
premature) fails as truncated: libjpeg-turbo would otherwise fill the rest
with gray and only warn.

The EXIF orientation tag is not applied: radiographs are stored upright, and
the pixels are taken as the file holds them (as Pillow's ``Image.open`` does).

Decoder: simplejpeg (libjpeg-turbo, ``colorspace="GRAY"``, accurate integer
DCT, warnings raised as errors). Measured against PyTurboJPEG and OpenCV on
the same files in ``benchmarks/bench_formats.py`` (see ``docs/datasets.md``):
all three give exactly the pixels of libjpeg-turbo's own grayscale output
(Pillow with ``draft("L")``), simplejpeg fastest. It releases the GIL.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import google_crc32c
import numpy as np

from ...errors import DecodeError

__all__ = [
    "HEADER_SIZE",
    "JPEG_MAGIC",
    "JPEG_SUFFIXES",
    "JpegHeader",
    "checksum",
    "decode",
    "decode_jpeg",
    "parse_jpeg_header",
]

JPEG_MAGIC = b"\xff\xd8\xff"
"""The first three bytes of every JPEG (SOI marker, then the next marker's 0xFF)."""

JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")
"""File name suffixes of JPEG files (lower case)."""

HEADER_SIZE = 65_536
"""Leading bytes searched for the frame header: EXIF, ICC and other APPn segments come
before it, each at most 64 KiB."""

_SOF_MARKERS = {
    0xC0: "baseline",
    0xC1: "extended sequential",
    0xC2: "progressive",
    0xC3: "lossless",
    0xC5: "differential sequential",
    0xC6: "differential progressive",
    0xC7: "differential lossless",
    0xC9: "arithmetic sequential",
    0xCA: "arithmetic progressive",
    0xCB: "arithmetic lossless",
    0xCD: "differential arithmetic sequential",
    0xCE: "differential arithmetic progressive",
    0xCF: "differential arithmetic lossless",
}
_DECODABLE = {0xC0, 0xC1, 0xC2}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and RSTn carry no length


@dataclass(frozen=True)
class JpegHeader:
    """What a JPEG's frame header (SOFn) says.

    Attributes
    ----------
    width, height : int
        Pixels per line and lines.
    components : int
        1 (gray), 3 (YCbCr or RGB) or 4 (CMYK).
    precision : int
        Bits per sample: 8 for every baseline JPEG.
    process : str
        ``"baseline"``, ``"progressive"``...
    marker : int
        The SOF marker's second byte (0xC0 for baseline).
    """

    width: int
    height: int
    components: int
    precision: int
    process: str
    marker: int

    @property
    def mode(self) -> str:
        """Pillow's name for the image's mode: ``"L"``, ``"RGB"`` or ``"CMYK"``."""
        return {1: "L", 3: "RGB", 4: "CMYK"}.get(self.components, f"{self.components}-channel")

    @property
    def bit_depth(self) -> int:
        """Bits per sample (the frame's precision)."""
        return self.precision

    @property
    def unsupported(self) -> str:
        """Why no run decodes this JPEG, or ``""`` (:func:`check_jpeg_header` without a limit)."""
        try:
            check_jpeg_header(self, max_pixels=self.width * self.height)
        except DecodeError as error:
            return str(error)
        return ""


def parse_jpeg_header(data: bytes) -> JpegHeader:
    """Walk a JPEG's markers up to its frame header and read it.

    Parameters
    ----------
    data : bytes
        The file's bytes (the start is enough: the walk stops at the SOF).

    Returns
    -------
    JpegHeader

    Raises
    ------
    DecodeError
        Empty, not a JPEG, truncated before the frame header, or a corrupt
        marker segment.

    Examples
    --------
    >>> sof = b"\\xff\\xc0" + struct.pack(">HBHHB", 11, 8, 3, 5, 1) + b"\\x01\\x11\\x00"
    >>> parse_jpeg_header(b"\\xff\\xd8" + sof)
    JpegHeader(width=5, height=3, components=1, precision=8, process='baseline', marker=192)
    """
    if not data:
        raise DecodeError("empty file (0 bytes)")
    if not data.startswith(b"\xff\xd8"):
        raise DecodeError(f"not a JPEG: the file starts with {bytes(data[:8])!r}, not FF D8")
    position = 2
    while True:
        while position < len(data) and data[position] == 0xFF:
            position += 1  # markers may be padded with any number of 0xFF bytes
        if position >= len(data):
            if len(data) >= HEADER_SIZE:
                raise DecodeError(
                    f"JPEG frame header not in the first {HEADER_SIZE // 1024} KiB: its "
                    "metadata segments are too long"
                )
            raise DecodeError(
                f"truncated JPEG: the file ends at byte {len(data)} before its frame header"
            )
        marker = data[position]
        if data[position - 1] != 0xFF or marker == 0x00:
            raise DecodeError(f"corrupt JPEG: no marker at byte {position - 1}")
        position += 1
        if marker in _STANDALONE:
            continue
        if marker in (0xD8, 0xD9, 0xDA):
            what = {0xD8: "a second start-of-image", 0xD9: "the end", 0xDA: "image data"}[marker]
            raise DecodeError(f"corrupt JPEG: {what} before any frame header")
        if position + 2 > len(data):
            raise DecodeError(f"truncated JPEG: the file ends inside a marker at byte {len(data)}")
        (length,) = struct.unpack_from(">H", data, position)
        if length < 2:
            raise DecodeError(f"corrupt JPEG: marker segment of length {length} at byte {position}")
        if marker in _SOF_MARKERS:
            if position + 8 > len(data):
                raise DecodeError("truncated JPEG: the file ends inside its frame header")
            precision, height, width, components = struct.unpack_from(">BHHB", data, position + 2)
            return JpegHeader(width, height, components, precision, _SOF_MARKERS[marker], marker)
        position += length


def check_jpeg_header(header: JpegHeader, *, max_pixels: int) -> None:
    """Raise DecodeError, saying why, unless :func:`decode_jpeg` can decode this image.

    Examples
    --------
    >>> check_jpeg_header(JpegHeader(8, 8, 1, 12, "extended sequential", 0xC1), max_pixels=100)
    Traceback (most recent call last):
    ...
    xray_scale.errors.DecodeError: 12-bit JPEG is not supported: ...
    """
    if header.width == 0 or header.height == 0:
        raise DecodeError(
            f"JPEG frame header says {header.height}x{header.width} (height x width): "
            "an image with no pixels"
        )
    pixels = header.width * header.height
    if pixels > max_pixels:
        raise DecodeError(
            f"refused before decoding: the header says {header.height}x{header.width} "
            f"(height x width) = {pixels / 1e6:.1f} Mpx, above the limit of "
            f"{max_pixels / 1e6:.1f} Mpx (input.max_pixels)"
        )
    if header.precision != 8:
        raise DecodeError(
            f"{header.precision}-bit JPEG is not supported: libjpeg-turbo decodes 8-bit "
            "samples; convert it to 16-bit PNG or DICOM"
        )
    if header.marker not in _DECODABLE:
        raise DecodeError(
            f"{header.process} JPEG is not supported: convert it to PNG (baseline and "
            "progressive JPEG are)"
        )
    if header.components not in (1, 3):
        raise DecodeError(
            f"{header.mode} JPEG ({header.components} components) is not supported: "
            "save it as grayscale or RGB"
        )


def decode_jpeg(data: bytes, *, max_pixels: int) -> tuple[JpegHeader, np.ndarray]:
    """Decode a JPEG's bytes straight to a 2-D uint8 grayscale array.

    Parameters
    ----------
    data : bytes
        The whole file.
    max_pixels : int
        Refuse, before decoding, a header with more pixels.

    Returns
    -------
    header : JpegHeader
    pixels : ndarray
        ``(height, width)`` uint8: the gray channel, or the luma of a colour
        JPEG (module docstring).

    Raises
    ------
    DecodeError
        One line: why the file cannot be used (see the module docstring).
    """
    header = parse_jpeg_header(data)
    check_jpeg_header(header, max_pixels=max_pixels)
    checksum(data)
    return header, _decode_gray(data, header)


def _decode_gray(data: bytes, header: JpegHeader) -> np.ndarray:
    import simplejpeg

    try:
        pixels = simplejpeg.decode_jpeg(
            data, colorspace="GRAY", fastdct=False, fastupsample=False, strict=True
        )
    except (ValueError, RuntimeError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        kind = "truncated JPEG" if "premature" in message.lower() else "corrupt JPEG"
        raise DecodeError(f"{kind}: {message}") from None
    pixels = pixels.reshape(pixels.shape[0], pixels.shape[1])
    if pixels.shape != (header.height, header.width):
        raise DecodeError(
            f"corrupt JPEG: decoded {pixels.shape[0]}x{pixels.shape[1]}, the header says "
            f"{header.height}x{header.width}"
        )
    return pixels


def checksum(data: bytes) -> int:
    """Check that the file ends with its end-of-image marker; the CRC-32C of its bytes.

    The format's ``checksum`` in the registry. A JPEG carries no checksum of
    its own, so the whole file's CRC-32C (in hardware) is the ``index/checksum`` (it changes
    whenever the file does).

    Raises
    ------
    DecodeError
        Truncated: no end-of-image marker (FF D9) at the end.
    """
    if bytes(data[-2:]) != b"\xff\xd9":
        raise DecodeError(f"truncated JPEG: no end-of-image marker (FF D9) after {len(data)} bytes")
    return google_crc32c.value(bytes(data))


def decode(data: bytes, header: JpegHeader) -> tuple[str, np.ndarray]:
    """The format's ``decode`` in the registry: the file's mode and its gray pixels.

    ``data`` has passed :func:`checksum` and ``header`` the run's checks.
    """
    return header.mode, _decode_gray(data, header)
