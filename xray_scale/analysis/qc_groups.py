"""Run-level QC: duplicate and near-duplicate groups, and the old outlier score.

From the per-image results of :mod:`xray_scale.analysis.qc` kept for a whole run (the
hashes, signatures and statistics), once every image is processed. Group ids
are deterministic: the smallest image index of the group, -1 for an image
without a copy. The outlier score of new stores is :mod:`.outliers`'; this
module's :func:`outlier_scores` is the rule of stores made before ``qc/outlier``.
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


def _window_keys(
    hashes: np.ndarray, order: np.ndarray, window: int, max_distance: int
) -> np.ndarray:
    """Sorted keys ``i * n + j`` (``i < j``) of the pairs at most ``window`` apart in ``order``
    and within ``max_distance`` bits; each pair once (one per pair of positions)."""
    count = hashes.size
    keys = []
    for step in range(1, min(window, count - 1) + 1):
        a, b = order[:-step], order[step:]
        near = hamming_distance(hashes[a], hashes[b]) <= max_distance
        a, b = a[near], b[near]
        keys.append(np.minimum(a, b) * count + np.maximum(a, b))
    return np.sort(np.concatenate(keys))


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each of ``keys`` is in the sorted array ``sorted_keys``."""
    at = np.searchsorted(sorted_keys, keys)
    found = np.zeros(keys.size, dtype=bool)
    inside = at < sorted_keys.size
    found[inside] = sorted_keys[at[inside]] == keys[inside]
    return found


def _candidates(hashes: np.ndarray, max_distance: int, window: int) -> np.ndarray:
    """Every pair the band orders put forward, once: sorted keys ``i * n + j``, ``i < j``.

    For each band, the pairs at most ``window`` apart in its order and within
    ``max_distance`` bits; a pair already put forward by an earlier band is
    dropped. At most ``(max_distance + 1) x window`` pairs per image.
    """
    candidates = np.zeros(0, dtype=np.int64)
    for _, stop in _bands(max_distance):
        keys = _window_keys(hashes, _band_order(hashes, stop), window, max_distance)
        keys = keys[~_contains(candidates, keys)]
        candidates = np.sort(np.concatenate([candidates, keys]), kind="stable")  # two sorted runs
    return candidates


