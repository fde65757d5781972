"""The job runner (``ssc-web worker``): claims queued jobs from SQLite and runs
playbooks/user_vm.yml for each with ansible-runner.

The web processes only write jobs (state ``queued``) and read them; this one worker process
claims them in order, at most ``max_concurrent`` at a time and one at a time per user, runs
each in a thread, and writes progress, the outcome and the user's VM back to SQLite. Every
``heartbeat_interval`` seconds it writes the heartbeat that ``/healthz`` reads, every
``vm_refresh_interval`` seconds it reads the users' VMs from the cloud, and every
``cull_interval`` seconds (when set) it runs playbooks/cull.yml and tells the owners of the
VMs culled why they went, and every ``UPKEEP_INTERVAL`` seconds it prunes expired sessions and
old jobs and enforces blocks (:func:`web.users.upkeep`).

Its parts, one concern each:

==================== ==========================================================================
web/jobqueue.py      claim a job, write its progress and its end (the SQL)
web/playbook.py      the extra vars as ``!unsafe``, the job's environment, running ansible-runner
web/events.py        the run's callbacks (:class:`~web.events.JobRun`): phases, results, secrets
web/buildlog.py      the build log the VM's launcher reports, kept in ``job_log``
web/explain.py       why a job failed, in its owner's words
web/procs.py         a run's processes, found in /proc, and ending them all
web/vms.py           the users' VMs read from the cloud
web/lifetime.py      when VMs go: expiry, "keep it", the cull run and why a VM went
this module          the worker: a job from claim to record, restart safety, the loop
==================== ==========================================================================

Settings are a :class:`web.config.Config`.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable

from web import buildlog, db, explain, jobqueue, lifetime, playbook, users, vms
from web.config import Config
from web.events import MAX_MESSAGE, JobRun, boolean
from web.jobqueue import Job
from web.proxy import direct_url, url_token

log = logging.getLogger(__name__)

CULL = "cull"  # the key of the cull run among the worker's runs
UPKEEP_INTERVAL = 60.0  # seconds between upkeeps (web.users.upkeep)
INTERRUPTED = ("The job runner stopped while this job ran; the VM's state is read again from "
               "the cloud. Start or delete again if needed.")


# --- one job --------------------------------------------------------------------------------


def record(conn: sqlite3.Connection, job: Job, run: JobRun) -> str:
    """Write `run`'s outcome: the job's state, phase, message and output, and the user's VM.
    Returns the job's state."""
    output = run.output()
    vm = run.vm or {}
    if run.status == "canceled":
        jobqueue.finish(conn, job.id, "interrupted", "failed", INTERRUPTED, output)
        return "interrupted"
    if job.action == "extend":
        return lifetime.record_extension(conn, job, run, output)
    if run.status == "successful" and job.action == "start" and vm.get("url"):
        details = [f"image {vm['image']}" if vm.get("image") else "",
                   {True: "cache hit", False: "built"}.get(boolean(vm.get("cache_hit")), "")]
        details = ", ".join(d for d in details if d)
        message = f"{vm.get('name')} is ready" + (f" ({details})." if details else ".")
        with db.transaction(conn):
            db.save_vm(conn, job.github_id, job.login, name=str(vm.get("name") or ""),
                       repo=str(vm.get("repo") or job.repo or ""),
                       ref=str(vm.get("ref") if vm.get("ref") is not None else job.ref or ""),
                       url=direct_url(str(vm["url"])), state="ready",
                       address=str(vm.get("fixed_ip") or vm.get("ip") or ""),
                       token=str(vm.get("token") or url_token(str(vm["url"]))))
            lifetime.record_start(conn, job.github_id, vm)
            jobqueue.finish(conn, job.id, "succeeded", "ready", message, output)
        return "succeeded"
    if run.status == "successful" and job.action == "delete" and vm.get("state") == "absent":
        message = (f"{vm.get('name')} was deleted." if boolean(vm.get("deleted"))
                   else f"{vm.get('name')} did not exist.")
        with db.transaction(conn):
            db.delete_vm(conn, job.github_id)
            jobqueue.finish(conn, job.id, "succeeded", "deleted", message, output)
        return "succeeded"
    if run.status != "successful":
        log.info("job %s failed: %s", job.id, run.failure())
        message = explain.failure(run, job.action, job.repo or "", job.ref or "")
    else:
        log.warning("job %s: the playbook ended without reporting the VM (no ssc_vm in "
                    "set_stats)", job.id)
        message = explain.no_report(job.action)
    jobqueue.finish(conn, job.id, "failed", "failed", message, output)
    return "failed"


