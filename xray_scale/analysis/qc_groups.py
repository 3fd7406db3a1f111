"""Run-level QC: duplicate and near-duplicate groups, outlier scores.

From the per-image results of :mod:`xray_scale.analysis.qc` kept for a whole run (the
hashes, signatures and statistics), once every image is processed. Group ids
are deterministic: the smallest image index of the group, -1 for an image
without a copy.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "NEAR_DUPLICATE_WINDOW",
    "group_duplicates",
    "group_near_duplicates",
    "hamming_distance",
    "outlier_scores",
]


def _roots(parent: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The representative of each of ``items``."""
    _compress(parent)
    return parent[items]


def _compress(parent: np.ndarray) -> None:
    """Point every item straight at its representative, in place.

    Pointer doubling: each round halves every path, so a chain of ``n`` takes
    ``log2(n)`` rounds.
    """
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return
        parent[:] = grand


def _union(parent: np.ndarray, first: np.ndarray, second: np.ndarray) -> None:
    """Join the sets of each pair ``(first[k], second[k])``; a set's representative is its minimum.

    Vectorised union-find: each round hooks the larger root of every pair that
    still differs onto the smaller one (``np.minimum.at``), until no pair
    differs; a few rounds, even for long chains or stars.
    """
    while first.size:
        a, b = _roots(parent, first), _roots(parent, second)
        differ = a != b
        first, second, a, b = first[differ], second[differ], a[differ], b[differ]
        np.minimum.at(parent, np.maximum(a, b), np.minimum(a, b))
    _compress(parent)


def _set_ids(parent: np.ndarray) -> np.ndarray:
    """Each item's set id: its set's smallest member, -1 for a set of one."""
    _compress(parent)
    sizes = np.bincount(parent, minlength=parent.size)
    return np.where(sizes[parent] > 1, parent, -1)


