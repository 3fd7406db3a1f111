"""Engines: which implementation computes the registry's filters.

- ``scipy``: :mod:`xray_scale.filters`, the reference.
- ``opencv``: :mod:`xray_scale.opencv_filters`, the same filters from scipy's own
  1-D kernels applied with OpenCV's ``sepFilter2D``; parity-tested against
  ``scipy`` (max difference <= 1e-4 of the output's range).
- ``cupy``: :mod:`xray_scale.cupy_engine`, the same filters on an NVIDIA GPU
  (``cupyx.scipy.ndimage``), a whole batch per kernel; needs the ``gpu`` extra
  and a CUDA device.
- ``auto``: ``cupy`` when CuPy can use a GPU here, else ``opencv`` when OpenCV
  imports, else ``scipy``.

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

ENGINES = ("auto", "scipy", "opencv", "cupy")
"""Values accepted for ``engine``."""

_MODULES = {
    "scipy": "xray_scale.filters",
    "opencv": "xray_scale.opencv_filters",
    "cupy": "xray_scale.cupy_engine",
}
_FASTER_THAN_SCIPY = ("cupy", "opencv")  # what auto tries, fastest first


class EngineError(ValueError):
    """The engine is unknown or cannot run here; the message says what to install."""


@cache
def _load(engine: str):
    """The engine's module, once it is known to run here (a GPU engine checks its device)."""
    try:
        module = importlib.import_module(_MODULES[engine])
        if hasattr(module, "check_usable"):
            module.check_usable()
    except (ImportError, RuntimeError) as error:
        raise EngineError(f"the {engine} engine cannot run: {error}") from None
    return module


def resolve_engine(engine: str) -> str:
    """The concrete engine ``engine`` stands for on this machine.

    Parameters
    ----------
    engine : {"auto", "scipy", "opencv", "cupy"}

    Returns
    -------
    str
        ``"scipy"``, ``"opencv"`` or ``"cupy"``.

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
    for candidate in _FASTER_THAN_SCIPY:
        try:
            _load(candidate)
        except EngineError:
            continue
        return candidate
    return "scipy"


@cache
def engine_filters(engine: str) -> dict[str, Callable[..., np.ndarray]]:
    """Filter functions of a concrete engine, by registry name.

    Parameters
    ----------
    engine : {"scipy", "opencv", "cupy"}

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
    engine : {"scipy", "opencv", "cupy"}

    Returns
    -------
    dict
        ``{name: function(image2d, threshold)}`` for every mask; equal to the
        reference's results, bit for bit.
    """
    module = _load(resolve_engine(engine))
    return {name: getattr(module, name, function) for name, function in MASKS.items()}
