"""The ``scipy`` engine: the reference functions (:mod:`xray_scale.filters.reference`)."""

from __future__ import annotations

from ..filters.registry import FILTERS, MASKS
from .base import Engine

__all__ = ["ENGINE"]

ENGINE = Engine(
    name="scipy",
    filters={name: spec.function for name, spec in FILTERS.items()},
    masks=dict(MASKS),
)
"""Every filter and mask, per image, as the registry defines them."""
