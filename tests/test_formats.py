"""The format registry: adding a format is one module, one registry entry and tests.

The tests here register RAWG, a tiny real format made up for them (magic bytes,
a header of width, height and bit depth, the raw big-endian pixels, a CRC-32 of
the pixels), run whole runs on folders and archives of it through the normal
pipeline, and remove it again.
"""

from __future__ import annotations

import re
import struct
import zlib

import numpy as np
import pytest
import zarr
from conftest import (
    assert_stores_equal,
    make_tar,
    make_zip,
    png_bytes,
    structured_image,
    write_png,
)

import xray_scale
from xray_scale.errors import DecodeError, InputError
from xray_scale.io.decode import decode_image, read_image_header
from xray_scale.io.formats import registry
from xray_scale.io.formats.image import ImageHeader
from xray_scale.io.formats.registry import PNG, ImageFormat
from xray_scale.io.sources import archives
from xray_scale.io.sources.discover import discover_inputs, parse_image_name
from xray_scale.store.encoding import read_index

OPTIONS = {"workers": 2, "batch_size": 4, "engine": "scipy"}

# ------------------------------------------------------------------ RAWG: the format's module
MAGIC = b"RAWG\r\n"
HEADER_SIZE = len(MAGIC) + 9  # magic, width and height (uint32), bit depth (uint8)


def rawg_bytes(pixels: np.ndarray) -> bytes:
    """A RAWG file of a 2-D uint8 or uint16 array."""
    height, width = pixels.shape
    raw = pixels.astype(f">u{pixels.dtype.itemsize}").tobytes()
    header = MAGIC + struct.pack(">IIB", width, height, pixels.dtype.itemsize * 8)
    return header + raw + struct.pack(">I", zlib.crc32(raw))


def read_rawg_header(start: bytes) -> ImageHeader:
    if not start.startswith(MAGIC) or len(start) < HEADER_SIZE:
        raise DecodeError(f"truncated RAWG: the header needs {HEADER_SIZE} bytes, got {len(start)}")
    width, height, bit_depth = struct.unpack_from(">IIB", start, len(MAGIC))
    if bit_depth not in (8, 16):
        raise DecodeError(f"corrupt RAWG: bit depth {bit_depth}, not 8 or 16")
    return ImageHeader(width, height, bit_depth)


def _pixel_bytes(header: ImageHeader) -> int:
    return header.width * header.height * header.bit_depth // 8


def rawg_checksum(data: bytes) -> int:
    size = _pixel_bytes(read_rawg_header(data[:HEADER_SIZE]))
    if len(data) != HEADER_SIZE + size + 4:
        raise DecodeError(f"truncated RAWG: {len(data)} bytes of {HEADER_SIZE + size + 4}")
    (crc,) = struct.unpack_from(">I", data, HEADER_SIZE + size)
    if zlib.crc32(data[HEADER_SIZE : HEADER_SIZE + size]) != crc:
        raise DecodeError("corrupt RAWG: bad CRC of the pixels")
    return crc


def decode_rawg(data: bytes, header: ImageHeader) -> tuple[str, np.ndarray]:
    wide = header.bit_depth == 16
    pixels = np.frombuffer(
        data, dtype=">u2" if wide else "u1", count=header.width * header.height, offset=HEADER_SIZE
    )
    pixels = pixels.reshape(header.height, header.width)
    return ("I;16", pixels.astype(np.uint16)) if wide else ("L", pixels.copy())


# ------------------------------------------------------------------ RAWG: its registry entry
RAWG = ImageFormat(
    name="rawg",
    suffixes=(".rawg",),
    magic=MAGIC,
    header_size=HEADER_SIZE,
    read_header=read_rawg_header,
    checksum=rawg_checksum,
    decode=decode_rawg,
)


@pytest.fixture
def rawg():
    """RAWG registered for one test, removed after it (archives opened anew on both sides)."""
    archives._forget_opened()
    registry.register(RAWG)
    yield RAWG
    registry.unregister("rawg")
    archives._forget_opened()


NAMES = [f"{21 + k // 6:08d}_{k % 6:03d}" for k in range(12)]


