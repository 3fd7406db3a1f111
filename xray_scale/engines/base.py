"""The :class:`Engine` object each engine module exports: what the engine can do.

The rest of the package asks this object, never the engine's name: which
filters and masks it implements itself, whether it analyses a batch as one
stack (and how), whether dask's worker processes may run it, and whether it
can run on this machine at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from ..errors import EngineError
from ..filters.registry import FILTERS, MASKS

__all__ = ["Engine"]


def _always_usable() -> None:
    """An engine whose imports succeeded runs anywhere."""


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
    analyse_batch : callable, optional
        ``analyse_batch(block, decoded, start, *, spec, writer) -> BatchRecord``:
        the whole batch analysed at once (see
        :func:`xray_scale.analysis.batch.analyse_block`); None analyses it image
        by image with the per-image functions.
    bank_batch : callable, optional
        ``bank_batch(block, spec)``: the benchmarks' "decode+bank" stage for an
        engine with ``analyse_batch``.
    bank_rate_on_device : callable, optional
        ``bank_rate_on_device(block, spec) -> images/s``: the bank alone on a
        batch already on the engine's device (the benchmarks).
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
    analyse_batch: Callable | None = None
    bank_batch: Callable | None = None
    bank_rate_on_device: Callable | None = None
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
        return self.analyse_batch is not None

    def filter_functions(self) -> dict[str, Callable[..., np.ndarray]]:
        """Every registered filter: this engine's own version, else the reference."""
        return {name: self.filters.get(name, spec.function) for name, spec in FILTERS.items()}

    def mask_functions(self) -> dict[str, Callable[[np.ndarray, float], np.ndarray]]:
        """Every mask: this engine's own version, else the reference (same results)."""
        return {name: self.masks.get(name, function) for name, function in MASKS.items()}
