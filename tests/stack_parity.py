"""Parity of a stack backend with the per-image CPU path: shared by the numpy and GPU tests."""

from __future__ import annotations

import numpy as np

from xray_scale.analysis.batch import analyse_block
from xray_scale.analysis.maps import batch_spec
from xray_scale.analysis.stack import analyse_stack
from xray_scale.config import load_config
from xray_scale.engines.base import ArrayBackend
from xray_scale.filters import FILTERS
from xray_scale.io.decode import DecodedImage
from xray_scale.records import BatchSpec

ALL_FILTERS = ["laplace_gaussian", "gaussian_gradient_magnitude", "sobel", "tutorial_canny"]
CONFIGS = {
    "full resolution, float32": {},
    "float16 maps": {"store": {"filter_dtype": "float16"}},
    "uint8 maps": {"store": {"filter_dtype": "uint8"}},
    "previews only": {"store": {"full_resolution": False, "preview_size": 16}},
    "previews with fractional areas": {"store": {"preview_size": 24}},
    "real canny too": {"filters": {"enabled": [*ALL_FILTERS, "canny"]}},
    "statistics only": {
        "filters": {"enabled": []},
        "masks": {"enabled": []},
        "store": {"full_resolution": False},
    },
}
"""The configs every stack backend is compared under (the numpy and the GPU tests)."""


class RecordingWriter:
    """Keeps every array a batch writes, by name."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def write(self, name: str, start: int, values: np.ndarray) -> None:
        self.arrays[name] = np.array(values)

    def erase(self, name: str, start: int, k: int) -> None:
        self.arrays[name][k] = 0


def spec_for(block: np.ndarray, overrides: dict, engine: str = "scipy") -> BatchSpec:
    config = load_config(overrides)
    bit_depth = 16 if block.dtype == np.uint16 else 8
    return batch_spec(
        config, shape=block.shape[1:], bit_depth=bit_depth, compat=None, engine=engine
    )


def decoded_for(block: np.ndarray, failed: tuple[int, ...] = ()) -> list[DecodedImage]:
    bit_depth = 16 if block.dtype == np.uint16 else 8
    return [
        DecodedImage(
            None, "L" if bit_depth == 8 else "I;16", bit_depth, "bad file" if k in failed else None
        )
        for k in range(len(block))
    ]


def assert_backend_matches_reference(
    block: np.ndarray, overrides: dict, backend: ArrayBackend, *, failed: tuple[int, ...] = ()
) -> None:
    """``analyse_stack`` on ``backend`` against ``analyse_block`` with the scipy engine.

    Statistics and histograms exactly; float32 maps within 1e-4 of each image's
    range; float16 within float16 rounding of that; uint8 maps and previews
    within one level; masks and Canny edges exactly (Canny: see the caller).
    """
    block = block.copy()
    block[list(failed)] = 0  # as decode_batch leaves a failed image
    spec = spec_for(block, overrides)
    decoded = decoded_for(block, failed)
    expected_writer, actual_writer = RecordingWriter(), RecordingWriter()
    expected = analyse_block(block, decoded, 0, spec=spec, writer=expected_writer)
    actual = analyse_stack(block, decoded, 0, spec=spec, writer=actual_writer, backend=backend)
    assert actual.status == expected.status
    assert actual.error == expected.error
    np.testing.assert_array_equal(actual.histogram, expected.histogram)
    for field, values in expected.stats.items():
        np.testing.assert_array_equal(actual.stats[field], values, err_msg=field)
    assert set(actual_writer.arrays) == set(expected_writer.arrays)
    for name, reference in expected_writer.arrays.items():
        result = actual_writer.arrays[name]
        assert result.dtype == reference.dtype and result.shape == reference.shape, name
        if name == "previews":
            assert np.abs(result.astype(int) - reference).max() <= 1, name
            continue
        key = name.split("/", 1)[1]
        if name.startswith("masks/") or FILTERS[key].output_dtype == "bool":
            np.testing.assert_array_equal(result, reference, err_msg=name)
            continue
        for k in range(len(block)):
            span = float(np.ptp(reference[k].astype(np.float64)))
            difference = np.abs(result[k].astype(np.float64) - reference[k]).max()
            if reference.dtype == np.uint8:
                assert difference <= 1, (name, k)
            elif reference.dtype == np.float16:
                # both are float32 maps rounded to float16: at most one float16 step apart
                step = float(np.spacing(np.float16(np.abs(reference[k]).max())))
                assert difference <= max(1e-4 * span, step), (name, k)
            else:
                assert difference <= 1e-4 * span, (name, k, difference / max(span, 1e-30))
