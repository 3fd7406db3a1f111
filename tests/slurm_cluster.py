"""A real single-node SLURM on 127.0.0.1: munged, slurmctld and slurmd in a temporary folder.

Debian's ``slurm-wlm`` and ``munge`` packages, started the way a user would on one
machine (issue 28): a munge key and ``munged``, a ``slurm.conf`` with the node at
127.0.0.1, process tracking without cgroups, then ``slurmctld`` and ``slurmd``. Every
daemon runs in the foreground as a child of this process, on its own socket, ports
and folders, so nothing of the machine's own SLURM or munge is used or touched. The
client commands (``sbatch``, ``squeue``, ``scancel``, ``sinfo``) find this cluster
through ``SLURM_CONF``, which :func:`slurm` sets for the test session (and so for the
runs it starts, and, through sbatch's exported environment, for their jobs).

Registered from ``conftest.py`` (``pytest_plugins``); :func:`slurm` is a session
fixture that skips, giving the reason, where the binaries are absent.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BINARIES = ("munged", "mungekey", "slurmctld", "slurmd", "sinfo", "squeue", "sbatch", "scancel")
"""What Debian's ``slurm-wlm`` and ``munge`` install, and what the tests need."""

START_LIMIT_S = 240.0
"""A limit for the node to show ``idle``, far above the ~10-60 s it takes on a 2-core VM."""

STOP_LIMIT_S = 60.0
"""A limit for a daemon to end after SIGTERM, far above the second or so it takes."""


