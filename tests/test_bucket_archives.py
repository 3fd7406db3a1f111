"""NIH's tarballs kept in a bucket (moto's S3 server on 127.0.0.1), read in place by ranges."""

from __future__ import annotations

import logging
import os
import tarfile
import zlib

import pytest
import zarr
from conftest import MANIFEST_HEADER, assert_stores_equal, make_tar, png_bytes, structured_image
from s3_servers import SECRET

import xray_scale
from xray_scale.cli import main
from xray_scale.io.sources import archives
from xray_scale.io.sources.archive_index import INDEX_SUFFIX
from xray_scale.io.sources.discover import discover_inputs
from xray_scale.render import render_store
from xray_scale.runner.plan import plan_run
from xray_scale.store.encoding import read_index

pytestmark = pytest.mark.s3  # moto's S3 server, every test

OPTIONS = {"workers": 2, "batch_size": 4, "engine": "scipy"}
NAMES = [f"{21 + k // 6:08d}_{k % 6:03d}.png" for k in range(12)]


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Indexes of URL archives go to this test's own cache; archives are opened anew."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    archives._forget_opened()
    yield tmp_path / "cache" / "xray-scale" / "indexes"
    archives._forget_opened()


@pytest.fixture
def nih_bucket(s3_fs, phantom_folder, tmp_path):
    """The 12 phantoms as NIH lays them out: images_001.tar.gz (7) and images_002.tar (5)."""
    files = {name: (phantom_folder / name).read_bytes() for name in NAMES}
    first = make_tar(tmp_path / "a.tar.gz", {f"images/{n}": files[n] for n in NAMES[:7]})
    second = make_tar(tmp_path / "b.tar", {f"images/{n}": files[n] for n in NAMES[7:]}, mode="w")
    if s3_fs.exists("nih"):  # moto keeps its buckets for the whole process: start empty
        s3_fs.rm("nih", recursive=True)
    s3_fs.makedirs("nih", exist_ok=True)
    s3_fs.pipe("nih/images_001.tar.gz", first.read_bytes())
    s3_fs.pipe("nih/images_002.tar", second.read_bytes())
    reference = tmp_path / "folder.zarr"
    assert xray_scale.run([phantom_folder], reference, **OPTIONS).ok == 12
    return {"files": files, "reference": reference, "s3": s3_fs}


def cut_inside_a_member(archive, names: list[str]) -> int:
    """A length at which the ``.tar.gz`` is cut inside the data of one of ``names``' members."""
    with tarfile.open(archive) as tar:
        spans = [(m.offset_data, m.offset_data + m.size) for m in tar if m.name[7:] in names]
    data = archive.read_bytes()
    for length in range(len(data) // 3, len(data), 97):
        reached = len(zlib.decompressobj(31).decompress(data[:length]))
        if any(start + 64 < reached < end - 64 for start, end in spans):
            return length
    raise AssertionError("no cut falls inside those members")


def indexing_messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("indexing ")]


