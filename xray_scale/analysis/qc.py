"""Dataset quality control: the images a study must look at before it trusts them.

Pure NumPy functions of one image (no I/O). Per image, :func:`image_qc` looks
only at cheap things: the image's border rows and columns (for a frame), its
256-bin histogram (the one the run's statistics already count), a 32 x 32
block-sum downscale (for the display polarity, the perceptual hash and the
detail signature), every 8th row (for the fine detail) and one CRC-32C of the
pixels. It costs about 0.6 ms on a 1024 x 1024 film. The run-level functions
(:mod:`.qc_groups`, :mod:`.outliers`) group exact and near duplicates by the
stored hashes and score outliers from the stored features.

The flags and their rules (thresholds in :class:`QCConfig`):

- ``framed``: uniform rows and columns at the image's minimum (black) or maximum
  (white), scanned in from each edge, cover more than ``frame_fraction`` of the area.
- ``blank``: the content (inside any frame) spans at most ``blank_range`` of the
  dtype's range between its 1st and 99th percentiles.
- ``low_contrast``: not blank, and that span is at most ``low_contrast_range``.
- ``saturated``: more than ``saturated_fraction`` of the content's pixels are at
  the dtype's maximum (clipped white).
- ``inverted``: not blank, and the content's layout correlates with the layout
  of an ordinary frontal chest film (:func:`.qc_features.chest_correlation`)
  below ``-inverted_margin``: a chest film shown as a negative.
- ``duplicate_group``: images with identical pixels share a group (equal
  :func:`pixel_hash`).
- ``near_duplicate_group``: images whose perceptual hashes differ in at most
  ``near_duplicate_distance`` of 64 bits and whose detail signatures correlate
  at ``near_duplicate_correlation`` or more share a group (linked transitively).
- ``outlier``: the image's robust distance from the run's typical image over
  a few features (:mod:`.outliers`) is above ``outlier_threshold``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import google_crc32c
import numpy as np
import scipy.fft

from ..config import QCConfig
from ..records import QC_FLAGS, QC_RECORD_FIELDS, SIGNATURE_SIZE
from .qc_features import block_sums, chest_correlation, concentration, fine_detail
from .stats import histogram256

__all__ = [
    "QC_FLAGS",
    "QC_RECORD_FIELDS",
    "SIGNATURE_SIZE",
    "PIXEL_HASHES",
    "QCConfig",
    "ImageQC",
    "batch_qc",
    "find_frame",
    "image_qc",
    "perceptual_hash",
    "pixel_hash",
    "signature",
]

_DETAIL_SIGMA = 2.0
"""Blur (in downscale pixels) removed from the downscale to leave its detail (:func:`signature`)."""
_HASH_SIDE = 8
"""The perceptual hash keeps the ``8 x 8`` lowest frequencies of the downscale's DCT: 64 bits."""
PIXEL_HASHES = ("crc32c", "sha1")
"""What :func:`pixel_hash` digests: ``"crc32c"``, the CRC-32C of the pixels with their
histogram (the default); ``"sha1"``, the pixels themselves (stores made before
``qc/outlier`` existed keep it, so that their duplicate groups stay right when resumed)."""


@dataclass(frozen=True)
class ImageQC:
    """The QC of one image.

    Attributes
    ----------
    framed, inverted, blank, low_contrast, saturated : bool
        The flags (rules in the module docstring).
    frame_fraction : float
        Fraction of the area the detected frame covers (0 for none or a blank image).
    concentration, chest_correlation, fine_detail : float
        The outlier features (:mod:`.qc_features`): of the whole image's
        histogram, of its content's layout and of its content's finest detail.
    pixel_hash : int
        64 bits identifying the pixels (:func:`pixel_hash`): equal for identical images.
    perceptual_hash : int
        64-bit DCT hash of the content's downscale (:func:`perceptual_hash`).
    signature : ndarray
        1,024 int8 values: the downscale's detail (:func:`signature`).
    """

    framed: bool
    inverted: bool
    blank: bool
    low_contrast: bool
    saturated: bool
    frame_fraction: float
    concentration: float
    chest_correlation: float
    fine_detail: float
    pixel_hash: int
    perceptual_hash: int
    signature: np.ndarray


def _kinds(low: np.ndarray, high: np.ndarray, dark: float, bright: float) -> np.ndarray:
    """Per row (or column): 1 when uniform dark, 2 when uniform bright, else 0."""
    kinds = np.zeros(low.shape, dtype=np.int8)
    kinds[high <= dark] = 1
    kinds[low >= bright] = 2
    return kinds


