"""Shared fixtures: small real PNGs on disk, the bad-input corpus, the real sample.

Fixtures that start servers live in fixture modules registered here as plugins
(``s3_servers``: moto's S3 server; ``dask_processes``: a dask scheduler and workers;
``slurm_cluster``: a real SLURM on 127.0.0.1), so a
test module asks for them by name and no test module imports another
(``tests/test_test_hygiene.py`` checks this, that each fixture has one name, and that every
marker is registered). A test that uses a server's fixture, or needs the real sample, must
carry that marker: :func:`pytest_collection_modifyitems` refuses the run otherwise, so that
``-m "not s3"`` and the like leave out exactly the tests that need those.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xray_scale.io.sources.datasets import CHEXPERT_LABELS

REAL_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chestxray8-sample"
REAL_NAMES = [f"00000011_{k:03d}.png" for k in range(9)]

needs_real_sample = pytest.mark.skipif(
    not all((REAL_SAMPLE / name).is_file() for name in REAL_NAMES),
    reason=f"the 9 real ChestX-ray8 images are not in {REAL_SAMPLE} (../shared beside the clone)",
)
"""Skips a test without the 9 real images; such a test is also marked ``real_data``."""

pytest_plugins = ["s3_servers", "dask_processes", "slurm_cluster"]

IMPLIED_MARKERS = {
    "s3": {"s3_endpoint", "s3_fs", "s3_server", "s3_user", "no_aws_environment"},
    "cluster": {"dask_cluster", "slurm"},
}
"""Each marker, and the fixtures whose tests must carry it (they start those servers)."""


def missing_markers(fixtures: set[str], markers: set[str], needs_sample: bool) -> list[str]:
    """The markers a test using ``fixtures`` must carry but does not, sorted.

    Parameters
    ----------
    fixtures : set of str
        The names of every fixture the test uses, directly or through other fixtures.
    markers : set of str
        The names of the markers the test carries (its own, its class's and its module's).
    needs_sample : bool
        Whether the test skips without the real sample (``needs_real_sample``).
    """
    wanted = {marker for marker, names in IMPLIED_MARKERS.items() if fixtures & names}
    if needs_sample:
        wanted.add("real_data")
    return sorted(wanted - markers)


def pytest_collection_modifyitems(config, items):
    """Refuse to run when a test lacks a marker its fixtures or its data imply."""
    wrong = []
    for item in items:
        markers = {mark.name for mark in item.iter_markers()}
        needs_sample = needs_real_sample.mark in list(item.iter_markers("skipif"))
        missing = missing_markers(set(getattr(item, "fixturenames", ())), markers, needs_sample)
        if missing:
            wrong.append(f"{item.nodeid} (add: {', '.join(missing)})")
    if wrong:
        raise pytest.UsageError(
            "tests lacking the markers their fixtures or data imply: " + "; ".join(wrong)
        )


def structured_image(seed: int, shape=(64, 64), dtype=np.uint8) -> np.ndarray:
    """A small image with edges, gradients and noise, using most of the dtype's range."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    top = np.iinfo(dtype).max
    base = (rows / shape[0] * 0.6 + 0.2) * top
    centre = (shape[0] * rng.uniform(0.3, 0.7), shape[1] * rng.uniform(0.3, 0.7))
    disc = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 < (min(shape) / 4) ** 2
    base[disc] = top * 0.95
    base += rng.normal(0, top * 0.03, shape)
    return np.clip(base, 0, top).astype(dtype)


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    """Encode an array as PNG bytes with Pillow (mode as in Image.fromarray)."""
    buffer = io.BytesIO()
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(array, mode))
    return path


def png_with_header(width: int, height: int, *, bit_depth: int = 8, colour_type: int = 0) -> bytes:
    """A PNG signature + valid IHDR claiming any size, + a tiny IDAT and IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def gate_folder(tmp_path: Path) -> Path:
    """The folder of a progress gate (:mod:`xray_scale.runner.gate`), empty: nothing held yet.

    A run started with ``{gate.ENV: str(gate_folder)}`` in its environment leaves a
    ticket at each checkpoint; a test holds and waits on those, never on the clock.
    """
    folder = tmp_path / "gate"
    folder.mkdir()
    return folder


def gated_environment(folder: Path) -> dict[str, str]:
    """This process's environment with the progress gate at ``folder`` turned on."""
    from xray_scale.runner import gate

    return {**os.environ, gate.ENV: str(folder)}


