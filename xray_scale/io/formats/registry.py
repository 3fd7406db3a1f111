"""The input formats: one :class:`ImageFormat` per format, and the lookups everything else asks.

Every question of "is it an image, which format, what header" is answered here:
discovering inputs keeps the names :func:`is_image_name` accepts (folders, globs,
archives, URLs), the decoder picks the format by the file's leading bytes
(:func:`identify`) and reads its header with the format's own ``read_header``,
and messages that list what is supported say :func:`suffix_patterns` or
:func:`format_names`. PNG (:mod:`xray_scale.io.formats.png`) is the first
entry.

Adding a format is one module that builds an :class:`ImageFormat`, one line in
:data:`BUILTIN` (or :func:`register` for a format that lives outside the
package), and tests; docs/architecture.md works through an example.

Nothing here imports a decoder's libraries: a format's module imports them
when it decodes, so that listing inputs or reading a config stays light.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import DecodeError
from . import dicom, jpeg, png
from .image import DEFAULT_MAX_PIXELS, Header, ImageHeader
from .signatures import describe_foreign

__all__ = [
    "BUILTIN",
    "DEFAULT_MAX_PIXELS",
    "DICOM",
    "JPEG",
    "PNG",
    "Header",
    "ImageFormat",
    "ImageHeader",
    "added_formats",
    "ensure_registered",
    "format_for_name",
    "format_names",
    "format_of",
    "formats",
    "header_size",
    "identify",
    "image_suffixes",
    "is_image_name",
    "register",
    "suffix_patterns",
    "unregister",
]


@dataclass(frozen=True)
class ImageFormat:
    """One input format: how to recognise it, read its header, check and decode it.

    Attributes
    ----------
    name : str
        Short lower-case name (``"png"``); messages show it upper-case.
    suffixes : tuple of str
        File name endings, lower case with the dot (``(".png",)``); a name
        ending in one of them, in any case, is an input of this format.
    magic : bytes
        The bytes every file of the format holds at ``magic_offset``.
    header_size : int
        Leading bytes ``read_header`` needs.
    read_header : callable
        ``read_header(start: bytes) -> Header``: check the file's first
        ``header_size`` bytes (fewer if the file is shorter) and return its
        header, or raise :class:`~xray_scale.errors.DecodeError` saying why
        (empty, truncated, corrupt).
    checksum : callable
        ``checksum(data: bytes) -> int``: check the whole file's integrity
        (complete, not corrupt) and return a 32-bit number that changes
        whenever its content does (``index/checksum``), or raise
        DecodeError. Called before ``decode``.
    decode : callable
        ``decode(data: bytes, header, **options) -> (mode, pixels)``: the file's
        mode (Pillow's names: ``"L"``, ``"I;16"``, ``"RGB"``...) and its pixels as
        one 2-D uint8 or uint16 array by the grayscale rule
        (:mod:`xray_scale.io.decode`), or raise DecodeError; an error with a
        ``mode`` attribute records that mode for the failed image. ``options``
        are the run's for this format (``{"voi": "lut"}`` for DICOM, from
        ``input.dicom_voi``); a format may return a third item, ``{name: text}``
        read out of the file for the index (DICOM's tags).
    gpu_decoder : str or None
        The module of the format's GPU batch decoder, imported only when
        asked (:meth:`load_gpu_decoder`; CuPy is optional): it offers
        ``check_usable()`` and ``decode_batch_gpu(paths, *, shape, dtype,
        max_pixels, size_policy, contents=None, stream=None)``. None: the
        format is always decoded on the CPU.
    magic_offset : int
        Where ``magic`` sits: 0 (at the start, as PNG's and JPEG's), or after a
        preamble of any content (DICOM's 128 bytes).
    """

    name: str
    suffixes: tuple[str, ...]
    magic: bytes
    header_size: int
    read_header: Callable[[bytes], Header]
    checksum: Callable[[bytes], int]
    decode: Callable[[bytes, Any], tuple[str, np.ndarray]]
    gpu_decoder: str | None = None
    magic_offset: int = 0

    def __post_init__(self):
        if not self.name or self.name != self.name.lower():
            raise ValueError(f"a format's name is lower case and not empty, got {self.name!r}")
        if not self.magic or not self.suffixes:
            raise ValueError(f"format {self.name!r} needs magic bytes and at least one suffix")
        for suffix in self.suffixes:
            if not suffix.startswith(".") or suffix != suffix.lower():
                raise ValueError(f"format {self.name!r}: suffix {suffix!r} is not like '.png'")

    def recognises(self, start: bytes, *, truncated: bool = False) -> bool:
        """Whether a file's leading bytes hold this format's magic bytes at their offset.

        With ``truncated``, a file that ends inside the magic bytes but agrees with
        them so far counts too (only where the magic is at the start: any short
        file could be a preamble).
        """
        found = bytes(start[self.magic_offset : self.magic_offset + len(self.magic)])
        if found == self.magic:
            return True
        short = len(start) < self.magic_offset + len(self.magic)
        return truncated and short and self.magic_offset == 0 and self.magic.startswith(found)

    @property
    def label(self) -> str:
        """The name as messages show it (``"PNG"``)."""
        return self.name.upper()

    def load_gpu_decoder(self):
        """The module of the GPU decoder (see ``gpu_decoder``), or None if the format has none."""
        return None if self.gpu_decoder is None else importlib.import_module(self.gpu_decoder)


PNG = ImageFormat(
    name="png",
    suffixes=(".png",),
    magic=png.SIGNATURE,
    header_size=png.HEADER_SIZE,
    read_header=png.parse_png_header,
    checksum=png.checksum,
    decode=png.decode,
    gpu_decoder="xray_scale.io.formats.png_gpu",
)
"""PNG: :mod:`xray_scale.io.formats.png`, on a GPU :mod:`xray_scale.io.formats.png_gpu`."""

JPEG = ImageFormat(
    name="jpeg",
    suffixes=jpeg.JPEG_SUFFIXES,
    magic=jpeg.JPEG_MAGIC,
    header_size=jpeg.HEADER_SIZE,
    read_header=jpeg.parse_jpeg_header,
    checksum=jpeg.checksum,
    decode=jpeg.decode,
)
"""JPEG (CheXpert, MIMIC-CXR-JPG): :mod:`xray_scale.io.formats.jpeg`, libjpeg-turbo to gray."""

DICOM = ImageFormat(
    name="dicom",
    suffixes=dicom.DICOM_SUFFIXES,
    magic=dicom.DICOM_MAGIC,
    magic_offset=dicom.DICOM_MAGIC_OFFSET,
    header_size=dicom.HEADER_SIZE,
    read_header=dicom.read_dicom_header,
    checksum=dicom.checksum,
    decode=dicom.decode,
)
"""DICOM (RSNA, SIIM-ACR, VinDr-CXR, MIMIC-CXR): :mod:`xray_scale.io.formats.dicom`; pydicom
is imported when a file is read (the ``dicom`` extra)."""

BUILTIN: tuple[ImageFormat, ...] = (PNG, JPEG, DICOM)
"""The formats the package ships, in the order they are tried."""

_FORMATS: list[ImageFormat] = list(BUILTIN)


def formats() -> tuple[ImageFormat, ...]:
    """Every registered format, in the order they are tried."""
    return tuple(_FORMATS)


def register(image_format: ImageFormat) -> None:
    """Add a format to the registry (after the others).

    Raises
    ------
    ValueError
        If its name, a suffix or its magic bytes clash with a registered format's.
    """
    for known in _FORMATS:
        clash = (
            known.name == image_format.name
            or set(known.suffixes) & set(image_format.suffixes)
            or known.magic_offset == image_format.magic_offset
            and (
                known.magic.startswith(image_format.magic)
                or image_format.magic.startswith(known.magic)
            )
        )
        if clash:
            raise ValueError(
                f"format {image_format.name!r} clashes with the registered {known.name!r} "
                "(same name, a shared suffix, or magic bytes one starts the other with)"
            )
    _FORMATS.append(image_format)


def added_formats() -> tuple[ImageFormat, ...]:
    """The formats :func:`register` added in this process, which are not built in.

    A run hands them to its tasks (``BatchSpec.formats``), so that worker
    processes, which import only the built-in ones, decode them too.
    """
    return tuple(image_format for image_format in _FORMATS if image_format not in BUILTIN)


def ensure_registered(image_formats: tuple[ImageFormat, ...]) -> None:
    """Register each of ``image_formats`` that this process lacks (by name).

    A task's first step in a worker process: its run's :func:`added_formats`.
    """
    known = {image_format.name for image_format in _FORMATS}
    for image_format in image_formats:
        if image_format.name not in known:
            register(image_format)


def unregister(name: str) -> None:
    """Remove a format added by :func:`register`; the built-in ones stay.

    Raises
    ------
    ValueError
        If no such format was registered, or it is built in.
    """
    for known in _FORMATS:
        if known.name == name and known not in BUILTIN:
            _FORMATS.remove(known)
            return
    raise ValueError(f"no registered format {name!r} to remove (built-in formats stay)")


def image_suffixes() -> tuple[str, ...]:
    """Every registered suffix, lower case with the dot, in registry order."""
    return tuple(s for f in _FORMATS for s in f.suffixes)


def is_image_name(name: str) -> bool:
    """Whether a file, member or URL name ends in a registered suffix, any case.

    Examples
    --------
    >>> [is_image_name(n) for n in ("images/00000011_000.PNG", "a/b.txt", "x.png.gz")]
    [True, False, False]
    """
    return name.lower().endswith(image_suffixes())


def format_for_name(name: str) -> ImageFormat | None:
    """The format a name's suffix says, or None."""
    lower = name.lower()
    return next((f for f in _FORMATS if lower.endswith(f.suffixes)), None)


def suffix_patterns() -> str:
    """The registered suffixes as messages list them: ``"*.png"``, ``"*.png or *.xyz"``."""
    return " or ".join(f"*{s}" for s in image_suffixes())


def format_names() -> str:
    """The registered formats as messages name them: ``"PNG"``, ``"PNG or XYZ"``."""
    return " or ".join(f.label for f in _FORMATS)


def header_size() -> int:
    """Leading bytes to read so that any registered format's header can be read."""
    return max(f.header_size for f in _FORMATS)


def format_of(start: bytes) -> ImageFormat | None:
    """The format whose magic bytes ``start`` begins with, or None (also for a bare prefix)."""
    return next((f for f in _FORMATS if f.recognises(start)), None)


def identify(start: bytes) -> ImageFormat:
    """The format of a file from its leading bytes, or DecodeError saying what it is instead.

    A file shorter than a format's magic bytes but equal to their start is
    that format's (its ``read_header`` then says it is truncated).

    Raises
    ------
    DecodeError
        Empty, or no registered format's magic bytes (naming the file's
        own format when it is a common one).
    """
    if not start:
        raise DecodeError("empty file (0 bytes)")
    for image_format in _FORMATS:
        if image_format.recognises(start, truncated=True):
            return image_format
    signature = "the PNG signature" if len(_FORMATS) == 1 else "any of their signatures"
    raise DecodeError(describe_foreign(start, expected=format_names(), signature=signature))
