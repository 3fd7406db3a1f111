"""What every input format shares: the header it reads, the record of a decoded image, and
the checks of a header against a run, made before any pixel is decoded.

A leaf: the registry (:mod:`.registry`), each format's modules and the
format-independent decoder (:mod:`xray_scale.io.decode`) all build on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ...config import DEFAULT_MAX_PIXELS  # the one definition, with the config's other defaults
from ...errors import DecodeError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SIZE_POLICIES",
    "DecodedImage",
    "Header",
    "ImageHeader",
    "check_bit_depth",
    "check_header",
    "check_supported",
    "pad_centred",
    "unpad",
]


class Header(Protocol):
    """What the decoder needs of any format's header (a format may say more)."""

    width: int
    height: int
    bit_depth: int

    @property
    def unsupported(self) -> str:
        """Why no run decodes an image with this header, or ``""``."""


@dataclass(frozen=True)
class ImageHeader:
    """A header with nothing format-specific: size and bits per sample, always supported.

    What a generated phantom's path (``synth:``) says, and a simple format's
    header.
    """

    width: int
    height: int
    bit_depth: int

    @property
    def unsupported(self) -> str:
        """Always ``""``: every run may decode it."""
        return ""


SIZE_POLICIES = ("fail", "pad", "resize")
"""What a run does with an image of another size: fail it, pad a smaller one, or scale it to
fit and pad (:mod:`xray_scale.io.resize`)."""


@dataclass(frozen=True)
class DecodedImage:
    """One decoded image, or why it could not be decoded.

    Attributes
    ----------
    pixels : ndarray or None
        2-D uint8/uint16 array of the run's shape, None on failure.
    mode : str
        Pillow's mode of the file (``"L"``, ``"I;16"``, ``"RGB"``...), or ``""``.
    bit_depth : int
        Bits per sample in the file's header, or 0 if unknown.
    error : str
        One-line reason for the failure, ``""`` on success.
    padded_from : (int, int) or None
        The image's own (height, width) when it was smaller than the run and
        padded with zeros, centred (``input.size_policy = "pad"``); None when
        it was not padded. See :func:`unpad`.
    checksum : int
        CRC-32 of the file's chunk CRCs (it changes whenever the file's content
        does); 0 for a failed image or a generated phantom.
    original_size : (int, int) or None
        The image's own (height, width), before any resizing or padding; None
        when it failed. With ``input.size_policy = "resize"`` an image of another
        size was scaled (:mod:`xray_scale.io.resize`) and ``padded_from`` is the
        size it was scaled to.
    tags : dict or None
        What the format reads out of the file for the index beside the pixels
        (a DICOM file's :data:`xray_scale.io.formats.dicom.DICOM_TAGS`), or None.
    """

    pixels: np.ndarray | None
    mode: str = ""
    bit_depth: int = 0
    error: str = ""
    padded_from: tuple[int, int] | None = None
    checksum: int = 0
    original_size: tuple[int, int] | None = None
    tags: dict[str, str] | None = None

    @property
    def ok(self) -> bool:
        """True when the image decoded and can be processed."""
        return not self.error


def check_supported(header: Header, *, max_pixels: int) -> None:
    """Raise DecodeError, saying why, if no run could decode an image with this header.

    Too many pixels (``input.max_pixels``), or what the format says it cannot
    decode (``header.unsupported``: 16-bit colour for PNG).
    """
    pixels = header.width * header.height
    if pixels > max_pixels:
        raise DecodeError(
            f"refused before decoding: the header says {header.height}x{header.width} "
            f"(height x width) = {pixels / 1e6:.1f} Mpx, above the limit of "
            f"{max_pixels / 1e6:.1f} Mpx (input.max_pixels)"
        )
    if header.unsupported:
        raise DecodeError(header.unsupported)


def check_header(
    header: Header, *, shape: tuple[int, int], max_pixels: int, size_policy: str
) -> None:
    """Raise DecodeError, saying why, unless this run decodes an image with this header.

    :func:`check_supported`, then the size: the run's, or smaller with
    ``size_policy = "pad"``, or any with ``size_policy = "resize"``.
    """
    check_supported(header, max_pixels=max_pixels)
    height, width = shape
    same = (header.height, header.width) == (height, width)
    fits = header.height <= height and header.width <= width
    if not same and not (size_policy == "pad" and fits) and size_policy != "resize":
        hint = (
            "set input.size_policy = 'pad' to pad smaller images, or 'resize'"
            if fits
            else "a larger image cannot be padded: set input.size_policy = 'resize' (or, if "
            f"the run's size is wrong, input.size = [{header.height}, {header.width}])"
        )
        raise DecodeError(
            f"image is {header.height}x{header.width} (height x width) but the run's size is "
            f"{height}x{width}; {hint}"
        )


def check_bit_depth(header: Header, dtype: np.dtype) -> None:
    """Raise DecodeError if the file has more bits per sample than the run's ``dtype`` holds."""
    if header.bit_depth > dtype.itemsize * 8:
        raise DecodeError(
            f"{header.bit_depth}-bit image in a {dtype.itemsize * 8}-bit run: its values do "
            "not fit; set input.bit_depth = 16 or run 16-bit images separately"
        )


def _centred(inner: tuple[int, int], outer: tuple[int, int]) -> tuple[slice, slice]:
    """Where an ``inner``-sized image sits, centred, in an ``outer``-sized one."""
    top, left = (outer[0] - inner[0]) // 2, (outer[1] - inner[1]) // 2
    return slice(top, top + inner[0]), slice(left, left + inner[1])


def pad_centred(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    padded = np.zeros(shape, dtype=pixels.dtype)
    padded[_centred(pixels.shape, shape)] = pixels
    return padded


def unpad(pixels: np.ndarray, image: DecodedImage) -> np.ndarray:
    """The image's own pixels: ``pixels`` without the zeros its padding added.

    Parameters
    ----------
    pixels : ndarray
        The run-shaped 2-D array decoded for ``image`` (``image.pixels``, or
        its row of :func:`decode_batch`'s block).
    image : DecodedImage
        Its record, whose ``padded_from`` says how large the image itself is.

    Returns
    -------
    ndarray
        The centred ``image.padded_from`` region of ``pixels`` (a view), or
        ``pixels`` itself when the image was not padded.

    Examples
    --------
    >>> pixels = np.array([[0, 0, 0, 0], [0, 7, 9, 0], [0, 0, 0, 0]], dtype=np.uint8)
    >>> unpad(pixels, DecodedImage(None, "L", 8, padded_from=(1, 2)))
    array([[7, 9]], dtype=uint8)
    """
    if image.padded_from is None:
        return pixels
    return pixels[_centred(image.padded_from, pixels.shape)]
