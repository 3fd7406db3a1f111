"""URL inputs against real servers on 127.0.0.1: moto's S3 server and http.server."""

from __future__ import annotations

import functools
import http.server
import threading
import zipfile

import pytest

from xray_scale.errors import InputError, UrlError
from xray_scale.io.synth import write_phantoms
from xray_scale.io.urls import is_url, list_url_inputs, read_url, redact

pytest.importorskip("s3fs", reason="s3fs is not installed")
moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")

SECRET = "not-a-real-secret-123"


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1, stopped after the module's tests."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch):
    """Credentials and endpoint from the environment, as a user sets them; a fresh client."""
    import fsspec

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    fsspec.filesystem("s3").clear_instance_cache()
    return fsspec.filesystem("s3", skip_instance_cache=True)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("phantoms")
    written = write_phantoms(folder, follow_ups=4, shape=(64, 64))
    return {p.name: p.read_bytes() for p in written}


def test_is_url_and_redact():
    assert is_url("s3://bucket/x.png") and is_url("https://h/x.png")
    assert not is_url("/data/images_001.tar.gz::images/x.png")
    assert redact(f"https://me:{SECRET}@127.0.0.1/x.png") == "https://127.0.0.1/x.png"


def test_bucket_prefix_glob_and_one_object(s3, phantoms):
    s3.mkdir("cxr")
    for name, data in phantoms.items():
        s3.pipe(f"cxr/images_001/images/{name}", data)
    s3.pipe("cxr/images_001/notes.txt", b"x")
    expected = [f"s3://cxr/images_001/images/{n}" for n in sorted(phantoms)]
    assert list_url_inputs("s3://cxr/") == expected
    assert list_url_inputs("s3://cxr/images_00*/images/*_00[01].png") == expected[:2]
    assert list_url_inputs(expected[3]) == [expected[3]]
    assert [read_url(u) for u in expected] == [phantoms[n] for n in sorted(phantoms)]


def test_zip_in_a_bucket_read_by_member(s3, phantoms, tmp_path):
    local = tmp_path / "k.zip"
    with zipfile.ZipFile(local, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in phantoms.items():
            archive.writestr(f"images_001/images/{name}", data)
    s3.mkdir("kaggle")
    s3.put(str(local), "kaggle/k.zip")
    urls = list_url_inputs("s3://kaggle/k.zip")
    assert urls == [f"zip://images_001/images/{n}::s3://kaggle/k.zip" for n in sorted(phantoms)]
    assert read_url(urls[2]) == phantoms[sorted(phantoms)[2]]


def test_errors_name_the_url_never_the_secret(s3, s3_endpoint, monkeypatch):
    with pytest.raises(InputError, match=r"^cannot list s3://missing-bucket/: not found") as info:
        list_url_inputs("s3://missing-bucket/")
    with pytest.raises(UrlError, match=r"^cannot read s3://missing-bucket/x.png: not found"):
        read_url("s3://missing-bucket/x.png")
    s3.mkdir("empty")
    with pytest.raises(InputError, match=r"^no \*\.png under s3://empty/"):
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