@pytest.mark.slow
def test_tarballs_in_a_bucket_equal_the_folder_run_and_are_indexed_once(
    nih_bucket, tmp_path, own_cache, caplog, capsys
):
    out = tmp_path / "bucket.zarr"
    command = ["run", "s3://nih/images_00*", "-o", str(out), "--workers", "2"]
    with caplog.at_level(logging.INFO, logger="xray_scale.io.sources.archive_index"):
        assert main([*command, "--batch-size", "4", "--engine", "scipy"]) == 0
    assert len(indexing_messages(caplog)) == 2  # one streaming pass per archive
    cached = sorted(p.name for p in own_cache.iterdir())
    assert [name.split("-")[0] for name in cached] == ["images_001.tar.gz", "images_002.tar"]
    assert all(name.endswith(INDEX_SUFFIX) for name in cached)
    assert_stores_equal(nih_bucket["reference"], out, besides=("index/path",))
    again = tmp_path / "again.zarr"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="xray_scale.io.sources.archive_index"):
        summary = xray_scale.run(["s3://nih/images_00*"], again, **OPTIONS)
    assert (summary.ok, summary.failed) == (12, 0) and indexing_messages(caplog) == []
    assert_stores_equal(nih_bucket["reference"], again, besides=("index/path",))
    paths = list(read_index(zarr.open_group(again, mode="r"), "path"))
    assert paths == [f"s3://nih/images_001.tar.gz::images/{n}" for n in NAMES[:7]] + [
        f"s3://nih/images_002.tar::images/{n}" for n in NAMES[7:]
    ]
    assert discover_inputs([paths[3], paths[9]]) == [paths[3], paths[9]]  # given back as inputs
    one = xray_scale.run([paths[9]], tmp_path / "one.zarr", **OPTIONS)
    assert (one.ok, one.failed) == (1, 0)
    report = render_store(again, tmp_path / "figures", names=[NAMES[2], NAMES[9]])
    assert len(report.grids) == 2
    estimate = plan_run(
        ["s3://nih/images_00*"], workers=1, sample=2, config={"run": {"batch_size": 2}}
    )
    assert (estimate.images, estimate.sampled) == (12, 2)
    assert SECRET not in capsys.readouterr().err


def test_a_manifest_selects_members_of_a_bucket_tarball(nih_bucket, tmp_path):
    bucket = nih_bucket["s3"]
    bucket.pipe(
        "nih/Data_Entry_2017.csv",
        (
            MANIFEST_HEADER + f"{NAMES[1]},No Finding,1,21,58,M,PA,64,64,0.1,0.1\n"
            f"{NAMES[8]},No Finding,2,22,61,M,PA,64,64,0.1,0.1\n"
        ).encode(),
    )
    summary = xray_scale.run(
        ["s3://nih/images_001.tar.gz", "s3://nih/images_002.tar"],
        tmp_path / "m.zarr",
        manifest="s3://nih/Data_Entry_2017.csv",
        **OPTIONS,
    )
    assert (summary.ok, summary.failed) == (2, 0)
    group = zarr.open_group(tmp_path / "m.zarr", mode="r")
    assert list(read_index(group, "path")) == [
        f"s3://nih/images_001.tar.gz::images/{NAMES[1]}",
        f"s3://nih/images_002.tar::images/{NAMES[8]}",
    ]
    assert list(group["index/patient_age"][:]) == [58, 61]


def test_a_replaced_tarball_is_indexed_anew_and_retry_failed_reads_it(nih_bucket, tmp_path):
    bucket, files = nih_bucket["s3"], nih_bucket["files"]
    broken = dict(files)
    broken[NAMES[2]] = b"not a png, and shorter than the real one"
    members = {f"images/{n}": broken[n] for n in NAMES}
    bucket.pipe("nih/images_003.tar.gz", make_tar(tmp_path / "c.tar.gz", members).read_bytes())
    out = tmp_path / "retry.zarr"
    first = xray_scale.run(["s3://nih/images_003.tar.gz"], out, **OPTIONS)
    assert (first.ok, first.failed) == (11, 1)
    group = zarr.open_group(out, mode="r")
    assert read_index(group, "error")[2].startswith("not a PNG")
    fixed = {f"images/{n}": files[n] for n in NAMES}  # every member after it moves
    bucket.pipe("nih/images_003.tar.gz", make_tar(tmp_path / "c.tar.gz", fixed).read_bytes())
    summary = xray_scale.run(["s3://nih/images_003.tar.gz"], out, retry_failed=True, **OPTIONS)
    assert (summary.processed, summary.ok, summary.failed) == (4, 12, 0)
    assert_stores_equal(nih_bucket["reference"], out, besides=("index/path",))


def test_reading_a_member_asks_for_a_range_not_the_archive(s3_fs, tmp_path, caplog):
    filler = {f"images/filler_{k}.bin": os.urandom(8 << 20) for k in range(3)}
    last = png_bytes(structured_image(5))
    archive = make_tar(tmp_path / "big.tar.gz", {**filler, "images/00000001_000.png": last})
    s3_fs.makedirs("big", exist_ok=True)
    s3_fs.pipe("big/images_001.tar.gz", archive.read_bytes())
    size = archive.stat().st_size
    (member,) = discover_inputs(["s3://big/images_001.tar.gz"])
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="s3fs"):
        assert archives.read_member(member) == last
    fetched = [r.args for r in caplog.records if r.getMessage().startswith("Fetch: ")]
    asked = sum(end - start for *_, start, end in fetched)
    assert fetched and asked < size / 4, (asked, size)  # at most ~one seek point's span


