"""The maps a run stores: their names, their storage dtypes, and the function computing each.

:func:`batch_spec` fixes them for a run, with its previews and QC, as the
:class:`~xray_scale.records.BatchSpec` every batch of the run is given.

:func:`map_function_from` is the one dispatch from a map's store name
(``filters/<name>``, ``masks/<name>``) to the function that computes it for one
image, in its storage dtype: the run, the benchmarks and ``render`` all use it
(through :func:`xray_scale.analysis.image.map_function`, which adds the engine).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import numpy as np

from ..config import Config
from ..filters.compat import TUTORIAL_FILTERS, TUTORIAL_MASKS
from ..filters.registry import FILTERS, MASKS
from ..io.formats.registry import added_formats
from ..records import FILTER_GROUP, MASK_GROUP, BatchSpec, map_name, split_map_name
from .previews import preview_shape

__all__ = [
    "COMPAT_MODES",
    "batch_spec",
    "check_compat",
    "map_function_from",
    "map_names",
    "output_dtypes",
    "to_storage_dtype",
]

COMPAT_MODES = ("tutorial",)
"""Values accepted for ``compat`` besides None."""


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
    filters = [map_name(FILTER_GROUP, name) for name in config.filters]
    return filters + [map_name(MASK_GROUP, name) for name in config.masks]


def map_function_from(
    name: str,
    config: Config,
    *,
    compat: str | None,
    filters: Mapping[str, Callable[..., np.ndarray]],
    masks: Mapping[str, Callable[[np.ndarray, float], np.ndarray]],
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
    filters, masks : mapping
        The implementations by registry name (an engine's, or the reference's).

    Returns
    -------
    callable
        ``function(pixels2d) -> ndarray``.
    """
    group, key = split_map_name(name)
    if group == MASK_GROUP:
        mask = (TUTORIAL_MASKS if compat == "tutorial" else masks)[key]
        return functools.partial(mask, threshold=config.threshold)
    params = config.params(key)
    if compat == "tutorial" and key in TUTORIAL_FILTERS:
        return functools.partial(TUTORIAL_FILTERS[key], **params)
    function = functools.partial(filters[key], **params)
    if FILTERS[key].output_dtype != "float32":
        return function
    return lambda pixels: to_storage_dtype(function(pixels), config.filter_dtype)


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
    reference = {name: spec.function for name, spec in FILTERS.items()}
    with np.errstate(all="ignore"):
        return {
            name: map_function_from(name, config, compat=compat, filters=reference, masks=MASKS)(
                probe
            ).dtype
            for name in map_names(config)
        }


def batch_spec(
    config: Config,
    *,
    shape: tuple[int, int],
    bit_depth: int,
    compat: str | None,
    engine: str,
    decoder: str = "cpu",
) -> BatchSpec:
    """The spec of a run over images of ``shape`` and ``bit_depth`` (8 or 16).

    Parameters
    ----------
    config : Config
        The run's configuration.
    shape : (int, int)
        The run's (height, width).
    bit_depth : {8, 16}
        The run's bits per sample: the pixels are uint8 or uint16.
    compat : {None, "tutorial"}
        The tutorial's arrays bit for bit.
    engine : str
        The concrete engine (``"scipy"``, ``"opencv"``, ``"cupy"``).
    decoder : {"cpu", "gpu"}
        Where the PNGs are decoded.

    Returns
    -------
    BatchSpec
        Each map's storage dtype (:func:`output_dtypes`), the previews' shape
        and the QC thresholds, when the run computes QC.
    """
    pixel_dtype = "uint16" if bit_depth == 16 else "uint8"
    map_dtypes = output_dtypes(config, pixel_dtype, compat=compat)
    small = preview_shape(shape, config.preview_size) if config.preview_size else None
    return BatchSpec(
        shape=tuple(shape),
        pixel_dtype=pixel_dtype,
        map_dtypes={name: str(dtype) for name, dtype in map_dtypes.items()},
        full_resolution=config.full_resolution,
        preview_shape=small,
        config=config,
        compat=compat,
        engine=engine,
        qc=config.qc if config.qc.enabled else None,
        decoder=decoder,
        formats=added_formats(),
    )
