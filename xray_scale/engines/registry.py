"""The engines: which implementation computes the registry's filters.

- ``scipy`` (:mod:`xray_scale.engines.scipy`): the reference functions.
- ``opencv`` (:mod:`xray_scale.engines.opencv`): the same filters from scipy's
  own 1-D kernels applied with OpenCV's ``sepFilter2D``; parity-tested against
  ``scipy`` (max difference <= 1e-4 of the output's range).
- ``cupy`` (:mod:`xray_scale.engines.cupy`): the same filters on an NVIDIA GPU
  (``cupyx.scipy.ndimage``), a whole batch per kernel; needs the ``gpu`` extra
  and a CUDA device.
- ``auto``: ``cupy`` when CuPy can use a GPU here, else ``opencv`` when OpenCV
  imports, else ``scipy``.

Each engine module exports one :class:`~xray_scale.engines.base.Engine`,
``ENGINE``, that declares what the engine does; :func:`get_engine` loads it.
The masks are part of the same contract: an engine may implement
``mask_values`` and ``mask_binary`` too, with the reference's exact results.
A filter or mask an engine does not declare (the real ``canny``) runs with
the reference implementation.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

from ..errors import EngineError

if TYPE_CHECKING:  # annotations only: the engine names are known without any engine loaded
    import numpy as np

    from .base import Engine

__all__ = [
    "DECODERS",
    "ENGINES",
    "EngineError",
    "engine_filters",
    "engine_masks",
    "engine_module",
    "get_engine",
    "resolve_decoder",
    "resolve_engine",
]

ENGINES = ("auto", "scipy", "opencv", "cupy")
"""Values accepted for ``engine``."""

_MODULES = {
    "scipy": "xray_scale.engines.scipy",
    "opencv": "xray_scale.engines.opencv",
    "cupy": "xray_scale.engines.cupy",
}
"""Where each concrete engine's ``ENGINE`` is, imported only when asked for (CuPy is optional)."""

_FASTER_THAN_SCIPY = ("cupy", "opencv")  # what auto tries, fastest first

DECODERS = ("cpu", "gpu", "auto")
"""Values accepted for ``decoder``: where the PNGs are decoded."""


def engine_module(engine: str) -> str:
    """The module holding a concrete engine's ``ENGINE`` (``"xray_scale.engines.opencv"``)."""
    return _MODULES[engine]


@cache
def _load(engine: str) -> Engine:
    """The engine's object, once it is known to run here (a GPU engine checks its device)."""
    try:
        module = importlib.import_module(engine_module(engine))
        module.ENGINE.check_usable()
    except (ImportError, RuntimeError) as error:
        raise EngineError(f"the {engine} engine cannot run: {error}") from None
    return module.ENGINE


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


def get_engine(engine: str) -> Engine:
    """The :class:`~xray_scale.engines.base.Engine` that ``engine`` stands for here.

    Parameters
    ----------
    engine : {"auto", "scipy", "opencv", "cupy"}

    Raises
    ------
    EngineError
        As :func:`resolve_engine`.

    Examples
    --------
    >>> get_engine("scipy").analyses_batches
    False
    """
    return _load(resolve_engine(engine))


def resolve_decoder(decoder: str, engine: str, *, compat: str | None = None) -> str:
    """Where a run with ``engine`` decodes its PNGs: ``"cpu"`` or ``"gpu"``.

    Parameters
    ----------
    decoder : {"cpu", "gpu", "auto"}
        ``gpu`` needs an engine with a decoder of its own (``cupy``) that can
        run here; ``auto`` is ``gpu`` where it can be, else ``cpu``.
    engine : str
        The run's concrete engine.
    compat : {None, "tutorial"}
        The tutorial's code runs image by image on the CPU: its decoder too.

    Raises
    ------
    EngineError
        If ``decoder`` is unknown, or is ``gpu`` where the GPU decoder cannot run.

    Examples
    --------
    >>> resolve_decoder("auto", "opencv")
    'cpu'
    """
    if decoder not in DECODERS:
        raise EngineError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
    if decoder == "cpu":
        return "cpu"
    found = get_engine(engine)
    if found.decode_batch is None or compat is not None:
        if decoder == "auto":
            return "cpu"
        why = f"the {found.name} engine" if found.decode_batch is None else f"--compat {compat}"
        raise EngineError(
            f"--decoder gpu needs the cupy engine without --compat, not {why}: "
            "add --engine cupy, or use --decoder cpu"
        )
    try:
        found.check_decoder()
    except EngineError:
        if decoder == "auto":
            return "cpu"
        raise
    return "gpu"


@cache
def engine_filters(engine: str) -> dict[str, Callable[..., np.ndarray]]:
    """Filter functions of an engine, by registry name.

    Parameters
    ----------
    engine : {"scipy", "opencv", "cupy", "auto"}

    Returns
    -------
    dict
        ``{name: function(image2d, **params)}`` for every registered filter:
        the engine's own version where it declares one, else the reference.
    """
    return get_engine(engine).filter_functions()


@cache
def engine_masks(engine: str) -> dict[str, Callable[[np.ndarray, float], np.ndarray]]:
    """Mask functions of an engine, by name (:data:`xray_scale.filters.registry.MASKS`).

    Parameters
    ----------
    engine : {"scipy", "opencv", "cupy", "auto"}

    Returns
    -------
    dict
        ``{name: function(image2d, threshold)}`` for every mask; equal to the
        reference's results, bit for bit.
    """
    return get_engine(engine).mask_functions()
