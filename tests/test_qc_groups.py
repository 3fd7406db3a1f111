"""Run-level grouping: bounded work whatever the images, and the same groups as all pairs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import zarr
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from xray_scale.analysis.qc import image_qc
from xray_scale.analysis.qc_groups import _SignatureRows, group_near_duplicates, hamming_distance

CALIBRATION = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CALIBRATION = CALIBRATION / "chestxray8-calibration"
needs_calibration = pytest.mark.skipif(
    len(list(CALIBRATION.glob("*.png"))) < 100,
    reason=f"the 100 real calibration films are not in {CALIBRATION} (../shared beside the clone)",
)


def all_pairs_groups(hashes, signatures, *, max_distance=10, min_correlation=0.97):
    """The definition, by brute force: every pair compared, components of the joined pairs."""
    count = hashes.size
    first, second = np.triu_indices(count, k=1)
    near = hamming_distance(hashes[first], hashes[second]) <= max_distance
    first, second = first[near], second[near]
    rows = signatures.astype(np.float64)
    alike = np.array(
        [
            np.corrcoef(rows[i], rows[j])[0, 1] >= min_correlation
            for i, j in zip(first, second, strict=True)
        ],
        dtype=bool,
    )
    graph = coo_matrix((np.ones(alike.sum()), (first[alike], second[alike])), (count, count))
    _, labels = connected_components(graph, directed=False)
    groups = np.full(count, -1)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if members.size > 1:
            groups[members] = members.min()
    return groups


def _jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())))


@needs_calibration
def test_real_films_and_their_copies_group_as_all_pairs_do(tmp_path):
    rng = np.random.default_rng(0)
    films = [np.asarray(Image.open(p)) for p in sorted(CALIBRATION.glob("*.png"))[:100]]
    films = [f if f.ndim == 2 else f[..., 0] for f in films]
    copies = []
    for k in range(0, 100, 5):  # 20 films get copies: noisy, re-encoded, shifted by 2 pixels
        noisy = np.clip(films[k].astype(int) + rng.integers(-2, 3, films[k].shape), 0, 255)
        copies += [noisy.astype(np.uint8), _jpeg(films[k], 85), np.roll(films[k], 2, axis=1)]
    results = [image_qc(f) for f in films + copies]
    hashes = np.array([r.perceptual_hash for r in results], dtype=np.uint64)
    signatures = np.stack([r.signature for r in results])

    expected = all_pairs_groups(hashes, signatures)
    np.testing.assert_array_equal(group_near_duplicates(hashes, signatures), expected)
    # read from a store 7 rows at a time: the same groups
    stored = zarr.create_array(
        tmp_path / "s.zarr", shape=signatures.shape, dtype="int8", chunks=(16, 1024)
    )
    stored[:] = signatures
    np.testing.assert_array_equal(group_near_duplicates(hashes, stored, block=7), expected)
    # the copies were found: each copied film heads a group of itself and its three copies
    for n, k in enumerate(range(0, 100, 5)):
        assert (expected[[k, 100 + 3 * n, 101 + 3 * n, 102 + 3 * n]] == k).all(), k


def test_identical_images_at_scale_form_one_group_in_bounded_work():
    """The worst case for pairs (every pair a candidate): one group, no N**2 anything."""
    count = 30_000
    signature = np.random.default_rng(1).integers(-127, 128, 1024, dtype=np.int8)
    hashes = np.full(count, 0xDEADBEEF, dtype=np.uint64)
    groups = group_near_duplicates(hashes, np.tile(signature, (count, 1)))
    assert (groups == 0).all()


def test_look_alikes_that_are_not_copies_stay_apart_and_copies_among_them_are_found():
    """Hashes within a few bits of each other everywhere, detail unrelated: no pruning helps."""
    rng = np.random.default_rng(2)
    count = 5_000
    flips = rng.integers(0, 64, size=(count, 2)).astype(np.uint64)
    hashes = np.uint64(0x0123456789ABCDEF) ^ (np.uint64(1) << flips[:, 0])
    hashes ^= np.uint64(1) << flips[:, 1]
    signatures = rng.integers(-127, 128, (count, 1024), dtype=np.int8)
    signatures[4321] = signatures[17]  # one real copy among the look-alikes
    hashes[4321] = hashes[17] ^ np.uint64(1 << 40)
    for block in (16384, 100):  # one block of rows, and many
        groups = group_near_duplicates(hashes, signatures, block=block)
        assert groups[17] == groups[4321] == 17
        assert np.count_nonzero(groups >= 0) == 2


def test_correlations_are_exact():
    rows = np.random.default_rng(3).integers(-128, 128, (50, 1024), dtype=np.int8)
    rows[7] = 5  # flat: correlation 0
    first, second = np.triu_indices(50, k=1)
    computed = _SignatureRows(rows, block=64).correlations(first, second)
    reference = np.array(
        [
            0.0 if 7 in (i, j) else np.corrcoef(rows[i].astype(float), rows[j].astype(float))[0, 1]
            for i, j in zip(first, second, strict=True)
        ]
    )
    np.testing.assert_allclose(computed, reference, rtol=0, atol=1e-12)
