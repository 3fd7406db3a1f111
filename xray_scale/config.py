"""Run configuration: which filters and masks, with which parameters, stored how.

A configuration file is TOML. Every key has a default (the NumPy tutorial's
bank, written out in ``configs/tutorial.toml``), and a file overrides the
defaults key by key. Anything unknown or out of range is rejected before any
work, with a message naming the key and what it accepts.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "STORE_COMPRESSORS",
    "STORE_DTYPES",
    "Config",
    "ConfigError",
    "QCConfig",
    "load_config",
]

DEFAULT_MAX_PIXELS = 50_000_000
"""Largest header (width x height) decoded by default: 50 Mpx, ~7000 x 7000."""

STORE_DTYPES = ("float32", "float16", "uint8")
"""How continuous filter maps are stored: as computed, halved, or normalised to 0..255."""

STORE_COMPRESSORS = ("none", "zstd", "blosc-zstd", "blosc-lz4")
"""Compression of filter maps in the store (masks are always zstd level 1)."""

_MAX_LEVELS = {"none": 22, "zstd": 22, "blosc-zstd": 9, "blosc-lz4": 9}

SIZE_POLICIES = ("fail", "pad", "resize")
DICOM_VOI = ("lut", "window", "none")
"""``input.dicom_voi``: :data:`xray_scale.io.formats.dicom.VOI_CHOICES` (a test holds them equal;
the config stays below the formats)."""
DEFAULT_FILTERS = ("laplace_gaussian", "gaussian_gradient_magnitude", "sobel", "tutorial_canny")


def _registry():
    """``(FILTERS, MASKS)``, imported when first needed.

    The registry imports SciPy; importing this module (to read a TOML file, or
    for ``xray-scale --help``) should not.
    """
    from .filters import FILTERS, MASKS

    return FILTERS, MASKS


def _default_filter_params() -> dict[str, dict[str, float]]:
    """Every registered filter's default parameters."""
    return {name: spec.defaults() for name, spec in _registry()[0].items()}


def _default_masks() -> tuple[str, ...]:
    """Every registered mask, in registry order."""
    return tuple(_registry()[1])


@dataclass(frozen=True)
class QCConfig:
    """Thresholds of every QC rule (the ``[qc]`` section of a config).

    Attributes
    ----------
    enabled : bool
        Whether a run computes QC at all.
    frame_fraction : float
        ``framed`` when the frame covers more than this fraction of the area (0..1).
    frame_tolerance : float
        A frame row or column lies within this fraction of the image's range of
        its minimum (black frame) or maximum (white frame) (0..0.5).
    blank_range : float
        ``blank`` when the content's 1st..99th percentile span is at most this
        fraction of the dtype's range (0..1).
    low_contrast_range : float
        ``low_contrast`` when that span is at most this fraction (>= blank_range, <= 1).
    saturated_fraction : float
        ``saturated`` when more than this fraction of the content is at the dtype's
        maximum (0..1).
    inverted_margin : float
        ``inverted`` when the content's correlation with the layout of a frontal
        chest film is below minus this (0..1).
    near_duplicate_distance : int
        Largest Hamming distance (of 64 bits) between the perceptual hashes of
        two near duplicates (0..32).
    near_duplicate_correlation : float
        Smallest correlation of the detail signatures of two near duplicates (0..1).
    outlier_threshold : float
        ``outlier`` when the image's robust distance from the run's typical image
        (``qc/outlier_score``, :mod:`xray_scale.analysis.outliers`) is above this (> 0).
    """

    enabled: bool = True
    frame_fraction: float = 0.05
    frame_tolerance: float = 0.04
    blank_range: float = 0.02
    low_contrast_range: float = 0.25
    saturated_fraction: float = 0.05
    inverted_margin: float = 0.05
    near_duplicate_distance: int = 10
    near_duplicate_correlation: float = 0.97
    outlier_threshold: float = 3.5

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ValueError(f"qc.enabled must be true or false, got {self.enabled!r}")
        limits = {
            "frame_fraction": (0.0, 1.0),
            "frame_tolerance": (0.0, 0.5),
            "blank_range": (0.0, 1.0),
            "low_contrast_range": (0.0, 1.0),
            "saturated_fraction": (0.0, 1.0),
            "inverted_margin": (0.0, 1.0),
            "near_duplicate_correlation": (0.0, 1.0),
        }
        for key, (low, high) in limits.items():
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"qc.{key} must be a number, got {value!r}")
            if not low <= value <= high:
                raise ValueError(f"qc.{key} must be in {low}..{high}, got {value!r}")
        if self.low_contrast_range < self.blank_range:
            raise ValueError(
                f"qc.low_contrast_range must be >= qc.blank_range ({self.blank_range}), "
                f"got {self.low_contrast_range}"
            )
        threshold = self.outlier_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold <= 0:
            raise ValueError(f"qc.outlier_threshold must be a number > 0, got {threshold!r}")
        distance = self.near_duplicate_distance
        if isinstance(distance, bool) or not isinstance(distance, int) or not 0 <= distance <= 32:
            raise ValueError(
                f"qc.near_duplicate_distance must be an integer in 0..32, got {distance!r}"
            )


