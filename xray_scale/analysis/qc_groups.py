"""Run-level QC: duplicate and near-duplicate groups, and the old outlier score.

From the per-image results of :mod:`xray_scale.analysis.qc` kept for a whole run (the
hashes, signatures and statistics), once every image is processed. Group ids
are deterministic: the smallest image index of the group, -1 for an image
without a copy. The outlier score of new stores is :mod:`.outliers`'; this
module's :func:`outlier_scores` is the rule of stores made before ``qc/outlier``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["group_duplicates", "group_near_duplicates", "hamming_distance", "outlier_scores"]


class _UnionFind:
    """Disjoint sets of ``0..n-1`` whose representative is the smallest member."""

    def __init__(self, count: int):
        self.parent = np.arange(count)

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:  # path compression
            self.parent[item], item = root, self.parent[item]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> np.ndarray:
        """Each item's group id: its set's smallest member, -1 for a set of one."""
        roots = np.array([self.find(i) for i in range(self.parent.size)], dtype=np.int64)
        sizes = np.bincount(roots, minlength=roots.size)
        roots[sizes[roots] < 2] = -1
        return roots


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


def _candidate_pairs(hashes: np.ndarray, max_distance: int, block: int) -> np.ndarray:
    """All pairs ``i < j`` of hashes within ``max_distance`` bits, as an (n, 2) array.

    Each block of rows is compared with the rows from its own first one on, in
    contiguous buffers allocated once: fresh temporaries for every block cost
    more in page faults than the comparisons, and ``np.nonzero`` of a 2-D array
    is ~40 times slower than ``np.flatnonzero`` of a flat one.
    """
    count = hashes.size
    xor = np.empty(block * count, dtype=np.uint64)
    bits = np.empty(block * count, dtype=np.uint8)
    near = np.empty(block * count, dtype=bool)
    pairs = []
    for start in range(0, count, block):
        rows = hashes[start : start + block, None]
        width = count - start
        size = rows.shape[0] * width
        x = xor[:size].reshape(-1, width)
        np.bitwise_xor(rows, hashes[None, start:], out=x)
        np.bitwise_count(xor[:size], out=bits[:size])
        np.less_equal(bits[:size], max_distance, out=near[:size])
        found = np.flatnonzero(near[:size])
        i, j = np.divmod(found, width)
        keep = j > i  # the upper triangle: each pair once, no self-pairs
        pairs.append(np.stack([i[keep] + start, j[keep] + start], axis=1))
    return np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64)


def _correlations(signatures: np.ndarray, pairs: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Correlation of the two signatures of each pair (0 where one is flat).

    ``chunk`` pairs at a time, in float32, so memory stays ~``chunk x 8`` kB
    whatever the number of images.
    """
    out = np.empty(len(pairs), dtype=np.float32)
    for start in range(0, len(pairs), chunk):
        i, j = pairs[start : start + chunk].T
        a = signatures[i].astype(np.float32)
        b = signatures[j].astype(np.float32)
        a -= a.mean(axis=1, keepdims=True)
        b -= b.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        dots = np.einsum("ij,ij->i", a, b)
        out[start : start + chunk] = np.divide(
            dots, norms, out=np.zeros_like(dots), where=norms > 0
        )
    return out


def group_near_duplicates(
    hashes: np.ndarray,
    signatures: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    max_distance: int = 10,
    min_correlation: float = 0.97,
    block: int = 64,
) -> np.ndarray:
    """Group copies of one film: close perceptual hashes and correlated detail.

    Every pair of valid images whose :func:`perceptual_hash` values differ in
    at most ``max_distance`` bits is a candidate (all pairs compared, ``block``
    rows at a time); a candidate whose :func:`signature` values correlate at
    ``min_correlation`` or more is a near-duplicate pair. Pairs are joined
    transitively (union-find). Exact copies are near duplicates too.

    Parameters
    ----------
    hashes : ndarray
        One perceptual hash per image (uint64).
    signatures : ndarray
        One signature per image, shape ``(N, 1024)``.
    valid : ndarray of bool, optional
        Only these images take part; the others get -1.
    max_distance : int
        Largest Hamming distance of a candidate pair.
    min_correlation : float
        Smallest correlation of the signatures of a near-duplicate pair.
    block : int
        Rows of hashes compared at once (memory ~``9 x block x N`` bytes: 64 MB for the dump).

    Returns
    -------
    ndarray
        int64 group id per image: the smallest index of its group, -1 when alone.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> film, other = rng.normal(size=1024), rng.normal(size=1024)
    >>> signatures = np.stack([film, other, film + 0.01 * rng.normal(size=1024)])
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
    groups = np.full(hashes.size, -1, dtype=np.int64)
    members = np.flatnonzero(valid)
    if members.size < 2:
        return groups
    pairs = _candidate_pairs(hashes[members], max_distance, block)
    pairs = pairs[_correlations(signatures[members], pairs) >= min_correlation]
    sets = _UnionFind(members.size)
    for i, j in pairs.tolist():
        sets.union(i, j)
    local = sets.groups()
    grouped = local >= 0
    groups[members[grouped]] = members[local[grouped]]
    return groups


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
        if mad == 0:
            mad = 0.8453 * deviation[finite].mean()  # the mean AD on the MAD's scale
        if mad == 0:
            continue
        z = 0.6745 * deviation / mad
        scores[valid] = np.fmax(scores[valid], np.where(finite, z, 0.0))
    return scores
