"""Batch-queue clusters (SLURM, PBS, SGE) through dask-jobqueue: one worker per job.

elastic_nb does not submit jobs itself: dask-jobqueue's ``SLURMCluster`` / ``PBSCluster`` /
``SGECluster`` do, and they are ``distributed.deploy.Cluster`` subclasses with the
scheduler in this process, so the training policy attaches to them as to a local cluster
and measures them the same way. What is added here is what a notebook user needs around
them: the options HPC users know, checked before any job is submitted, a scheduler and
dashboard on 127.0.0.1 unless asked otherwise, and the queue's own words for why a worker
has not arrived yet (``squeue``'s state and reason).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import subprocess
import sys
import tempfile

from dask.utils import parse_bytes
from distributed import Client
from distributed.deploy.spec import ProcessInterface

from .._validation import check_choice, check_int
from .backends import Backend

logger = logging.getLogger(__name__)

#: The batch systems offered, and the dask-jobqueue class of each.
JOBQUEUE_CLASSES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster"}
INSTALL_HINT = 'pip install "elastic-nb[hpc]"'
_WALLTIME = re.compile(r"^(\d+-)?\d{1,3}(:\d{2}){0,2}$")
#: Seconds a batch job is assumed to take to become a worker, until one is measured.
JOB_STARTUP = 5.0
#: Where the jobs' own output goes unless ``log_directory=`` says otherwise (the batch
#: system's default, ``slurm-<id>.out`` in the working directory, would litter the notebook's
#: folder with one file per worker).
JOB_LOGS = os.path.join(tempfile.gettempdir(), "elastic-nb-jobs")


def _optional_str(name, value):
    if value is not None and (not isinstance(value, str) or not value):
        raise TypeError(f"{name} must be a non-empty string or None, got {value!r}")
    return value


def check_job_options(kind, cores, memory, queue, walltime, account):
    """The checked options of one job (one worker), as dask-jobqueue takes them.

    Parameters
    ----------
    kind : {"slurm", "pbs", "sge"}
    cores : int
        Cores of each job, and threads of its worker.
    memory : str or int
        Memory of each job, e.g. ``"4GiB"`` (bytes if an int).
    queue : str or None
        Partition (SLURM) or queue (PBS, SGE); None: the system's default.
    walltime : str
        ``"HH:MM:SS"`` (or ``"D-HH:MM:SS"``): a job is killed after it.
    account : str or None
        Account the jobs are charged to.

    Raises
    ------
    ValueError, TypeError
        Naming the argument, before anything is submitted.
    """
    check_choice("kind", kind, tuple(JOBQUEUE_CLASSES))
    cores = check_int("cores", cores, minimum=1)
    if isinstance(memory, bool) or not isinstance(memory, (str, int)):
        raise TypeError(f"memory must be a size such as '4GiB', got {memory!r}")
    try:
        nbytes = parse_bytes(memory)
    except (ValueError, TypeError) as err:
        raise ValueError(f"memory must be a size such as '4GiB', got {memory!r}") from err
    if nbytes <= 0:
        raise ValueError(f"memory must be > 0, got {memory!r}")
    if not isinstance(walltime, str) or not _WALLTIME.match(walltime):
        raise ValueError(f"walltime must look like 'HH:MM:SS', got {walltime!r}")
    return {
        "cores": cores,
        "memory": memory if isinstance(memory, str) else f"{nbytes}B",
        "queue": _optional_str("queue", queue),
        "walltime": walltime,
        "account": _optional_str("account", account),
    }


def _refusal(err) -> str:
    """The batch system's own last word in a failed submission (dask-jobqueue's message
    carries the command's whole stdout and stderr)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


@functools.cache
def recording_job_class(job_class):
    """``job_class`` whose refused submission is remembered rather than raised.

    dask-jobqueue raises from ``Job.start`` inside ``SpecCluster``'s background state
    correction, where nobody awaits it: tornado prints the traceback into the notebook and
    the worker is simply never heard of again. Here the job keeps ``submit_error`` (the
    batch system's words), which the backend's ``pending_reason`` announces as a decision;
    the failure is logged once, as a warning.
    """

    class RecordingJob(job_class):
        submit_error = None

        async def start(self):
            try:
                await super().start()
            except Exception as err:
                self.submit_error, self.job_id = _refusal(err), None
                logger.warning("job for worker %s refused: %s", self.name, self.submit_error)
                await ProcessInterface.start(self)  # "running": nothing left to wait for

    RecordingJob.__name__ = RecordingJob.__qualname__ = f"Recording{job_class.__name__}"
    return RecordingJob


def jobqueue_class(kind):
    """The dask-jobqueue cluster class of ``kind``; ImportError with the install hint."""
    try:
        import dask_jobqueue
    except ImportError as err:
        raise ImportError(f"{kind} clusters need dask-jobqueue: {INSTALL_HINT}") from err
    return getattr(dask_jobqueue, JOBQUEUE_CLASSES[kind])


