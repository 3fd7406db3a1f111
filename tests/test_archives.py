"""Archives read in place: real .tar, .tar.gz and .zip files built in tmp_path."""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest
from conftest import REAL_NAMES, REAL_SAMPLE, make_tar, make_zip, needs_real_sample

from xray_scale.errors import ArchiveError, MemberError
from xray_scale.io.phantoms import write_phantoms
from xray_scale.io.sources import archive_index, archives
from xray_scale.io.sources.archive_index import index_location
from xray_scale.io.sources.archives import list_members, member_path, read_member, split_member_path


@pytest.fixture
def phantom_files(tmp_path: Path) -> dict[str, bytes]:
    """Eighteen 96x96 phantoms as NIH lays them out: ``images/NNNNNNNN_NNN.png``."""
    written = write_phantoms(tmp_path / "phantoms", patients=2, follow_ups=9, shape=(96, 96))
    return {f"images/{path.name}": path.read_bytes() for path in written}


pytestmark = pytest.mark.usefixtures("fresh_archive_handles")  # conftest.py


def test_member_names_parse_back():
    name = member_path("/data/images_001.tar.gz", "images/00000001_000.png")
    assert name == "/data/images_001.tar.gz::images/00000001_000.png"
    assert split_member_path(name) == ("/data/images_001.tar.gz", "images/00000001_000.png")
    assert split_member_path("/d/a::b.zip::x/y::z.png") == ("/d/a::b.zip", "x/y::z.png")
    assert split_member_path("/data/x.png") is None
    assert split_member_path("/data/a.tar.gz::") is None
    assert split_member_path("/data/notes::x.png") is None


@pytest.mark.parametrize("suffix,mode", [(".tar.gz", "w:gz"), (".tgz", "w:gz"), (".tar", "w")])
def test_tar_members_listed_sorted_and_read(tmp_path, phantom_files, suffix, mode):
    files = dict(reversed(phantom_files.items()))  # stored out of order
    files["images/notes.txt"] = b"not an image"
    files["deep/er/UPPER.PNG"] = phantom_files["images/90000001_000.png"]
    archive = make_tar(tmp_path / f"images_001{suffix}", files, mode)
    names = list_members(archive)
    expected = sorted([*phantom_files, "deep/er/UPPER.PNG"])
    assert names == [member_path(str(archive), n) for n in expected]
    for name in names:
        member = split_member_path(name)[1]
        assert read_member(name) == files[member]


def test_gzip_index_saved_beside_and_reused(tmp_path, phantom_files, monkeypatch):
    archive = make_tar(tmp_path / "images_001.tar.gz", phantom_files)
    first = list_members(archive)
    saved = tmp_path / "images_001.tar.gz.xray-scale-index"
    assert index_location(archive) == saved and saved.is_file()
    built = []
    monkeypatch.setattr(archive_index, "_build", lambda *a: built.append(a))
    archives._forget_opened()
    assert list_members(archive) == first and built == []  # reused, not rebuilt
    assert read_member(first[3]) == phantom_files[split_member_path(first[3])[1]]


def test_index_rebuilt_when_the_archive_changes(tmp_path, phantom_files):
    archive = make_tar(tmp_path / "a.tar.gz", phantom_files)
    list_members(archive)
    fewer = dict(list(phantom_files.items())[:4])
    make_tar(tmp_path / "b.tar.gz", fewer)
    os.replace(tmp_path / "b.tar.gz", archive)
    os.utime(archive, ns=(1, 1))
    archives._forget_opened()
    assert len(list_members(archive)) == 4
    name = list_members(archive)[2]
    assert read_member(name) == fewer[split_member_path(name)[1]]


def test_index_cached_when_the_folder_is_read_only(tmp_path, phantom_files, monkeypatch):
    folder = tmp_path / "readonly"
    folder.mkdir()
    archive = make_tar(folder / "images_001.tar.gz", phantom_files)
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setattr(archive_index.os, "access", lambda path, mode: Path(path) != folder)
    names = list_members(archive)
    cached = list(cache.glob("xray-scale/indexes/images_001.tar.gz-*.xray-scale-index"))
    assert len(cached) == 1 and cached[0] == index_location(archive)
    assert sorted(p.name for p in folder.iterdir()) == ["images_001.tar.gz"]
    assert read_member(names[0]) == phantom_files[split_member_path(names[0])[1]]


