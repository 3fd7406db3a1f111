"""Engines: one module per implementation (:mod:`.scipy`, :mod:`.opencv`, :mod:`.cupy`), each
exporting one :class:`Engine` that declares what it can do; :mod:`.registry` finds them."""

from ..errors import EngineError
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


def __getattr__(name: str):
    """:class:`Engine` on first use: its module imports the filters (SciPy), the names do not."""
    if name == "Engine":
        from .base import Engine

        return Engine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
