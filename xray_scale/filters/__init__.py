"""Filters: the registry (:mod:`.registry`), scipy's reference functions
(:mod:`.reference`), their stack versions (:mod:`.stack`) and the tutorial's own
code (:mod:`.compat`).

Adding a filter: its reference function in :mod:`.reference`, its stack
version in :mod:`.stack` (or ``stack=HOST_ONLY``), one :class:`FilterSpec` in
:data:`FILTERS`; optionally an engine's own version, registered in that
engine's module (:mod:`xray_scale.engines`).
"""

from .reference import (
    as_float32,
    canny,
    fourier_gaussian_weights,
    gaussian_gradient_magnitude,
    laplace_gaussian,
    mask_binary,
    mask_values,
    normalise_to_255,
    sobel,
    tutorial_canny,
)
from .registry import FILTERS, HOST_ONLY, MASKS, FilterSpec, Parameter, apply_to_batch

__all__ = [
    "FILTERS",
    "HOST_ONLY",
    "MASKS",
    "FilterSpec",
    "Parameter",
    "apply_to_batch",
    "as_float32",
    "canny",
    "fourier_gaussian_weights",
    "gaussian_gradient_magnitude",
    "laplace_gaussian",
    "mask_binary",
    "mask_values",
    "normalise_to_255",
    "sobel",
    "tutorial_canny",
]
