"""synth: deterministic, chest-like, named like ChestX-ray8."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from xray_scale.synth import phantom, phantom_name, write_phantoms


def test_deterministic_and_patient_specific():
    first = phantom(7, 0, shape=(96, 80))
    assert np.array_equal(first, phantom(7, 0, shape=(96, 80)))
    assert not np.array_equal(first, phantom(8, 0, shape=(96, 80)))
    follow_up = phantom(7, 4, shape=(96, 80))
    assert not np.array_equal(first, follow_up)
    assert np.corrcoef(first.ravel(), follow_up.ravel())[0, 1] > 0.8  # same anatomy


def test_chest_like_range_and_histogram():
    image = phantom(90000001, 0, shape=(256, 256))
    assert image.dtype == np.uint8 and image.shape == (256, 256)
    assert image.min() <= 20 and image.max() >= 200
    assert (image < 40).mean() > 0.15 and (image > 180).mean() > 0.05


def test_sixteen_bit_uses_the_whole_range():
    image = phantom(3, 1, shape=(64, 64), bit_depth=16)
    assert image.dtype == np.uint16 and image.max() > 255
    assert (image % 256 != 0).mean() > 0.5


def test_write_phantoms_round_trips(tmp_path):
    paths = write_phantoms(
        tmp_path / "p", patients=2, follow_ups=2, shape=(48, 40), first_patient_id=5
    )
    assert [p.name for p in paths] == [
        "00000005_000.png",
        "00000005_001.png",
        "00000006_000.png",
        "00000006_001.png",
    ]
    assert np.array_equal(iio.imread(paths[3]), phantom(6, 1, shape=(48, 40)))
    wide = write_phantoms(tmp_path / "w", follow_ups=1, shape=(40, 40), bit_depth=16)
    assert np.array_equal(iio.imread(wide[0]), phantom(90000001, 0, shape=(40, 40), bit_depth=16))


def test_names():
    assert phantom_name(11, 3) == "00000011_003.png"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patient_id": -1}, "patient_id"),
        ({"patient_id": 100_000_000}, "patient_id"),
        ({"follow_up": 1000}, "follow_up"),
        ({"shape": (16, 64)}, "shape"),
        ({"shape": (64,)}, "shape"),
        ({"bit_depth": 12}, "bit_depth"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, message):
    arguments = {"patient_id": 1, "follow_up": 0, "shape": (64, 64), "bit_depth": 8} | kwargs
    with pytest.raises(ValueError, match=message):
        phantom(arguments.pop("patient_id"), arguments.pop("follow_up"), **arguments)
    with pytest.raises(ValueError, match="patients and follow_ups must be >= 1"):
        write_phantoms("unused", patients=0)