@dataclass(frozen=True)
class Config:
    """A validated run configuration.

    Attributes
    ----------
    batch_size : int
        Images per dask task, and per zarr shard of every full-resolution array.
    size : (int, int) or None
        The run's (height, width); None means the first readable image's.
    bit_depth : int or None
        8 or 16; None means the first readable image's.
    size_policy : str
        ``"fail"``, ``"pad"`` or ``"resize"`` for an image of another size
        (:mod:`xray_scale.io.resize`).
    max_pixels : int
        Headers with more pixels are refused before decoding.
    dicom_voi : str
        What a DICOM image's values go through after its modality LUT: ``"lut"``
        (its VOI LUT, else its first window: the default), ``"window"`` (its
        window first) or ``"none"`` (:mod:`xray_scale.io.formats.dicom`).
    filters : tuple of str
        Enabled filters, in output order.
    filter_params : dict
        ``{filter name: {parameter: value}}`` for every registered filter.
    masks : tuple of str
        Enabled masks.
    threshold : float
        Mask threshold (pixels strictly above it are kept).
    filter_dtype : str
        Storage dtype of continuous filter maps, one of :data:`STORE_DTYPES`.
    compressor : str
        One of :data:`STORE_COMPRESSORS`; ``blosc-lz4`` (bit shuffle) by default:
        lossless, 14 % smaller than raw float32 maps and, measured, no slower to
        write (``benchmarks/bench_storage.py``).
    compression_level : int
        Level for the compressor.
    full_resolution : bool
        Store every filter map and mask at full resolution (``filters/*``,
        ``masks/*``).
    preview_size : int
        Longer side, in pixels, of the uint8 previews stored for browsing
        (the ``previews`` array: the original and each filter and mask); 0 for none.
    qc : QCConfig
        Whether the run computes the QC flags, hashes and groups (``qc/*``), and
        every threshold of their rules (the ``[qc]`` table).
    """

    batch_size: int = 8
    size: tuple[int, int] | None = None
    bit_depth: int | None = None
    size_policy: str = "fail"
    max_pixels: int = DEFAULT_MAX_PIXELS
    dicom_voi: str = "lut"
    filters: tuple[str, ...] = DEFAULT_FILTERS
    filter_params: dict[str, dict[str, float]] = field(default_factory=_default_filter_params)
    masks: tuple[str, ...] = field(default_factory=_default_masks)
    threshold: float = 150.0
    filter_dtype: str = "float32"
    compressor: str = "blosc-lz4"
    compression_level: int = 3
    full_resolution: bool = True
    preview_size: int = 0
    qc: QCConfig = field(default_factory=QCConfig)

    def params(self, name: str) -> dict[str, float]:
        """Parameters of filter ``name``."""
        return self.filter_params[name]

    def decode_options(self) -> dict[str, Any]:
        """The ``[input]`` policies as keywords of :func:`xray_scale.io.decode.decode_image`
        (and of ``decode_batch`` and the GPU decoder): ``max_pixels``, ``size_policy`` and
        ``format_options``, ``{format name: options}``."""
        return {
            "max_pixels": self.max_pixels,
            "size_policy": self.size_policy,
            "format_options": {"dicom": {"voi": self.dicom_voi}},
        }

    def to_dict(self) -> dict[str, Any]:
        """The configuration as nested plain data, in the TOML file's layout.

        ``load_config`` of this dict gives back an equal Config.
        """
        return {
            "run": {"batch_size": self.batch_size},
            "input": {
                "size": list(self.size) if self.size else "auto",
                "bit_depth": self.bit_depth or "auto",
                "size_policy": self.size_policy,
                "max_pixels": self.max_pixels,
                "dicom_voi": self.dicom_voi,
            },
            "filters": {"enabled": list(self.filters), **self.filter_params},
            "masks": {"enabled": list(self.masks), "threshold": self.threshold},
            "store": {
                "filter_dtype": self.filter_dtype,
                "compressor": self.compressor,
                "compression_level": self.compression_level,
                "full_resolution": self.full_resolution,
                "preview_size": self.preview_size,
            },
            "qc": asdict(self.qc),
        }


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        allowed_text = ", ".join(sorted(allowed))
        raise ConfigError(
            f"unknown key {where}.{unknown[0]}; allowed keys in [{where}]: {allowed_text}"
        )


