"""The :class:`Engine` object each engine module exports: what the engine can do.

The rest of the package asks this object, never the engine's name: which
filters and masks it implements itself, whether it analyses a batch as one
stack (and on which :class:`ArrayBackend`), whether dask's worker processes
may run it, and whether it can run on this machine at all. An engine supplies
backends and implementations; it never calls back into the analysis, which
drives a backend (:mod:`xray_scale.analysis.stack`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import Any

import numpy as np

from ..errors import EngineError
from ..filters.registry import FILTERS, MASKS

__all__ = ["ArrayBackend", "Engine"]


def _always_usable() -> None:
    """An engine whose imports succeeded runs anywhere."""


def _nothing_queued() -> None:
    """A backend that computes as it is called has nothing to wait for."""


@dataclass(frozen=True)
class ArrayBackend:
    """Where a stack is analysed: an array module, its ndimage, and the copies to and from it.

    Attributes
    ----------
    name : str
        Shown in error messages (``"cupy"``, ``"numpy"``).
    xp : module
        The array module (``numpy``, ``cupy``).
    ndimage : module
        Its ``scipy.ndimage`` (``scipy.ndimage``, ``cupyx.scipy.ndimage``).
    to_device : callable
        Host ndarray -> array of ``xp`` (an array already there may be handed on as it is).
    to_host : callable
        Array of ``xp`` -> host ndarray; returns once the copy is complete.
    context : callable
        Returns the context every batch runs in (the GPU engine: this thread's
        CUDA stream).
    device_filters : mapping
        ``{name: function(pixels_stack, **params)}``: the backend's own stack
        versions of filters the registry marks ``HOST_ONLY`` (cuCIM's Canny on
        a GPU); any other ``HOST_ONLY`` filter runs on the host, image by image.
    synchronize : callable
        Returns once the work queued in the current context is done (the GPU
        engine: this thread's stream); what the benchmarks time around.
    """

    name: str
    xp: ModuleType
    ndimage: ModuleType
    to_device: Callable[[np.ndarray], Any]
    to_host: Callable[[Any], np.ndarray]
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    device_filters: Mapping[str, Callable] = field(default_factory=dict, hash=False)
    synchronize: Callable[[], None] = _nothing_queued


@dataclass(frozen=True)
class Engine:
    """One engine: its own versions of the registry's filters and masks, and its capabilities.

    Attributes
    ----------
    name : str
        ``"scipy"``, ``"opencv"``, ``"cupy"``: the value of ``--engine`` and of
        the store's ``engine`` attribute.
    filters : mapping
        ``{registry name: function(image2d, **params)}``, the filters this
        engine implements itself, per image. A registered filter not in it runs
        with its reference function (:mod:`xray_scale.filters.reference`). A
        name that is not registered is refused here, when the engine's module
        is imported.
    masks : mapping
        ``{mask name: function(image2d, threshold)}``, as ``filters``.
    backend : ArrayBackend, optional
        Where the engine analyses a whole batch at once, as one stack
        (:func:`xray_scale.analysis.stack.analyse_on_device`, called by
        :func:`xray_scale.analysis.batch.analyse_block`); None analyses it image
        by image with the per-image functions.
    decode_batch : callable, optional
        ``decode_batch(paths, spec) -> (block, decoded)``: a batch's PNGs decoded
        onto the engine's device (``--decoder gpu``), ``block`` an array there,
        ``decoded`` as :func:`xray_scale.io.decode.decode_batch` gives them; None
        when the engine has no decoder of its own.
    check_decoder : callable, optional
        Raises EngineError, saying why, when ``decode_batch`` cannot run here.
    processes : bool
        Whether dask's worker processes (``--scheduler processes``) may run it.
    check_usable : callable
        Raises RuntimeError, saying why, when the engine cannot run here.
    """

    name: str
    filters: Mapping[str, Callable[..., np.ndarray]]
    masks: Mapping[str, Callable[[np.ndarray, float], np.ndarray]] = field(default_factory=dict)
    backend: ArrayBackend | None = None
    decode_batch: Callable | None = None
    check_decoder: Callable[[], None] | None = None
    processes: bool = True
    check_usable: Callable[[], None] = _always_usable

    def __post_init__(self) -> None:
        unknown = sorted(set(self.filters) - set(FILTERS)) + sorted(set(self.masks) - set(MASKS))
        if unknown:
            raise EngineError(
                f"the {self.name} engine registers {', '.join(unknown)}, which the registry "
                "does not have (xray_scale.filters.registry)"
            )
        object.__setattr__(self, "filters", MappingProxyType(dict(self.filters)))
        object.__setattr__(self, "masks", MappingProxyType(dict(self.masks)))

    @property
    def analyses_batches(self) -> bool:
        """Whether a batch is analysed whole (one stack), not image by image."""
        return self.backend is not None

    def filter_functions(self) -> dict[str, Callable[..., np.ndarray]]:
        """Every registered filter: this engine's own version, else the reference."""
        return {name: self.filters.get(name, spec.function) for name, spec in FILTERS.items()}

    def mask_functions(self) -> dict[str, Callable[[np.ndarray, float], np.ndarray]]:
        """Every mask: this engine's own version, else the reference (same results)."""
        return {name: self.masks.get(name, function) for name, function in MASKS.items()}
