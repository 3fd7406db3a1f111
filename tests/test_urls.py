"""URL inputs against real servers on 127.0.0.1: moto's S3 server and http.server."""

from __future__ import annotations

import functools
import http.server
import threading
import zipfile

import pytest
import zarr
from conftest import CHEXPERT_HEADER, MANIFEST_HEADER, assert_stores_equal
from s3_servers import SECRET

import xray_scale
from xray_scale.cli import main
from xray_scale.errors import InputError, UnreachableError, UrlError
from xray_scale.io.phantoms import write_phantoms
from xray_scale.io.sources.datasets import CHEXPERT_LABELS, read_dataset_metadata
from xray_scale.io.sources.urls import is_url, list_url_inputs, read_url, redact
from xray_scale.runner.plan import plan_run
from xray_scale.store.encoding import read_index

pytest.importorskip("s3fs", reason="s3fs is not installed")
moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("phantoms")
    written = write_phantoms(folder, follow_ups=4, shape=(64, 64))
    return {p.name: p.read_bytes() for p in written}


def test_is_url_and_redact():
    assert is_url("s3://bucket/x.png") and is_url("https://h/x.png")
    assert not is_url("/data/images_001.tar.gz::images/x.png")
    assert redact(f"https://me:{SECRET}@127.0.0.1/x.png") == "https://127.0.0.1/x.png"


@pytest.mark.s3
def test_bucket_prefix_glob_and_one_object(s3_fs, phantoms):
    s3_fs.mkdir("cxr")
    for name, data in phantoms.items():
        s3_fs.pipe(f"cxr/images_001/images/{name}", data)
    s3_fs.pipe("cxr/images_001/notes.txt", b"x")
    expected = [f"s3://cxr/images_001/images/{n}" for n in sorted(phantoms)]
    assert list_url_inputs("s3://cxr/") == expected
    assert list_url_inputs("s3://cxr/images_00*/images/*_00[01].png") == expected[:2]
    assert list_url_inputs(expected[3]) == [expected[3]]
    assert [read_url(u) for u in expected] == [phantoms[n] for n in sorted(phantoms)]


