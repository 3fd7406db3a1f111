"""DICOM decoding (io/formats/dicom.py) on files pydicom and its encoders really wrote."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import structured_image

pytest.importorskip("pydicom", reason="the dicom extra is not installed")

from dicom_writer import IDENTIFYING, dicom_bytes  # noqa: E402
from pydicom.uid import BasicTextSRStorage  # noqa: E402

from xray_scale.errors import DecodeError  # noqa: E402
from xray_scale.io.formats.dicom import (  # noqa: E402
    DICOM_TAGS,
    decode_dicom,
    is_dicom,
    read_dicom_header,
)

MAX = 50_000_000


def twelve_bit(seed: int, shape=(72, 64)) -> np.ndarray:
    """12 bits stored in 16 allocated: values up to 4095."""
    return (structured_image(seed, shape=shape).astype(np.uint16) * 16 + seed % 16) & 0x0FFF


@pytest.mark.parametrize("syntax", ["explicit", "implicit", "rle", "jpeg-ls", "jpeg2000"])
def test_each_lossless_syntax_gives_back_the_stored_values_exactly(syntax):
    stored = twelve_bit(1)
    image = decode_dicom(dicom_bytes(stored, syntax=syntax, bits_stored=12), max_pixels=MAX)
    assert image.pixels.dtype == np.uint16
    assert np.array_equal(image.pixels, stored)
    assert image.header.bits_stored == 12 and image.voi == "none"


def test_jpeg_baseline_dicom_equals_its_jpeg_decoded_by_libjpeg():
    import io

    from PIL import Image

    stored = structured_image(2, shape=(64, 80))
    data = dicom_bytes(stored, syntax="jpeg-baseline", bits_stored=8)
    image = decode_dicom(data, max_pixels=MAX)
    assert image.header.transfer_syntax == "JPEG Baseline (Process 1)"
    out = io.BytesIO()
    Image.fromarray(stored).save(out, "JPEG", quality=95)
    expected = np.asarray(Image.open(io.BytesIO(out.getvalue())))
    assert image.pixels.dtype == np.uint16  # 8 bits stored, kept as uint16
    assert np.abs(image.pixels.astype(int) - expected).max() <= 1  # two libjpeg builds


@pytest.mark.parametrize("syntax", ["explicit", "jpeg2000"])
def test_monochrome1_becomes_monochrome2(syntax):
    stored = twelve_bit(3)
    data = dicom_bytes(stored, syntax=syntax, bits_stored=12, photometric="MONOCHROME1")
    image = decode_dicom(data, max_pixels=MAX)
    assert np.array_equal(image.pixels, 4095 - stored)
    assert image.tags["PhotometricInterpretation"] == "MONOCHROME1"  # the file's, recorded


def test_integer_rescale_is_exact_and_a_fractional_one_rounds():
    stored = twelve_bit(4)
    image = decode_dicom(
        dicom_bytes(stored, bits_stored=12, slope=2, intercept=100), max_pixels=MAX, voi="none"
    )
    assert np.array_equal(image.pixels, stored.astype(np.int64) * 2 + 100)
    image = decode_dicom(
        dicom_bytes(stored, bits_stored=12, slope=0.5, intercept=0.25), max_pixels=MAX, voi="none"
    )
    assert np.array_equal(image.pixels, np.rint(stored * 0.5 + 0.25).astype(np.uint16))


def test_a_rescale_below_zero_without_a_window_fails_and_says_to_choose_a_voi():
    data = dicom_bytes(twelve_bit(5), bits_stored=12, slope=1, intercept=-1024)
    with pytest.raises(DecodeError, match=r"outside 0\.\.65535 .*dicom_voi"):
        decode_dicom(data, max_pixels=MAX, voi="none")


def linear_window(x: np.ndarray, centre: float, width: float, top: int) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1, written out with the standard's three cases."""
    y = np.empty(x.shape)
    low = x <= centre - 0.5 - (width - 1) / 2
    high = x > centre - 0.5 + (width - 1) / 2
    mid = ~(low | high)
    y[low], y[high] = 0, top
    y[mid] = ((x[mid] - (centre - 0.5)) / (width - 1) + 0.5) * top
    return np.rint(y)


def test_window_is_applied_after_the_rescale_onto_the_bits_stored():
    stored = twelve_bit(6)
    data = dicom_bytes(stored, bits_stored=12, slope=1, intercept=-1024, window=(400, 1500))
    for voi in ("lut", "window"):  # no VOI LUT in the file: both apply the window
        image = decode_dicom(data, max_pixels=MAX, voi=voi)
        assert image.voi == "window"
        expected = linear_window(stored.astype(float) - 1024, 400, 1500, 4095)
        assert np.array_equal(image.pixels, expected.astype(np.uint16))


def test_voi_lut_or_window_by_the_config_choice():
    stored = (structured_image(7, shape=(64, 64)) % 16).astype(np.uint16)  # values 0..15
    entries = [min(4095, 300 * v) for v in range(16)]
    data = dicom_bytes(
        stored, bits_stored=12, window=(8, 10), voi_lut=(0, 12, entries), photometric="MONOCHROME1"
    )
    by_lut = decode_dicom(data, max_pixels=MAX, voi="lut")
    assert by_lut.voi == "lut"
    assert np.array_equal(by_lut.pixels, 4095 - np.array(entries)[stored])
    by_window = decode_dicom(data, max_pixels=MAX, voi="window")
    assert by_window.voi == "window"
    assert np.array_equal(by_window.pixels, 4095 - linear_window(stored.astype(float), 8, 10, 4095))
    as_stored = decode_dicom(data, max_pixels=MAX, voi="none")
    assert np.array_equal(as_stored.pixels, 4095 - stored)