def _sbin(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")


def missing_binaries() -> list[str]:
    """The SLURM and munge programs not installed here."""
    return [name for name in BINARIES if _sbin(name) is None]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _memory_mb() -> int:
    pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return max(1024, pages * page_size // 2**20 - 512)


def slurm_conf(folder: Path, *, host: str, ports: list[int], cpus: int, memory_mb: int) -> str:
    """The ``slurm.conf`` of a one-node cluster at 127.0.0.1 with everything under ``folder``."""
    return "\n".join(
        [
            "ClusterName=xraytest",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={ports[0]}",
            f"SlurmdPort={ports[1]}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={folder / 'munge.socket'}",
            f"StateSaveLocation={folder / 'state'}",
            f"SlurmdSpoolDir={folder / 'spool'}",
            f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
            f"SlurmdPidFile={folder / 'slurmd.pid'}",
            f"SlurmctldLogFile={folder / 'slurmctld.log'}",
            f"SlurmdLogFile={folder / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "ReturnToService=2",
            "SchedulerType=sched/backfill",
            "KillWait=5",  # SIGTERM, then SIGKILL 5 s later: a cancelled job ends promptly
            "MinJobAge=30",
            "InactiveLimit=0",
            f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
            f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


@dataclass
class SlurmCluster:
    """A running one-node SLURM: its folder, ``slurm.conf`` and daemon processes."""

    folder: Path
    conf: Path
    cpus: int
    memory_mb: int
    daemons: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def environment(self) -> dict[str, str]:
        """What a client command needs to talk to this cluster (beside ``os.environ``)."""
        return {"SLURM_CONF": str(self.conf)}

    def command(self, *args: str, check: bool = True) -> str:
        """Run a SLURM client command against this cluster; return its standard output."""
        done = subprocess.run(
            args,
            env={**os.environ, **self.environment},
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done.stdout

    def jobs(self) -> list[str]:
        """Ids of the jobs ``squeue`` lists (pending, running or completing)."""
        return self.command("squeue", "--noheader", "--format=%i").split()

    def node_state(self) -> str:
        """The node's state as ``sinfo`` prints it (``idle``, ``mixed``, ``down*``...)."""
        return self.command("sinfo", "--noheader", "--format=%T", check=False).strip()

    def log_tail(self) -> str:
        """The end of each daemon's log, for a failure message."""
        parts = []
        for name in ("munged.log", "slurmctld.log", "slurmd.log"):
            path = self.folder / name
            text = path.read_text(errors="replace")[-1500:] if path.exists() else "(no log)"
            parts.append(f"--- {name}\n{text}")
        return "\n".join(parts)


def _spawn(cluster: SlurmCluster, name: str, args: list[str]) -> None:
    log = open(cluster.folder / f"{name}.out", "wb")  # noqa: SIM115  closed with the process
    cluster.daemons[name] = subprocess.Popen(
        args,
        env={**os.environ, **cluster.environment},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a Ctrl-C meant for a test does not reach the daemons
    )
    log.close()


def _wait(cluster: SlurmCluster, what: str, ready, limit: float = START_LIMIT_S) -> None:
    """Poll ``ready()``; fail, with the logs, when a daemon ends or after ``limit`` seconds."""
    began = time.monotonic()
    while not ready():
        for name, process in cluster.daemons.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} ended (exit {process.returncode}) while waiting for {what}:\n"
                    + cluster.log_tail()
                )
        if time.monotonic() - began > limit:
            raise TimeoutError(
                f"no {what} after {limit:.0f} s (sinfo says {cluster.node_state()!r}):\n"
                + cluster.log_tail()
            )
        time.sleep(0.5)


def start_slurm(folder: Path) -> SlurmCluster:
    """Start munged, slurmctld and slurmd in ``folder``; return once ``sinfo`` shows the node idle.

    Raises
    ------
    RuntimeError
        If a daemon ends while starting (the message holds the ends of their logs).
    TimeoutError
        If the node is not idle within :data:`START_LIMIT_S`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool"):
        (folder / sub).mkdir(exist_ok=True)
    host = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    cluster = SlurmCluster(folder, folder / "slurm.conf", cpus, _memory_mb())
    key = folder / "munge.key"
    subprocess.run([_sbin("mungekey"), "--create", f"--keyfile={key}"], check=True)
    key.chmod(0o600)
    cluster.conf.write_text(
        slurm_conf(folder, host=host, ports=_free_ports(2), cpus=cpus, memory_mb=cluster.memory_mb)
    )
    try:
        _spawn(
            cluster,
            "munged",
            [
                _sbin("munged"),
                "--foreground",
                "--force",
                f"--socket={folder / 'munge.socket'}",
                f"--key-file={key}",
                f"--log-file={folder / 'munged.log'}",
                f"--pid-file={folder / 'munged.pid'}",
                f"--seed-file={folder / 'munged.seed'}",
            ],
        )
        _wait(cluster, "munge socket", (folder / "munge.socket").exists, limit=60)
        _spawn(cluster, "slurmctld", [_sbin("slurmctld"), "-D", "-i"])
        _wait(cluster, "slurmctld answer", lambda: cluster.node_state() != "")
        _spawn(cluster, "slurmd", [_sbin("slurmd"), "-D"])
        _wait(cluster, "idle node", lambda: cluster.node_state() == "idle")
    except BaseException:
        stop_slurm(cluster)
        raise
    return cluster


def stop_slurm(cluster: SlurmCluster) -> None:
    """Cancel every job, then stop slurmd, slurmctld and munged, in that order, and wait for each.

    Raises
    ------
    RuntimeError
        If a daemon is still running :data:`STOP_LIMIT_S` after SIGTERM (it is then killed).
    """
    if "slurmctld" in cluster.daemons and cluster.daemons["slurmctld"].poll() is None:
        cluster.command("scancel", "--full", "--user=root", check=False)
    stubborn = []
    for name in ("slurmd", "slurmctld", "munged"):
        process = cluster.daemons.get(name)
        if process is None or process.poll() is not None:
            continue
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_LIMIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            stubborn.append(name)
    if stubborn:
        raise RuntimeError(f"{', '.join(stubborn)} did not stop on SIGTERM and had to be killed")


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A real SLURM for the session; ``SLURM_CONF`` points at it while it runs.

    Skips when SLURM or munge is not installed (``.ci/run`` installs them with apt).
    At the end every job is cancelled and every daemon stopped; a daemon that does
    not stop fails the session's teardown.
    """
    missing = missing_binaries()
    if missing:
        pytest.skip(
            f"SLURM/munge not installed ({', '.join(missing)}): apt-get install slurm-wlm munge"
        )
    if os.geteuid() != 0:
        pytest.skip("the test SLURM runs its daemons as root (SlurmUser=root): run as root")
    cluster = start_slurm(tmp_path_factory.mktemp("slurm"))
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        if before is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = before
        stop_slurm(cluster)
