"""DICOM bytes to one 2-D uint16 grayscale array and the few tags a study needs.

RSNA Pneumonia, SIIM-ACR, VinDr-CXR and MIMIC-CXR ship DICOM files: one
radiograph each, MONOCHROME1 or MONOCHROME2, 8 to 16 bits stored,
uncompressed or in the JPEG baseline, JPEG-LS or JPEG 2000 transfer syntaxes,
with a rescale and often VOI windows or LUTs. pydicom reads them; pylibjpeg's
libjpeg and openjpeg plugins decode the compressed syntaxes (the ``dicom``
extra: ``pip install "xray-scale[dicom]"``).

From stored values to the pixels a run analyses, in the standard's order
(DICOM PS3.4 N.2):

1. **Modality LUT.** The Modality LUT Sequence when present, else
   ``RescaleSlope`` and ``RescaleIntercept``: exact integer arithmetic when
   both are whole numbers (1 and 0, 1 and -1024), else float64 rounded to the
   nearest integer.
2. **VOI**, chosen by ``input.dicom_voi``:

   - ``"lut"`` (the default): the first VOI LUT of the file's VOI LUT
     Sequence; without one, its first window (centre and width, with its
     VOI LUT Function: LINEAR, LINEAR_EXACT or SIGMOID); without either,
     nothing. This is what a viewer shows, and what TorchXRayVision's and
     the VinDr-CXR baselines' readers apply (pydicom's ``apply_voi_lut``).
   - ``"window"``: the first window first, then the VOI LUT.
   - ``"none"``: the modality values as they are.

   A window maps to ``0 .. 2**BitsStored - 1`` (the image keeps its own
   dynamic range), rounded to integers; a VOI LUT's entries are kept as they
   are (``0 .. 2**n - 1`` for its n bits per entry).
3. **MONOCHROME1 to MONOCHROME2.** A MONOCHROME1 image shows its lowest value
   as white; it is inverted, ``top - value``, where ``top`` is the top of
   the range of step 2 (``2**BitsStored - 1``, the LUT's ``2**n - 1``, or
   the rescaled top of the stored range), so that every stored image is
   MONOCHROME2: bright is dense, as in every PNG and JPEG dataset.
   ``index/mode`` keeps the file's photometric interpretation.

The result is uint16, whatever the bits stored (8 to 16): values never
rescaled to another range beyond what the file's own VOI says, and never
wrapped. A result outside ``0 .. 65535`` (a rescale to negative values with
``dicom_voi = "none"``) fails the image and says to choose a VOI.

Refused with a one-line reason: bytes that are not DICOM, a file without
pixel data (a structured report, a presentation state: the SOP class is
named), more than one frame, more than one sample per pixel, bits stored
outside 8..16, a transfer syntax no installed decoder handles, pixel data
that cannot be decoded.

Tags: only :data:`DICOM_TAGS` are ever read out of a file into a record.
Names, birth dates, addresses, institutions, physicians, accession numbers and
every other tag stay in the file: no record, message or store ever holds them.
Messages name the file's structure (transfer syntax, SOP class, sizes), never
a tag's value.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field, replace

import google_crc32c
import numpy as np

from ...errors import DecodeError

__all__ = [
    "DICOM_MAGIC",
    "DICOM_MAGIC_OFFSET",
    "DICOM_SUFFIXES",
    "HEADER_SIZE",
    "DICOM_TAGS",
    "VOI_CHOICES",
    "DicomHeader",
    "DicomImage",
    "checksum",
    "decode",
    "decode_dicom",
    "is_dicom",
    "read_dicom_header",
]

DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
"""File name suffixes of DICOM files (lower case); Part 10 files are also recognised by
their ``DICM`` magic at byte 128."""

DICOM_TAGS = (
    "PatientID",
    "StudyInstanceUID",
    "ViewPosition",
    "PatientSex",
    "PatientAge",
    "Manufacturer",
    "BitsStored",
    "PhotometricInterpretation",
)
"""The only tags read out of a file: stored as ``index/<tag>`` columns. PatientID and the
study UID are the datasets' own pseudonymous ids (they are de-identified at release)."""

