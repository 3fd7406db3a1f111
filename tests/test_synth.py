"""synth: deterministic, chest-like phantoms named like ChestX-ray8."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from xray_scale.io.phantoms import phantom, phantom_name, write_phantoms

SMALL = (64, 64)
ODD = (128, 96)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


@pytest.mark.parametrize("shape", [SMALL, ODD])
def test_same_arguments_give_bit_identical_arrays(shape):
    first = phantom(7, 3, shape=shape)
    second = phantom(7, 3, shape=shape)
    assert first is not second
    assert np.array_equal(first, second)
    wide = phantom(7, 3, shape=shape, bit_depth=16)
    assert np.array_equal(wide, phantom(7, 3, shape=shape, bit_depth=16))


def test_a_known_phantom_does_not_drift():
    """Pins the generator: a change here changes every stored phantom run."""
    image = phantom(11, 0, shape=SMALL)
    assert np.array_equal(image, phantom(11, 0, shape=SMALL))
    assert image.flags.writeable and image.flags.c_contiguous
    # Background at the top corners, bright spine in the lower middle, dark lungs.
    assert image[:4, :4].max() <= 25 and image[:4, -4:].max() <= 25
    assert image[50:60, 30:34].mean() > 200
    assert image[26:32, 14:20].mean() < 110


def test_other_patients_have_other_anatomy():
    first = phantom(7, 0, shape=ODD)
    other = phantom(8, 0, shape=ODD)
    assert not np.array_equal(first, other)
    assert np.abs(first.astype(int) - other.astype(int)).mean() > 5


def test_follow_ups_differ_slightly_and_stay_highly_correlated():
    baseline = phantom(7, 0, shape=ODD)
    for follow_up in (1, 4, 9):
        later = phantom(7, follow_up, shape=ODD)
        assert not np.array_equal(baseline, later)
        assert np.abs(baseline.astype(int) - later.astype(int)).mean() > 1
        assert correlation(baseline, later) > 0.9
    # Same anatomy: a follow-up resembles its own patient more than another patient.
    assert correlation(baseline, phantom(7, 5, shape=ODD)) > correlation(
        baseline, phantom(8, 0, shape=ODD)
    )


def test_the_opacity_grows_with_follow_ups():
    """A compact bright blob appears in the difference to the first image and grows."""

    def blob(patient: int, follow_up: int) -> float:
        first = phantom(patient, 0, shape=(256, 256)).astype(np.float64)
        later = phantom(patient, follow_up, shape=(256, 256)).astype(np.float64)
        change = ndimage.gaussian_filter(later - first, 4)  # averages out noise and thin edges
        return float(change.max() - np.median(change))

    strength = {k: np.median([blob(patient, k) for patient in range(8)]) for k in (3, 6, 12)}
    assert strength[3] < strength[6] < strength[12]
    assert strength[12] > 45


@pytest.mark.parametrize("shape", [SMALL, ODD, (32, 32), (1024, 1024)])
def test_dtype_and_shape(shape):
    image = phantom(90000001, 2, shape=shape)
    assert image.dtype == np.uint8
    assert image.shape == shape
    wide = phantom(90000001, 2, shape=shape, bit_depth=16)
    assert wide.dtype == np.uint16
    assert wide.shape == shape


@pytest.mark.parametrize("patient_id", [0, 11, 90000001, 99_999_999])
@pytest.mark.parametrize("shape", [(256, 256), ODD])
def test_uses_most_of_the_range_with_dark_and_bright_modes(patient_id, shape):
    image = phantom(patient_id, 1, shape=shape)
    assert image.min() <= 20
    assert image.max() >= 200
    assert (image < 40).mean() > 0.15  # background and lungs
    assert (image > 180).mean() > 0.15  # spine, mediastinum, heart, abdomen
    assert ((image > 60) & (image < 180)).mean() > 0.1  # soft tissue in between


def test_sixteen_bit_uses_the_whole_range_at_full_precision():
    wide = phantom(3, 1, shape=SMALL, bit_depth=16)
    assert wide.max() > 255
    assert wide.min() <= 20 * 257 and wide.max() >= 200 * 257
    assert (wide % 256 != 0).mean() > 0.9  # not 8-bit values times 256
    assert len(np.unique(wide)) > 2 * len(np.unique(phantom(3, 1, shape=SMALL)))
    # The same picture as the 8-bit phantom, to within rounding.
    narrow = phantom(3, 1, shape=SMALL).astype(np.int64)
    assert np.abs(wide.astype(np.int64) / 257 - narrow).max() <= 1


def test_names():
    assert phantom_name(11, 3) == "00000011_003.png"
    assert phantom_name(0, 0) == "00000000_000.png"
    assert phantom_name(99_999_999, 999) == "99999999_999.png"
    assert phantom_name(np.int64(90000001), np.uint16(12)) == "90000001_012.png"


def test_write_phantoms_round_trips_in_sorted_order(tmp_path):
    paths = write_phantoms(
        tmp_path / "new" / "p", patients=2, follow_ups=3, shape=ODD, first_patient_id=9
    )
    assert [p.name for p in paths] == [
        "00000009_000.png",
        "00000009_001.png",
        "00000009_002.png",
        "00000010_000.png",
        "00000010_001.png",
        "00000010_002.png",
    ]
    assert paths == sorted(paths)
    assert all(p.parent == tmp_path / "new" / "p" for p in paths)
    assert sorted(p.name for p in (tmp_path / "new" / "p").iterdir()) == [p.name for p in paths]
    for path in paths:
        patient_id, follow_up = (int(part) for part in path.stem.split("_"))
        pixels = iio.imread(path)
        assert pixels.dtype == np.uint8
        assert np.array_equal(pixels, phantom(patient_id, follow_up, shape=ODD))
        with Image.open(path) as image:
            assert image.mode == "L"
            assert image.size == (ODD[1], ODD[0])


def test_write_phantoms_sixteen_bit(tmp_path):
    paths = write_phantoms(tmp_path, follow_ups=2, shape=SMALL, bit_depth=16)
    assert [p.name for p in paths] == ["90000001_000.png", "90000001_001.png"]
    for follow_up, path in enumerate(paths):
        expected = phantom(90000001, follow_up, shape=SMALL, bit_depth=16)
        pixels = iio.imread(path)
        assert pixels.dtype == np.uint16
        assert np.array_equal(pixels, expected)
        with Image.open(path) as image:
            assert image.mode == "I;16"
            assert np.array_equal(np.asarray(image), expected)
            assert np.asarray(image).dtype == np.uint16


def test_write_phantoms_into_an_existing_folder_overwrites(tmp_path):
    first = write_phantoms(tmp_path, follow_ups=1, shape=(32, 32), first_patient_id=4)
    again = write_phantoms(str(tmp_path), follow_ups=1, shape=(32, 32), first_patient_id=4)
    assert first == again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000004_000.png"]


BAD_PHANTOM_ARGUMENTS = [
    ({"patient_id": -1}, "patient_id"),
    ({"patient_id": 100_000_000}, "patient_id"),
    ({"patient_id": 1.5}, "patient_id"),
    ({"patient_id": True}, "patient_id"),
    ({"follow_up": -1}, "follow_up"),
    ({"follow_up": 1000}, "follow_up"),
    ({"shape": (31, 64)}, "shape"),
    ({"shape": (64, 0)}, "shape"),
    ({"shape": (64, -64)}, "shape"),
    ({"shape": (64,)}, "shape"),
    ({"shape": (64, 64, 3)}, "shape"),
    ({"shape": (64.0, 64)}, "shape"),
    ({"shape": 64}, "shape"),
    ({"bit_depth": 12}, "bit_depth"),
    ({"bit_depth": 0}, "bit_depth"),
]


@pytest.mark.parametrize(("kwargs", "parameter"), BAD_PHANTOM_ARGUMENTS)
def test_bad_phantom_arguments_name_the_parameter(kwargs, parameter):
    arguments = {"patient_id": 1, "follow_up": 0, "shape": SMALL, "bit_depth": 8} | kwargs
    with pytest.raises(ValueError, match=parameter):
        phantom(arguments.pop("patient_id"), arguments.pop("follow_up"), **arguments)


@pytest.mark.parametrize(
    ("patient_id", "follow_up", "parameter"),
    [
        (-1, 0, "patient_id"),
        (100_000_000, 0, "patient_id"),
        (0, -1, "follow_up"),
        (0, 1000, "follow_up"),
    ],
)
def test_bad_name_arguments_name_the_parameter(patient_id, follow_up, parameter):
    with pytest.raises(ValueError, match=parameter):
        phantom_name(patient_id, follow_up)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"patients": 0}, "patients"),
        ({"patients": -3}, "patients"),
        ({"follow_ups": 0}, "follow_ups"),
        ({"follow_ups": 1001}, "follow_ups"),
        ({"first_patient_id": -1}, "first_patient_id"),
        ({"first_patient_id": 99_999_999, "patients": 2}, "first_patient_id"),
        ({"shape": (16, 16)}, "shape"),
        ({"bit_depth": 32}, "bit_depth"),
    ],
)
def test_bad_write_arguments_name_the_parameter_and_write_nothing(tmp_path, kwargs, parameter):
    target = tmp_path / "never"
    with pytest.raises(ValueError, match=parameter):
        write_phantoms(target, **({"shape": SMALL} | kwargs))
    assert not target.exists()