def test_kaggle_zip_layout(tmp_path, phantom_files):
    files = {
        f"images_00{1 + k % 2}/{name}": data for k, (name, data) in enumerate(phantom_files.items())
    }
    files["images_001/"] = b""
    files["README.md"] = b"# not an image"
    archive = make_zip(tmp_path / "data.zip", files)
    names = list_members(archive)
    assert names == sorted(member_path(str(archive), n) for n in files if n.endswith(".png"))
    assert [read_member(n) for n in names] == [files[split_member_path(n)[1]] for n in names]
    assert not list(tmp_path.glob("*.xray-scale-index"))  # a zip's directory is its index


@needs_real_sample
@pytest.mark.real_data
def test_real_sample_as_nih_tarball_and_kaggle_zip(tmp_path):
    real = {f"images/{name}": (REAL_SAMPLE / name).read_bytes() for name in REAL_NAMES}
    tar = make_tar(tmp_path / "images_001.tar.gz", real)
    zipped = make_zip(tmp_path / "k.zip", {f"images_001/{n}": d for n, d in real.items()})
    for archive, prefix in ((tar, ""), (zipped, "images_001/")):
        names = list_members(archive)
        assert names == [member_path(str(archive), prefix + n) for n in sorted(real)]
        assert [read_member(n) for n in names] == [real[n] for n in sorted(real)]


def test_truncated_tar_gz_keeps_members_before_the_cut(tmp_path, phantom_files, caplog):
    whole = make_tar(tmp_path / "whole.tar.gz", phantom_files)
    data = whole.read_bytes()
    cut = tmp_path / "images_002.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="xray_scale.io.sources.archives"):
        names = list_members(cut)
    assert 0 < len(names) < len(phantom_files)
    ok, failed = [], []
    for name in names:
        try:
            assert read_member(name) == phantom_files[split_member_path(name)[1]]
            ok.append(name)
        except MemberError as error:
            failed.append((name, str(error)))
    assert len(failed) == 1 and failed[0][0] == names[-1]
    assert failed[0][1].startswith("truncated in the archive: it ends after ")
    (warning,) = caplog.records
    message = warning.getMessage()
    assert f"{len(ok)} PNG members before the damage are read" in message
    assert "members after it are lost" in message and "download the archive again" in message


def test_tar_cut_at_a_member_boundary_is_reported(tmp_path, phantom_files, caplog):
    whole = make_tar(tmp_path / "whole.tar", phantom_files, mode="w")
    with tarfile.open(whole) as tar:
        fourth = tar.getmembers()[4]
    end = fourth.offset_data + (fourth.size + 511) // 512 * 512
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole.read_bytes()[:end])
    with caplog.at_level(logging.WARNING, logger="xray_scale.io.sources.archives"):
        names = list_members(cut)
    assert all(read_member(n) for n in names)  # every member before the cut is whole
    assert "without the end-of-archive marker" in caplog.records[0].getMessage()