@pytest.fixture
def fresh_archive_handles():
    """Each test opens its archives anew: tests rewrite archives in place or reuse their paths.

    Used by the archive tests through ``pytestmark = pytest.mark.usefixtures(...)``.
    """
    from xray_scale.io.sources import archives

    archives._forget_opened()
    yield
    archives._forget_opened()


@pytest.fixture
def phantom_folder(tmp_path: Path) -> Path:
    """Twelve structured 64x64 uint8 PNGs, two patients, ChestX-ray8 names."""
    folder = tmp_path / "images"
    for k in range(12):
        patient, follow_up = 21 + k // 6, k % 6
        write_png(folder / f"{patient:08d}_{follow_up:03d}.png", structured_image(k))
    return folder


# Each bad input: file name -> (bytes or a maker, a fragment its error must contain).
BAD_INPUTS = {
    "zero_bytes.png": "empty file (0 bytes)",
    "truncated.png": "truncated PNG",
    "bad_crc.png": "bad CRC in chunk IDAT",
    "text.png": "the file starts with b'hello, w'",
    "gif.png": "another image format (starts with b'GIF8')",
    "folder.png": "is a directory",
    "bomb.png": "refused before decoding: the header says 30000x30000",
    "small.png": "image is 32x48 (height x width) but the run's size is 64x64",
    "rgb16.png": "16-bit RGB PNG is not supported",
}


