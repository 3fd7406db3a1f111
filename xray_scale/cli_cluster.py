"""The ``xray-scale run`` options that run the workers as HPC batch jobs (``--cluster slurm``).

Kept out of :mod:`xray_scale.cli`, which imports nothing heavy at start: these are
typer option types and one constructor, and :mod:`xray_scale.runner.jobqueue`
imports dask-jobqueue only when a run starts its jobs.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from .runner.jobqueue import JobQueue

__all__ = [
    "Account",
    "ClusterSystem",
    "Cores",
    "JobExtra",
    "JobQueueSystem",
    "Jobs",
    "Memory",
    "Queue",
    "Walltime",
    "job_queue",
]


class JobQueueSystem(StrEnum):
    """The batch queue systems of ``--cluster`` (dask-jobqueue's)."""

    slurm = "slurm"
    pbs = "pbs"
    sge = "sge"
    lsf = "lsf"


ClusterSystem = Annotated[
    JobQueueSystem | None,
    typer.Option(
        "--cluster",
        help="Run the workers as batch jobs (pip install 'xray-scale[hpc]'); job options "
        "left out come from dask-jobqueue's jobqueue.yaml. Every job is cancelled at the end.",
    ),
]
Jobs = Annotated[int, typer.Option(min=1, help="With --cluster: jobs kept running.")]
Cores = Annotated[
    int | None,
    typer.Option(min=1, help="With --cluster: cores (threads) per job."),
]
Memory = Annotated[
    str | None,
    typer.Option(help="With --cluster: memory per job, e.g. 8GB."),
]
Queue = Annotated[str | None, typer.Option(help="With --cluster: queue or partition.")]
Walltime = Annotated[
    str | None,
    typer.Option(help="With --cluster: time limit per job, e.g. 01:00:00."),
]
Account = Annotated[
    str | None,
    typer.Option(help="With --cluster: account (SGE, LSF: project)."),
]
JobExtra = Annotated[
    list[str] | None,
    typer.Option(
        help="With --cluster: an extra job directive (repeatable), e.g. --job-extra=--exclusive."
    ),
]


def job_queue(
    system: JobQueueSystem | None,
    *,
    jobs: int,
    cores: int | None,
    memory: str | None,
    queue: str | None,
    walltime: str | None,
    account: str | None,
    job_extra: list[str] | None,
) -> JobQueue | None:
    """The run's :class:`~xray_scale.runner.jobqueue.JobQueue`, or None without ``--cluster``.

    Raises
    ------
    ConfigError
        If a job option is given without ``--cluster``.
    """
    from .errors import ConfigError

    given = [
        name
        for name, value in (
            ("--cores", cores),
            ("--memory", memory),
            ("--queue", queue),
            ("--walltime", walltime),
            ("--account", account),
            ("--job-extra", job_extra),
        )
        if value
    ]
    if system is None:
        if given or jobs != 1:
            raise ConfigError(f"{(given or ['--jobs'])[0]} applies to batch jobs: add --cluster")
        return None
    from .runner.jobqueue import JobQueue

    return JobQueue(
        system.value,
        jobs=jobs,
        cores=cores,
        memory=memory,
        queue=queue,
        walltime=walltime,
        account=account,
        job_extra=tuple(job_extra or ()),
    )