def test_a_cut_tarball_in_a_bucket_keeps_what_came_before_and_counts_the_rest(
    nih_bucket, tmp_path, caplog
):
    bucket, files = nih_bucket["s3"], nih_bucket["files"]
    whole = make_tar(tmp_path / "w.tar.gz", {f"images/{n}": files[n] for n in NAMES})
    data = whole.read_bytes()
    bucket.pipe("nih/images_004.tar.gz", data[: cut_inside_a_member(whole, NAMES[6:10])])
    bucket.pipe("nih/test_list.txt", "".join(f"{n}\n" for n in NAMES).encode())
    with caplog.at_level(logging.WARNING):
        summary = xray_scale.run(
            ["s3://nih/images_004.tar.gz", "s3://nih/test_list.txt"],
            tmp_path / "cut.zarr",
            **OPTIONS,
        )
    group = zarr.open_group(tmp_path / "cut.zarr", mode="r")
    errors = list(read_index(group, "error"))
    kept = errors.index(next(e for e in errors if e.startswith("truncated in the archive")))
    assert kept >= 2 and errors[:kept] == [""] * kept  # the members before the cut: ok
    lost = len(NAMES) - kept - 1
    assert errors[kept + 1 :] == ["not in the inputs"] * lost
    assert (summary.ok, summary.failed) == (kept, 1 + lost)
    assert "s3://nih/images_004.tar.gz is damaged" in caplog.text
    assert f"{lost} listed image names are in no input" in caplog.text


@pytest.mark.slow
def test_the_endpoint_down_mid_run_leaves_batches_pending_and_the_run_resumes(
    phantom_folder, tmp_path, monkeypatch
):
    """A server of our own holding a .tar.gz, stopped after the first batch, then started again."""
    import fsspec
    from moto.server import ThreadedMotoServer

    from xray_scale.errors import UnreachableError

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    fsspec.filesystem("s3").clear_instance_cache()
    bucket = fsspec.filesystem("s3", skip_instance_cache=True)
    bucket.mkdir("outage-tar")
    files = {}
    for k, path in enumerate(sorted(phantom_folder.iterdir())):
        if k % 4 == 0:  # past any read-ahead: each batch asks the server again
            files[f"images/filler_{k}.bin"] = os.urandom(3 << 20)
        files[f"images/{path.name}"] = path.read_bytes()
    bucket.pipe("outage-tar/images_001.tar.gz", make_tar(tmp_path / "a.tar.gz", files).read_bytes())
    options = {"workers": 1, "batch_size": 4, "engine": "scipy"}
    out, inputs = tmp_path / "s3.zarr", ["s3://outage-tar/images_001.tar.gz"]

    def stop_after_the_first_batch(record):
        server.stop()

    with pytest.raises(
        UnreachableError, match=r"s3://outage-tar/images_001.tar.gz.*cannot be reached"
    ):
        xray_scale.run(inputs, out, on_batch=stop_after_the_first_batch, **options)
    status = list(read_index(zarr.open_group(out, mode="r"), "status"))
    assert (status.count("ok"), status.count("pending")) == (4, 8)  # one batch, then the outage
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()  # moto keeps its buckets in this process: the same data is back
    try:
        fsspec.filesystem("s3").clear_instance_cache()
        summary = xray_scale.run(inputs, out, **options)
        assert (summary.processed, summary.ok, summary.failed) == (8, 12, 0)
        assert xray_scale.run([phantom_folder], tmp_path / "f.zarr", **options).ok == 12
        assert_stores_equal(tmp_path / "f.zarr", out, besides=("index/path",))
    finally:
        server.stop()