def _uniform_run(lines: np.ndarray, dark: float, bright: float) -> int:
    """How many leading rows of ``lines`` share the first row's uniform kind (0 when it has none).

    The first row alone, then chunks of growing size (16, 32, 64, ...) until
    a row differs: an image without a frame, or with a thin one, costs a few
    rows, not the whole image.
    """
    first = lines[0]
    kind = _kinds(np.array([first.min()]), np.array([first.max()]), dark, bright)[0]
    if kind == 0:
        return 0
    done, step = 1, 16
    while done < lines.shape[0]:
        chunk = lines[done : done + step]
        kinds = _kinds(chunk.min(axis=1), chunk.max(axis=1), dark, bright)
        different = np.flatnonzero(kinds != kind)
        if different.size:
            return done + int(different[0])
        done, step = done + kinds.size, step * 2
    return int(lines.shape[0])


def find_frame(
    pixels: np.ndarray, *, tolerance: float = 0.04, extremes: tuple[float, float] | None = None
) -> tuple[slice, slice]:
    """Where the content is, inside a uniform black or white frame.

    From each edge, rows (columns) are peeled while they are uniform within
    ``tolerance`` of the image's own range (max - min) at the image's minimum
    (dark, when that minimum is in the lower half of the dtype's range) or
    maximum (bright, upper half).
    Peeling repeats on the remaining rectangle until nothing changes, so a frame
    black on top and white on the sides is found too.

    Parameters
    ----------
    pixels : ndarray
        2-D uint8 or uint16 image.
    tolerance : float
        Fraction of the image's range.
    extremes : (float, float), optional
        The image's minimum and maximum when already known (from its histogram).

    Returns
    -------
    (slice, slice)
        Rows and columns of the content; empty when the whole image is uniform.

    Examples
    --------
    >>> image = np.zeros((10, 10), dtype=np.uint8)
    >>> image[2:8, 3:9] = np.arange(36, dtype=np.uint8).reshape(6, 6) * 5 + 20
    >>> find_frame(image)
    (slice(2, 8, None), slice(3, 9, None))
    """
    top_level = float(np.iinfo(pixels.dtype).max)
    low, high = extremes if extremes is not None else cv2.minMaxLoc(pixels)[:2]
    margin = tolerance * (high - low)
    dark = low + margin if low <= top_level / 2 else -1.0
    bright = high - margin if high >= top_level / 2 else top_level + 1.0
    edges = [pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]
    if not any(_kinds(np.array([e.min()]), np.array([e.max()]), dark, bright)[0] for e in edges):
        return slice(0, pixels.shape[0]), slice(0, pixels.shape[1])  # no edge is uniform
    top, bottom, left, right = 0, pixels.shape[0], 0, pixels.shape[1]
    for _ in range(8):  # peeling converges in one or two rounds on real frames
        inner = pixels[top:bottom, left:right]
        if inner.size == 0:
            break
        height, width = inner.shape
        cut_top = _uniform_run(inner, dark, bright)
        cut_bottom = _uniform_run(inner[::-1], dark, bright) if cut_top < height else 0
        cut_left = _uniform_run(inner.T, dark, bright)
        cut_right = _uniform_run(inner.T[::-1], dark, bright) if cut_left < width else 0
        if not (cut_top or cut_bottom or cut_left or cut_right):
            break
        top, bottom = top + cut_top, bottom - cut_bottom
        left, right = left + cut_left, right - cut_right
        if top >= bottom or left >= right:
            return slice(0, 0), slice(0, 0)
    return slice(top, bottom), slice(left, right)


def _span(histogram: np.ndarray) -> float:
    """1st..99th percentile span of a 256-bin histogram, as a fraction of the range."""
    cumulative = np.cumsum(histogram)
    total = cumulative[-1]
    low = int(np.searchsorted(cumulative, 0.01 * total, side="left"))
    high = int(np.searchsorted(cumulative, 0.99 * total, side="left"))
    return (high - low) / 255.0


def _content_histogram(
    pixels: np.ndarray, histogram: np.ndarray, rows: slice, cols: slice
) -> np.ndarray:
    """The 256-bin histogram of ``pixels[rows, cols]``, from the whole image's when cheaper."""
    height, width = pixels.shape
    inner = (rows.stop - rows.start) * (cols.stop - cols.start)
    if inner == pixels.size:
        return histogram
    if inner * 2 <= pixels.size:
        return histogram256(pixels[rows, cols])
    frame = [pixels[: rows.start], pixels[rows.stop :]]
    frame += [pixels[rows, : cols.start], pixels[rows, cols.stop :]]
    counts = histogram.astype(np.int64, copy=True)
    for part in frame:
        if part.size:
            counts -= histogram256(part)
    return counts