def _valid_mask(count: int, valid: np.ndarray | None) -> np.ndarray:
    if valid is None:
        return np.ones(count, dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != (count,):
        raise ValueError(f"valid must have one entry per image ({count}), got {valid.shape}")
    return valid


def group_duplicates(hashes: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Group images with equal pixel hashes.

    Parameters
    ----------
    hashes : ndarray
        One :func:`pixel_hash` per image (uint64).
    valid : ndarray of bool, optional
        Only these images take part (e.g. the ok ones); the others get -1.

    Returns
    -------
    ndarray
        int64 group id per image: the smallest index of its group, -1 when it has no copy.

    Examples
    --------
    >>> group_duplicates(np.array([5, 7, 5, 9, 7], dtype=np.uint64))
    array([ 0,  1,  0, -1,  1])
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    valid = _valid_mask(hashes.size, valid)
    groups = np.full(hashes.size, -1, dtype=np.int64)
    members = np.flatnonzero(valid)
    if members.size == 0:
        return groups
    _, first, inverse, counts = np.unique(
        hashes[members], return_index=True, return_inverse=True, return_counts=True
    )
    shared = counts[inverse] > 1
    groups[members[shared]] = members[first[inverse[shared]]]
    return groups


def hamming_distance(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bits that differ between 64-bit hashes (broadcasting).

    Examples
    --------
    >>> int(hamming_distance(0b1011, 0b0001))
    2
    """
    xor = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    return np.bitwise_count(xor)


NEAR_DUPLICATE_WINDOW = 8
"""Neighbours each image is compared with in each band's order (the cap per image)."""


def _bands(max_distance: int) -> list[tuple[int, int]]:
    """``max_distance + 1`` bit ranges ``[start, stop)`` that tile the 64 bits.

    Two hashes within ``max_distance`` bits agree exactly on at least one of
    them (pigeonhole).
    """
    count = max_distance + 1
    edges = [64 * k // count for k in range(count + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _band_order(hashes: np.ndarray, stop: int) -> np.ndarray:
    """The images sorted by their hash rotated so that bit ``stop - 1`` leads.

    A band ``[start, stop)`` then holds the most significant bits: images that
    agree on it are contiguous, ordered by the bits after it.
    """
    turn = np.uint64((64 - stop) % 64)
    rotated = (hashes << turn) | (hashes >> np.uint64(64 - int(turn))) if turn else hashes
    return np.argsort(rotated, kind="stable")


def _window_pairs(
    hashes: np.ndarray, order: np.ndarray, window: int, max_distance: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(i, j)``, ``i < j``, at most ``window`` apart in ``order``, close in hash."""
    firsts, seconds = [], []
    for step in range(1, min(window, order.size - 1) + 1):
        a, b = order[:-step], order[step:]
        near = hamming_distance(hashes[a], hashes[b]) <= max_distance
        a, b = a[near], b[near]
        firsts.append(np.minimum(a, b))
        seconds.append(np.maximum(a, b))
    return np.concatenate(firsts), np.concatenate(seconds)


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each of ``keys`` is in the sorted array ``sorted_keys``."""
    at = np.searchsorted(sorted_keys, keys)
    found = np.zeros(keys.size, dtype=bool)
    inside = at < sorted_keys.size
    found[inside] = sorted_keys[at[inside]] == keys[inside]
    return found


class _Signatures:
    """Exact correlations of int8 signature rows.

    Dot products, sums and sums of squares of int8 rows are exact integers
    (int16 products, int32 sums: 1,024 x 128**2 < 2**31), so the covariance
    and the variances are exact whatever the summation order; one float64
    division and square root follow. The same bits on every CPU.
    """

    def __init__(self, rows: np.ndarray):
        self.rows = rows
        self.sums = np.empty(rows.shape[0], dtype=np.int64)
        squares = np.empty(rows.shape[0], dtype=np.int64)
        for start in range(0, rows.shape[0], 4096):  # int32 is exact: 1024 x 127**2 < 2**31
            wide = rows[start : start + 4096].astype(np.int32)
            self.sums[start : start + 4096] = wide.sum(axis=1)
            squares[start : start + 4096] = (wide * wide).sum(axis=1)
        self.spreads = rows.shape[1] * squares - self.sums * self.sums

    def correlations(self, first: np.ndarray, second: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Pearson correlation of rows ``first[k]`` and ``second[k]`` (0 where one is flat)."""
        out = np.zeros(first.size, dtype=np.float64)
        width = self.rows.shape[1]
        for start in range(0, first.size, chunk):
            i, j = first[start : start + chunk], second[start : start + chunk]
            products = self.rows[i].astype(np.int16) * self.rows[j]
            dots = products.sum(axis=1, dtype=np.int32).astype(np.int64)
            covariance = width * dots - self.sums[i] * self.sums[j]
            spread = self.spreads[i].astype(np.float64) * self.spreads[j].astype(np.float64)
            flat = spread == 0
            out[start : start + chunk] = np.where(
                flat, 0.0, covariance / np.sqrt(np.where(flat, 1.0, spread))
            )
        return out


def group_near_duplicates(
    hashes: np.ndarray,
    signatures: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    max_distance: int = 10,
    min_correlation: float = 0.97,
    window: int = NEAR_DUPLICATE_WINDOW,
) -> np.ndarray:
    """Group copies of one film: close perceptual hashes and correlated detail.

    Candidates come from ``max_distance + 1`` bands of the 64-bit
    :func:`perceptual_hash` (two hashes within ``max_distance`` bits agree
    exactly on at least one band). For each band the valid images are sorted
    by their hash with that band leading, and each image is compared with the
    ``window`` images after it: a pair within ``max_distance`` bits whose
    :func:`signature` values correlate at ``min_correlation`` or more is a
    near-duplicate pair, joined at once (union-find, transitively); a pair
    already in one group, or already compared in an earlier band, is not
    compared again. Exact copies are near duplicates too.

    The work is at most ``(max_distance + 1) x window`` comparisons per image,
    and memory a few arrays of one entry per image, whatever the images look
    like: a run of identical images joins in the first band. The cap costs
    recall only where more than ``window`` images share a band's bits and sort
    between two copies; transitivity recovers most of those (one near copy in
    the window links the group), and copies, which differ in a few bits, agree
    on most bands.

    Parameters
    ----------
    hashes : ndarray
        One perceptual hash per image (uint64).
    signatures : ndarray
        One int8 signature per image, shape ``(N, 1024)``.
    valid : ndarray of bool, optional
        Only these images take part; the others get -1.
    max_distance : int
        Largest Hamming distance of a candidate pair (0..63).
    min_correlation : float
        Smallest correlation of the signatures of a near-duplicate pair.
    window : int
        Neighbours compared per image in each band's order (>= 1).

    Returns
    -------
    ndarray
        int64 group id per image: the smallest index of its group, -1 when alone.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> film, other = rng.integers(-127, 128, size=(2, 1024))
    >>> noisy = np.clip(film + rng.integers(-3, 4, size=1024), -127, 127)
    >>> signatures = np.stack([film, other, noisy]).astype(np.int8)
    >>> group_near_duplicates(np.array([0, 1, 3], dtype=np.uint64), signatures)
    array([ 0, -1,  0])
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    signatures = np.asarray(signatures)
    valid = _valid_mask(hashes.size, valid)
    if signatures.ndim != 2 or signatures.shape[0] != hashes.size:
        raise ValueError(
            f"signatures must be one row per hash ({hashes.size}), got {signatures.shape}"
        )
    if signatures.dtype != np.int8:
        raise TypeError(f"signatures must be int8 (qc.signature), got {signatures.dtype}")
    if not 0 <= max_distance <= 63:
        raise ValueError(f"max_distance must be in 0..63, got {max_distance}")
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    groups = np.full(hashes.size, -1, dtype=np.int64)
    members = np.flatnonzero(valid)
    if members.size < 2:
        return groups
    local = hashes[members]
    rows = _Signatures(signatures[members])
    parent = np.arange(members.size)
    compared = np.zeros(0, dtype=np.int64)  # keys i * n + j (i < j) of the pairs compared so far
    for _, stop in _bands(max_distance):
        first, second = _window_pairs(local, _band_order(local, stop), window, max_distance)
        keys = first * members.size + second
        by_key = np.argsort(keys)  # sorted look-ups and merges: cache-friendly, linear
        first, second, keys = first[by_key], second[by_key], keys[by_key]
        fresh = ~_contains(compared, keys)
        first, second, keys = first[fresh], second[fresh], keys[fresh]
        apart = _roots(parent, first) != _roots(parent, second)
        first, second = first[apart], second[apart]
        alike = rows.correlations(first, second) >= min_correlation
        _union(parent, first[alike], second[alike])
        compared = np.sort(np.concatenate([compared, keys]), kind="stable")  # two sorted runs
    ids = _set_ids(parent)
    grouped = ids >= 0
    groups[members[grouped]] = members[ids[grouped]]
    return groups


def outlier_scores(stats: dict[str, np.ndarray], valid: np.ndarray | None = None) -> np.ndarray:
    """The largest robust z-score of each image's statistics over the run.

    For each statistic, ``z = 0.6745 * (x - median) / MAD`` over the valid
    images (MAD: the median absolute deviation; where it is 0, the mean
    absolute deviation times 1.2533 stands in, and a statistic constant over
    the run is left out). The score is the largest ``|z|`` of the image.

    Parameters
    ----------
    stats : dict of str to ndarray
        One array per statistic, one value per image.
    valid : ndarray of bool, optional
        The images the medians come from and that get a score; the others get NaN.

    Returns
    -------
    ndarray
        float64 score per image; 0 when every statistic is constant.

    Examples
    --------
    >>> outlier_scores({"mean": np.array([10.0, 11.0, 9.0, 10.0, 50.0])}).round(2)
    array([ 0.  ,  0.67,  0.67,  0.  , 26.98])
    """
    arrays = {name: np.asarray(values, dtype=np.float64) for name, values in stats.items()}
    count = next(iter(arrays.values())).size if arrays else 0
    valid = _valid_mask(count, valid)
    scores = np.full(count, np.nan)
    if not valid.any():
        return scores
    scores[valid] = 0.0
    for values in arrays.values():
        x = values[valid]
        finite = np.isfinite(x)
        if not finite.any():
            continue
        centre = np.median(x[finite])
        deviation = np.abs(x - centre)
        mad = np.median(deviation[finite])
        if mad == 0:  # the mean AD on the MAD's scale (fsum: the same bits in any order)
            mad = 0.8453 * math.fsum(deviation[finite]) / int(finite.sum())
        if mad == 0:
            continue
        z = 0.6745 * deviation / mad
        scores[valid] = np.fmax(scores[valid], np.where(finite, z, 0.0))
    return scores