def run_job(config: Config, job: Job, connect: Callable[[], sqlite3.Connection],
            run: JobRun | None = None) -> str:
    """Run one claimed job to its end and record it; returns its final state. A failure of
    the job itself (a refused request, a failed playbook, an error starting it) does not
    raise: the job is marked failed with the reason."""
    conn = connect()
    try:
        try:
            extravars = playbook.job_extravars(job, config)
        except ValueError as error:
            jobqueue.finish(conn, job.id, "failed", "failed", str(error))
            return "failed"
        if run is None:
            run = JobRun(job.id, job.action, [config.token_secret],
                         output_lines=config.output_lines)
        run.phase = jobqueue.first_phase(job.action)
        run.on_progress = lambda current: save_progress(conn, current)
        try:
            playbook.run_playbook(config, job.id, extravars, run)
        except Exception as error:
            log.exception("job %s: the run failed", job.id)
            save_log(conn, run)
            jobqueue.finish(conn, job.id, "failed", "failed",
                            run.scrub(f"The job could not run: {type(error).__name__}: {error}")
                            [:MAX_MESSAGE], run.output())
            return "failed"
        save_log(conn, run)
        return record(conn, job, run)
    finally:
        conn.close()


def save_progress(conn: sqlite3.Connection, run: JobRun) -> None:
    """Write `run`'s phase, output and new build log lines (its ``on_progress``)."""
    save_log(conn, run)
    jobqueue.save_progress(conn, run.job_id, run.phase, run.output())


def save_log(conn: sqlite3.Connection, run: JobRun) -> None:
    """Write the build log lines `run` read since the last write (an error is logged: the
    lines are lost, the job goes on)."""
    try:
        buildlog.append(conn, run.job_id, run.log.take())
    except sqlite3.Error:
        log.exception("job %s: could not write its build log", run.job_id)


# --- restart safety -------------------------------------------------------------------------


def recover(conn: sqlite3.Connection,
            refresh: Callable[[int, str], object] | None = None) -> list[Job]:
    """Mark the jobs a previous runner left ``running`` as ``interrupted``, mark their users'
    VMs ``unknown``, then (if `refresh` is given) read each of those VMs again with
    ``refresh(github_id, login)`` (an error there is logged; the VM stays unknown). Returns
    the interrupted jobs."""
    with db.transaction(conn):
        jobs = jobqueue.running_jobs(conn)
        for job in jobs:
            jobqueue.finish(conn, job.id, "interrupted", "failed", INTERRUPTED)
            db.set_vm_state(conn, job.github_id, "unknown")
    for job in jobs:
        log.warning("job %s (%s for %s) was interrupted", job.id, job.action, job.login)
    if refresh:
        for github_id, login in dict.fromkeys((job.github_id, job.login) for job in jobs):
            try:
                refresh(github_id, login)
            except Exception:
                log.exception("could not read %s's VM from the cloud; it stays unknown", login)
    return jobs


# --- the worker -----------------------------------------------------------------------------


