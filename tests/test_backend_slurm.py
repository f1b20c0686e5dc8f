"""SLURM through dask-jobqueue, for real: a one-node slurmctld/slurmd (tests/services.py)
runs the ``sbatch`` jobs that become workers, and the training policy scales them."""

import subprocess
import time

import pytest
from helpers import Peak
from services import squeue_jobs, wait_until

from elastic_nb import ElasticCluster, LinearRegression
from elastic_nb.cluster.jobqueue import check_job_options
from elastic_nb.datasets import make_regression

pytestmark = pytest.mark.timeout(240)

JOB = {"cores": 1, "memory": "1GiB", "queue": "debug", "walltime": "00:10:00"}


def live_jobs() -> int:
    """Jobs RUNNING or PENDING in ``squeue`` now."""
    out = subprocess.run(["squeue", "-h", "-o", "%T"], capture_output=True, text=True)
    return sum(state in ("RUNNING", "PENDING") for state in out.stdout.split())


@pytest.mark.slow
def test_a_fit_under_a_lease_grows_to_two_jobs_and_returns_to_the_minimum(slurm):
    with ElasticCluster.jobqueue("slurm", minimum=0, maximum=2, **JOB) as cluster:
        assert cluster.owns_cluster and cluster.adaptive.startup == 5.0
        X, y, _ = make_regression(40_000, 4, chunks=5_000)
        with Peak(live_jobs) as queue, cluster.training(iterations=20, name="gd") as run:
            model = LinearRegression(solver="gd", max_iter=20, tol=0, callback=run.callback)
            model.fit(X, y)
        assert queue.most >= 2, f"at most {queue.most} job(s) were in squeue during the fit"
        assert model.n_iter_ == 20
        # the run is over: the policy releases the jobs, down to the minimum of 0
        cluster.wait_for_width(0, timeout=60)
        wait_until(lambda: not squeue_jobs(), 60, "the released jobs did not leave squeue")
        actions = [a for a, _ in cluster.decisions]
        assert "lease" in actions and "scale-up" in actions and "scale-down" in actions
    assert not squeue_jobs()


@pytest.mark.slow
def test_a_job_waiting_in_the_queue_is_explained_in_the_queues_words(slurm):
    """A job that may not begin for ten minutes stays PENDING: the decisions say so, with
    squeue's state, the partition and the reason (BeginTime)."""
    later = {**JOB, "job_extra_directives": ["--begin=now+600"]}
    with ElasticCluster.jobqueue("slurm", minimum=0, maximum=1, **later) as cluster:
        cluster.scale(1)
        adapt = cluster.adapt(0, 1, policy="training")
        assert adapt.pending is not None
        reasons = []
        cluster.subscribe(
            lambda action, **d: reasons.append(d["reason"]) if action == "pending" else None
        )
        wait_until(lambda: reasons, 30, "no 'pending' decision")
        assert reasons[0] == "1 job(s) PENDING in queue debug (BeginTime)", reasons
    wait_until(lambda: not squeue_jobs(), 30, "the pending job was not cancelled on close")


@pytest.mark.slow
def test_a_job_slurm_refuses_is_a_decision_in_its_words_not_a_traceback(slurm, capfd):
    """More memory than the node has: sbatch refuses the job at submission."""
    with ElasticCluster.jobqueue("slurm", 0, 1, **{**JOB, "memory": "500GiB"}) as cluster:
        reasons = []
        cluster.subscribe(
            lambda action, **d: reasons.append(d["reason"]) if action == "pending" else None
        )
        waiting = cluster.client.submit(sum, [1, 2])  # work, so the policy asks for a job
        wait_until(lambda: reasons, 30, "no 'pending' decision")
        waiting.cancel()
        assert reasons[-1].startswith("1 job(s) refused by SLURM: sbatch: error:"), reasons
    assert "Traceback" not in capfd.readouterr().err
    assert not squeue_jobs()


def test_job_options_are_checked_before_anything_is_submitted():
    with pytest.raises(ValueError, match="kind must be one of"):
        check_job_options("lsf", 1, "1GiB", None, "00:10:00", None)
    with pytest.raises(ValueError, match="cores must be >= 1"):
        check_job_options("slurm", 0, "1GiB", None, "00:10:00", None)
    with pytest.raises(ValueError, match="memory must be a size"):
        check_job_options("slurm", 1, "lots", None, "00:10:00", None)
    with pytest.raises(ValueError, match="walltime must look like"):
        check_job_options("slurm", 1, "1GiB", None, "ten minutes", None)
    with pytest.raises(TypeError, match="queue must be a non-empty string"):
        check_job_options("slurm", 1, "1GiB", 3, "00:10:00", None)
    assert check_job_options("pbs", 2, 2**30, "batch", "1-00:00:00", "proj")["memory"] == (
        f"{2**30}B"
    )


def test_a_bad_option_submits_no_job(slurm):
    before = set(squeue_jobs())
    started = time.monotonic()
    with pytest.raises(ValueError, match="walltime"):
        ElasticCluster.jobqueue("slurm", 0, 2, walltime="soon")
    with pytest.raises(ValueError, match="maximum must be >= minimum"):
        ElasticCluster.jobqueue("slurm", 3, 2)
    with pytest.raises(ValueError, match=r"queue 'nosuch' is not a SLURM partition here \(debug\)"):
        ElasticCluster.jobqueue("slurm", 1, 2, queue="nosuch")
    assert time.monotonic() - started < 10
    assert set(squeue_jobs()) == before


def test_no_slurm_controller_is_a_clear_error_within_seconds(monkeypatch, tmp_path):
    """A SLURM_CONF that leads nowhere: sinfo alone would retry for a minute."""
    pytest.importorskip("dask_jobqueue")
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "missing.conf"))
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="SLURM"):
        ElasticCluster.jobqueue("slurm", 0, 2)
    assert time.monotonic() - started < 15
