"""The filter registry: one :class:`FilterSpec` per filter, the single place a filter is added.

A spec carries the filter's reference function (:mod:`xray_scale.filters.reference`),
its parameters with their defaults and ranges, the dtype of its map, the
title figures show, and its stack version (:mod:`xray_scale.filters.stack`,
every image of a ``(K, H, W)`` stack filtered on its own) or :data:`HOST_ONLY`
when it has none and runs image by image on the host. Engines register
their own versions of a filter by its registry name
(:mod:`xray_scale.engines`); the tests run every registered filter through
every engine present.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import stack as stack_filters
from .reference import (
    canny,
    gaussian_gradient_magnitude,
    laplace_gaussian,
    mask_binary,
    mask_values,
    sobel,
    tutorial_canny,
)

__all__ = ["FILTERS", "HOST_ONLY", "MASKS", "FilterSpec", "Parameter", "apply_to_batch"]


class _HostOnly:
    """The marker of a filter without a stack version: it runs image by image on the host."""

    def __repr__(self) -> str:
        return "HOST_ONLY"


HOST_ONLY = _HostOnly()
"""``FilterSpec.stack`` of a filter that has no stack version (the real ``canny``)."""


@dataclass(frozen=True)
class Parameter:
    """One numeric parameter of a filter, with its default and valid range.

    Attributes
    ----------
    name : str
        Keyword argument of the filter function.
    default : float
        Value used when the configuration does not set it.
    minimum, maximum : float or None
        Inclusive bounds; ``None`` means unbounded.
    positive : bool
        If True the value must be strictly greater than 0.
    """

    name: str
    default: float
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False

    def check(self, value: object, *, where: str) -> float:
        """Return ``value`` as a float, or raise ValueError naming ``where``."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where} must be a number, got {value!r}")
        value = float(value)
        if not np.isfinite(value):
            raise ValueError(f"{where} must be finite, got {value}")
        if self.positive and value <= 0:
            raise ValueError(f"{where} must be > 0, got {value}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{where} must be >= {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{where} must be <= {self.maximum}, got {value}")
        return value


@dataclass(frozen=True)
class FilterSpec:
    """A registered filter.

    Attributes
    ----------
    name : str
        Registry key, also the store array name ``filters/<name>``.
    function : callable
        ``function(image2d, **params) -> ndarray``, pure.
    parameters : tuple of Parameter
        Its numeric keyword parameters.
    output_dtype : str
        dtype of the map it returns: ``"float32"`` or ``"bool"``.
    title : str
        Panel title used by figures.
    stack : callable or HOST_ONLY
        ``stack(images, *, xp, ndimage, **params)``: the same filter of every
        image of a float32 ``(K, H, W)`` stack of ``xp`` (numpy or cupy), each
        image on its own; or :data:`HOST_ONLY`. Required: a filter without a
        stack version says so.
    """

    name: str
    function: Callable[..., np.ndarray]
    parameters: tuple[Parameter, ...] = field(default=())
    output_dtype: str = "float32"
    title: str = ""
    stack: Callable[..., object] | _HostOnly | None = None

    def __post_init__(self) -> None:
        if self.stack is not HOST_ONLY and not callable(self.stack):
            raise TypeError(
                f"filter {self.name!r} needs a stack version (stack=...) or stack=HOST_ONLY"
            )

    def defaults(self) -> dict[str, float]:
        """Default parameter values, by name."""
        return {p.name: p.default for p in self.parameters}


FILTERS: dict[str, FilterSpec] = {
    spec.name: spec
    for spec in (
        FilterSpec(
            "laplace_gaussian",
            laplace_gaussian,
            (Parameter("sigma", 1.0, positive=True),),
            title="Laplace-Gaussian (edges)",
            stack=stack_filters.laplace_gaussian,
        ),
        FilterSpec(
            "gaussian_gradient_magnitude",
            gaussian_gradient_magnitude,
            (Parameter("sigma", 2.0, positive=True),),
            title="Gaussian gradient (edges)",
            stack=stack_filters.gaussian_gradient_magnitude,
        ),
        FilterSpec("sobel", sobel, (), title="Sobel (edges)", stack=stack_filters.sobel),
        FilterSpec(
            "tutorial_canny",
            tutorial_canny,
            (Parameter("sigma", 0.05, positive=True),),
            title="Canny (edges)",
            stack=stack_filters.tutorial_canny,
        ),
        FilterSpec(
            "canny",
            canny,
            (
                Parameter("sigma", 1.0, minimum=0.0),
                Parameter("low_threshold", 0.1, minimum=0.0),
                Parameter("high_threshold", 0.2, minimum=0.0),
            ),
            output_dtype="bool",
            title="Canny edge detector (scikit-image)",
            stack=HOST_ONLY,
        ),
    )
}
"""Every filter this package knows, by name."""

MASKS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "mask_values": mask_values,
    "mask_binary": mask_binary,
}
"""The tutorial's two threshold masks, by name: ``function(image, threshold)``."""


def apply_to_batch(spec: FilterSpec, batch: np.ndarray, **params: float) -> np.ndarray:
    """Apply one filter to each image of a ``(K, H, W)`` batch, image by image.

    Parameters
    ----------
    spec : FilterSpec
        The filter, e.g. ``FILTERS["sobel"]``.
    batch : ndarray
        ``(K, H, W)`` stack of images.
    **params
        Keyword parameters of the filter.

    Returns
    -------
    ndarray
        ``(K, H, W)`` array of ``spec.output_dtype``; image ``k`` of it equals
        ``spec.function(batch[k], **params)`` exactly.

    Examples
    --------
    >>> batch = np.zeros((2, 4, 4), dtype=np.uint8); batch[1, :, 2:] = 9
    >>> apply_to_batch(FILTERS["sobel"], batch).max(axis=(1, 2))
    array([  0., 255.], dtype=float32)
    """
    batch = np.asarray(batch)
    if batch.ndim != 3:
        raise ValueError(f"batch must be 3-D (images, height, width), got shape {batch.shape}")
    out = np.empty(batch.shape, dtype=spec.output_dtype)
    for k, image in enumerate(batch):
        out[k] = spec.function(image, **params)
    return out