def test_corrupt_zip_entry_fails_that_member_only(tmp_path, phantom_files):
    archive = make_zip(tmp_path / "data.zip", phantom_files)
    with zipfile.ZipFile(archive) as z:
        info = z.getinfo("images/90000001_004.png")
    data = bytearray(archive.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    names = list_members(archive)
    broken = member_path(str(archive), "images/90000001_004.png")
    with pytest.raises(MemberError, match="^corrupt in the archive: |cannot read it from the arch"):
        read_member(broken)
    others = [n for n in names if n != broken]
    assert [read_member(n) for n in others] == [
        phantom_files[split_member_path(n)[1]] for n in others
    ]


def test_not_an_archive_and_missing_member(tmp_path, phantom_files):
    fake = tmp_path / "fake.tar.gz"
    fake.write_bytes(b"this is not gzip data at all" * 10)
    with pytest.raises(ArchiveError, match="fake.tar.gz.*check that the file is complete"):
        list_members(fake)
    cut_zip = tmp_path / "cut.zip"
    cut_zip.write_bytes(make_zip(tmp_path / "z.zip", phantom_files).read_bytes()[:5000])
    with pytest.raises(ArchiveError, match="table of contents: download it again"):
        list_members(cut_zip)
    archive = make_tar(tmp_path / "a.tar", phantom_files, mode="w")
    with pytest.raises(MemberError, match="^not in the archive "):
        read_member(member_path(str(archive), "images/00000001_000.png"))


def test_links_inside_a_tar(tmp_path, phantom_files):
    staging = tmp_path / "staging"
    first = next(iter(phantom_files))
    (staging / "images").mkdir(parents=True)
    (staging / first).write_bytes(phantom_files[first])
    os.link(staging / first, staging / "images/hard.png")
    os.symlink(Path(first).name, staging / "images/soft.png")
    os.symlink("../elsewhere/x.png", staging / "images/dangling.png")
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(staging / "images", arcname="images")
    names = {split_member_path(n)[1]: n for n in list_members(archive)}
    assert set(names) == {first, "images/hard.png", "images/soft.png", "images/dangling.png"}
    assert read_member(names["images/hard.png"]) == phantom_files[first]
    assert read_member(names["images/soft.png"]) == phantom_files[first]
    with pytest.raises(MemberError, match="a link to 'elsewhere/x.png', which is not a file"):
        read_member(names["images/dangling.png"])


def test_threads_read_one_archive_at_once(tmp_path, phantom_files):
    archive = make_tar(tmp_path / "images_001.tar.gz", phantom_files)
    names = list_members(archive) * 6
    results: dict[int, bytes] = {}
    errors = []

    def work(offset: int) -> None:
        try:
            for k in range(offset, len(names), 4):
                results[k] = read_member(names[k])
        except Exception as error:  # reported below, with the thread's failure
            errors.append(error)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [results[k] for k in range(len(names))] == [
        phantom_files[split_member_path(n)[1]] for n in names
    ]


def test_member_names_pickle_to_a_fresh_process(tmp_path, phantom_files):
    archive = make_tar(tmp_path / "images_001.tar.gz", phantom_files)
    name = list_members(archive)[5]
    read_member(name)  # this process holds a handle now; the child must open its own
    script = (
        "import pickle, sys, zlib; from xray_scale.io.sources.archives import read_member; "
        "print(zlib.crc32(read_member(pickle.loads(sys.stdin.buffer.read()))))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", script], input=pickle.dumps(name), capture_output=True, env=env
    )
    assert done.returncode == 0, done.stderr.decode()
    import zlib

    assert int(done.stdout) == zlib.crc32(phantom_files[split_member_path(name)[1]])


def test_forked_child_reopens(tmp_path, phantom_files):
    archive = make_tar(tmp_path / "images_001.tar.gz", phantom_files)
    names = list_members(archive)
    read_member(names[0])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's handles are forgotten, reading still works
        os.close(read)
        ok = (
            not archives._OPENED
            and read_member(names[7]) == phantom_files[split_member_path(names[7])[1]]
        )
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)


def test_gzip_crc_mismatch_keeps_every_member(tmp_path, phantom_files, caplog):
    archive = make_tar(tmp_path / "images_003.tar.gz", phantom_files)
    data = bytearray(archive.read_bytes())
    data[-6] ^= 0xFF  # the trailer's CRC-32
    archive.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="xray_scale.io.sources.archives"):
        names = list_members(archive)
    assert [read_member(n) for n in names] == [phantom_files[n] for n in sorted(phantom_files)]
    (warning,) = caplog.records
    assert "does not match the gzip CRC-32" in warning.getMessage()
    assert f"Its {len(phantom_files)} PNG members are read" in warning.getMessage()


def test_member_exists_and_source_file(tmp_path, phantom_files):
    archive = make_tar(tmp_path / "images_001.tar.gz", phantom_files)
    name = list_members(archive)[0]
    assert archives.member_exists(name)
    assert not archives.member_exists(member_path(str(archive), "images/00000001_000.png"))
    assert not archives.member_exists(member_path(str(tmp_path / "gone.zip"), "x.png"))
    assert archives.source_file(name) == str(archive)
    assert archives.file_name(name) == split_member_path(name)[1].rsplit("/", 1)[-1]
