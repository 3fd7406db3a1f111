"""Running batch tasks as jobs of an HPC batch queue (SLURM, PBS, SGE, LSF) with dask-jobqueue.

``--cluster slurm`` starts a ``dask_jobqueue.SLURMCluster`` in the driver: a
scheduler here, and each job one dask worker process that connects to it. Options
the command line leaves out come from dask-jobqueue's own configuration
(``~/.config/dask/jobqueue.yaml``, ``jobqueue.slurm.*``), as its users expect.

A job that ends mid-run (its walltime reached, ``scancel``, a node lost) loses
nothing: distributed gives the batches it held to other workers (a batch task
rewrites exactly its own shard, see :mod:`xray_scale.runner.cluster`), and
:class:`JobKeeper` submits a job in its place, so the run keeps ``jobs`` jobs
until it ends. Every job submitted is cancelled when the run ends, also on an
error or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["JOB_QUEUES", "JobKeeper", "JobQueue", "job_queue_client", "require_job_queue"]

logger = logging.getLogger(__name__)

JOB_QUEUES = {
    "slurm": ("SLURMCluster", "sbatch", "SLURM"),
    "pbs": ("PBSCluster", "qsub", "PBS"),
    "sge": ("SGECluster", "qsub", "SGE"),
    "lsf": ("LSFCluster", "bsub", "LSF"),
}
"""``--cluster`` name: (dask-jobqueue class, submit command, the system's name)."""

_ACCOUNT_KEYWORD = {"slurm": "account", "pbs": "account", "sge": "project", "lsf": "project"}
"""The keyword of each dask-jobqueue class that names the account charged."""

KEEPER_INTERVAL_MS = 1000
"""How often :class:`JobKeeper` looks for ended jobs (a dictionary scan, no command run)."""


@dataclass(frozen=True)
class JobQueue:
    """The batch jobs a run's dask workers run in.

    Parameters
    ----------
    system : {"slurm", "pbs", "sge", "lsf"}
        The batch queue system.
    jobs : int
        Jobs kept running (one dask worker process each) until the run ends.
    cores, memory, queue, walltime, account : optional
        Per job: cores (the worker's threads), memory (``"8GB"``), queue or
        partition, time limit (``"01:00:00"``), account (SGE and LSF: project).
        None: dask-jobqueue's configuration (``jobqueue.<system>.*``), whose
        ``cores`` and ``memory`` have no default.
    job_extra : tuple of str
        Extra scheduler directives, e.g. ``("--exclusive",)`` for SLURM.
    """

    system: str
    jobs: int = 1
    cores: int | None = None
    memory: str | None = None
    queue: str | None = None
    walltime: str | None = None
    account: str | None = None
    job_extra: tuple[str, ...] = ()

    def __post_init__(self):
        if self.system not in JOB_QUEUES:
            raise ConfigError(
                f"cluster must be one of {', '.join(JOB_QUEUES)}, got {self.system!r}"
            )
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise ConfigError(f"jobs must be an integer >= 1, got {self.jobs!r}")
        if self.cores is not None and (not isinstance(self.cores, int) or self.cores < 1):
            raise ConfigError(f"cores must be an integer >= 1, got {self.cores!r}")

    def cluster_options(self) -> dict:
        """The keywords of the dask-jobqueue class: only what was given, the rest is config."""
        given = {
            "cores": self.cores,
            "memory": self.memory,
            "queue": self.queue,
            "walltime": self.walltime,
            _ACCOUNT_KEYWORD[self.system]: self.account,
            "job_extra_directives": list(self.job_extra) or None,
        }
        return {key: value for key, value in given.items() if value is not None}


def _import_dask_jobqueue():
    """``dask_jobqueue``, imported without letting it take Ctrl-C away.

    Its ``runner`` module, imported by its package, sets a SIGINT handler that
    calls ``sys.exit()``: a Ctrl-C would then end the run with exit code 0, as if
    it had finished, instead of cancelling the jobs and exiting with 130. The
    handler in place before the import is put back.
    """
    before = signal.getsignal(signal.SIGINT)
    module = importlib.import_module("dask_jobqueue")
    if threading.current_thread() is threading.main_thread() and before is not None:
        signal.signal(signal.SIGINT, before)
    return module


def require_job_queue(spec: JobQueue, *, address: str | None = None) -> str:
    """Check that ``spec`` can run here; return the system's name (``"slurm"``...).

    Raises
    ------
    ConfigError
        Saying what to do: dask-jobqueue or the submit command is missing, or
        an ``address`` was given too (the cluster starts its own scheduler).
    """
    if address is not None:
        raise ConfigError(f"--cluster {spec.system} starts its own scheduler: leave out --address")
    try:
        _import_dask_jobqueue()
    except ImportError as error:
        raise ConfigError(
            f"--cluster {spec.system} needs dask-jobqueue ({error}): pip install 'xray-scale[hpc]'"
        ) from None
    _, submit, name = JOB_QUEUES[spec.system]
    if shutil.which(submit) is None:
        raise ConfigError(
            f"--cluster {spec.system}: {name}'s {submit} is not on PATH; run on a login node of "
            f"a {name} cluster, or use --scheduler or --address instead"
        )
    return spec.system


def _new_cluster(spec: JobQueue):
    """The dask-jobqueue cluster (its scheduler running, no job submitted yet)."""
    import dask

    dask_jobqueue = _import_dask_jobqueue()
    class_name, _, _ = JOB_QUEUES[spec.system]
    options = spec.cluster_options()
    configured = dask.config.get(f"jobqueue.{spec.system}.scheduler-options", {}) or {}
    # no dashboard on 8787 unless configured: another dask there makes distributed warn
    options["scheduler_options"] = {"dashboard_address": ":0", **configured}
    try:
        return getattr(dask_jobqueue, class_name)(**options)
    except ValueError as error:  # cores or memory neither given nor configured
        raise ConfigError(
            f"--cluster {spec.system}: {str(error).splitlines()[0].rstrip(':')}; pass --cores and "
            f"--memory, or set them under jobqueue.{spec.system} in ~/.config/dask/jobqueue.yaml"
        ) from None


class JobKeeper:
    """Keeps ``jobs`` jobs submitted while a run lasts, and remembers every job it saw.

    Every :data:`KEEPER_INTERVAL_MS`, on the cluster's event loop: a job whose
    workers had joined the scheduler and are all gone has ended (walltime,
    ``scancel``, a lost node); it is dropped from the cluster, under its
    name, and the cluster scaled back to ``jobs``, which submits a new one
    under a new name. (distributed's own clean-up of a lost worker, after
    ``distributed.deploy.lost-worker-timeout``, matches workers by name, and
    so would close a replacement under the same name.) A job that ends before
    its worker ever joined (cancelled while pending, failed at its start) is not
    seen to end: the run waits for the others, and says so while none has
    started (:func:`_wait_for_a_job`).
    """

    def __init__(self, cluster, jobs: int):
        from tornado.ioloop import PeriodicCallback

        self.cluster = cluster
        self.jobs = jobs
        # ids only: distributed checks, as the cluster closes, that every Job object
        # still alive (a weak set) is closed, and dask-jobqueue's never are
        self.submitted: set[str] = set()
        self.joined: set[str] = set()
        self._callback = PeriodicCallback(self.check, KEEPER_INTERVAL_MS)

    def start(self) -> None:
        """Scale to ``jobs`` and start checking (thread-safe)."""
        self.cluster.scale(jobs=self.jobs)
        self.cluster.loop.add_callback(self._callback.start)

    def stop(self) -> None:
        """Stop checking (thread-safe)."""
        self.cluster.loop.add_callback(self._callback.stop)

    def check(self) -> None:
        """On the event loop: drop the jobs that ended, then scale back to ``jobs``."""
        cluster = self.cluster
        if cluster.status.name in ("closing", "closed"):
            return
        connected = {info["name"] for info in cluster.scheduler_info.get("workers", {}).values()}
        for name, job in list(cluster.workers.items()):
            if job.job_id:
                self.submitted.add(str(job.job_id))
            suffixes = cluster.worker_spec.get(name, {}).get("group", [""])
            if {f"{name}{suffix}" for suffix in suffixes} & connected:
                self.joined.add(name)
            elif name in self.joined:
                logger.warning(
                    "job %s (%s) ended before the run: submitting another", job.job_id, name
                )
                self.joined.discard(name)
                cluster.workers.pop(name, None)
                cluster.worker_spec.pop(name, None)
                cluster._futures.add(asyncio.ensure_future(job.close()))  # cancel: harmless if gone
        cluster.scale(jobs=self.jobs)

    def job_ids(self) -> list[str]:
        """Ids of every job submitted while this keeper ran."""
        current = {str(job.job_id) for job in self.cluster.workers.values() if job.job_id}
        return sorted(self.submitted | current)


def _cancel(cluster, job_ids: list[str]) -> None:
    """Run the queue's cancel command on ``job_ids``: jobs long gone are no error."""
    if not job_ids:
        return
    command = cluster.job_cls.cancel_command
    done = subprocess.run([command, *job_ids], capture_output=True, text=True, timeout=120)
    logger.debug("%s %s: exit %s %s", command, " ".join(job_ids), done.returncode, done.stderr)


WAIT_NOTICE_S = 120
"""After this long without a worker, and as long again each time, the run says it is waiting."""


def _wait_for_a_job(client, spec: JobQueue, keeper: JobKeeper) -> None:
    """Wait, without a limit (a queue may be full for hours), for the first job's worker.

    Says on stderr (a logging warning) every :data:`WAIT_NOTICE_S` that it is
    still waiting, with the job ids, so that a job that failed at its start
    (a wrong ``python``, a prologue that fails) is found in its log.
    """
    waited = 0
    while True:
        try:
            client.wait_for_workers(1, timeout=WAIT_NOTICE_S)
            return
        except TimeoutError:  # distributed's WorkerStartTimeoutError is one
            waited += WAIT_NOTICE_S
            logger.warning(
                "no %s job has started after %d s (jobs %s): still waiting; their logs are in "
                "log-directory (jobqueue.yaml) or the folder of the run; Ctrl-C cancels them",
                spec.system,
                waited,
                ", ".join(keeper.job_ids()) or "not yet submitted",
            )


@contextmanager
def job_queue_client(spec: JobQueue) -> Iterator:
    """A ``distributed.Client`` on ``spec.jobs`` batch jobs, all cancelled when the block ends.

    Waits for the first job's worker before yielding (a queue may keep jobs
    pending for a while: Ctrl-C cancels them). Jobs that end during the block
    are replaced (:class:`JobKeeper`). At the end, on an error or on Ctrl-C,
    the cluster closes (cancelling its jobs) and then the cancel command runs
    once more on every job id submitted, so that none is left queued.

    Raises
    ------
    ConfigError
        If dask-jobqueue or the queue's submit command is missing, or cores
        and memory are neither given nor configured.
    """
    from distributed import Client

    require_job_queue(spec)
    cluster = _new_cluster(spec)
    keeper = JobKeeper(cluster, spec.jobs)
    try:
        keeper.start()
        with Client(cluster) as client:
            _wait_for_a_job(client, spec, keeper)
            yield client
    finally:
        keeper.stop()
        job_ids = keeper.job_ids()
        try:
            cluster.close()
        finally:
            _cancel(cluster, sorted(set(job_ids) | set(keeper.job_ids())))
