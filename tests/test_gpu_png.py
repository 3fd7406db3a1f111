"""gpu_png on a GPU: pixels equal libpng's, statuses and messages equal the CPU decoder's.

And a whole ``--decoder gpu`` run equals a CPU-decoded GPU run, array by array.

Skipped, saying why, where CuPy/nvCOMP are not installed or no CUDA device is
visible. The kernels themselves also run on the CPU in test_gpu_kernels_on_cpu.py.
"""

from __future__ import annotations

import importlib.util
import struct
import zlib

import cv2
import numpy as np
import pytest
import zarr
from conftest import (
    REAL_NAMES,
    REAL_SAMPLE,
    assert_stores_equal,
    make_bad_inputs,
    needs_real_sample,
    png_bytes,
    structured_image,
    write_png,
)
from png_writer import chunk, filtered_png, filtered_rows, png_from_stream

import xray_scale
from xray_scale.engines.registry import resolve_decoder
from xray_scale.errors import EngineError
from xray_scale.io import gpu_decode
from xray_scale.io.decode import decode_batch
from xray_scale.io.formats import png_gpu as gpu_png
from xray_scale.io.phantoms import phantom


def _skip_reason() -> str | None:
    for module in ("cupy", "nvidia.nvcomp"):
        try:
            missing = importlib.util.find_spec(module) is None
        except ModuleNotFoundError:  # the "nvidia" namespace itself is missing
            missing = True
        if missing:
            return "CuPy/nvCOMP not installed (pip install 'xray-scale[gpu]')"
    try:
        gpu_png.check_usable()
    except gpu_png.GpuDecoderUnavailable as error:
        return f"no usable CUDA device: {error}"
    return None


REASON = _skip_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(REASON is not None, reason=str(REASON))]


