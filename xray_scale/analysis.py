"""Everything the run computes for one decoded image: filter maps, masks, statistics.

Pure functions of arrays; no I/O. The pipeline calls :func:`analyse_image`
once per image of a batch, and the store keeps the maps in the dtypes given
by :func:`output_dtypes`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .compat import TUTORIAL_FILTERS, TUTORIAL_MASKS, tutorial_histogram
from .config import Config
from .engines import engine_filters, engine_masks
from .filters import FILTERS
from .stats import image_stats

__all__ = [
    "COMPAT_MODES",
    "ImageOutputs",
    "analyse_image",
    "check_compat",
    "image_statistics",
    "map_function",
    "map_names",
    "output_dtypes",
    "preview_shape",
    "to_preview",
    "to_storage_dtype",
]

COMPAT_MODES = ("tutorial",)
"""Values accepted for ``compat`` besides None."""


@dataclass(frozen=True)
class ImageOutputs:
    """The results for one image.

    Attributes
    ----------
    maps : dict
        ``{"filters/<name>": array, "masks/<name>": array}``, 2-D, in storage dtype.
    stats : dict
        Scalar statistics by name (:data:`xray_scale.stats.STAT_FIELDS`).
    histogram : ndarray
        256 counts.
    """

    maps: dict[str, np.ndarray]
    stats: dict[str, float]
    histogram: np.ndarray


def to_storage_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    """Convert a float32 filter map to its storage dtype.

    Parameters
    ----------
    values : ndarray
        The map.
    dtype : {"float32", "float16", "uint8"}
        ``uint8`` is normalised per image: ``round(255 * (x - min) / (max - min))``,
        all zeros for a constant map.

    Examples
    --------
    >>> to_storage_dtype(np.array([-1.0, 0.0, 1.0], dtype=np.float32), "uint8")
    array([  0, 128, 255], dtype=uint8)
    """
    if dtype == "float32":
        return values.astype(np.float32, copy=False)
    if dtype == "float16":
        return values.astype(np.float16)
    if dtype == "uint8":
        low, high = float(values.min()), float(values.max())
        if high <= low:
            return np.zeros(values.shape, dtype=np.uint8)
        scaled = (values - np.float32(low)) * np.float32(255.0 / (high - low))
        return np.rint(scaled).astype(np.uint8)
    raise ValueError(f"dtype must be float32, float16 or uint8, got {dtype!r}")


def preview_shape(shape: tuple[int, int], size: int) -> tuple[int, int]:
    """(height, width) of a preview whose longer side is ``size`` (never larger than ``shape``).

    Examples
    --------
    >>> preview_shape((1024, 1024), 256), preview_shape((600, 300), 100)
    ((256, 256), (100, 50))
    >>> preview_shape((64, 64), 256)
    (64, 64)
    """
    height, width = shape
    scale = min(1.0, size / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def to_preview(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A small uint8 image of a map, for browsing.

    The map is shrunk by area averaging (``cv2.INTER_AREA``) in float32, then
    scaled per image so that its minimum is 0 and its maximum 255, rounded
    (``cv2.normalize``, ``NORM_MINMAX``; a constant map gives zeros): previews
    show structure, not comparable values.

    Examples
    --------
    >>> to_preview(np.arange(16, dtype=np.float32).reshape(4, 4), (2, 2))  # 2x2 means 2.5..12.5
    array([[  0,  51],
           [204, 255]], dtype=uint8)
    >>> int(to_preview(np.full((4, 4), 7, dtype=np.uint8), (2, 2)).max())
    0
    """
    import cv2

    small = cv2.resize(
        np.asarray(values, dtype=np.float32), shape[::-1], interpolation=cv2.INTER_AREA
    )
    return cv2.normalize(small, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)


def check_compat(compat: str | None) -> None:
    """Raise ValueError unless ``compat`` is None or one of :data:`COMPAT_MODES`."""
    if compat is not None and compat not in COMPAT_MODES:
        raise ValueError(f"compat must be None or one of {COMPAT_MODES}, got {compat!r}")