def _table(data: dict, name: str) -> dict:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"[{name}] must be a table, got {table!r}")
    return table


def _int(value: Any, where: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where} must be an integer >= {minimum}, got {value!r}")
    return value


def _choice(value: Any, where: str, allowed: tuple) -> Any:
    if value not in allowed:
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def _level(store: dict, compressor: str) -> int:
    level = _int(store.get("compression_level", 3), "store.compression_level", minimum=1)
    if level > _MAX_LEVELS[compressor]:
        raise ConfigError(
            f"store.compression_level must be <= {_MAX_LEVELS[compressor]} for "
            f"compressor {compressor!r}, got {level}"
        )
    return level


def _names(value: Any, where: str, registry: dict) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of names, got {value!r}")
    for name in value:
        _choice(name, f"{where} entry", tuple(registry))
    if len(set(value)) != len(value):
        raise ConfigError(f"{where} lists a name twice: {value!r}")
    return tuple(value)


def _filter_params(filters_table: dict) -> dict[str, dict[str, float]]:
    params = {}
    for name, spec in _registry()[0].items():
        given = filters_table.get(name, {})
        if not isinstance(given, dict):
            raise ConfigError(f"[filters.{name}] must be a table, got {given!r}")
        allowed = {p.name for p in spec.parameters}
        if set(given) - allowed:
            unknown = sorted(set(given) - allowed)[0]
            allowed_text = ", ".join(sorted(allowed)) or "none (it takes no parameters)"
            raise ConfigError(f"unknown key filters.{name}.{unknown}; allowed: {allowed_text}")
        values = {}
        for parameter in spec.parameters:
            where = f"filters.{name}.{parameter.name}"
            try:
                values[parameter.name] = parameter.check(
                    given.get(parameter.name, parameter.default), where=where
                )
            except ValueError as error:
                raise ConfigError(str(error)) from None
        params[name] = values
    if params["canny"]["low_threshold"] > params["canny"]["high_threshold"]:
        raise ConfigError("filters.canny.low_threshold must be <= filters.canny.high_threshold")
    return params


