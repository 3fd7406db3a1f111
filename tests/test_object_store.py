"""A store on object storage: moto's real S3 server on 127.0.0.1, with credentials checked."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr
from conftest import assert_stores_equal

import xray_scale
from xray_scale.store.encoding import read_index
from xray_scale.store.location import StoreLocation, parse_storage_options, store_location

pytest.importorskip("moto.server", reason="moto[server] is not installed")
pytest.importorskip("s3fs", reason="s3fs is not installed")
boto3 = pytest.importorskip("boto3", reason="boto3 (with moto) is not installed")

INPUTS = ["synth:12x48"]
RUN = {"engine": "scipy", "workers": 2, "batch_size": 4}
SERVER = """
import sys, time
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
time.sleep(900)  # stops by itself if the test session dies without stopping it
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server checking credentials: an IAM user's key, and a bucket ``cxr``."""
    port = free_port()
    # the first 4 requests (the user, its key, its policy, the bucket) need no credentials
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"}
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
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


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The server's endpoint and credentials in the environment, as a user sets them."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server["endpoint"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server["secret"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # no client made for another server's settings
    return s3_server


def url_store(url: str):
    return StoreLocation(url).zarr_store(read_only=True)


def keys(s3, prefix: str) -> list[str]:
    listing = s3["client"].list_objects_v2(Bucket="cxr", Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_a_run_to_s3_equals_a_local_run_array_by_array_and_holds_no_secret(s3, tmp_path):
    summary = xray_scale.run(INPUTS, "s3://cxr/runs/one.zarr", **RUN)
    assert (summary.ok, summary.failed, summary.pending) == (12, 0, 0)
    xray_scale.run(INPUTS, tmp_path / "local.zarr", **RUN)
    assert_stores_equal(url_store("s3://cxr/runs/one.zarr"), tmp_path / "local.zarr")
    group = xray_scale.open_store("s3://cxr/runs/one.zarr")
    assert list(read_index(group, "status")) == ["ok"] * 12
    assert group.attrs["xray_scale_state"] == "complete"
    metadata = [k for k in keys(s3, "runs/one.zarr/") if k.endswith("zarr.json")]
    assert len(metadata) > 20
    for key in metadata:
        text = s3["client"].get_object(Bucket="cxr", Key=key)["Body"].read().decode()
        assert s3["secret"] not in text and s3["key"] not in text, key
    again = xray_scale.run(INPUTS, "s3://cxr/runs/one.zarr", **RUN)
    assert again.processed == 0 and again.ok == 12


def test_storage_options_reach_the_client_and_stay_out_of_the_store(s3, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    options = parse_storage_options([f"key={s3['key']}", f"secret={s3['secret']}"])
    summary = xray_scale.run(INPUTS, "s3://cxr/opts.zarr", storage_options=options, **RUN)
    assert summary.ok == 12
    location = store_location("s3://cxr/opts.zarr", options)
    assert s3["secret"] not in repr(location) and s3["secret"] not in str(location)
    group = zarr.open_group(location.zarr_store(read_only=True), mode="r")
    assert s3["secret"] not in json.dumps(dict(group.attrs))
    with pytest.raises(xray_scale.StoreError, match="applies to a store at a URL"):
        xray_scale.run(INPUTS, tmp_path / "local.zarr", storage_options=options, **RUN)


def test_a_half_made_store_is_never_taken_for_a_complete_one(s3):
    xray_scale.run(INPUTS, "s3://cxr/half.zarr", **RUN)
    group = zarr.open_group(StoreLocation("s3://cxr/half.zarr").zarr_store(), mode="r+")
    group.attrs["xray_scale_state"] = "creating"  # as a creation killed midway leaves it
    with pytest.raises(xray_scale.StoreError, match="incomplete store.*--overwrite"):
        xray_scale.open_store("s3://cxr/half.zarr")
    with pytest.raises(xray_scale.StoreError, match="incomplete store"):
        xray_scale.run(INPUTS, "s3://cxr/half.zarr", **RUN)
    assert xray_scale.run(INPUTS, "s3://cxr/half.zarr", overwrite=True, **RUN).ok == 12


def test_overwrite_deletes_only_what_xray_scale_wrote(s3):
    client = s3["client"]
    client.put_object(Bucket="cxr", Key="theirs.zarr/notes.txt", Body=b"not ours")
    with pytest.raises(xray_scale.StoreError, match="not an xray-scale store"):
        xray_scale.run(INPUTS, "s3://cxr/theirs.zarr", overwrite=True, **RUN)
    assert keys(s3, "theirs.zarr/") == ["theirs.zarr/notes.txt"]

    xray_scale.run(INPUTS, "s3://cxr/ours.zarr", **RUN)
    client.put_object(Bucket="cxr", Key="ours.zarr/README.txt", Body=b"a note beside the store")
    client.put_object(Bucket="cxr", Key="ours.zarr2/keep.txt", Body=b"a neighbour")
    with pytest.raises(xray_scale.StoreError, match="holds a run with other inputs.*--overwrite"):
        xray_scale.run(["synth:8x48"], "s3://cxr/ours.zarr", **RUN)
    summary = xray_scale.run(["synth:8x48"], "s3://cxr/ours.zarr", overwrite=True, **RUN)
    assert (summary.total, summary.ok) == (8, 8)
    assert "ours.zarr/README.txt" in keys(s3, "ours.zarr/")
    assert keys(s3, "ours.zarr2/") == ["ours.zarr2/keep.txt"]
    group = xray_scale.open_store("s3://cxr/ours.zarr")
    assert group["index/status"].shape == (8,)  # no array of the old run's size is left
    old_chunks = [k for k in keys(s3, "ours.zarr/filters/sobel/c/") if k.split("/")[-3] == "2"]
    assert old_chunks == []  # images 8..11 of the old run: their shard is gone


def cli(*args, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "xray_scale.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    "case",
    ["missing bucket", "wrong secret", "unknown key", "endpoint down"],
)
def test_bad_store_urls_exit_2_naming_the_url_and_never_a_credential(s3, case):
    url, env, options = "s3://cxr/bad.zarr", {}, []
    secret = "wrong-secret-0123456789"
    if case == "missing bucket":
        url, expected = "s3://no-such-bucket/x.zarr", "no such bucket 'no-such-bucket'"
    elif case == "wrong secret":
        env, expected = {"AWS_SECRET_ACCESS_KEY": secret}, "access denied|credentials"
    elif case == "unknown key":
        options = [
            "--storage-option",
            "key=AKIAUNKNOWN000000000",
            f"--storage-option=secret={secret}",
        ]
        expected = "access denied|credentials"
    else:
        env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_MAX_ATTEMPTS": "1"}
        expected = "cannot be reached"
    done = cli("run", "synth:8x48", "-o", url, "--engine", "scipy", "-q", *options, env=env)
    assert done.returncode == 2, done.stderr
    message = done.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert url in message
    assert pytest.importorskip("re").search(expected, message), message
    for credential in (secret, s3["secret"], s3["key"], "AKIAUNKNOWN000000000"):
        assert credential not in done.stderr + done.stdout


def test_a_run_killed_midway_resumes_to_the_same_store(s3, tmp_path):
    url = "s3://cxr/killed.zarr"
    command = ["run", "synth:48x96", "-o", url, "--engine", "scipy", "--batch-size", "4"]
    process = subprocess.Popen(
        [sys.executable, "-m", "xray_scale.cli", *command, "--workers", "1", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    done_at_kill = 0
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.3)
            try:
                group = zarr.open_group(url_store(url), mode="r")
                status = read_index(group, "status")
            except Exception:  # not created yet
                continue
            done_at_kill = int((status != "pending").sum())
            if done_at_kill >= 8:
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read()
    status = read_index(zarr.open_group(url_store(url), mode="r"), "status")
    pending = int((status == "pending").sum())
    assert 0 < pending < 48
    resumed = cli(*command, "--workers", "2", "-q")
    assert resumed.returncode == 0, resumed.stderr
    again = xray_scale.run(["synth:48x96"], url, engine="scipy", batch_size=4)
    assert again.processed == 0 and again.ok == 48
    xray_scale.run(["synth:48x96"], tmp_path / "local.zarr", engine="scipy", batch_size=4)
    assert_stores_equal(url_store(url), tmp_path / "local.zarr")
    assert np.array_equal(read_index(xray_scale.open_store(url), "status"), ["ok"] * 48)


def test_info_and_export_read_a_url_store(s3, tmp_path):
    xray_scale.run(INPUTS, "s3://cxr/info.zarr", **RUN)
    done = cli("info", "s3://cxr/info.zarr")
    assert done.returncode == 0, done.stderr
    assert "store: s3://cxr/info.zarr" in done.stdout and "12 ok" in done.stdout
    table = tmp_path / "t.csv"
    assert cli("export", "s3://cxr/info.zarr", "--to", str(table)).returncode == 0
    assert len(table.read_text().splitlines()) == 13