def map_names(config: Config) -> list[str]:
    """Store names of the maps a config produces: ``filters/<name>``, then ``masks/<name>``.

    Examples
    --------
    >>> from xray_scale.config import load_config
    >>> map_names(load_config({"filters": {"enabled": ["sobel"]}}))
    ['filters/sobel', 'masks/mask_values', 'masks/mask_binary']
    """
    return [f"filters/{name}" for name in config.filters] + [f"masks/{n}" for n in config.masks]


def map_function(
    name: str, config: Config, *, compat: str | None = None, engine: str = "scipy"
) -> Callable[[np.ndarray], np.ndarray]:
    """The function computing one stored map of one image, in its storage dtype.

    Parameters
    ----------
    name : str
        ``"filters/<filter>"`` or ``"masks/<mask>"``.
    config : Config
        Parameters, threshold and storage dtype.
    compat : {None, "tutorial"}
        ``"tutorial"``: the tutorial's own code where it has the filter.
    engine : {"scipy", "opencv", "cupy", "auto"}
        Implementation of the float32 filters.

    Returns
    -------
    callable
        ``function(pixels2d) -> ndarray``.
    """
    group, key = name.split("/", 1)
    if group == "masks":
        mask = (TUTORIAL_MASKS if compat == "tutorial" else engine_masks(engine))[key]
        return functools.partial(mask, threshold=config.threshold)
    params = config.params(key)
    if compat == "tutorial" and key in TUTORIAL_FILTERS:
        return functools.partial(TUTORIAL_FILTERS[key], **params)
    function = functools.partial(engine_filters(engine)[key], **params)
    if FILTERS[key].output_dtype != "float32":
        return function
    return lambda pixels: to_storage_dtype(function(pixels), config.filter_dtype)


def _compute_maps(
    pixels: np.ndarray, config: Config, compat: str | None, engine: str
) -> dict[str, np.ndarray]:
    return {
        name: map_function(name, config, compat=compat, engine=engine)(pixels)
        for name in map_names(config)
    }


def analyse_image(
    pixels: np.ndarray, config: Config, *, compat: str | None = None, engine: str = "scipy"
) -> ImageOutputs:
    """Compute the configured filters, masks and statistics of one image.

    Parameters
    ----------
    pixels : ndarray
        2-D uint8 or uint16 image.
    config : Config
        Which filters and masks, with which parameters and storage dtype.
    compat : {None, "tutorial"}
        ``"tutorial"`` reproduces the tutorial's arrays bit for bit (its
        dtypes, wrap-around included, and its min..max histogram) instead of
        computing in float32.
    engine : {"scipy", "opencv", "cupy", "auto"}
        Which implementation computes the float32 filters
        (:mod:`xray_scale.engines`); ignored for the tutorial's own code.

    Returns
    -------
    ImageOutputs
    """
    check_compat(compat)
    stats, histogram = image_statistics(pixels, config, compat=compat)
    return ImageOutputs(_compute_maps(pixels, config, compat, engine), stats, histogram)


def image_statistics(
    pixels: np.ndarray, config: Config, *, compat: str | None = None
) -> tuple[dict[str, float], np.ndarray]:
    """Statistics and 256-bin histogram of one image (the tutorial's histogram in compat mode).

    See :func:`xray_scale.stats.image_stats` and :func:`xray_scale.compat.tutorial_histogram`.
    """
    stats, histogram = image_stats(pixels, threshold=config.threshold)
    if compat == "tutorial":
        histogram = tutorial_histogram(pixels)
    return stats, histogram


def output_dtypes(config: Config, pixel_dtype: np.dtype | str, *, compat: str | None = None):
    """The storage dtype of every map the run writes.

    Parameters
    ----------
    config : Config
    pixel_dtype : uint8 or uint16
        The run's pixel dtype.
    compat : {None, "tutorial"}

    Returns
    -------
    dict
        ``{"filters/<name>" or "masks/<name>": numpy dtype}``, in output order.

    Examples
    --------
    >>> from xray_scale.config import load_config
    >>> output_dtypes(load_config(), "uint8", compat="tutorial")["filters/sobel"]
    dtype('float32')
    """
    check_compat(compat)
    # A small ramp image: non-constant, so every map is well defined.
    probe = (np.arange(256).reshape(16, 16) % 256).astype(pixel_dtype)
    with np.errstate(all="ignore"):
        maps = _compute_maps(probe, config, compat, "scipy")
    return {name: values.dtype for name, values in maps.items()}