class JobqueueBackend(Backend):
    """A dask-jobqueue cluster that elastic_nb starts, owns and closes (its jobs with it).

    Parameters
    ----------
    kind : {"slurm", "pbs", "sge"}
    job : dict
        The checked options of :func:`check_job_options`.
    host : str
        Where the scheduler and the dashboard listen: 127.0.0.1 by default, so on a real
        batch cluster (workers on other nodes) pass the login node's address or
        ``interface`` (with ``security=True``).
    security : None, bool or Security
        TLS between the scheduler, the workers and the client.
    manager_kwargs : dict
        Passed on to the dask-jobqueue class (``job_extra_directives``, ``interface``, ...).

    State
    -----
    kind : str, job : dict, host : str, manager_kwargs : dict
        What :meth:`open` builds the manager from.
    manager : dask_jobqueue.JobQueueCluster or None
        Set by :meth:`open`; closing it cancels every job.
    """

    owns = True
    startup_estimate = JOB_STARTUP

    def __init__(self, kind, job, *, host="127.0.0.1", security=None, manager_kwargs=None):
        self.kind, self.job, self.host = kind, job, host
        self.manager_kwargs = dict(manager_kwargs or {})
        jobqueue_class(kind)  # the install hint now, before anything starts
        super().__init__(security)
        self.threads_per_worker, self.memory_limit = job["cores"], job["memory"]

    def open(self, n_workers) -> Client:
        if self.kind == "slurm":
            check_slurm_partition(self.job["queue"])
        options = {
            "processes": 1,
            "python": sys.executable,
            "scheduler_options": {"host": self.host, "dashboard_address": f"{self.host}:0"},
            **({"interface": "lo"} if self.host == "127.0.0.1" else {}),
            "log_directory": JOB_LOGS,
            **self.manager_kwargs,
        }
        if self.security is not None:
            options["security"] = self.security
        cls = jobqueue_class(self.kind)
        options.setdefault("job_cls", recording_job_class(cls.job_cls))
        self.manager = cls(**self.job, **options)
        self.client = Client(self.manager, security=self.security)
        return self.client

    async def pending_reason(self, names):
        """Why the workers ``names`` (requested, not connected) are not here yet, in the
        batch system's words (``"2 job(s) PENDING in queue debug (Resources)"``)."""
        known = [self.manager.workers[n] for n in names if n in self.manager.workers]
        refused = [j.submit_error for j in known if getattr(j, "submit_error", None)]
        if refused:
            return f"{len(refused)} job(s) refused by {self.kind.upper()}: {refused[-1]}"
        jobs = [j.job_id for j in known if j.job_id]
        if not jobs:
            return f"{len(names)} job(s) being submitted"
        if self.kind != "slurm":
            return f"{len(jobs)} job(s) submitted to {self.kind.upper()}, not connected yet"
        return await squeue_reason(jobs)


def check_slurm_partition(queue, timeout=10):
    """Ask SLURM (``sinfo``) for its partitions before any job is submitted.

    Raises
    ------
    ConnectionError
        If no SLURM controller answers within ``timeout`` seconds (``sinfo`` itself would
        retry for a minute), naming what ``sinfo`` said.
    ValueError
        If ``queue`` is not one of the partitions, listing them.
    """
    try:
        done = subprocess.run(
            ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=timeout
        )
    except FileNotFoundError as err:
        raise ConnectionError("SLURM's sinfo is not installed here: no SLURM to submit to") from err
    except subprocess.TimeoutExpired as err:
        raise ConnectionError(f"SLURM did not answer sinfo within {timeout:g} s") from err
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise ConnectionError(f"SLURM does not answer (sinfo: {said[0]})")
    partitions = [p.rstrip("*") for p in done.stdout.split()]
    if queue is not None and queue not in partitions:
        raise ValueError(f"queue {queue!r} is not a SLURM partition here ({', '.join(partitions)})")


async def squeue_reason(job_ids):
    """``squeue``'s state, reason and partition of ``job_ids``, summarised in one line."""
    process = await asyncio.create_subprocess_exec(
        "squeue",
        "-h",
        "-j",
        ",".join(job_ids),
        "-o",
        "%T|%r|%P",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await process.communicate()
    counts = {}
    for line in out.decode().splitlines():
        state, reason, partition = (line.split("|") + ["", ""])[:3]
        key = (state, partition, "" if reason in ("None", "") else f" ({reason})")
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return f"{len(job_ids)} job(s) submitted, not in squeue yet"
    return "; ".join(
        f"{n} job(s) {state} in queue {partition}{reason}"
        for (state, partition, reason), n in sorted(counts.items())
    )