class Worker:
    """Claims queued jobs and runs each in a thread; see :func:`main`.

    `connect()` returns a new SQLite connection (each thread has its own); `cloud()` an
    openstacksdk connection or None (default: :func:`web.vms.open_cloud` of `config`)."""

    def __init__(self, config: Config, connect: Callable[[], sqlite3.Connection],
                 cloud: Callable[[], object] | None = None):
        self.config = config
        self.connect = connect
        self.cloud = cloud or (lambda: vms.open_cloud(config))
        self.stopping = threading.Event()
        self.threads: dict[str, threading.Thread] = {}
        self.runs: dict[str, JobRun] = {}
        self._lock = threading.Lock()

    def _refresher(self, conn: sqlite3.Connection) -> Callable[[int, str], object] | None:
        try:
            cloud = self.cloud()
        except Exception:
            log.exception("cannot reach the cloud: the VMs of interrupted jobs stay unknown")
            return None
        if cloud is None:
            return None
        return lambda github_id, login: vms.refresh_vm(conn, github_id, login, cloud)

    def recover(self) -> list[Job]:
        """End what runs of a killed worker left, then :func:`recover`, reading the VMs from
        the cloud."""
        playbook.clean_leftover_runs(self.config)
        conn = self.connect()
        try:
            return recover(conn, self._refresher(conn))
        finally:
            conn.close()

    def poll(self, conn: sqlite3.Connection) -> list[Job]:
        """Start every job that may start now, each in a thread; returns them."""
        self._reap()
        started = []
        while not self.stopping.is_set():
            job = jobqueue.claim_next(conn, self.config.max_concurrent)
            if job is None:
                break
            run = JobRun(job.id, job.action, [self.config.token_secret],
                         output_lines=self.config.output_lines)
            thread = threading.Thread(target=self._run, args=(job, run),
                                      name=f"job-{job.id}", daemon=True)
            with self._lock:
                self.runs[job.id] = run
                self.threads[job.id] = thread
            thread.start()
            started.append(job)
        return started

    def _run(self, job: Job, run: JobRun) -> None:
        try:
            state = run_job(self.config, job, self.connect, run)
            log.info("job %s (%s for %s): %s", job.id, job.action, job.login, state)
            if state == "interrupted":
                conn = self.connect()
                try:
                    db.set_vm_state(conn, job.github_id, "unknown")
                    refresh = self._refresher(conn)
                    if refresh:
                        refresh(job.github_id, job.login)
                finally:
                    conn.close()
        except Exception:
            log.exception("job %s: could not record its end", job.id)

    def _reap(self) -> None:
        with self._lock:
            for job_id in [i for i, t in self.threads.items() if not t.is_alive()]:
                del self.threads[job_id]
                self.runs.pop(job_id, None)

    @property
    def running(self) -> int:
        with self._lock:
            return sum(thread.is_alive() for thread in self.threads.values())

    def stop(self, grace: float | None = None) -> None:
        """Claim nothing more; give running jobs `grace` seconds (default ``grace_period``)
        to end, then cancel the others (recorded as interrupted) and wait for them."""
        self.stopping.set()
        grace = float(self.config.grace_period if grace is None else grace)
        deadline = time.monotonic() + grace
        with self._lock:
            threads = dict(self.threads)
        for thread in threads.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            for job_id, run in self.runs.items():
                if threads.get(job_id) and threads[job_id].is_alive():
                    log.warning("job %s: cancelled at shutdown", job_id)
                    run.cancelled = True
        for thread in threads.values():
            thread.join()
        self._reap()

    def reconcile(self, conn: sqlite3.Connection) -> list[str]:
        """:func:`web.vms.reconcile_vms` with the cloud's servers now (nothing without a
        cloud)."""
        cloud = self.cloud()
        if cloud is None:
            return []
        listed_at = db.now()
        return vms.reconcile_vms(conn, vms.list_vms(cloud), listed_at)

    def cull(self) -> threading.Thread | None:
        """Start a run of playbooks/cull.yml in a thread (:func:`web.lifetime.run_cull`),
        unless one runs still; returns its thread. :meth:`stop` cancels it as a job."""
        with self._lock:
            if CULL in self.threads and self.threads[CULL].is_alive():
                return None
            run = JobRun(f"cull-{uuid.uuid4().hex}", "cull",
                         output_lines=self.config.output_lines)
            thread = threading.Thread(target=self._cull, args=(run,), name="cull", daemon=True)
            self.runs[CULL], self.threads[CULL] = run, thread
        thread.start()
        return thread

    def _cull(self, run: JobRun) -> None:
        try:
            lifetime.run_cull(self.config, self.connect, run)
        except Exception:
            log.exception("the cull run failed; trying at the next interval")

    def serve(self) -> None:
        """Recover, then beat and poll until :attr:`stopping` is set (and reconcile the VMs
        with the cloud every ``vm_refresh_interval`` seconds, cull every ``cull_interval``
        seconds); then :meth:`stop`."""
        self.recover()
        conn = self.connect()
        try:
            last_beat = last_reconcile = last_cull = last_upkeep = -float("inf")
            while not self.stopping.is_set():
                if time.monotonic() - last_upkeep >= UPKEEP_INTERVAL:
                    last_upkeep = time.monotonic()
                    try:
                        users.upkeep(conn, self.config)
                    except sqlite3.Error:
                        log.exception("the upkeep failed; trying at the next interval")
                if (self.config.cull_interval
                        and time.monotonic() - last_cull >= self.config.cull_interval):
                    last_cull = time.monotonic()
                    self.cull()
                interval = self.config.vm_refresh_interval
                if interval and time.monotonic() - last_reconcile >= interval:
                    last_reconcile = time.monotonic()
                    try:
                        self.reconcile(conn)
                    except Exception:
                        log.exception("could not read the VMs from the cloud; trying later")
                try:
                    if time.monotonic() - last_beat >= self.config.heartbeat_interval:
                        db.beat(conn)
                        last_beat = time.monotonic()
                    self.poll(conn)
                except sqlite3.OperationalError:
                    log.exception("the database is busy or unavailable; trying again")
                self.stopping.wait(self.config.poll_interval)
        finally:
            conn.close()
            self.stop()


def database_connector(config: Config) -> Callable[[], sqlite3.Connection]:
    """A function returning a new connection to ``config.database`` (tables made once)."""
    path = playbook.checkout_path(config.database)

    def connect() -> sqlite3.Connection:
        return db.connect(path)

    conn = connect()
    try:
        db.init(conn)
    finally:
        conn.close()
    return connect


def main(config: Config) -> int:
    """The worker process: recover what a previous one left running, then claim and run
    queued jobs until SIGTERM or SIGINT; then claim nothing more, give running jobs
    ``grace_period`` seconds, cancel the rest and record them as interrupted. Run it under a
    service manager that signals only this process (systemd ``KillMode=mixed``): it ends
    the playbook runs itself, each in its own session."""
    worker = Worker(config, database_connector(config))

    def _stop(signum, frame):
        log.info("signal %s: stopping", signal.Signals(signum).name)
        worker.stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    worker.serve()
    return 0
