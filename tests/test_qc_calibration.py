"""QC on real films: each flag's precision and recall on injected defects, the outlier rate.

On the 100 calibration films (``../shared/data/chestxray8-calibration/``, tests/qc_calibration.py)
and their injected copies; skipped, with the reason, where the films are absent (CI has them).
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from PIL import Image
from qc_calibration import (
    CALIBRATION,
    DEFECTS,
    REAL_FRAMES,
    calibration_films,
    clean,
    injected,
    not_chest,
)
from qc_cases import precision_recall

import xray_scale
from xray_scale.analysis.outliers import OUTLIER_FEATURES, outlier_distance, robust_scales
from xray_scale.analysis.qc import QC_FLAGS, QCConfig, find_frame, image_qc
from xray_scale.analysis.qc_features import CHEST_TEMPLATE, block_sums
from xray_scale.store.encoding import read_index

pytestmark = pytest.mark.skipif(
    not CALIBRATION.is_dir(),
    reason=f"the calibration films are not here ({CALIBRATION}; CI has them)",
)
THRESHOLD = QCConfig().outlier_threshold
MIN_SCORE = 0.95


@pytest.fixture(scope="module")
def films():
    return calibration_films()


@pytest.fixture(scope="module")
def judged(films):
    """Every clean film and injected copy with its QC; the pixels of the copies let go."""
    cases, results = [], []
    for k, film in enumerate(films):
        for case in clean([film]) + injected([film], seed=k):
            results.append(image_qc(case.pixels))
            if case.defect is not None:
                case.pixels = None  # 1,000 copies of 1 MB: keep their QC only
            cases.append(case)
    return cases, results


def _features(results) -> dict[str, np.ndarray]:
    return {name: np.array([getattr(r, name) for r in results]) for name in OUTLIER_FEATURES}


def test_each_flag_precision_and_recall_on_injected_defects(judged):
    cases, results = judged
    for flag in QC_FLAGS:
        truth = np.array([flag in case.flags for case in cases])
        flags = np.array([getattr(result, flag) for result in results])
        precision, recall, positives = precision_recall(truth, flags)
        print(f"{flag:13s} precision {precision:.3f} recall {recall:.3f} ({positives} positives)")
        assert positives >= 100, flag
        assert precision >= MIN_SCORE and recall >= MIN_SCORE, (flag, precision, recall)


def test_inverted_finds_the_inversions_and_spares_the_films(judged):
    cases, results = judged
    inverted = np.array([r.inverted for r in results])
    films = np.array([case.defect is None for case in cases])
    inversions = np.array([case.defect == "inverted" for case in cases])
    assert films.sum() == inversions.sum() == 100
    assert inverted[inversions].mean() >= 0.95  # recall on injected inversions
    assert inverted[films].mean() <= 0.005  # at most 0.5 % of ordinary films
    layout = np.array([r.chest_correlation for r in results])
    assert layout[films].min() > 0.4 and layout[inversions].max() < -0.4  # far from the margin


def test_outliers_are_at_most_two_percent_of_the_films(judged):
    cases, results = judged
    films = [r for case, r in zip(cases, results, strict=True) if case.defect is None]
    scores = outlier_distance(_features(films))
    names = [case.name for case in cases if case.defect is None]
    flagged = {name for name, score in zip(names, scores, strict=True) if score > THRESHOLD}
    print("flagged:", sorted(flagged), "highest scores:", np.sort(scores)[-4:].round(2))
    assert len(flagged) <= 0.02 * len(films)
    assert flagged <= REAL_FRAMES  # only films inside wide frames


def test_every_injected_defect_and_non_chest_image_scores_above_the_threshold(judged):
    cases, results = judged
    films = [r for case, r in zip(cases, results, strict=True) if case.defect is None]
    scales = robust_scales(_features(films))  # as in a run of ordinary films
    others = not_chest()
    copies = [r for case, r in zip(cases, results, strict=True) if case.defect is not None]
    kinds = [case.defect for case in cases if case.defect is not None]
    kinds += [case.defect for case in others]
    scores = outlier_distance(
        _features(copies + [image_qc(c.pixels) for c in others]), scales=scales
    )
    for kind in (*DEFECTS, "phantom", "photo"):
        mine = scores[np.array(kinds) == kind]
        print(f"{kind:13s} {mine.size:4d} images, lowest score {mine.min():.2f}")
        assert mine.size and mine.min() > THRESHOLD, kind


def test_a_run_flags_the_injected_films_among_ordinary_ones(films, tmp_path):
    """The stored qc/outlier of a run of the 100 films and 11 others (10 % of the run)."""
    folder = tmp_path / "images"
    folder.mkdir()
    for name, pixels in films:
        Image.fromarray(pixels).save(folder / name, compress_level=1)
    others = not_chest()
    odd = injected(films[:1]) + [others[0], others[-1]]  # each defect, a phantom, a photo
    for k, case in enumerate(odd):
        Image.fromarray(case.pixels).save(folder / f"odd{k:02d}.png", compress_level=1)
    out = tmp_path / "run.zarr"
    config = {"store": {"full_resolution": False}}
    summary = xray_scale.run([folder], out, config=config, workers=2, batch_size=16)
    assert summary.ok == len(films) + len(odd)
    group = zarr.open_group(out, mode="r")
    names = [str(p).replace("\\", "/").rsplit("/", 1)[-1] for p in read_index(group, "path")]
    flagged = {name for name, flag in zip(names, group["qc/outlier"][:], strict=True) if flag}
    injected_names = {name for name in names if name.startswith("odd")}
    assert injected_names <= flagged, sorted(injected_names - flagged)
    assert flagged - injected_names <= REAL_FRAMES


def test_chest_template_is_the_calibration_films_mean_layout(films):
    """CHEST_TEMPLATE, recomputed: each film's 8 x 8 block means of its content, standardised."""
    layouts = []
    for _, pixels in films:
        rows, cols = find_frame(pixels)
        content = pixels[rows, cols] if 1 - pixels[rows, cols].size / pixels.size > 0.05 else pixels
        sums, count = block_sums(content)
        blocks = (sums / count).reshape(8, 4, 8, 4).mean(axis=(1, 3))
        blocks = blocks - blocks.mean()
        layouts.append(blocks / np.sqrt((blocks**2).mean()))
    np.testing.assert_array_equal(np.rint(np.mean(layouts, axis=0) * 100), CHEST_TEMPLATE)
