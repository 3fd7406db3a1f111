"""moto's S3 server on 127.0.0.1 for the tests: fixtures and helpers (a pytest plugin).

Registered in ``conftest.py`` (``pytest_plugins``), so any test module can ask for these
fixtures by name and no test module imports another:

- ``s3_endpoint``: a moto server in this process, any credentials accepted, one per module;
- ``s3_fs``: that server's endpoint and a fake key in the environment, as a user sets them,
  and a fresh fsspec S3 file system on it;
- ``s3_server``: a moto server in a process of its own that checks credentials (an IAM user's
  key, a bucket ``cxr``), one per test session;
- ``s3_user``: that server's endpoint and key in the environment;
- ``no_aws_environment``: that server with no ``AWS_*`` variable set at all.

A test using one of them is marked ``s3`` (``conftest.py`` checks it at collection).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest

SECRET = "not-a-real-secret-123"
"""The secret key of ``s3_fs``: no error message or store may ever hold it."""

SERVER = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()  # returns once it listens
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # serves until the test session closes this pipe, or dies
"""


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1 in this process, stopped after the module's tests."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_fs(s3_endpoint, monkeypatch):
    """Credentials and endpoint from the environment, as a user sets them; a fresh client."""
    pytest.importorskip("s3fs", reason="s3fs is not installed")
    import fsspec

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    fsspec.filesystem("s3").clear_instance_cache()
    return fsspec.filesystem("s3", skip_instance_cache=True)


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server checking credentials: an IAM user's key, and a bucket ``cxr``.

    Yields a dict: ``endpoint``, ``key``, ``secret`` and a boto3 ``client`` holding the key.
    """
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    pytest.importorskip("s3fs", reason="s3fs is not installed")
    boto3 = pytest.importorskip("boto3", reason="boto3 (with moto) is not installed")
    # the first 4 requests (the user, its key, its policy, the bucket) need no credentials
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"}
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed with the server
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        port = server.stdout.readline().strip()  # its port, once it listens
        if not port.isdigit():
            log.seek(0)
            raise RuntimeError(f"moto's S3 server did not start: {log.read()[-2000:]}")
        endpoint = f"http://127.0.0.1:{port}"
        anyone = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        iam = boto3.client("iam", aws_access_key_id="x", aws_secret_access_key="x", **anyone)
        iam.create_user(UserName="xray")
        key = iam.create_access_key(UserName="xray")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*"}]}
        policy["Statement"][0]["Resource"] = "*"
        iam.put_user_policy(UserName="xray", PolicyName="all", PolicyDocument=json.dumps(policy))
        credentials = {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }
        boto3.client("s3", **credentials, **anyone).create_bucket(Bucket="cxr")
        yield {
            "endpoint": endpoint,
            "key": key["AccessKeyId"],
            "secret": key["SecretAccessKey"],
            "client": boto3.client("s3", **credentials, **anyone),
        }
    finally:
        server.kill()
        server.wait()
        log.close()


@pytest.fixture
def s3_user(s3_server, monkeypatch):
    """``s3_server``'s endpoint and credentials in the environment, as a user sets them."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server["endpoint"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server["secret"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # no client made for another server's settings
    return s3_server


@pytest.fixture
def no_aws_environment(s3_server, monkeypatch):
    """No AWS_* variable set: only the options given to the run reach ``s3_server``."""
    import s3fs

    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    s3fs.S3FileSystem.clear_instance_cache()
    return s3_server


def url_store(url: str):
    """The zarr store at ``url``, read-only, opened as the run opens it."""
    from xray_scale.store.location import StoreLocation

    return StoreLocation(url).zarr_store(read_only=True)


def keys(server: dict, prefix: str) -> list[str]:
    """The keys under ``prefix`` in ``s3_server``'s bucket ``cxr``, sorted."""
    listing = server["client"].list_objects_v2(Bucket="cxr", Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def flags(server: dict, endpoint: str) -> list[str]:
    """``--storage-option`` values giving ``endpoint`` and ``s3_server``'s keys."""
    return [f"endpoint_url={endpoint}", f"key={server['key']}", f"secret={server['secret']}"]