@pytest.mark.s3
def test_zip_in_a_bucket_read_by_member(s3_fs, phantoms, tmp_path):
    local = tmp_path / "k.zip"
    with zipfile.ZipFile(local, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in phantoms.items():
            archive.writestr(f"images_001/images/{name}", data)
    s3_fs.mkdir("kaggle")
    s3_fs.put(str(local), "kaggle/k.zip")
    urls = list_url_inputs("s3://kaggle/k.zip")
    assert urls == [f"zip://images_001/images/{n}::s3://kaggle/k.zip" for n in sorted(phantoms)]
    assert read_url(urls[2]) == phantoms[sorted(phantoms)[2]]


@pytest.mark.s3
def test_errors_name_the_url_never_the_secret(s3_fs, s3_endpoint, monkeypatch):
    with pytest.raises(InputError, match=r"^cannot list s3://missing-bucket/: not found") as info:
        list_url_inputs("s3://missing-bucket/")
    with pytest.raises(UrlError, match=r"^cannot read s3://missing-bucket/x.png: not found"):
        read_url("s3://missing-bucket/x.png")
    s3_fs.mkdir("empty")
    with pytest.raises(InputError, match=r"^no \*\.png or \*\.jpg or .* under s3://empty/"):
        list_url_inputs("s3://empty/")
    assert SECRET not in str(info.value)


def test_endpoint_down_is_one_line(monkeypatch):
    import fsspec

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: closed
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    fsspec.filesystem("s3").clear_instance_cache()
    with pytest.raises(InputError, match=r"^cannot list s3://cxr/: the server cannot be reached"):
        list_url_inputs("s3://cxr/")


@pytest.fixture
def http_folder(tmp_path, phantoms):
    """A folder of PNGs served by http.server on 127.0.0.1, stopped after the test."""
    root = tmp_path / "site"
    (root / "images").mkdir(parents=True)
    for name, data in phantoms.items():
        (root / "images" / name).write_bytes(data)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no request lines on the test's stderr
        pass


def test_http_folder_and_file(http_folder, phantoms):
    urls = list_url_inputs(f"{http_folder}/images/")
    assert urls == [f"{http_folder}/images/{n}" for n in sorted(phantoms)]
    assert read_url(urls[1]) == phantoms[sorted(phantoms)[1]]
    with pytest.raises(UrlError, match=r"/images/none.png: not found"):
        read_url(f"{http_folder}/images/none.png")


# -- runs from URLs ----------------------------------------------------------------------------


@pytest.fixture
def bucket_of_phantoms(s3_fs, phantom_folder):
    """The 12 phantoms of ``phantom_folder`` in s3://dump/images/ (the bucket made once)."""
    s3_fs.makedirs("dump", exist_ok=True)
    for path in sorted(phantom_folder.iterdir()):
        s3_fs.pipe(f"dump/images/{path.name}", path.read_bytes())
    return phantom_folder


@pytest.mark.s3
@pytest.mark.slow
def test_a_run_from_a_bucket_equals_the_folder_run(bucket_of_phantoms, tmp_path, s3_fs):
    options = {"workers": 2, "batch_size": 4, "engine": "scipy"}
    assert xray_scale.run([bucket_of_phantoms], tmp_path / "folder.zarr", **options).ok == 12
    summary = xray_scale.run(["s3://dump/images/"], tmp_path / "s3.zarr", **options)
    assert (summary.ok, summary.failed) == (12, 0)
    assert_stores_equal(tmp_path / "folder.zarr", tmp_path / "s3.zarr", besides=("index/path",))
    paths = list(read_index(zarr.open_group(tmp_path / "s3.zarr", mode="r"), "path"))
    assert paths == [f"s3://dump/images/{p.name}" for p in sorted(bucket_of_phantoms.iterdir())]
    s3_fs.rm("dump/images/" + sorted(bucket_of_phantoms.iterdir())[1].name)  # gone since
    resumed = xray_scale.run(["s3://dump/images/"], tmp_path / "s3b.zarr", **options)
    assert (resumed.ok, resumed.failed) == (11, 0)
    estimate = plan_run(
        ["s3://dump/images/"], workers=1, sample=2, config={"run": {"batch_size": 2}}
    )
    assert (estimate.images, estimate.sampled) == (11, 2)


@pytest.mark.s3
def test_a_missing_bucket_is_exit_2_naming_the_url_and_no_secret(s3_fs, tmp_path, capsys):
    assert main(["run", "s3://no-such-bucket/images/", "-o", str(tmp_path / "o.zarr")]) == 2
    printed = capsys.readouterr()
    assert "s3://no-such-bucket/images/: not found" in printed.err
    assert SECRET not in printed.err + printed.out


@pytest.mark.s3
def test_the_endpoint_down_mid_run_leaves_batches_pending_and_the_run_resumes(
    phantom_folder, tmp_path, monkeypatch
):
    """A server of our own, stopped after the first batch, then started again on its port."""
    import fsspec

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    fsspec.filesystem("s3").clear_instance_cache()
    filesystem = fsspec.filesystem("s3", skip_instance_cache=True)
    filesystem.mkdir("outage")
    for path in sorted(phantom_folder.iterdir()):
        filesystem.pipe(f"outage/images/{path.name}", path.read_bytes())
    options = {"workers": 1, "batch_size": 4, "engine": "scipy"}
    out = tmp_path / "s3.zarr"

    def stop_after_the_first_batch(record):
        server.stop()

    with pytest.raises(UnreachableError, match=r"^cannot read s3://outage/images/.*: the server"):
        xray_scale.run(["s3://outage/images/"], out, on_batch=stop_after_the_first_batch, **options)
    status = list(read_index(zarr.open_group(out, mode="r"), "status"))
    assert (status.count("ok"), status.count("pending")) == (4, 8)  # one batch, then the outage
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()  # moto keeps its buckets in this process: the same data is back
    try:
        fsspec.filesystem("s3").clear_instance_cache()
        summary = xray_scale.run(["s3://outage/images/"], out, **options)
        assert (summary.processed, summary.ok, summary.failed) == (8, 12, 0)
        assert xray_scale.run([phantom_folder], tmp_path / "f.zarr", **options).ok == 12
        assert_stores_equal(tmp_path / "f.zarr", out, besides=("index/path",))
    finally:
        server.stop()


@pytest.mark.s3
def test_lists_name_lists_and_a_manifest_at_urls(bucket_of_phantoms, s3_fs, tmp_path, capsys):
    names = sorted(p.name for p in bucket_of_phantoms.iterdir())
    options = {"workers": 2, "batch_size": 4, "engine": "scipy"}
    s3_fs.pipe("dump/test_list.txt", f"{names[7]}\n{names[3]}\n00000077_000.png\n".encode())
    out = tmp_path / "split.zarr"
    summary = xray_scale.run(["s3://dump/images/", "s3://dump/test_list.txt"], out, **options)
    assert (summary.total, summary.ok, summary.failed) == (3, 2, 1)
    group = zarr.open_group(out, mode="r")
    assert list(read_index(group, "path")) == [
        f"s3://dump/images/{names[3]}",
        f"s3://dump/images/{names[7]}",
        "s3://dump/test_list.txt::00000077_000.png",
    ]
    assert list(read_index(group, "error")) == ["", "", "not in the inputs"]
    s3_fs.pipe("dump/paths.txt", f"images/{names[0]}\ns3://dump/images/{names[1]}\n".encode())
    listed = xray_scale.run(["s3://dump/paths.txt"], tmp_path / "listed.zarr", **options)
    assert listed.ok == 2
    s3_fs.pipe(
        "dump/Data_Entry_2017.csv",
        (
            MANIFEST_HEADER + f"{names[0]},No Finding,0,21,58,M,PA,64,64,0.1,0.1\n"
            f"{names[5]},No Finding,5,21,61,M,PA,64,64,0.1,0.1\n"
        ).encode(),
    )
    summary = xray_scale.run(
        ["s3://dump/images/"],
        tmp_path / "m.zarr",
        manifest="s3://dump/Data_Entry_2017.csv",
        **options,
    )
    assert (summary.ok, summary.failed) == (2, 0)
    ages = zarr.open_group(tmp_path / "m.zarr", mode="r")["index/patient_age"][:]
    assert list(ages) == [58, 61]
    command = ["run", "s3://dump/images/", "-o", str(tmp_path / "cli.zarr"), "--workers", "1"]
    assert main([*command, "--manifest", "s3://dump/Data_Entry_2017.csv"]) == 0
    assert "2 images, 2 ok" in capsys.readouterr().out
    assert main(["run", "s3://dump/none.txt", "-o", str(tmp_path / "none.zarr")]) == 2
    printed = capsys.readouterr()
    assert "cannot read list s3://dump/none.txt: not found" in printed.err
    assert SECRET not in printed.err + printed.out


@pytest.mark.s3
def test_a_manifest_inside_a_zip_in_a_bucket(s3_fs, phantoms, tmp_path):
    names = sorted(phantoms)
    manifest = MANIFEST_HEADER + f"{names[1]},Mass,1,21,58,M,PA,64,64,0.1,0.1\n"
    local = tmp_path / "k.zip"
    with zipfile.ZipFile(local, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in phantoms.items():
            archive.writestr(f"images_001/images/{name}", data)
        archive.writestr("Data_Entry_2017.csv", manifest)
        archive.writestr("test_list.txt", f"{names[2]}\n00000099_000.png\n")
    s3_fs.mkdir("kaggle-meta")
    s3_fs.put(str(local), "kaggle-meta/k.zip")
    summary = xray_scale.run(
        ["s3://kaggle-meta/k.zip"],
        tmp_path / "m.zarr",
        manifest="s3://kaggle-meta/k.zip::Data_Entry_2017.csv",
        workers=1,
    )
    assert (summary.total, summary.ok) == (1, 1)
    group = zarr.open_group(tmp_path / "m.zarr", mode="r")
    assert list(read_index(group, "finding_labels")) == ["Mass"]
    listed = xray_scale.run(
        ["s3://kaggle-meta/k.zip", "s3://kaggle-meta/k.zip::test_list.txt"],
        tmp_path / "listed.zarr",
        workers=1,
    )
    assert (listed.total, listed.ok, listed.failed) == (2, 1, 1)
    paths = read_index(zarr.open_group(tmp_path / "listed.zarr", mode="r"), "path")
    assert list(paths) == [  # sorted
        "s3://kaggle-meta/k.zip::test_list.txt::00000099_000.png",
        f"zip://images_001/images/{names[2]}::s3://kaggle-meta/k.zip",
    ]
    chexpert = CHEXPERT_HEADER + "\n"
    chexpert += "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Male,60,Frontal,PA"
    s3_fs.pipe("kaggle-meta/train.csv", (chexpert + ",1.0" * len(CHEXPERT_LABELS) + "\n").encode())
    metadata = read_dataset_metadata(["s3://kaggle-meta/train.csv"])  # another dataset's, too
    assert metadata.dataset == "chexpert" and len(metadata.rows) == 1
    with pytest.raises(InputError, match=r"cannot read manifest .*k.zip.*: not found"):
        xray_scale.run(
            ["s3://kaggle-meta/k.zip"],
            tmp_path / "none.zarr",
            manifest="s3://kaggle-meta/k.zip::nope.csv",
            workers=1,
        )