@pytest.fixture
def twins(tmp_path):
    """The same 12 images as PNGs in one folder and as RAWG files in another."""
    pngs, raws = tmp_path / "pngs", tmp_path / "raws"
    raws.mkdir()
    for k, name in enumerate(NAMES):
        write_png(pngs / f"{name}.png", structured_image(k))
        (raws / f"{name}.rawg").write_bytes(rawg_bytes(structured_image(k)))
    return pngs, raws


# ------------------------------------------------------------------ tests
def test_a_registered_format_runs_like_png_from_a_folder_and_from_archives(rawg, twins, tmp_path):
    pngs, raws = twins
    assert xray_scale.run([pngs], tmp_path / "png.zarr", **OPTIONS).ok == 12
    summary = xray_scale.run([raws], tmp_path / "rawg.zarr", **OPTIONS)
    assert (summary.ok, summary.failed) == (12, 0)
    # the same pixels give the same maps, statistics, QC, modes and patient ids
    assert_stores_equal(
        tmp_path / "png.zarr", tmp_path / "rawg.zarr", besides=("index/path", "index/checksum")
    )
    group = zarr.open_group(tmp_path / "rawg.zarr", mode="r")
    crcs = [rawg_checksum((raws / f"{n}.rawg").read_bytes()) for n in NAMES]
    assert list(group["index/checksum"][...]) == crcs
    assert set(read_index(group, "mode")) == {"L"}

    files = {f"images/{n}.rawg": (raws / f"{n}.rawg").read_bytes() for n in NAMES}
    tarball = make_tar(tmp_path / "images_001.tar.gz", files)
    kaggle = make_zip(tmp_path / "kaggle.zip", files)
    for archive in (tarball, kaggle):
        out = tmp_path / f"{archive.name}.zarr"
        assert xray_scale.run([archive], out, **OPTIONS).ok == 12
        assert_stores_equal(tmp_path / "rawg.zarr", out, besides=("index/path",))
        assert read_index(zarr.open_group(out, mode="r"), "path")[0] == (
            f"{archive}::images/{NAMES[0]}.rawg"
        )