VOI_CHOICES = ("lut", "window", "none")
"""``input.dicom_voi``: prefer the file's VOI LUT, prefer its window, or apply neither."""

DICOM_MAGIC_OFFSET = 128
"""A DICOM Part 10 file's preamble: 128 bytes of any content (zeros when unused, a TIFF
header in DICOM-TIFF hybrids), before its magic."""

DICOM_MAGIC = b"DICM"
"""How the registry recognises a DICOM Part 10 file: ``DICM`` after the preamble, whatever
the preamble holds."""

HEADER_SIZE = 65_536
"""Leading bytes from which the header (every element before the pixel data) is read."""


def is_dicom(start: bytes) -> bool:
    """Whether a file's first 132 bytes are a DICOM Part 10 preamble and ``DICM`` magic.

    Examples
    --------
    >>> is_dicom(bytes(128) + b"DICM"), is_dicom(b"\\x89PNG\\r\\n\\x1a\\n")
    (True, False)
    """
    return bytes(start[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4]) == DICOM_MAGIC


@dataclass(frozen=True)
class DicomHeader:
    """What a DICOM file says about its pixels, read without decoding them.

    Attributes
    ----------
    width, height : int
        Columns and rows (0 without pixel data).
    bits_stored : int
        Bits stored per sample (0 without pixel data).
    photometric : str
        ``MONOCHROME1``, ``MONOCHROME2``, ``RGB``...
    transfer_syntax : str
        The transfer syntax's name (``"JPEG 2000 Image Compression (Lossless Only)"``).
    frames : int
        Number of frames (1 for a single image).
    samples : int
        Samples per pixel.
    sop_class : str
        The SOP class's name (``"Digital X-Ray Image Storage - For Presentation"``).
    has_pixels : bool
        Whether the file holds Pixel Data.
    """

    width: int
    height: int
    bits_stored: int
    photometric: str
    transfer_syntax: str
    frames: int
    samples: int
    sop_class: str
    has_pixels: bool

    @property
    def bit_depth(self) -> int:
        """16: every DICOM image is decoded to uint16, whatever its bits stored (8 to 16)."""
        return 16

    @property
    def unsupported(self) -> str:
        """Why no run decodes this file, or ``""`` (:func:`check_dicom_header` without a limit)."""
        try:
            check_dicom_header(self, max_pixels=max(1, self.width * self.height))
        except DecodeError as error:
            return str(error)
        return ""


@dataclass(frozen=True)
class DicomImage:
    """A decoded DICOM image.

    Attributes
    ----------
    header : DicomHeader
    pixels : ndarray
        ``(height, width)`` uint16, MONOCHROME2, after the modality LUT and the VOI.
    tags : dict
        ``{tag: text}`` for :data:`DICOM_TAGS` only, ``""`` when absent.
    voi : str
        What was applied: ``"lut"``, ``"window"`` or ``"none"``.
    """

    header: DicomHeader
    pixels: np.ndarray
    tags: dict[str, str] = field(default_factory=dict)
    voi: str = "none"


def _pydicom():
    try:
        import pydicom
    except ImportError:
        raise DecodeError("DICOM input needs pydicom: pip install 'xray-scale[dicom]'") from None
    return pydicom


def _read(data: bytes, *, pixels: bool):
    pydicom = _pydicom()
    from pydicom.errors import InvalidDicomError

    if not data:
        raise DecodeError("empty file (0 bytes)")
    if not is_dicom(data[:132]):
        raise DecodeError(
            "not a DICOM file: no 'DICM' magic at byte 128 (a DICOM Part 10 file starts with "
            "a 128-byte preamble and DICM)"
        )
    try:
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=not pixels)
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OSError) as error:
        kind = "truncated" if isinstance(error, EOFError) else "corrupt"
        raise DecodeError(f"{kind} DICOM: the file's data elements cannot be read") from None