def pixel_hash(
    pixels: np.ndarray, histogram: np.ndarray | None = None, *, kind: str = "crc32c"
) -> int:
    """64 bits identifying an image's pixels, as an unsigned int: equal for identical images.

    ``kind="crc32c"`` (the default): the SHA-1 of the shape, the dtype, the
    CRC-32C of the pixels (``google_crc32c``, in hardware: ~0.04 ms for a
    1024 x 1024 film, where the SHA-1 of the pixels takes ~0.55 ms) and their
    256-bin histogram (the run counts it anyway). Identical pixels, however
    encoded, give equal hashes. Different pixels give equal hashes only when
    their histograms are equal and their CRCs collide: a CRC-32C changes with
    every change of up to 32 consecutive bits and with any other change except
    by a chance of 2**-32, and two different films practically never have
    equal histograms. ``kind="sha1"``: the SHA-1 of the shape, dtype and pixels
    (the hash of stores made before ``qc/outlier`` existed).

    Examples
    --------
    >>> a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    >>> pixel_hash(a) == pixel_hash(a.copy()), pixel_hash(a) == pixel_hash(a.reshape(3, 2))
    (True, False)
    >>> pixel_hash(a) == pixel_hash(a, kind="sha1")
    False
    """
    digest = hashlib.sha1(f"{pixels.shape}{pixels.dtype.str}".encode())
    contiguous = np.ascontiguousarray(pixels)
    if kind == "crc32c":
        counts = histogram256(pixels) if histogram is None else histogram
        frozen = contiguous.view()  # google_crc32c reads read-only buffers only
        frozen.flags.writeable = False
        digest.update(google_crc32c.value(frozen).to_bytes(4, "little"))
        digest.update(np.asarray(counts, dtype="<i8").tobytes())
    elif kind == "sha1":
        digest.update(contiguous.data)
    else:
        raise ValueError(f"kind must be one of {PIXEL_HASHES}, got {kind!r}")
    return int.from_bytes(digest.digest()[:8], "little")


def perceptual_hash(small: np.ndarray) -> int:
    """A 64-bit DCT hash (pHash) of a ``32 x 32`` downscale.

    Bit ``i`` is set when the ``i``-th of the 8 x 8 lowest DCT-II frequencies
    is above their median, the rule of ``imagehash.phash`` (which computes the
    same bits from its own Pillow resize). Re-encoding, small shifts, a 5 %
    rescale and mild noise change a few bits; another film changes many.

    Examples
    --------
    >>> small = np.add.outer(np.arange(32.0), np.arange(32.0))
    >>> perceptual_hash(small) == perceptual_hash(small * 2 + 10)
    True
    """
    frequencies = scipy.fft.dct(scipy.fft.dct(small, axis=0), axis=1)
    low = frequencies[:_HASH_SIDE, :_HASH_SIDE].ravel()
    bits = low > np.median(low)
    return int(np.packbits(bits, bitorder="little").view("<u8")[0])


def signature(small: np.ndarray) -> np.ndarray:
    """The fine detail of a ``32 x 32`` downscale, for telling near duplicates from look-alikes.

    The downscale minus its Gaussian blur (sigma 2 pixels: the detail, without
    the shape every chest film shares), zero mean, scaled so that its largest
    magnitude is 127, as int8. Two copies of one film (re-encoded, +-1 noise,
    through JPEG, shifted by up to 3 pixels of 1024, rescaled 5 %) correlate
    above ~0.97; two real films below ~0.75, but two phantoms of different
    patients up to ~0.96 (their anatomy varies little).

    Examples
    --------
    >>> small = np.random.default_rng(0).normal(size=(32, 32))
    >>> s = signature(small)
    >>> s.dtype, s.shape, int(np.abs(s).max())
    (dtype('int8'), (1024,), 127)
    """
    detail = small - cv2.GaussianBlur(small, (0, 0), _DETAIL_SIGMA)
    detail -= detail.mean()
    largest = float(np.abs(detail).max())
    if largest == 0:
        return np.zeros(small.size, dtype=np.int8)
    return np.rint(detail.ravel() * (127.0 / largest)).astype(np.int8)


