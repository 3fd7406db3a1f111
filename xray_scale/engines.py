"""Engines: which implementation computes the registry's filters.

- ``scipy``: :mod:`xray_scale.filters`, the reference.
- ``opencv``: :mod:`xray_scale.opencv_filters`, the same filters from scipy's own
  1-D kernels applied with OpenCV's ``sepFilter2D``; parity-tested against
  ``scipy`` (max difference <= 1e-4 of the output's range).
- ``auto``: ``opencv`` when OpenCV imports, else ``scipy``.

The masks are part of the same contract: an engine may implement
``mask_values`` and ``mask_binary`` too, with the reference's exact results.
A filter or mask an engine does not implement (the real ``canny``) runs with
the reference implementation.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache

import numpy as np

from .filters import FILTERS, MASKS

__all__ = ["ENGINES", "EngineError", "engine_filters", "engine_masks", "resolve_engine"]

ENGINES = ("auto", "scipy", "opencv")
"""Values accepted for ``engine``."""

_MODULES = {"scipy": "xray_scale.filters", "opencv": "xray_scale.opencv_filters"}


class EngineError(ValueError):
    """The engine is unknown or cannot run here; the message says what to install."""


def _load(engine: str):
    try:
        return importlib.import_module(_MODULES[engine])
    except ImportError as error:
        raise EngineError(f"the {engine} engine cannot run: {error}") from None


def resolve_engine(engine: str) -> str:
    """The concrete engine ``engine`` stands for on this machine.

    Parameters
    ----------
    engine : {"auto", "scipy", "opencv"}

    Returns
    -------
    str
        ``"scipy"`` or ``"opencv"``.

    Raises
    ------
    EngineError
        If ``engine`` is unknown, or names an engine whose package is missing.

    Examples
    --------
    >>> resolve_engine("scipy")
    'scipy'
    """
    if engine not in ENGINES:
        raise EngineError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine != "auto":
        _load(engine)
        return engine
    try:
        _load("opencv")
    except EngineError:
        return "scipy"
    return "opencv"


@cache
def engine_filters(engine: str) -> dict[str, Callable[..., np.ndarray]]:
    """Filter functions of a concrete engine, by registry name.

    Parameters
    ----------
    engine : {"scipy", "opencv"}

    Returns
    -------
    dict
        ``{name: function(image2d, **params)}`` for every registered filter.
    """
    module = _load(resolve_engine(engine))
    return {name: getattr(module, name, spec.function) for name, spec in FILTERS.items()}


@cache
def engine_masks(engine: str) -> dict[str, Callable[[np.ndarray, float], np.ndarray]]:
    """Mask functions of a concrete engine, by name (:data:`xray_scale.filters.MASKS`).

    Parameters
    ----------
    engine : {"scipy", "opencv"}

    Returns
    -------
    dict
        ``{name: function(image2d, threshold)}`` for every mask; equal to the
        reference's results, bit for bit.
    """
    module = _load(resolve_engine(engine))
    return {name: getattr(module, name, function) for name, function in MASKS.items()}