def _header(ds) -> DicomHeader:
    syntax = ds.file_meta.get("TransferSyntaxUID")
    sop = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID")
    return DicomHeader(
        width=int(ds.get("Columns") or 0),
        height=int(ds.get("Rows") or 0),
        bits_stored=int(ds.get("BitsStored") or 0),
        photometric=str(ds.get("PhotometricInterpretation", "")),
        transfer_syntax=syntax.name if syntax else "(no transfer syntax)",
        frames=int(ds.get("NumberOfFrames") or 1),
        samples=int(ds.get("SamplesPerPixel") or 1),
        sop_class=sop.name if sop else "(no SOP class)",
        has_pixels="PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds,
    )


def read_dicom_header(data: bytes) -> DicomHeader:
    """Read a DICOM file's header (everything before its pixel data).

    The format's ``read_header`` in the registry, given the file's first
    :data:`HEADER_SIZE` bytes (or all of them).

    Parameters
    ----------
    data : bytes
        The file's bytes (the pixel data is skipped, not decoded).

    Raises
    ------
    DecodeError
        Empty, not DICOM, unreadable, or a header longer than :data:`HEADER_SIZE`.
    """
    header = _header(_read(data, pixels=False))
    if not header.has_pixels and (b"\xe0\x7f\x10\x00" in data or b"\x7f\xe0\x00\x10" in data):
        header = replace(header, has_pixels=True)  # reading stopped before its Pixel Data tag
    if not header.height and len(data) >= HEADER_SIZE:
        raise DecodeError(
            f"DICOM image size not in the first {HEADER_SIZE // 1024} KiB: its header is "
            "longer than xray-scale reads"
        )
    return header


def checksum(data: bytes) -> int:
    """The format's ``checksum`` in the registry: the CRC-32C of the file's bytes.

    DICOM carries no checksum of its own; the pixel data's completeness is
    checked when it is decoded.
    """
    if not is_dicom(data[:132]):
        raise DecodeError("truncated DICOM: the file ends inside its preamble")
    return google_crc32c.value(bytes(data))


def decode(data: bytes, header: DicomHeader, *, voi: str = "lut"):
    """The format's ``decode`` in the registry: mode, pixels and the index's tags.

    Returns
    -------
    mode : str
        The file's photometric interpretation (``MONOCHROME1``, ``MONOCHROME2``).
    pixels : ndarray
        uint16, MONOCHROME2 (:func:`decode_dicom`).
    tags : dict
        :data:`DICOM_TAGS` as text.
    """
    image = decode_dicom(data, max_pixels=max(1, header.width * header.height), voi=voi)
    return header.photometric, image.pixels, image.tags


def check_dicom_header(header: DicomHeader, *, max_pixels: int) -> None:
    """Raise DecodeError, saying why, unless :func:`decode_dicom` can decode this image."""
    if not header.has_pixels and (header.height or "Image Storage" in header.sop_class):
        raise DecodeError(
            f"DICOM image without pixel data ({header.sop_class}): the file is truncated "
            "or holds no pixels"
        )
    if not header.has_pixels and header.sop_class == "(no SOP class)":
        raise DecodeError("truncated DICOM: the file ends inside its header")
    if not header.has_pixels:
        raise DecodeError(
            f"DICOM without pixel data ({header.sop_class}): not an image; remove it from "
            "the inputs"
        )
    if header.frames != 1:
        raise DecodeError(
            f"multi-frame DICOM ({header.frames} frames) is not supported: one radiograph "
            "per file; split the frames into files"
        )
    if header.samples != 1:
        raise DecodeError(
            f"{header.photometric} DICOM ({header.samples} samples per pixel) is not "
            "supported: only grayscale (MONOCHROME1, MONOCHROME2) is"
        )
    if header.photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DecodeError(
            f"{header.photometric or 'no'} photometric interpretation is not supported: "
            "only MONOCHROME1 and MONOCHROME2 are"
        )
    if not 8 <= header.bits_stored <= 16:
        raise DecodeError(f"{header.bits_stored} bits stored is not supported: 8 to 16 bits are")
    pixels = header.width * header.height
    if pixels == 0 or pixels > max_pixels:
        raise DecodeError(
            f"refused before decoding: the header says {header.height}x{header.width} "
            f"(height x width) = {pixels / 1e6:.1f} Mpx, "
            + ("no pixels" if pixels == 0 else f"above the limit of {max_pixels / 1e6:.1f} Mpx")
            + " (input.max_pixels)"
        )


