"""A store on object storage: moto's real S3 server on 127.0.0.1, with credentials checked."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import zarr
from conftest import assert_stores_equal, gated_environment, make_zip
from s3_servers import flags, keys, url_store
from tcp_proxy import TcpProxy

import xray_scale
from xray_scale.cli import main
from xray_scale.errors import UnreachableError
from xray_scale.runner import gate
from xray_scale.store.encoding import read_index
from xray_scale.store.location import StoreLocation, parse_storage_options, store_location

pytest.importorskip("moto.server", reason="moto[server] is not installed")
pytest.importorskip("s3fs", reason="s3fs is not installed")
boto3 = pytest.importorskip("boto3", reason="boto3 (with moto) is not installed")

pytestmark = [pytest.mark.s3, pytest.mark.slow]  # a real server: seconds per test

INPUTS = ["synth:12x48"]
RUN = {"engine": "scipy", "workers": 2, "batch_size": 4}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_run_to_s3_equals_a_local_run_array_by_array_and_holds_no_secret(s3_user, tmp_path):
    summary = xray_scale.run(INPUTS, "s3://cxr/runs/one.zarr", **RUN)
    assert (summary.ok, summary.failed, summary.pending) == (12, 0, 0)
    xray_scale.run(INPUTS, tmp_path / "local.zarr", **RUN)
    assert_stores_equal(url_store("s3://cxr/runs/one.zarr"), tmp_path / "local.zarr")
    group = xray_scale.open_store("s3://cxr/runs/one.zarr")
    assert list(read_index(group, "status")) == ["ok"] * 12
    assert group.attrs["xray_scale_state"] == "complete"
    metadata = [k for k in keys(s3_user, "runs/one.zarr/") if k.endswith("zarr.json")]
    assert len(metadata) > 20
    for key in metadata:
        text = s3_user["client"].get_object(Bucket="cxr", Key=key)["Body"].read().decode()
        assert s3_user["secret"] not in text and s3_user["key"] not in text, key
    again = xray_scale.run(INPUTS, "s3://cxr/runs/one.zarr", **RUN)
    assert again.processed == 0 and again.ok == 12


def test_storage_options_reach_the_client_and_stay_out_of_the_store(s3_user, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    options = parse_storage_options([f"key={s3_user['key']}", f"secret={s3_user['secret']}"])
    summary = xray_scale.run(INPUTS, "s3://cxr/opts.zarr", storage_options=options, **RUN)
    assert summary.ok == 12
    location = store_location("s3://cxr/opts.zarr", options)
    assert s3_user["secret"] not in repr(location) and s3_user["secret"] not in str(location)
    group = zarr.open_group(location.zarr_store(read_only=True), mode="r")
    assert s3_user["secret"] not in json.dumps(dict(group.attrs))
    with pytest.raises(xray_scale.ConfigError, match="applies to URLs.*neither the store nor"):
        xray_scale.run(INPUTS, tmp_path / "local.zarr", storage_options=options, **RUN)


def test_a_half_made_store_is_never_taken_for_a_complete_one(s3_user):
    xray_scale.run(INPUTS, "s3://cxr/half.zarr", **RUN)
    group = zarr.open_group(StoreLocation("s3://cxr/half.zarr").zarr_store(), mode="r+")
    group.attrs["xray_scale_state"] = "creating"  # as a creation killed midway leaves it
    with pytest.raises(xray_scale.StoreError, match="incomplete store.*--overwrite"):
        xray_scale.open_store("s3://cxr/half.zarr")
    with pytest.raises(xray_scale.StoreError, match="incomplete store"):
        xray_scale.run(INPUTS, "s3://cxr/half.zarr", **RUN)
    assert xray_scale.run(INPUTS, "s3://cxr/half.zarr", overwrite=True, **RUN).ok == 12


def test_overwrite_deletes_only_what_xray_scale_wrote(s3_user):
    client = s3_user["client"]
    client.put_object(Bucket="cxr", Key="theirs.zarr/notes.txt", Body=b"not ours")
    with pytest.raises(xray_scale.StoreError, match="not an xray-scale store"):
        xray_scale.run(INPUTS, "s3://cxr/theirs.zarr", overwrite=True, **RUN)
    assert keys(s3_user, "theirs.zarr/") == ["theirs.zarr/notes.txt"]

    xray_scale.run(INPUTS, "s3://cxr/ours.zarr", **RUN)
    client.put_object(Bucket="cxr", Key="ours.zarr/README.txt", Body=b"a note beside the store")
    client.put_object(Bucket="cxr", Key="ours.zarr2/keep.txt", Body=b"a neighbour")
    with pytest.raises(xray_scale.StoreError, match="holds a run with other inputs.*--overwrite"):
        xray_scale.run(["synth:8x48"], "s3://cxr/ours.zarr", **RUN)
    summary = xray_scale.run(["synth:8x48"], "s3://cxr/ours.zarr", overwrite=True, **RUN)
    assert (summary.total, summary.ok) == (8, 8)
    assert "ours.zarr/README.txt" in keys(s3_user, "ours.zarr/")
    assert keys(s3_user, "ours.zarr2/") == ["ours.zarr2/keep.txt"]
    group = xray_scale.open_store("s3://cxr/ours.zarr")
    assert group["index/status"].shape == (8,)  # no array of the old run's size is left
    old_chunks = [k for k in keys(s3_user, "ours.zarr/filters/sobel/c/") if k.split("/")[-3] == "2"]
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
def test_bad_store_urls_exit_2_naming_the_url_and_never_a_credential(s3_user, case):
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
        env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}  # our bounded retries
        expected = "cannot be reached"
    done = cli("run", "synth:8x48", "-o", url, "--engine", "scipy", "-q", *options, env=env)
    assert done.returncode == 2, done.stderr
    message = done.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert url in message
    assert pytest.importorskip("re").search(expected, message), message
    for credential in (secret, s3_user["secret"], s3_user["key"], "AKIAUNKNOWN000000000"):
        assert credential not in done.stderr + done.stdout


def test_a_run_killed_midway_resumes_to_the_same_store(s3_user, tmp_path, gate_folder):
    url = "s3://cxr/killed.zarr"
    command = ["run", "synth:48x96", "-o", url, "--engine", "scipy", "--batch-size", "4"]
    gate.hold(gate_folder, gate.BATCH_START, after=2)  # 2 of the 12 batches, then the kill
    process = subprocess.Popen(
        [sys.executable, "-m", "xray_scale.cli", *command, "--workers", "1", "-q"],
        env=gated_environment(gate_folder),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        gate.wait_for(gate_folder, gate.BATCH_RECORDED, 2, process=process)
        process.kill()
    finally:
        process.kill()
        process.wait()
        gate.release(gate_folder, gate.BATCH_START)
    assert process.returncode == -signal.SIGKILL, process.stderr.read()
    status = read_index(zarr.open_group(url_store(url), mode="r"), "status")
    pending = int((status == "pending").sum())
    assert pending == 48 - 2 * 4
    resumed = cli(*command, "--workers", "2", "-q")
    assert resumed.returncode == 0, resumed.stderr
    again = xray_scale.run(["synth:48x96"], url, engine="scipy", batch_size=4)
    assert again.processed == 0 and again.ok == 48
    xray_scale.run(["synth:48x96"], tmp_path / "local.zarr", engine="scipy", batch_size=4)
    assert_stores_equal(url_store(url), tmp_path / "local.zarr")
    assert np.array_equal(read_index(xray_scale.open_store(url), "status"), ["ok"] * 48)


def test_info_and_export_read_a_url_store(s3_user, tmp_path):
    xray_scale.run(INPUTS, "s3://cxr/info.zarr", **RUN)
    done = cli("info", "s3://cxr/info.zarr")
    assert done.returncode == 0, done.stderr
    assert "store: s3://cxr/info.zarr" in done.stdout and "12 ok" in done.stdout
    table = tmp_path / "t.csv"
    assert cli("export", "s3://cxr/info.zarr", "--to", str(table)).returncode == 0
    assert len(table.read_text().splitlines()) == 13


# -- the store's endpoint going away, and options given only by --storage-option ---------------


def server_port(server) -> int:
    return int(server["endpoint"].rsplit(":", 1)[1])


def unwritten_but_done(server, prefix: str, group, batch: int) -> list[int]:
    """Batches whose status is not pending but that lack a shard of a map (must be none)."""
    status = read_index(group, "status")
    maps = [f"filters/{name}" for name in group["filters"].array_keys()]
    maps += [f"masks/{name}" for name in group["masks"].array_keys()]
    stored = set(keys(server, prefix))
    return [
        start // batch
        for start in range(0, status.size, batch)
        if (status[start : start + batch] == "ok").any()
        and any(f"{prefix}{name}/c/{start // batch}/0/0" not in stored for name in maps)
    ]


def test_the_store_endpoint_gone_mid_run_keeps_unwritten_batches_pending_and_resumes(
    no_aws_environment, tmp_path
):
    server = no_aws_environment
    proxy = TcpProxy(server_port(server)).start()
    # one attempt per request, not our default's three: the test waits less for the outage
    options = [*flags(server, proxy.endpoint), 'config_kwargs={"retries": {"max_attempts": 1}}']
    url, inputs = "s3://cxr/outage.zarr", ["synth:24x48"]
    run = {"engine": "scipy", "workers": 1, "batch_size": 4, "storage_options": options}
    seen = []

    def cut_after_the_third_batch(record):
        seen.append(record.start)
        if len(seen) == 3:
            proxy.stop()

    try:
        with pytest.raises(UnreachableError, match=rf"^cannot reach the store {url}: the server"):
            xray_scale.run(inputs, url, on_batch=cut_after_the_third_batch, **run)
        proxy.start()  # the endpoint is back, with the same data
        group = zarr.open_group(store_location(url, options).zarr_store(read_only=True), mode="r")
        status = read_index(group, "status")
        pending = int((status == "pending").sum())
        assert pending >= 24 - 3 * 4, status  # at most the three batches done before the cut
        assert unwritten_but_done(server, "outage.zarr/", group, 4) == []
        summary = xray_scale.run(inputs, url, **run)
        assert (summary.processed, summary.ok, summary.pending) == (pending, 24, 0)
        xray_scale.run(inputs, tmp_path / "local.zarr", engine="scipy", batch_size=4)
        location = store_location(url, options)
        assert_stores_equal(location.zarr_store(read_only=True), tmp_path / "local.zarr")
        text = json.dumps(dict(zarr.open_group(location.zarr_store(), mode="r").attrs))
        assert server["secret"] not in text and server["key"] not in text
    finally:
        proxy.stop()


def test_the_cli_exits_3_naming_the_store_when_its_endpoint_goes_and_the_same_command_resumes(
    no_aws_environment, tmp_path, capsys
):
    server = no_aws_environment
    # the endpoint goes away as the third batch writes its binary mask's shard
    proxy = TcpProxy(server_port(server), cut_after=2, marker=b"/masks/mask_binary/c/").start()
    url = "s3://cxr/cli-outage.zarr"
    options = [f"--storage-option={option}" for option in flags(server, proxy.endpoint)]
    command = ["run", "synth:16x48", "-o", url, "--engine", "scipy", "--batch-size", "4"]
    command += ["--workers", "1", "-q", *options]
    try:
        assert main(command) == 3
        printed = capsys.readouterr()
        message = printed.err.strip()
        assert len(message.splitlines()) == 1, message
        assert f"cannot reach the store {url}: the server cannot be reached" in message
        assert message.endswith("re-run the same command to resume"), message
        assert server["secret"] not in printed.err + printed.out
        assert server["key"] not in printed.err + printed.out
        proxy.cut_after = None
        proxy.start()
        assert main(command) == 0
        xray_scale.run(["synth:16x48"], tmp_path / "local.zarr", engine="scipy", batch_size=4)
        location = store_location(url, flags(server, proxy.endpoint))
        assert_stores_equal(location.zarr_store(read_only=True), tmp_path / "local.zarr")
    finally:
        proxy.stop()


def test_storage_options_alone_reach_url_inputs_and_the_store_in_every_command(
    no_aws_environment, phantom_folder, tmp_path, capsys
):
    server = no_aws_environment
    for path in sorted(phantom_folder.iterdir()):
        server["client"].put_object(
            Bucket="cxr", Key=f"in/images/{path.name}", Body=path.read_bytes()
        )
    options = [f"--storage-option={option}" for option in flags(server, server["endpoint"])]
    common = ["--engine", "scipy", "--batch-size", "4", "-q", *options]
    local, url = tmp_path / "local.zarr", "s3://cxr/from-bucket.zarr"
    assert main(["run", "s3://cxr/in/images/", "-o", str(local), "--workers", "2", *common]) == 0
    # worker processes of their own: the options travel with the tasks, for inputs and store
    assert main(["run", "s3://cxr/in/images/", "-o", url, "--scheduler", "processes", *common]) == 0
    xray_scale.run([phantom_folder], tmp_path / "folder.zarr", engine="scipy", batch_size=4)
    assert_stores_equal(tmp_path / "folder.zarr", local, besides=("index/path",))
    location = store_location(url, flags(server, server["endpoint"]))
    assert_stores_equal(location.zarr_store(read_only=True), local)
    assert read_index(zarr.open_group(local, mode="r"), "path")[0].startswith("s3://cxr/in/")
    capsys.readouterr()

    assert main(["info", url, *options]) == 0
    assert "12 ok" in capsys.readouterr().out
    table = tmp_path / "t.csv"
    assert main(["export", url, "--to", str(table), *options]) == 0
    assert len(table.read_text().splitlines()) == 13
    figures = tmp_path / "figures"
    command = ["render", url, "-o", str(figures), "--limit", "1", "--no-gif", "-q", *options]
    assert main(command) == 0  # the original read again from the bucket, the maps from S3
    assert len(list((figures / "grids").glob("*.png"))) == 1
    printed = capsys.readouterr()
    assert server["secret"] not in printed.out + printed.err


def test_plan_measures_a_sample_read_from_a_bucket_and_from_a_zip_in_it(
    no_aws_environment, phantom_folder, tmp_path, capsys
):
    server = no_aws_environment
    files = {f"images_001/images/{p.name}": p.read_bytes() for p in phantom_folder.iterdir()}
    for name, data in files.items():
        server["client"].put_object(Bucket="cxr", Key=f"plan/{name}", Body=data)
    archive = make_zip(tmp_path / "k.zip", files)
    server["client"].put_object(Bucket="cxr", Key="plan.zip", Body=archive.read_bytes())
    options = [f"--storage-option={option}" for option in flags(server, server["endpoint"])]
    for source in ("s3://cxr/plan/", "s3://cxr/plan.zip"):
        command = ["plan", source, "--sample", "4", "--workers", "1", "--engine", "scipy"]
        assert main([*command, *options]) == 0
        printed = capsys.readouterr().out
        assert "images: 12" in printed and "measured on 4 of them" in printed, printed
        assert "filters/sobel" in printed and "img/s here" in printed


def test_input_options_give_the_inputs_their_own_endpoint(
    no_aws_environment, phantom_folder, tmp_path
):
    server = no_aws_environment
    for path in sorted(phantom_folder.iterdir())[:4]:
        server["client"].put_object(Bucket="cxr", Key=f"own/{path.name}", Body=path.read_bytes())
    nowhere = flags(server, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    run = {"engine": "scipy", "workers": 1, "batch_size": 4}
    summary = xray_scale.run(
        ["s3://cxr/own/"],
        tmp_path / "local.zarr",
        storage_options=nowhere,  # for the store only (a folder): never used
        input_options=flags(server, server["endpoint"]),
        **run,
    )
    assert (summary.ok, summary.failed) == (4, 0)
    with pytest.raises(xray_scale.InputError, match=r"^cannot list s3://cxr/own/: the server"):
        xray_scale.run(["s3://cxr/own/"], tmp_path / "no.zarr", storage_options=nowhere, **run)
