"""QC flags: rules on small arrays, and precision/recall on the labelled set (tests/qc_cases.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from qc_cases import LABELS, precision_recall

from xray_scale.analysis.qc import QC_FLAGS, QCConfig, find_frame, image_qc, pixel_hash
from xray_scale.analysis.qc_groups import group_duplicates, group_near_duplicates, outlier_scores
from xray_scale.analysis.stats import histogram256
from xray_scale.config import ConfigError, load_config
from xray_scale.io.decode import DecodedImage, decode_image, unpad
from xray_scale.io.phantoms import phantom

MIN_SCORE = 0.95


@pytest.fixture(scope="module")
def labelled(labelled_cases):
    """The labelled set and the QC of each file (decoded from its PNG)."""
    results = [image_qc(np.asarray(Image.open(case.path))) for case in labelled_cases]
    return labelled_cases, results


def _predictions(results) -> dict[str, np.ndarray]:
    predicted = {flag: np.array([getattr(r, flag) for r in results]) for flag in QC_FLAGS}
    hashes = np.array([r.pixel_hash for r in results], dtype=np.uint64)
    predicted["duplicate"] = group_duplicates(hashes)
    perceptual = np.array([r.perceptual_hash for r in results], dtype=np.uint64)
    signatures = np.stack([r.signature for r in results])
    predicted["near_duplicate"] = group_near_duplicates(perceptual, signatures)
    return predicted


@pytest.mark.slow
def test_each_flag_precision_and_recall_on_the_labelled_set(labelled):
    cases, results = labelled
    predicted = _predictions(results)
    keys = {
        "duplicate": [np.asarray(Image.open(c.path)).tobytes() for c in cases],
        "near_duplicate": [(c.film, c.polarity) for c in cases],
    }
    figures = {}
    for label in LABELS:
        truth = np.array([case.labels[label] for case in cases])
        flags = predicted[label]
        if label in keys:  # a grouped image is right when its whole group are its copies
            groups, key = flags, keys[label]
            right = np.array(
                [
                    g >= 0 and all(key[m] == key[k] for m in np.flatnonzero(groups == g))
                    for k, g in enumerate(groups)
                ]
            )
            precision, _, _ = precision_recall(right, groups >= 0)
            positives = int(truth.sum())
            _, recall, _ = precision_recall(truth, right)
        else:
            precision, recall, positives = precision_recall(truth, flags)
        figures[label] = (precision, recall, positives)
        share = f"{positives} of {len(cases)}"
        print(f"{label:15s} precision {precision:.3f} recall {recall:.3f} ({share})")
    for label, (precision, recall, positives) in figures.items():
        assert positives > 0, label
        assert precision >= MIN_SCORE and recall >= MIN_SCORE, (label, precision, recall)


@pytest.mark.slow
def test_frame_fraction_measures_the_injected_frame(labelled):
    cases, results = labelled
    for case, result in zip(cases, results, strict=True):
        if case.labels["framed"]:
            assert abs(result.frame_fraction - case.frame_fraction) < 0.05, case.path.name
        elif not case.labels["blank"]:
            assert result.frame_fraction < 0.05, case.path.name


def test_a_padded_image_is_judged_without_its_padding():
    image = phantom(3, 0, shape=(200, 160))
    padded = np.zeros((256, 256), dtype=np.uint8)
    padded[28:228, 48:208] = image
    record = DecodedImage(padded, "L", 8, padded_from=(200, 160))
    own, alone = image_qc(unpad(padded, record)), image_qc(image)
    for name in (*QC_FLAGS, "frame_fraction", "pixel_hash", "perceptual_hash"):
        assert getattr(own, name) == getattr(alone, name), name
    np.testing.assert_array_equal(own.signature, alone.signature)
    assert not own.framed and own.frame_fraction < 0.05
    assert image_qc(padded).framed  # the padding itself would look like a black frame


def test_uint16_images_get_the_same_flags_as_their_8_bit_twins():
    image8 = phantom(4, 0, shape=(256, 256))
    image16 = image8.astype(np.uint16) * 257
    framed16 = np.zeros((256, 256), np.uint16)
    framed16[40:216, 40:216] = image16[40:216, 40:216]
    for make in (lambda x: x, lambda x: np.iinfo(x.dtype).max - x):
        a, b = image_qc(make(image8)), image_qc(make(image16))
        assert [getattr(a, f) for f in QC_FLAGS] == [getattr(b, f) for f in QC_FLAGS]
    assert image_qc(255 * 257 - image16).inverted
    result = image_qc(framed16)
    assert result.framed and abs(result.frame_fraction - (1 - (176 / 256) ** 2)) < 0.01
    saturated = np.clip(image16.astype(np.int64) * 3, 0, 65535).astype(np.uint16)
    assert image_qc(saturated).saturated and not image_qc(image16).saturated


def test_find_frame_mixed_black_and_white_edges():
    image = phantom(5, 0, shape=(128, 128))
    image[:20] = 0
    image[:, :10] = 255
    image[:, 120:] = 255
    rows, cols = find_frame(image)
    assert (rows.start, cols.start, cols.stop) == (20, 10, 120)


def test_config_is_validated_with_the_key_named():
    with pytest.raises(ValueError, match="qc.frame_fraction must be in"):
        QCConfig(frame_fraction=1.5)
    with pytest.raises(ValueError, match="qc.blank_range must be a number"):
        QCConfig(blank_range="low")
    with pytest.raises(ValueError, match="qc.low_contrast_range must be >= qc.blank_range"):
        QCConfig(blank_range=0.3, low_contrast_range=0.2)
    with pytest.raises(ValueError, match="qc.near_duplicate_distance must be an integer"):
        QCConfig(near_duplicate_distance=2.5)
    with pytest.raises(ValueError, match="qc.enabled must be true or false"):
        QCConfig(enabled="yes")
    with pytest.raises(ConfigError, match=r"unknown key qc.colour; allowed keys in \[qc\]"):
        load_config({"qc": {"colour": 1}})
    with pytest.raises(ConfigError, match="qc.inverted_margin must be in"):
        load_config({"qc": {"inverted_margin": -0.1}})
    assert load_config({"qc": {"saturated_fraction": 0.2}}).qc.saturated_fraction == 0.2
    assert load_config({"qc": {"enabled": False}}).qc == QCConfig(enabled=False)


def test_thresholds_change_the_flags():
    image = phantom(6, 0, shape=(128, 128))
    framed = np.zeros((128, 128), np.uint8)
    framed[8:120, 8:120] = image[8:120, 8:120]  # 23 % of the area
    assert image_qc(framed).framed
    assert not image_qc(framed, config=QCConfig(frame_fraction=0.3)).framed
    assert image_qc(image, config=QCConfig(low_contrast_range=1.0)).low_contrast


def test_rejects_what_is_not_an_image():
    with pytest.raises(TypeError, match="2-D uint8 or uint16"):
        image_qc(np.zeros((4, 4), np.float32))
    with pytest.raises(TypeError, match="2-D uint8 or uint16"):
        image_qc(np.zeros((4, 4, 3), np.uint8))


def test_group_ids_are_the_smallest_member_and_skip_invalid_images():
    hashes = np.array([9, 4, 9, 4, 9, 1], dtype=np.uint64)
    valid = np.array([True, True, False, True, True, True])
    np.testing.assert_array_equal(group_duplicates(hashes, valid), [0, 1, -1, 1, 0, -1])
    signatures = np.random.default_rng(1).integers(-127, 128, size=(6, 1024), dtype=np.int8)
    signatures[3] = signatures[1]
    groups = group_near_duplicates(hashes, signatures, valid)
    np.testing.assert_array_equal(groups, [-1, 1, -1, 1, -1, -1])  # 0 and 4: other detail


def test_near_duplicate_groups_join_transitively():
    rng = np.random.default_rng(2)
    base = 40 * rng.normal(size=1024)
    chain = np.stack([base, base + 8 * rng.normal(size=1024), 40 * rng.normal(size=1024)])
    chain = np.concatenate([chain, [chain[1] + 8 * rng.normal(size=1024)]])
    chain = np.clip(np.rint(chain), -127, 127).astype(np.int8)
    hashes = np.zeros(4, dtype=np.uint64)
    correlation = np.corrcoef(chain.astype(float))
    assert correlation[0, 3] < 0.97 <= min(correlation[0, 1], correlation[1, 3])  # a real chain
    groups = group_near_duplicates(hashes, chain, min_correlation=0.97)
    np.testing.assert_array_equal(groups, [0, 0, -1, 0])


def test_outlier_scores_are_robust_z_scores():
    stats = {
        "mean": np.array([100.0, 102, 98, 101, 99, 20, np.nan]),
        "std": np.array([50.0, 50, 50, 50, 50, 50, np.nan]),  # constant: left out
    }
    valid = np.array([True] * 6 + [False])
    scores = outlier_scores(stats, valid)
    median, mad = 99.5, 1.5
    assert scores[5] == pytest.approx(0.6745 * abs(20 - median) / mad)
    assert scores[:5].max() < 3.5 < scores[5]
    assert np.isnan(scores[6])


def test_pixel_hash_groups_identical_pixels_however_encoded_and_only_them(tmp_path):
    film = phantom(7, 0, shape=(256, 256))
    swapped = film.copy()  # two pixels of other values swapped: the same histogram
    (y0, x0), (y1, x1) = np.argwhere(film != film[128, 128])[0], (128, 128)
    swapped[y0, x0], swapped[y1, x1] = film[y1, x1], film[y0, x0]
    files = {"fast": (film, {"compress_level": 1}), "small": (film, {"compress_level": 9})}
    files["text"] = (film, {"pnginfo": _with_text("Comment", "a copy")})
    files["swapped"] = (swapped, {})
    decoded = {}
    for name, (pixels, options) in files.items():
        Image.fromarray(pixels).save(tmp_path / f"{name}.png", **options)
        decoded[name] = decode_image(tmp_path / f"{name}.png", shape=(256, 256))
    checksums = {image.checksum for image in decoded.values()}
    assert len(checksums) == 4  # the file checksum tells no two of these files apart as copies
    hashes = {name: pixel_hash(image.pixels) for name, image in decoded.items()}
    assert hashes["fast"] == hashes["small"] == hashes["text"] != hashes["swapped"]
    assert np.array_equal(histogram256(swapped), histogram256(film))
    order = np.array([hashes[name] for name in files], dtype=np.uint64)
    np.testing.assert_array_equal(group_duplicates(order), [0, 0, 0, -1])
    sha1 = [pixel_hash(image.pixels, kind="sha1") for image in decoded.values()]
    assert sha1[0] == sha1[1] == sha1[2] != sha1[3] and sha1[0] != hashes["fast"]


def _with_text(key: str, value: str):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(key, value)
    return info