def _check_decodable(ds, header: DicomHeader) -> None:
    from pydicom.pixels import get_decoder

    uid = ds.file_meta.get("TransferSyntaxUID")
    try:
        decoder = get_decoder(uid)
    except (NotImplementedError, ValueError, TypeError):
        raise DecodeError(
            f"unsupported DICOM transfer syntax: {header.transfer_syntax} ({uid}); "
            "convert the file to an uncompressed, JPEG, JPEG-LS or JPEG 2000 syntax"
        ) from None
    if not decoder.is_available:
        raise DecodeError(
            f"no decoder installed for the DICOM transfer syntax {header.transfer_syntax}: "
            "pip install 'xray-scale[dicom]' (pylibjpeg's libjpeg and openjpeg plugins)"
        )


def _whole(value) -> int | None:
    number = float(value)
    return int(number) if math.isfinite(number) and number == int(number) else None


def _modality(stored: np.ndarray, ds) -> tuple[np.ndarray, float, float]:
    """Step 1: the modality values, and the modality range of the stored range."""
    from pydicom.pixels import apply_modality_lut

    bits = int(ds.BitsStored)
    signed = int(ds.get("PixelRepresentation") or 0) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    if ds.get("ModalityLUTSequence"):
        values = apply_modality_lut(stored, ds).astype(np.int64)
        depth = int(ds.ModalityLUTSequence[0].LUTDescriptor[2])
        return values, 0.0, float(2**depth - 1)
    slope, intercept = ds.get("RescaleSlope", 1), ds.get("RescaleIntercept", 0)
    slope, intercept = (
        (1 if slope in (None, "") else slope),
        (0 if intercept in (None, "") else intercept),
    )
    whole_slope, whole_intercept = _whole(slope), _whole(intercept)
    if (whole_slope, whole_intercept) == (1, 0):  # no rescale (most radiographs): as stored
        return stored, float(low), float(high)
    if whole_slope is not None and whole_intercept is not None:
        values = stored.astype(np.int64) * whole_slope + whole_intercept
    else:
        values = np.rint(stored.astype(np.float64) * float(slope) + float(intercept))
        values = values.astype(np.int64)
    ends = sorted((low * float(slope) + float(intercept), high * float(slope) + float(intercept)))
    return values, ends[0], ends[1]