def _parse(data: dict) -> Config:
    FILTERS, MASKS = _registry()  # noqa: N806  the registry's own names
    _check_keys(data, {"run", "input", "filters", "masks", "store", "qc"}, "config")
    run = _table(data, "run")
    _check_keys(run, {"batch_size"}, "run")
    inputs = _table(data, "input")
    _check_keys(inputs, {"size", "bit_depth", "size_policy", "max_pixels", "dicom_voi"}, "input")
    filters_table = _table(data, "filters")
    _check_keys(filters_table, {"enabled", *FILTERS}, "filters")
    masks = _table(data, "masks")
    _check_keys(masks, {"enabled", "threshold"}, "masks")
    store = _table(data, "store")
    _check_keys(
        store,
        {"filter_dtype", "compressor", "compression_level", "full_resolution", "preview_size"},
        "store",
    )
    full_resolution = store.get("full_resolution", True)
    if not isinstance(full_resolution, bool):
        raise ConfigError(f"store.full_resolution must be true or false, got {full_resolution!r}")
    preview_size = _int(store.get("preview_size", 0), "store.preview_size", minimum=0)
    if 0 < preview_size < 16:
        raise ConfigError(f"store.preview_size must be 0 (none) or >= 16, got {preview_size}")

    size = inputs.get("size", "auto")
    if size == "auto":
        size = None
    elif not (
        isinstance(size, list)
        and len(size) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in size)
    ):
        raise ConfigError(f"input.size must be 'auto' or [height, width], got {size!r}")
    bit_depth = inputs.get("bit_depth", "auto")
    bit_depth = None if bit_depth == "auto" else _choice(bit_depth, "input.bit_depth", (8, 16))
    compressor = _choice(
        store.get("compressor", "blosc-lz4"), "store.compressor", STORE_COMPRESSORS
    )
    threshold = masks.get("threshold", 150.0)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ConfigError(f"masks.threshold must be a number, got {threshold!r}")
    if not math.isfinite(threshold):
        raise ConfigError(f"masks.threshold must be a finite number, got {threshold!r}")

    qc = _table(data, "qc")
    _check_keys(qc, {f.name for f in fields(QCConfig)}, "qc")
    try:
        qc_config = QCConfig(**qc)
    except ValueError as error:
        raise ConfigError(str(error)) from None

    return Config(
        qc=qc_config,
        batch_size=_int(run.get("batch_size", 8), "run.batch_size", minimum=1),
        size=tuple(size) if size else None,
        bit_depth=bit_depth,
        size_policy=_choice(inputs.get("size_policy", "fail"), "input.size_policy", SIZE_POLICIES),
        max_pixels=_int(
            inputs.get("max_pixels", DEFAULT_MAX_PIXELS), "input.max_pixels", minimum=1
        ),
        dicom_voi=_choice(inputs.get("dicom_voi", "lut"), "input.dicom_voi", DICOM_VOI),
        filters=_names(
            filters_table.get("enabled", list(DEFAULT_FILTERS)), "filters.enabled", FILTERS
        ),
        filter_params=_filter_params(filters_table),
        masks=_names(masks.get("enabled", list(MASKS)), "masks.enabled", MASKS),
        threshold=float(threshold),
        filter_dtype=_choice(
            store.get("filter_dtype", "float32"), "store.filter_dtype", STORE_DTYPES
        ),
        compressor=compressor,
        compression_level=_level(store, compressor),
        full_resolution=full_resolution,
        preview_size=preview_size,
    )


def load_config(source: str | Path | dict | None = None) -> Config:
    """Read and validate a configuration.

    Parameters
    ----------
    source : path, dict or None
        A TOML file, the same content as a dict (e.g. ``Config.to_dict()``),
        or None for the defaults (the tutorial's bank).

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        If the file is missing, unreadable (a directory, say), not UTF-8 or not TOML,
        or any key is unknown or invalid.

    Examples
    --------
    >>> load_config({"filters": {"laplace_gaussian": {"sigma": 2}}}).params("laplace_gaussian")
    {'sigma': 2.0}
    """
    if source is None:
        return Config()
    if isinstance(source, dict):
        return _parse(source)
    path = Path(source)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found") from None
    except OSError as error:
        raise ConfigError(
            f"config file {str(path)!r} cannot be read ({error.strerror}); "
            "give a readable TOML file, such as configs/tutorial.toml"
        ) from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"config file {str(path)!r} is not UTF-8 text (byte {error.start}: {error.reason}); "
            "give a TOML file, saved as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {error}") from None
    return _parse(data)