def make_bad_inputs(folder: Path) -> dict[str, str]:
    """Write the bad-input corpus into ``folder``; return {file name: expected error part}."""
    folder.mkdir(parents=True, exist_ok=True)
    good = png_bytes(structured_image(99))
    (folder / "zero_bytes.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    crc_end = good.index(b"IEND") - 4  # the last 4 bytes before IEND's length are IDAT's CRC
    corrupt = bytearray(good)
    corrupt[crc_end - 1] ^= 0xFF
    (folder / "bad_crc.png").write_bytes(bytes(corrupt))
    (folder / "text.png").write_text("hello, world: not an image\n")
    buffer = io.BytesIO()  # a JPEG named .png is read as the JPEG it is (tests/test_format_runs.py)
    Image.fromarray(structured_image(98)).save(buffer, format="GIF")
    (folder / "gif.png").write_bytes(buffer.getvalue())
    (folder / "folder.png").mkdir()
    (folder / "bomb.png").write_bytes(png_with_header(30000, 30000))
    write_png(folder / "small.png", structured_image(97, shape=(32, 48)))
    rgb16 = png_with_header(64, 64, bit_depth=16, colour_type=2)
    (folder / "rgb16.png").write_bytes(rgb16)
    return dict(BAD_INPUTS)


def make_mode_inputs(folder: Path) -> dict[str, tuple[str, int, np.ndarray]]:
    """PNGs in other modes; return {name: (Pillow mode, bit depth, expected grayscale)}."""
    gray = structured_image(7)
    wide = structured_image(8, dtype=np.uint16)
    rgb_equal = np.stack([gray] * 3, axis=-1)
    rgba = np.concatenate([rgb_equal, np.full((64, 64, 1), 255, np.uint8)], axis=-1)
    la = np.stack([gray, np.full_like(gray, 200)], axis=-1)
    cases = {
        "gray16.png": (wide, None, "I;16", 16, wide),
        "rgb.png": (rgb_equal, None, "RGB", 8, gray),
        "rgba.png": (rgba, None, "RGBA", 8, gray),
        "la.png": (la, None, "LA", 8, gray),
        "palette.png": (
            gray,
            "P",
            "P",
            8,
            np.asarray(Image.fromarray(gray).convert("P").convert("L")),
        ),
    }
    expected = {}
    for name, (array, convert, mode, bits, pixels) in cases.items():
        write_png(folder / name, array, convert)
        expected[name] = (mode, bits, pixels)
    return expected


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def array_paths(group, prefix: str = "") -> list[str]:
    """Every array in a zarr group, recursively, as 'group/name' paths."""
    paths = [f"{prefix}{name}" for name in sorted(group.array_keys())]
    for name in sorted(group.group_keys()):
        paths += array_paths(group[name], f"{prefix}{name}/")
    return paths


def assert_stores_equal(
    first: Path, second: Path, *, besides: tuple[str, ...] = (), without: tuple[str, ...] = ()
) -> None:
    """Same arrays, same dtypes, same values (NaN equal to NaN) in two stores.

    The arrays named in ``besides`` (``"index/path"``) must exist in both but may differ;
    arrays whose path starts with one of ``without`` are left out of both.
    """
    import zarr

    from xray_scale.store.encoding import read_index

    one, two = zarr.open_group(first, mode="r"), zarr.open_group(second, mode="r")
    names = [n for n in array_paths(one) if not n.startswith(without)]
    assert names == [n for n in array_paths(two) if not n.startswith(without)]
    assert names, "no arrays in the store"
    for name in (n for n in names if n not in besides):
        a, b = one[name][...], two[name][...]
        if name.startswith("index/") and (a.dtype != b.dtype or a.shape != b.shape):
            # one store older than the index encoding: compare the values it stands for
            a, b = read_index(one, name[6:]), read_index(two, name[6:])
        assert a.dtype == b.dtype, name
        if a.dtype.kind == "f":
            assert np.array_equal(a, b, equal_nan=True), name
        else:
            assert np.array_equal(a, b), name


def make_tar(path: Path, files: dict[str, bytes], mode: str = "w:gz") -> Path:
    """A real tar (``mode`` "w:gz", gzip level 6 as ``tar czf``, or "w") of {member: bytes}."""
    import tarfile

    kwargs = {"compresslevel": 6} if mode == "w:gz" else {}
    with tarfile.open(path, mode, **kwargs) as tar:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size, member.mtime, member.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(member, io.BytesIO(data))
    return path


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    """A real deflated zip of {member: bytes}."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


@pytest.fixture(scope="session")
def labelled_cases(tmp_path_factory):
    """The QC labelled set (tests/qc_cases.py), written once per session."""
    from qc_cases import write_cases

    return write_cases(tmp_path_factory.mktemp("qc_cases"))


MANIFEST_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
    "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]\n"
)
CHEXPERT_HEADER = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_LABELS)
"""The header of CheXpert's train.csv and valid.csv (no line end)."""
FINDINGS = [  # NIH's Finding Labels of the labelled store's 10 images, in store order
    "Effusion|Mass",
    "No Finding",
    "Cardiomegaly",
    "Cardiomegaly|Effusion",
    "No Finding",
    "Mass",
    "Effusion",
    "No Finding",
    "Hernia",  # 00000042_003.png: listed, not in the inputs (failed)
    "Cardiomegaly|Effusion|Mass",
]


@pytest.fixture(scope="session")
def labelled_store(tmp_path_factory) -> Path:
    """A store of a run with a manifest: findings, full-resolution maps beside 16x16 previews.

    10 images of 64x64 in batches of 4 (three ``previews`` chunks): patients 41 and 42,
    ``FINDINGS`` in order, views PA/AP alternating; ``00000042_003.png`` is listed but
    absent, so it is ``failed``. Read-only: copy it to change it.
    """
    import xray_scale

    root = tmp_path_factory.mktemp("labelled")
    names = [f"{41 + k // 5:08d}_{k % 5:03d}.png" for k in range(10)]
    rows = []
    for k, (name, findings) in enumerate(zip(names, FINDINGS, strict=True)):
        if k != 8:
            write_png(root / "images" / name, structured_image(40 + k))
        rows.append(
            f"{name},{findings},{k % 5},{41 + k // 5},{50 + k},F,{'PA' if k % 2 else 'AP'},"
            "2500,2048,0.143,0.143\n"
        )
    manifest = root / "Data_Entry_2017.csv"
    manifest.write_text(MANIFEST_HEADER + "".join(rows))
    store = root / "labelled.zarr"
    summary = xray_scale.run(
        [root / "images"],
        store,
        manifest=manifest,
        config={"run": {"batch_size": 4}, "store": {"preview_size": 16}},
        engine="scipy",
        workers=1,
    )
    assert (summary.ok, summary.failed) == (9, 1)
    return store