def libpng(path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def _gpu(paths, **run):
    block, images = gpu_decode.decode_batch_gpu([str(p) for p in paths], **run)
    return block.get(), images


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_forced_filters_odd_widths_and_phantoms_equal_libpng(tmp_path, dtype):
    for shape in [(37, 1), (61, 67), (1100, 9)]:  # one column, odd, taller than one band
        rng = np.random.default_rng(shape[1])
        paths = []
        for kind in range(6):  # each filter forced, then a random mixture
            image = structured_image(kind, shape=shape, dtype=dtype)
            filters = [kind] * shape[0] if kind < 5 else rng.integers(0, 5, shape[0])
            path = tmp_path / f"{shape[1]}-{kind}.png"
            path.write_bytes(filtered_png(image, filters, idat_size=777))
            paths.append(path)
        block, images = _gpu(paths, shape=shape, dtype=dtype)
        for k, path in enumerate(paths):
            assert images[k].ok, images[k].error
            assert np.array_equal(block[k], libpng(path)), (shape, k)
    bits = np.dtype(dtype).itemsize * 8
    paths = [
        write_png(tmp_path / f"p{k}.png", phantom(3, k, shape=(256, 200), bit_depth=bits))
        for k in range(4)
    ]
    block, images = _gpu(paths, shape=(256, 200), dtype=dtype)
    for k, path in enumerate(paths):
        assert images[k].mode == ("L" if bits == 8 else "I;16")
        assert np.array_equal(block[k], libpng(path)), k


@needs_real_sample
@pytest.mark.real_data
def test_real_sample_equals_libpng_with_the_cpu_decoders_records():
    paths = [str(REAL_SAMPLE / name) for name in REAL_NAMES]
    block, images = _gpu(paths, shape=(1024, 1024))
    cpu_block, cpu_images = decode_batch(paths, shape=(1024, 1024))
    assert images == cpu_images
    assert np.array_equal(block, cpu_block)
    for k, path in enumerate(paths):
        assert np.array_equal(block[k], libpng(path))


def _corrupted(image: np.ndarray) -> dict[str, bytes]:
    """Files that fail only once inflated or unfiltered, every CRC right."""
    height, width = image.shape
    rows = filtered_rows(image, [4] * height)
    stream = zlib.compress(rows)
    adler = bytearray(stream)
    adler[-1] ^= 0x01
    unknown = bytearray(rows)
    unknown[(1 + width) * 3] = 6
    return {
        "ends_early.png": png_from_stream(height, width, 8, stream[: len(stream) // 2]),
        "adler.png": png_from_stream(height, width, 8, bytes(adler)),
        "short_image.png": png_from_stream(height, width, 8, zlib.compress(rows[: -(1 + width)])),
        "unknown_filter.png": png_from_stream(height, width, 8, zlib.compress(bytes(unknown))),
        "too_much.png": png_from_stream(height, width, 8, zlib.compress(rows + bytes(50))),
        "junk.png": png_from_stream(height, width, 8, b"\x78\x9c" + bytes(40) + b"\0\0\0\0"),
    }


def _same_as_cpu(paths, **run):
    """Decode on the GPU and on the CPU; assert equal records and pixels; return the GPU's."""
    block, images = _gpu(paths, **run)
    cpu_block, cpu_images = decode_batch([str(p) for p in paths], **run)
    for k, path in enumerate(paths):
        assert images[k] == cpu_images[k], path
        assert np.array_equal(block[k], cpu_block[k]), path
    return block, images


def test_a_mixed_batch_gets_the_cpu_decoders_statuses_messages_and_pixels(tmp_path):
    make_bad_inputs(tmp_path)
    for name, data in _corrupted(structured_image(9)).items():
        (tmp_path / name).write_bytes(data)
    text = chunk(b"tEXt", b"a\0b")
    crc = bytearray(filtered_png(structured_image(4), [1] * 64, extra=text))
    crc[33 + 8 + 1] ^= 0x01  # the tEXt chunk's data: its CRC fails, before any IDAT's
    (tmp_path / "text_crc.png").write_bytes(bytes(crc))
    write_png(tmp_path / "palette.png", structured_image(5), "P")
    write_png(tmp_path / "rgb.png", np.stack([structured_image(6)] * 3, axis=-1))
    for k in range(3):
        write_png(tmp_path / f"good{k}.png", structured_image(k))
    names = [
        "good0.png", "bad_crc.png", "truncated.png", "ends_early.png", "adler.png",
        "good1.png", "short_image.png", "unknown_filter.png", "junk.png", "text_crc.png",
        "zero_bytes.png", "small.png", "rgb16.png", "palette.png", "rgb.png", "missing.png",
        "folder.png", "good2.png",
    ]  # fmt: skip
    paths = [tmp_path / name for name in names] + ["synth:64/00000001_000.png"]
    block, images = _same_as_cpu(paths, shape=(64, 64))
    failed = {name for name, image in zip(names, images, strict=False) if not image.ok}
    assert {"bad_crc.png", "truncated.png", "ends_early.png", "adler.png"} <= failed
    assert {"unknown_filter.png", "junk.png", "text_crc.png", "missing.png"} <= failed
    assert "tEXt" in images[names.index("text_crc.png")].error
    for k in range(3):
        assert np.array_equal(block[names.index(f"good{k}.png")], structured_image(k))


def test_a_stream_with_too_much_data_is_decoded_as_the_cpu_does(tmp_path):
    image = structured_image(10)
    (tmp_path / "too_much.png").write_bytes(_corrupted(image)["too_much.png"])
    write_png(tmp_path / "good.png", structured_image(11))
    _same_as_cpu([tmp_path / "too_much.png", tmp_path / "good.png"], shape=(64, 64))


def test_sixteen_bit_run_padding_and_contents_given(tmp_path):
    eight = write_png(tmp_path / "eight.png", structured_image(1))
    wide = write_png(tmp_path / "wide.png", structured_image(2, dtype=np.uint16))
    small = write_png(tmp_path / "small.png", structured_image(3, shape=(60, 50), dtype=np.uint16))
    paths = [str(eight), str(wide), str(small)]
    run = {"shape": (64, 64), "dtype": np.uint16, "size_policy": "pad"}
    contents = [open(p, "rb").read() for p in paths]
    block, images = gpu_decode.decode_batch_gpu(paths, contents=contents, **run)
    cpu_block, cpu_images = decode_batch(paths, **run)
    assert images == cpu_images
    assert np.array_equal(block.get(), cpu_block)
    _same_as_cpu(paths, **run)
    assert block.dtype == np.uint16 and images[2].padded_from == (60, 50)


def test_a_png_with_header_only_claims_is_refused_like_the_cpu_does(tmp_path):
    data = png_bytes(structured_image(8))
    header = struct.pack(">IIBBBBB", 64, 64, 8, 0, 0, 0, 0)
    forged = data[:8] + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    (tmp_path / "forged.png").write_bytes(forged)
    block, images = _same_as_cpu([tmp_path / "forged.png"], shape=(64, 64))
    assert not images[0].ok and not block.any()


def test_a_gpu_decoder_run_equals_a_cpu_decoded_gpu_run_array_by_array(phantom_folder, tmp_path):
    make_bad_inputs(phantom_folder / "bad")
    for name, data in _corrupted(structured_image(12)).items():
        (phantom_folder / name).write_bytes(data)
    config = {"store": {"preview_size": 32}}
    cpu, gpu = tmp_path / "cpu.zarr", tmp_path / "gpu.zarr"
    xray_scale.run([phantom_folder], cpu, engine="cupy", decoder="cpu", config=config, workers=3)
    summary = xray_scale.run(
        [phantom_folder], gpu, engine="cupy", decoder="gpu", config=config, workers=3
    )
    assert summary.ok >= 12 and summary.failed >= 8
    assert_stores_equal(cpu, gpu)
    runs = zarr.open_group(gpu, mode="r").attrs["xray_scale"]["runs"]
    assert [entry["decoder"] for entry in runs] == ["gpu"]


def test_auto_picks_the_gpu_decoder_with_the_cupy_engine_but_not_with_compat():
    assert resolve_decoder("auto", "cupy") == "gpu"
    assert resolve_decoder("auto", "cupy", compat="tutorial") == "cpu"
    with pytest.raises(EngineError, match="not --compat tutorial"):
        resolve_decoder("gpu", "cupy", compat="tutorial")
