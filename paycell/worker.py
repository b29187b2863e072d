"""Background jobs: run in a thread of ``paycell serve`` or as ``paycell worker`` processes.

Each job is a function run every ``interval_s`` seconds that returns how many things it did.
Every job is safe to run in several processes at once (the ledger makes hold expiry
idempotent), so production may run as many workers as it likes. A failing job is logged
and tried again at its next interval; it never stops the loop or the other jobs.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

from paycell.config import Settings, get_settings
from paycell.ledger.store import Ledger

if TYPE_CHECKING:
    from paycell.context import Context

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 0.05
EXPIRY_PAGE = 1000
MAX_PAGES_PER_RUN = 100  # a bound, so that a flood of expiries cannot starve the other jobs


@dataclass(frozen=True)
class Job:
    name: str
    interval_s: float
    run: Callable[[], int]
    did: str = "{n} done"  # what a run did, for the log: formatted with n=


class Worker:
    """Runs its :attr:`jobs` periodically until :meth:`stop` (or a signal) says otherwise."""

    def __init__(
        self, ledger: Ledger, settings: Settings | None = None, *,
        jobs: list[Job] | None = None, expiry_page: int = EXPIRY_PAGE,
        ctx: Context | None = None,
    ) -> None:
        settings = settings or get_settings()
        self.ledger = ledger
        self.expiry_page = expiry_page
        self.jobs: list[Job] = jobs if jobs is not None else [
            Job("expire_holds", settings.expiry_interval_s, self.expire_holds,
                "released {n} expired holds"),
            *(domain_jobs(ctx) if ctx is not None else []),
        ]
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- jobs ---------------------------------------------------------------------------
    def expire_holds(self) -> int:
        """Release every hold past its timeout, a page at a time while pages come back full.

        Returns how many holds this run released (others may have been released by another
        worker at the same time: each is released exactly once).
        """
        total = 0
        for _ in range(MAX_PAGES_PER_RUN):
            n = self.ledger.expire_holds(limit=self.expiry_page)
            total += n
            if n < self.expiry_page or self._stop.is_set():
                break
        return total

    # -- running ------------------------------------------------------------------------
    def run_once(self) -> dict[str, int | None]:
        """Run every job once, now, in order; what each did (None if it failed)."""
        return {job.name: self._run_job(job) for job in self.jobs}

    def _run_job(self, job: Job) -> int | None:
        started = time.monotonic()
        try:
            n = job.run()
        except Exception:
            self.failures += 1
            log.exception("job %s failed; it runs again in %ss", job.name, job.interval_s)
            return None
        ms = (time.monotonic() - started) * 1000
        level = logging.INFO if n else logging.DEBUG
        log.log(level, "%s: %s in %.0f ms", job.name, job.did.format(n=n), ms)
        return n

    def run_until_stopped(self) -> None:
        """Run each job at start and then every ``interval_s`` until :meth:`stop`."""
        due = dict.fromkeys(range(len(self.jobs)), 0.0)
        while not self._stop.is_set():
            for i, job in enumerate(self.jobs):
                if self._stop.is_set():
                    break
                if time.monotonic() >= due[i]:
                    self._run_job(job)
                    due[i] = time.monotonic() + max(job.interval_s, MIN_INTERVAL_S)
            if due:
                self._stop.wait(max(0.0, min(due.values()) - time.monotonic()))
            else:
                self._stop.wait()

    def start(self) -> None:
        """Run the jobs in a daemon thread (``paycell serve``); returns at once."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_until_stopped, name="paycell-worker",
                                        daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the loop to end after the job it is running (safe from a signal handler)."""
        self._stop.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loop and wait (up to ``timeout``) for the running job to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("worker thread still busy after %.0fs; leaving it", timeout)
            self._thread = None


def domain_jobs(ctx: Context) -> list[Job]:
    """The business jobs, which need the whole context (SMS, settings) and not only the
    ledger."""
    from paycell.funding.jobs import resolve_pending
    from paycell.funding.p2p import run_p2p_jobs
    from paycell.gateways.smpp import HEARTBEAT_S, adopt_stale_texts
    from paycell.notifications.delivery import deliver_due
    from paycell.onsite.jobs import run_onsite_jobs
    from paycell.partners.jobs import run_partners_jobs
    from paycell.payments.jobs import run_payment_jobs
    from paycell.reconciliation.jobs import run_reconciliation_jobs
    from paycell.settlement.jobs import run_settlement_jobs

    return [
        Job("p2p", ctx.settings.p2p_job_interval_s, lambda: run_p2p_jobs(ctx),
            "delivered or returned {n} P2P transfers"),
        Job("funding_status", ctx.settings.funding_job_interval_s,
            lambda: resolve_pending(ctx),
            "settled {n} top-ups and withdrawals after asking the bank or carrier"),
        Job("payments", ctx.settings.payment_job_interval_s, lambda: run_payment_jobs(ctx),
            "closed or released {n} payment orders"),
        Job("notifications", ctx.settings.notify_job_interval_s, lambda: deliver_due(ctx),
            "made {n} notification delivery attempts"),
        Job("sms", HEARTBEAT_S, lambda: adopt_stale_texts(ctx.sms),
            "took over {n} texts a stopped process left queued"),
        Job("onsite", ctx.settings.onsite_job_interval_s, lambda: run_onsite_jobs(ctx),
            "sent {n} OTA jobs or cleared e-cash batches"),
        Job("settlement", ctx.settings.settlement_job_interval_s,
            lambda: run_settlement_jobs(ctx), "cleared or settled {n} business days"),
        Job("partners", ctx.settings.settlement_job_interval_s,
            lambda: run_partners_jobs(ctx), "made {n} partner fees payable"),
        Job("reconciliation", ctx.settings.settlement_job_interval_s,
            lambda: run_reconciliation_jobs(ctx), "did {n} reconciliation steps"),
    ]


def run_forever(settings: Settings | None = None) -> None:
    """``paycell worker``: run the jobs in this process until SIGTERM or SIGINT.

    A signal lets the running job finish, then the process disposes of its engine and
    returns normally (exit status 0).
    """
    from paycell.db import make_engine

    settings = settings or get_settings()
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from paycell.context import build_context

    engine = make_engine(settings.database_url)
    ctx = build_context(engine, settings=settings)
    worker = Worker(ctx.ledger, settings, ctx=ctx)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: stopping after the current job", signal.Signals(signum).name)
        worker.request_stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    log.info("worker started: %s", ", ".join(f"{j.name} every {j.interval_s}s"
                                             for j in worker.jobs))
    try:
        worker.run_until_stopped()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        engine.dispose()
        log.info("worker stopped")
