"""Engines: one module per implementation (:mod:`.scipy`, :mod:`.opencv`, :mod:`.cupy`), each
exporting one :class:`Engine` that declares what it can do; :mod:`.registry` finds them."""

from ..errors import EngineError
from .base import Engine
from .registry import ENGINES, engine_filters, engine_masks, get_engine, resolve_engine

__all__ = [
    "ENGINES",
    "Engine",
    "EngineError",
    "engine_filters",
    "engine_masks",
    "get_engine",
    "resolve_engine",
]