class _SignatureRows:
    """Exact correlations of int8 signature rows, read ``block`` rows at a time.

    Dot products, sums and sums of squares of int8 rows are exact integers
    (int16 products, int32 sums: 1,024 x 128**2 < 2**31), so the covariance
    and the variances are exact whatever the summation order; one float64
    division and square root follow. The same bits on every CPU.

    ``signatures`` is anything sliced by rows into int8 arrays: an ndarray, or
    the store's ``qc/signature`` read as it goes, so that at most two blocks of
    rows are in memory, however many images the run has.
    """

    def __init__(self, signatures, block: int):
        self.signatures, self.block = signatures, block
        count, self.width = signatures.shape
        self.sums = np.empty(count, dtype=np.int64)
        squares = np.empty(count, dtype=np.int64)
        for start in range(0, count, block):
            rows = np.asarray(signatures[start : start + block])
            for at in range(0, rows.shape[0], 1024):  # 4 MB of int32 at a time
                wide = rows[at : at + 1024].astype(np.int32)
                where = slice(start + at, start + at + wide.shape[0])
                self.sums[where] = wide.sum(axis=1)
                squares[where] = (wide * wide).sum(axis=1)
        self.spreads = self.width * squares - self.sums * self.sums
        self._loaded: dict[int, np.ndarray] = {}

    def _rows(self, index: int, keep: int) -> np.ndarray:
        """Block ``index``; of those read before, only block ``keep`` stays in memory."""
        if index not in self._loaded:
            self._loaded = {k: v for k, v in self._loaded.items() if k == keep}
            start = index * self.block
            self._loaded[index] = np.asarray(self.signatures[start : start + self.block])
        return self._loaded[index]

    def correlations(self, first: np.ndarray, second: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Pearson correlation of rows ``first[k]`` and ``second[k]`` (0 where one is flat).

        Every ``first`` lies in one block and every ``second`` in one block.
        """
        one, other = first[0] // self.block, second[0] // self.block
        rows_one, rows_other = self._rows(one, keep=other), self._rows(other, keep=one)
        local_one, local_other = first - one * self.block, second - other * self.block
        out = np.zeros(first.size, dtype=np.float64)
        for start in range(0, first.size, chunk):
            part = slice(start, start + chunk)
            products = rows_one[local_one[part]].astype(np.int16) * rows_other[local_other[part]]
            dots = products.sum(axis=1, dtype=np.int32).astype(np.int64)
            i, j = first[part], second[part]
            covariance = self.width * dots - self.sums[i] * self.sums[j]
            spread = self.spreads[i].astype(np.float64) * self.spreads[j].astype(np.float64)
            flat = spread == 0
            out[part] = np.where(flat, 0.0, covariance / np.sqrt(np.where(flat, 1.0, spread)))
        return out


def _join_alike(
    parent: np.ndarray,
    members: np.ndarray,
    keys: np.ndarray,
    rows: _SignatureRows,
    min_correlation: float,
) -> None:
    """Join the candidate pairs whose signatures correlate, block of rows by block of rows.

    ``keys`` are sorted ``i * n + j`` over the ``n`` members (``i < j``), so the
    pairs of one block of first images are contiguous; within it they are
    visited by the block of the second image, each pair of blocks once.
    """
    count, block = members.size, rows.block
    for start_row in range(0, int(members[-1]) + 1, block):
        low, high = np.searchsorted(members, [start_row, start_row + block])
        start, stop = np.searchsorted(keys, [low * count, high * count])
        if start == stop:
            continue
        first, second = np.divmod(keys[start:stop], count)
        first, second = members[first], members[second]  # image indices, still first < second
        by_block = np.argsort(second // block, kind="stable")
        first, second = first[by_block], second[by_block]
        bounds = np.flatnonzero(np.diff(second // block)) + 1
        for i, j in zip(np.split(first, bounds), np.split(second, bounds), strict=True):
            apart = _roots(parent, i) != _roots(parent, j)
            i, j = i[apart], j[apart]
            if i.size:
                alike = rows.correlations(i, j) >= min_correlation
                _union(parent, i[alike], j[alike])


def group_near_duplicates(
    hashes: np.ndarray,
    signatures,
    valid: np.ndarray | None = None,
    *,
    max_distance: int = 10,
    min_correlation: float = 0.97,
    window: int = NEAR_DUPLICATE_WINDOW,
    block: int = 4096,
) -> np.ndarray:
    """Group copies of one film: close perceptual hashes and correlated detail.

    Candidates come from ``max_distance + 1`` bands of the 64-bit
    :func:`perceptual_hash` (two hashes within ``max_distance`` bits agree
    exactly on at least one band). For each band the valid images are sorted
    by their hash with that band leading, and each image is paired with the
    ``window`` images after it; a pair within ``max_distance`` bits is a
    candidate (once, whichever bands put it forward). Candidates are then
    compared block of rows by block of rows: a pair whose :func:`signature`
    values correlate at ``min_correlation`` or more is a near-duplicate pair,
    joined at once (union-find, transitively), and a pair already in one group
    is not compared. Exact copies are near duplicates too.

    The work is at most ``(max_distance + 1) x window`` candidates per image,
    and memory a few arrays of one entry per image, the candidates' keys
    (8 bytes each) and two blocks of ``block`` signature rows, whatever the
    images look like. The cap costs recall only where more than ``window``
    images share a band's bits and sort between two copies in every band the
    copies share; transitivity recovers most of those (one near copy in a
    window links the group), and copies, which differ in a few bits, agree on
    most bands.

    Parameters
    ----------
    hashes : ndarray
        One perceptual hash per image (uint64).
    signatures : array-like
        One int8 signature per image, shape ``(N, 1024)``: an ndarray, or any
        array read by row slices (the store's ``qc/signature``).
    valid : ndarray of bool, optional
        Only these images take part; the others get -1.
    max_distance : int
        Largest Hamming distance of a candidate pair (0..63).
    min_correlation : float
        Smallest correlation of the signatures of a near-duplicate pair.
    window : int
        Neighbours paired with each image in each band's order (>= 1).
    block : int
        Signature rows read at a time (1 kB each).

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
    valid = _valid_mask(hashes.size, valid)
    if len(signatures.shape) != 2 or signatures.shape[0] != hashes.size:
        raise ValueError(
            f"signatures must be one row per hash ({hashes.size}), got {signatures.shape}"
        )
    if signatures.dtype != np.int8:
        raise TypeError(f"signatures must be int8 (qc.signature), got {signatures.dtype}")
    if not 0 <= max_distance <= 63:
        raise ValueError(f"max_distance must be in 0..63, got {max_distance}")
    if window < 1 or block < 1:
        raise ValueError(f"window and block must be at least 1, got {window} and {block}")
    members = np.flatnonzero(valid)
    parent = np.arange(hashes.size)
    if members.size >= 2:
        keys = _candidates(hashes[members], max_distance, window)
        _join_alike(parent, members, keys, _SignatureRows(signatures, block), min_correlation)
    return _set_ids(parent)  # an image not valid was never paired: alone, -1


def outlier_scores(stats: dict[str, np.ndarray], valid: np.ndarray | None = None) -> np.ndarray:
    """The largest robust z-score of each image's statistics over the run (stores made before
    ``qc/outlier``; it flags 41 % of ordinary 8-bit films, whose min, max and p99 saturate).

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
