"""Every QC number xray_scale stores for a set of images, saved for a bit-for-bit comparison.

``python tests/qc_bits.py IMAGES.npy OUT.npz``: ``IMAGES.npy`` holds a stack of
uint8 images; the QC of each (:func:`xray_scale.analysis.qc.image_qc`, with both
pixel hashes), of a uint16 twin, a framed and an odd-sized copy of the first
(OpenCV's area resize), and the outlier scores over them all are written to
``OUT.npz``. tests/test_qc_determinism.py runs it under several BLAS kernels,
SIMD levels and thread counts and compares the files.
"""

from __future__ import annotations

import sys

import numpy as np

from xray_scale.analysis.outliers import OUTLIER_FEATURES, outlier_distance, robust_scales
from xray_scale.analysis.qc import QC_RECORD_FIELDS, image_qc


def variants(stack: np.ndarray) -> list[np.ndarray]:
    """The images, then the copies that take the other code paths."""
    first = stack[0]
    framed = np.zeros_like(first)
    framed[100:-90, 70:-60] = first[100:-90, 70:-60]
    return [*stack, first.astype(np.uint16) * 257, framed, np.ascontiguousarray(first[:1000, 3:])]


def qc_numbers(images: list[np.ndarray]) -> dict[str, np.ndarray]:
    """``{name: array}`` of every stored QC number of the images (see the module docstring)."""
    results = [image_qc(image) for image in images]
    out = {name: np.array([getattr(r, name) for r in results]) for name in QC_RECORD_FIELDS}
    out["sha1_pixel_hash"] = np.array(
        [image_qc(image, hash_kind="sha1").pixel_hash for image in images], dtype=np.uint64
    )
    features = {name: out[name] for name in OUTLIER_FEATURES}
    out["outlier_score"] = outlier_distance(features)
    scales = robust_scales(features)
    out["outlier_scales"] = np.array([scales[name] for name in OUTLIER_FEATURES])
    return out


def main(images: str, destination: str) -> None:
    stack = np.load(images)
    np.savez(destination, **qc_numbers(variants(stack)))


if __name__ == "__main__":
    main(*sys.argv[1:])