def _window(values: np.ndarray, ds, top: int) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2: the first window, onto ``0 .. top``, rounded."""
    centre = float(_first(ds.WindowCenter))
    width = float(_first(ds.WindowWidth))
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    x = values.astype(np.float64)
    if function == "SIGMOID":
        y = top / (1.0 + np.exp(-4.0 * (x - centre) / width))
    elif function == "LINEAR_EXACT":
        y = np.clip((x - centre) / width + 0.5, 0.0, 1.0) * top
    else:  # LINEAR: width >= 1
        if width < 1:
            raise DecodeError(f"DICOM window width {width:g} is below 1 (LINEAR needs >= 1)")
        scaled = (x - (centre - 0.5)) / max(width - 1.0, 1e-12) + 0.5
        y = np.clip(scaled, 0.0, 1.0) * top
    return np.rint(y).astype(np.int64)


def _first(value):
    """The first of a multi-valued element (``WindowCenter`` may hold several windows)."""
    try:
        return value[0]
    except (TypeError, IndexError, KeyError):
        return value


def _voi(values: np.ndarray, ds, choice: str, modality_range) -> tuple[np.ndarray, int, str]:
    """Step 2: the VOI by ``choice``; returns the values, the top of their range, what was done."""
    from pydicom.pixels import apply_voi

    has_lut = bool(ds.get("VOILUTSequence"))
    has_window = "WindowCenter" in ds and "WindowWidth" in ds and ds.WindowWidth not in ("", None)
    order = {"lut": ("lut", "window"), "window": ("window", "lut"), "none": ()}[choice]
    for kind in order:
        if kind == "lut" and has_lut:
            depth = int(ds.VOILUTSequence[0].LUTDescriptor[2])
            return apply_voi(values, ds).astype(np.int64), 2**depth - 1, "lut"
        if kind == "window" and has_window:
            top = 2 ** int(ds.BitsStored) - 1
            return _window(values, ds, top), top, "window"
    return values, int(round(modality_range[1])), "none"


def decode_dicom(data: bytes, *, max_pixels: int, voi: str = "lut") -> DicomImage:
    """Decode a single-frame grayscale DICOM to a MONOCHROME2 uint16 image.

    Parameters
    ----------
    data : bytes
        The whole file.
    max_pixels : int
        Refuse, before decoding, a header with more pixels.
    voi : {"lut", "window", "none"}
        ``input.dicom_voi`` (module docstring); ``"lut"`` by default.

    Returns
    -------
    DicomImage

    Raises
    ------
    DecodeError
        One line, naming no tag's value: why the file cannot be used.
    """
    if voi not in VOI_CHOICES:
        raise ValueError(f"voi must be one of {VOI_CHOICES}, got {voi!r}")
    ds = _read(data, pixels=True)
    header = _header(ds)
    check_dicom_header(header, max_pixels=max_pixels)
    _check_decodable(ds, header)
    try:
        stored = ds.pixel_array
    except Exception as error:  # noqa: BLE001 - any plugin's failure is this image's
        # pydicom's and its plugins' messages speak of bytes and codecs, never of tag values
        reason = (str(error).strip().splitlines() or [type(error).__name__])[-1]
        reason = reason.split(" - ")[0].split(": ")[-1]
        kind = "truncated" if "less than expected" in reason else "corrupt"
        raise DecodeError(f"{kind} DICOM pixel data ({header.transfer_syntax}): {reason}") from None
    if stored.shape != (header.height, header.width):
        raise DecodeError(
            f"corrupt DICOM pixel data: decoded {stored.shape}, the header says "
            f"{header.height}x{header.width}"
        )
    values, low, high = _modality(stored, ds)
    values, top, applied = _voi(values, ds, voi, (low, high))
    if header.photometric == "MONOCHROME1":
        values = _inverted(values, top)
    tags = {name: _tag_text(ds.get(name)) for name in DICOM_TAGS}
    return DicomImage(header, _as_uint16(values), tags, applied)


def _inverted(values: np.ndarray, top: int) -> np.ndarray:
    """``top - values``: in uint16 when every value is in ``0 .. top <= 65535``, exactly."""
    if values.dtype in (np.uint8, np.uint16) and top <= 65535 and int(values.max()) <= top:
        return np.subtract(np.uint16(top), values, dtype=np.uint16)
    return top - values.astype(np.int64)


def _as_uint16(values: np.ndarray) -> np.ndarray:
    """The values as uint16, or DecodeError when any is outside ``0 .. 65535`` (none wraps)."""
    if values.dtype in (np.uint8, np.uint16):
        return values.astype(np.uint16, copy=False)
    smallest, largest = int(values.min()), int(values.max())
    if smallest < 0 or largest > 65535:
        raise DecodeError(
            f"DICOM values after the rescale span {smallest}..{largest}, outside 0..65535 "
            "(uint16); set input.dicom_voi = 'lut' or 'window' to apply the file's window"
        )
    return values.astype(np.uint16)


def _tag_text(value) -> str:
    return "" if value is None else str(value).strip()