def image_qc(
    pixels: np.ndarray,
    histogram: np.ndarray | None = None,
    *,
    config: QCConfig | None = None,
    hash_kind: str = "crc32c",
) -> ImageQC:
    """The QC flags, hashes and outlier features of one image.

    Parameters
    ----------
    pixels : ndarray
        The image's own 2-D uint8 or uint16 pixels: for an image the run padded,
        its unpadded region (:func:`xray_scale.io.decode.unpad`), never the padding.
    histogram : ndarray, optional
        Its :func:`xray_scale.analysis.stats.histogram256` (the run's statistics count
        it anyway); computed when not given.
    config : QCConfig, optional
        Thresholds; the defaults when not given.
    hash_kind : {"crc32c", "sha1"}
        What :func:`pixel_hash` digests.

    Returns
    -------
    ImageQC

    Examples
    --------
    >>> qc = image_qc(np.full((64, 64), 7, dtype=np.uint8))
    >>> qc.blank, qc.framed, qc.low_contrast, qc.concentration
    (True, False, False, 1.0)
    """
    config = config or QCConfig()
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.dtype not in (np.uint8, np.uint16) or pixels.size == 0:
        raise TypeError(
            f"pixels must be a non-empty 2-D uint8 or uint16 image, got {pixels.dtype} "
            f"{pixels.shape}"
        )
    if histogram is None:
        histogram = histogram256(pixels)
    exact = pixel_hash(pixels, histogram, kind=hash_kind)
    extremes = None
    if pixels.dtype == np.uint8:  # one bin per level: the histogram knows the extremes
        present = np.flatnonzero(histogram)
        extremes = (float(present[0]), float(present[-1]))
    rows, cols = find_frame(pixels, tolerance=config.frame_tolerance, extremes=extremes)
    inner = (rows.stop - rows.start) * (cols.stop - cols.start)
    if inner == 0:  # uniform: nothing but "frame"; a blank image, not a framed one
        sums, count = block_sums(pixels)
        small = sums / count
        return ImageQC(
            *(False, False, True, False, False, 0.0),
            concentration=concentration(histogram),
            chest_correlation=0.0,
            fine_detail=fine_detail(pixels),
            pixel_hash=exact,
            perceptual_hash=perceptual_hash(small),
            signature=signature(small),
        )
    frame_fraction = 1.0 - inner / pixels.size
    framed = frame_fraction > config.frame_fraction
    if framed:  # the content alone; a thin band (below the threshold) is left in
        content = pixels[rows, cols]
        counts = _content_histogram(pixels, histogram, rows, cols)
    else:
        content, counts = pixels, histogram
    span = _span(counts)
    blank = span <= config.blank_range
    if pixels.dtype == np.uint8:
        at_top = int(counts[255])
    else:
        at_top = int(np.count_nonzero(content == np.iinfo(pixels.dtype).max))
    sums, count = block_sums(content)
    small = sums / count
    layout = chest_correlation(sums)
    return ImageQC(
        framed=bool(framed),
        inverted=bool(not blank and layout < -config.inverted_margin),
        blank=bool(blank),
        low_contrast=bool(not blank and span <= config.low_contrast_range),
        saturated=bool(not blank and at_top > config.saturated_fraction * content.size),
        frame_fraction=float(frame_fraction),
        concentration=concentration(histogram),
        chest_correlation=layout,
        fine_detail=fine_detail(content),
        pixel_hash=exact,
        perceptual_hash=perceptual_hash(small),
        signature=signature(small),
    )


def batch_qc(
    images: list[np.ndarray | None],
    histograms: list[np.ndarray | None],
    *,
    config: QCConfig,
    hash_kind: str = "crc32c",
) -> dict[str, np.ndarray]:
    """The QC of a batch, one array per :data:`QC_RECORD_FIELDS` entry.

    Parameters
    ----------
    images : list of ndarray or None
        Each image's own pixels (see :func:`image_qc`), None for a failed image.
    histograms : list of ndarray or None
        Each image's 256-bin histogram, None to count it here.
    config : QCConfig
    hash_kind : {"crc32c", "sha1"}
        What :func:`pixel_hash` digests (``"sha1"`` for a store made before ``qc/outlier``).

    Returns
    -------
    dict
        ``{field: (K,) array}`` (``signature``: ``(K, 1024)``); a failed image
        has every flag False, the measurements NaN and zero hashes.

    Examples
    --------
    >>> qc = batch_qc([np.zeros((8, 8), np.uint8), None], [None, None], config=QCConfig())
    >>> qc["blank"].tolist(), qc["frame_fraction"].tolist()[1]
    ([True, False], nan)
    """
    count = len(images)
    out: dict[str, np.ndarray] = {flag: np.zeros(count, dtype=bool) for flag in QC_FLAGS}
    for name in ("frame_fraction", "concentration", "chest_correlation", "fine_detail"):
        out[name] = np.full(count, np.nan)
    out["pixel_hash"] = np.zeros(count, dtype=np.uint64)
    out["perceptual_hash"] = np.zeros(count, dtype=np.uint64)
    out["signature"] = np.zeros((count, SIGNATURE_SIZE), dtype=np.int8)
    for k, pixels in enumerate(images):
        if pixels is None:
            continue
        result = image_qc(pixels, histograms[k], config=config, hash_kind=hash_kind)
        for name in QC_RECORD_FIELDS:
            out[name][k] = getattr(result, name)
    return out
