"""Run-level outliers: how far each image lies from the run's typical image.

The score is a robust distance over four per-image features that vary
continuously over real films (:mod:`.qc_features`; none saturates the way an
8-bit film's minimum, maximum or 99th percentile does):

=====================  =======  =====  =========================================
feature                counts   floor  what pushes it out
=====================  =======  =====  =========================================
``concentration``      high     0.02   blank, low contrast, clipping, a frame
``frame_fraction``     high     0.04   a black or white frame
``chest_correlation``  low      0.15   a negative, a picture that is not a chest
``fine_detail``        both     0.25   blur or a narrow window; noise, synthesis
=====================  =======  =====  =========================================

Each feature is centred on its median over the run's valid images and scaled
by ``max(1.4826 * MAD, floor)`` (the MAD scaled to a standard deviation, with
a floor in the feature's own units, so that a feature nearly constant over the
run cannot blow a tiny difference up); a one-sided feature counts only on its
side. The score is the root sum of squares of the four robust z-scores, and
an image is an outlier when it is above ``qc.outlier_threshold`` (3.5). On the
100 calibration films the two flagged are the two inside frames of 12 and 16 %
of the area (docs/qc.md).

Every step is a median, an elementwise operation or a square root: the same
bits on every CPU, BLAS and thread count.
"""

from __future__ import annotations

import numpy as np

__all__ = ["OUTLIER_FEATURES", "outlier_distance", "robust_scales"]

OUTLIER_FEATURES: dict[str, tuple[str, float]] = {
    "concentration": ("high", 0.02),
    "frame_fraction": ("high", 0.04),
    "chest_correlation": ("low", 0.15),
    "fine_detail": ("both", 0.25),
}
"""``{feature: (side, floor)}``: the side that counts (``"high"``, ``"low"`` or ``"both"``)
and the smallest scale, in the feature's units."""
_MAD_TO_SIGMA = 1.4826
"""A normal distribution's standard deviation over its MAD."""


def _checked(
    features: dict[str, np.ndarray], valid: np.ndarray | None
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    missing = sorted(set(OUTLIER_FEATURES) - set(features))
    if missing:
        raise ValueError(f"the outlier score needs the features {missing}")
    arrays = {name: np.asarray(features[name], dtype=np.float64) for name in OUTLIER_FEATURES}
    count = next(iter(arrays.values())).shape[0]
    if any(values.shape != (count,) for values in arrays.values()):
        raise ValueError("every feature must have one value per image, in one 1-D array")
    valid = np.ones(count, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if valid.shape != (count,):
        raise ValueError(f"valid must have one entry per image ({count}), got {valid.shape}")
    return arrays, valid


def robust_scales(
    features: dict[str, np.ndarray], valid: np.ndarray | None = None
) -> dict[str, tuple[float, float]]:
    """Each feature's centre (median) and scale (``max(1.4826 MAD, floor)``) over the valid images.

    Parameters
    ----------
    features : dict of str to ndarray
        One value per image for each of :data:`OUTLIER_FEATURES` (others are ignored).
    valid : ndarray of bool, optional
        The images the medians come from (e.g. the ok ones); all when not given.

    Returns
    -------
    dict
        ``{feature: (centre, scale)}``; a feature with no finite valid value
        gets centre NaN (it then counts for nothing).

    Examples
    --------
    >>> values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    >>> features = {"concentration": np.array([0.08, 0.08, 0.09, 0.08, 0.08]),
    ...             "frame_fraction": values * 0, "chest_correlation": values / 10,
    ...             "fine_detail": values}
    >>> scales = robust_scales(features)
    >>> scales["concentration"], scales["fine_detail"]  # MAD 0: the floor; MAD 1
    ((0.08, 0.02), (3.0, 1.4826))
    """
    arrays, valid = _checked(features, valid)
    scales = {}
    for name, (_, floor) in OUTLIER_FEATURES.items():
        values = arrays[name][valid]
        values = values[np.isfinite(values)]
        if values.size == 0:
            scales[name] = (float("nan"), floor)
            continue
        centre = float(np.median(values))
        mad = float(np.median(np.abs(values - centre)))
        scales[name] = (centre, max(_MAD_TO_SIGMA * mad, floor))
    return scales


def outlier_distance(
    features: dict[str, np.ndarray],
    valid: np.ndarray | None = None,
    *,
    scales: dict[str, tuple[float, float]] | None = None,
) -> np.ndarray:
    """Each image's robust distance from the run's typical image (the module docstring).

    Parameters
    ----------
    features : dict of str to ndarray
        One value per image for each of :data:`OUTLIER_FEATURES`.
    valid : ndarray of bool, optional
        The images that get a score (and, without ``scales``, that the medians
        come from); the others get NaN.
    scales : dict, optional
        Centres and scales (:func:`robust_scales`) to measure from instead of
        the valid images' own: e.g. those of a clean reference set.

    Returns
    -------
    ndarray
        float64 score per image, >= 0; NaN where not valid.

    Examples
    --------
    >>> features = {"concentration": np.array([0.08, 0.09, 0.07, 0.08, 0.45]),
    ...             "frame_fraction": np.zeros(5),
    ...             "chest_correlation": np.array([0.8, 0.7, 0.9, 0.8, 0.0]),
    ...             "fine_detail": np.array([2.5, 2.9, 2.7, 2.6, 2.7])}
    >>> outlier_distance(features).round(2)
    array([ 0.8 ,  1.16,  0.  ,  0.4 , 19.25])
    """
    arrays, valid = _checked(features, valid)
    scales = robust_scales(arrays, valid) if scales is None else scales
    total = np.zeros(valid.shape[0])
    for name, (side, _) in OUTLIER_FEATURES.items():
        centre, scale = scales[name]
        z = (arrays[name] - centre) / scale
        if side == "high":
            z = np.maximum(z, 0.0)
        elif side == "low":
            z = np.minimum(z, 0.0)
        z = np.where(np.isfinite(z), z, 0.0)
        total = total + z * z  # one feature at a time: a fixed order of float additions
    return np.where(valid, np.sqrt(total), np.nan)