def test_formats_mix_in_one_run_and_bad_files_fail_alone_with_the_formats_messages(rawg, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    image = structured_image(3, dtype=np.uint16)
    (folder / "00000001_000.rawg").write_bytes(rawg_bytes(image))
    write_png(folder / "00000001_001.png", image)
    bad_crc = bytearray(rawg_bytes(image))
    bad_crc[HEADER_SIZE + 10] ^= 0xFF
    (folder / "00000001_002.rawg").write_bytes(bytes(bad_crc))
    (folder / "00000001_003.rawg").write_bytes(rawg_bytes(image)[:-100])
    (folder / "00000001_004.rawg").write_bytes(b"BM6\x00\x00\x00 a bitmap")
    (folder / "00000001_005.png").write_bytes(b"plain text, not an image")

    out = tmp_path / "mixed.zarr"
    summary = xray_scale.run([folder], out, **OPTIONS)
    assert (summary.ok, summary.failed) == (2, 4)
    group = zarr.open_group(out, mode="r")
    errors = list(read_index(group, "error"))
    assert errors[:2] == ["", ""]
    assert errors[2] == "corrupt RAWG: bad CRC of the pixels"
    assert errors[3].startswith("truncated RAWG:")
    known = f"{registry.format_names()}"  # the built-in formats, then RAWG
    assert known.startswith("PNG or ") and known.endswith(" or RAWG")
    assert errors[4] == (
        f"not a {known}: the file holds another image format (starts with b'BM6\\x00')"
    )
    assert errors[5].startswith(f"not a {known}: the file starts with b'plain te'")
    assert list(read_index(group, "mode")[:2]) == ["I;16", "I;16"]
    assert list(group["index/bit_depth"][:2]) == [16, 16]
    assert np.array_equal(group["stats/max"][:2], [image.max()] * 2)
    assert parse_image_name(folder / "00000001_000.rawg") == ("1", 0)


def test_the_decoder_and_header_reader_dispatch_on_leading_bytes_not_names(rawg, tmp_path):
    image = structured_image(5, shape=(20, 30))
    misnamed = tmp_path / "scan.png"  # RAWG bytes under a PNG name: the bytes decide
    misnamed.write_bytes(rawg_bytes(image))
    header = read_image_header(misnamed)
    assert (header.height, header.width, header.bit_depth) == (20, 30, 8)
    decoded = decode_image(misnamed, shape=(20, 30))
    assert decoded.ok and decoded.mode == "L"
    assert np.array_equal(decoded.pixels, image)
    small = decode_image(misnamed, shape=(24, 32), size_policy="pad")
    assert small.padded_from == (20, 30)
    refused = decode_image(misnamed, shape=(20, 30), max_pixels=100)
    assert "refused before decoding" in refused.error
    assert decode_image(misnamed, shape=(10, 10)).error.startswith("image is 20x30")


def test_messages_and_lookups_list_what_is_registered_and_forget_a_removed_format(tmp_path):
    raws = tmp_path / "raws"
    raws.mkdir()
    (raws / "00000001_000.rawg").write_bytes(rawg_bytes(structured_image(1)))
    assert not registry.is_image_name("x.rawg")
    assert parse_image_name("00000001_000.rawg") == ("", -1)
    builtin = registry.suffix_patterns()  # "*.png or *.jpg ..." of the built-in formats
    with pytest.raises(InputError, match=rf"no {re.escape(builtin)} files under directory"):
        discover_inputs([raws])
    with pytest.raises(DecodeError, match=f"not a {registry.format_names()}: "):
        registry.identify(rawg_bytes(structured_image(1))[:HEADER_SIZE])

    registry.register(RAWG)
    try:
        assert registry.is_image_name("images/X.RAWG")
        assert registry.format_for_name("a.rawg") is RAWG
        assert registry.format_for_name("a.png") is PNG
        assert registry.suffix_patterns() == f"{builtin} or *.rawg"
        assert registry.header_size() == max(f.header_size for f in registry.BUILTIN)
        assert discover_inputs([raws]) == [str(raws / "00000001_000.rawg")]
        (tmp_path / "empty").mkdir()
        with pytest.raises(InputError, match=rf"no {re.escape(builtin)} or \*\.rawg files under"):
            discover_inputs([tmp_path / "empty"])
        with pytest.raises(ValueError, match="clashes with the registered 'rawg'"):
            registry.register(RAWG)
    finally:
        registry.unregister("rawg")
    assert registry.formats() == registry.BUILTIN
    with pytest.raises(ValueError, match="built-in formats stay"):
        registry.unregister("png")


def test_an_archive_index_saved_for_other_formats_is_listed_again(tmp_path):
    image = structured_image(2)
    tarball = make_tar(
        tmp_path / "both.tar.gz",
        {
            "images/00000001_000.png": png_bytes(image),
            "images/00000001_001.rawg": rawg_bytes(image),
        },
    )
    archives._forget_opened()
    assert [m.rsplit("/", 1)[-1] for m in archives.list_members(tarball)] == ["00000001_000.png"]
    registry.register(RAWG)
    try:
        archives._forget_opened()
        names = [m.rsplit("/", 1)[-1] for m in archives.list_members(tarball)]
        assert names == ["00000001_000.png", "00000001_001.rawg"]
    finally:
        registry.unregister("rawg")
        archives._forget_opened()


def test_a_format_entry_is_checked_and_png_names_its_gpu_decoder():
    with pytest.raises(ValueError, match="suffix 'rawg' is not like '.png'"):
        ImageFormat("x", ("rawg",), b"X", 1, read_rawg_header, rawg_checksum, decode_rawg)
    with pytest.raises(ValueError, match="lower case"):
        ImageFormat("X", (".x",), b"X", 1, read_rawg_header, rawg_checksum, decode_rawg)
    assert RAWG.load_gpu_decoder() is None
    decoder = PNG.load_gpu_decoder()  # imports no CuPy until a batch is decoded
    assert decoder.__name__ == "xray_scale.io.formats.png_gpu"
    assert callable(decoder.decode_batch_gpu) and callable(decoder.check_usable)


def test_a_format_registered_in_this_process_is_known_to_worker_processes(rawg, twins, tmp_path):
    _, raws = twins
    assert xray_scale.run([raws], tmp_path / "threads.zarr", **OPTIONS).ok == 12
    options = {**OPTIONS, "scheduler": "processes"}
    summary = xray_scale.run([raws], tmp_path / "processes.zarr", **options)
    assert (summary.ok, summary.failed) == (12, 0)
    assert_stores_equal(tmp_path / "threads.zarr", tmp_path / "processes.zarr")