def test_the_listed_tags_and_nothing_identifying_reach_the_record():
    data = dicom_bytes(twelve_bit(8), bits_stored=12)
    assert is_dicom(data[:132])
    image = decode_dicom(data, max_pixels=MAX)
    assert tuple(image.tags) == DICOM_TAGS
    assert image.tags["PatientID"] == "patient042" and image.tags["ViewPosition"] == "PA"
    assert image.tags["BitsStored"] == "12" and image.tags["PatientAge"] == "067Y"
    text = repr(image.tags) + repr(image.header)
    for value in IDENTIFYING.values():
        assert value not in text and value.split("^")[0] not in text


def refused(data: bytes, **options) -> str:
    with pytest.raises(DecodeError) as caught:
        decode_dicom(data, max_pixels=options.pop("max_pixels", MAX), **options)
    message = str(caught.value)
    assert "\n" not in message
    for value in IDENTIFYING.values():  # no message names an identifying tag's value
        assert value not in message and value.split("^")[0] not in message
    return message


def test_bad_dicoms_each_give_a_one_line_reason_naming_no_tag_value():
    good = dicom_bytes(twelve_bit(9), bits_stored=12)
    assert refused(b"") == "empty file (0 bytes)"
    assert refused(b"\x89PNG\r\n\x1a\n" + bytes(200)).startswith("not a DICOM file")
    assert refused(good[:140]).startswith("truncated DICOM")
    assert refused(good[: len(good) - 100]).startswith("truncated DICOM pixel data")
    no_pixels = dicom_bytes(None, sop_class=BasicTextSRStorage)
    assert refused(no_pixels) == (
        "DICOM without pixel data (Basic Text SR Storage): not an image; remove it from the inputs"
    )
    image_without_pixels = dicom_bytes(None)
    assert refused(image_without_pixels).startswith("DICOM image without pixel data")
    assert refused(dicom_bytes(twelve_bit(9), frames=1, bits_stored=12), max_pixels=100).startswith(
        "refused before decoding"
    )
    two_frames = dicom_bytes(np.stack([twelve_bit(1), twelve_bit(2)]), frames=2, bits_stored=12)
    assert refused(two_frames).startswith("multi-frame DICOM (2 frames) is not supported")
    mpeg2 = dicom_bytes(twelve_bit(9), syntax="1.2.840.10008.1.2.4.100", bits_stored=12)
    assert refused(mpeg2).startswith("unsupported DICOM transfer syntax: MPEG2 Main Profile")
    assert read_dicom_header(mpeg2).transfer_syntax.startswith("MPEG2")


@pytest.mark.parametrize("function", ["LINEAR_EXACT", "SIGMOID"])
def test_the_window_functions_of_the_standard(function):
    stored = twelve_bit(11)
    data = dicom_bytes(
        stored, bits_stored=12, window=(2000, 1000), tags={"VOILUTFunction": function}
    )
    image = decode_dicom(data, max_pixels=MAX, voi="window")
    x, top = stored.astype(float), 4095
    if function == "LINEAR_EXACT":  # PS3.3 C.11.2.1.3.2
        expected = np.clip((x - 2000) / 1000 + 0.5, 0, 1) * top
    else:  # C.11.2.1.3.1
        expected = top / (1 + np.exp(-4 * (x - 2000) / 1000))
    assert np.array_equal(image.pixels, np.rint(expected).astype(np.uint16))


def test_a_preamble_of_any_content_is_still_dicom(tmp_path):
    """DICOM-TIFF hybrids put a TIFF header in the 128-byte preamble: the registry still
    recognises the file by its DICM magic, and the run decodes it like the zero-preamble one."""
    import zarr

    import xray_scale
    from xray_scale.io.formats.registry import identify

    stored = twelve_bit(3)
    plain = dicom_bytes(stored, syntax="explicit", bits_stored=12)
    hybrid = b"II*\x00" + bytes(range(124)) + plain[128:]
    assert plain[:128] == bytes(128) and hybrid[:128] != plain[:128]
    assert identify(hybrid[:256]).name == identify(plain[:256]).name == "dicom"
    for name, data in (("plain", plain), ("hybrid", hybrid)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "film.dcm").write_bytes(data)
        summary = xray_scale.run([tmp_path / name], tmp_path / f"{name}.zarr", workers=1)
        assert summary.ok == 1, name
    one, two = (zarr.open_group(tmp_path / f"{n}.zarr", mode="r") for n in ("plain", "hybrid"))
    assert np.array_equal(one["stats/histogram"][:], two["stats/histogram"][:])
    assert np.array_equal(one["filters/sobel"][:], two["filters/sobel"][:])


def test_a_short_file_of_zeros_is_not_taken_for_a_truncated_dicom():
    from xray_scale.io.formats.registry import identify

    with pytest.raises(DecodeError, match="not a PNG or JPEG or DICOM"):
        identify(bytes(100))
