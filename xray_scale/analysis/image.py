"""Everything the run computes for one decoded image: filter maps, masks, statistics.

Pure functions of arrays; no I/O. :func:`xray_scale.analysis.batch.analyse_block`
computes the same per image of a batch, and the store keeps the maps in the
dtypes given by :func:`xray_scale.analysis.maps.output_dtypes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..config import Config
from ..engines.registry import engine_filters, engine_masks
from ..filters.compat import tutorial_histogram
from .maps import check_compat, map_function_from, map_names
from .stats import image_stats

__all__ = ["ImageOutputs", "analyse_image", "image_statistics", "map_function"]


@dataclass(frozen=True)
class ImageOutputs:
    """The results for one image.

    Attributes
    ----------
    maps : dict
        ``{"filters/<name>": array, "masks/<name>": array}``, 2-D, in storage dtype.
    stats : dict
        Scalar statistics by name (:data:`xray_scale.analysis.stats.STAT_FIELDS`).
    histogram : ndarray
        256 counts.
    """

    maps: dict[str, np.ndarray]
    stats: dict[str, float]
    histogram: np.ndarray


def map_function(
    name: str, config: Config, *, compat: str | None = None, engine: str = "scipy"
) -> Callable[[np.ndarray], np.ndarray]:
    """The function computing one stored map of one image, in its storage dtype, on ``engine``.

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
        ``function(pixels2d) -> ndarray`` (:func:`xray_scale.analysis.maps.map_function_from`).
    """
    return map_function_from(
        name, config, compat=compat, filters=engine_filters(engine), masks=engine_masks(engine)
    )


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
        (:mod:`xray_scale.engines.registry`); ignored for the tutorial's own code.

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

    See :func:`xray_scale.analysis.stats.image_stats` and
    :func:`xray_scale.filters.compat.tutorial_histogram`.
    """
    stats, histogram = image_stats(pixels, threshold=config.threshold)
    if compat == "tutorial":
        histogram = tutorial_histogram(pixels)
    return stats, histogram
