"""The ledger on SQL: the only code that writes balances.

Every call is one database transaction that the ledger owns and retries on lock conflicts,
serialisation failures and lost idempotency races, so callers never retry (and never see a
half-written state). Locks are taken in one fixed order so that concurrent batches cannot
deadlock: holds (sorted by id), then accounts (sorted by id), then the chain head.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from paycell.clock import Clock, SystemClock
from paycell.db import reading
from paycell.ledger import errors as e
from paycell.ledger import journal, pgbulk
from paycell.ledger import model as m
from paycell.ledger.tables import accounts, chain_head, holds, transfers

CHUNK = 500
MAX_ATTEMPTS = 30

WriteHook = Callable[[Connection, list[m.TransferResult]], None]


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    ledger: str
    code: int
    owner_ref: str | None
    flags: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    timestamp: int

    @property
    def debit_normal(self) -> bool:
        """Assets (codes 300-399) and expenses (500-599) grow with debits; see chart.py."""
        return bool(self.flags & m.CR_LIMIT) or 300 <= self.code < 400 or 500 <= self.code < 600

    @property
    def balance(self) -> int:
        """Posted balance on the account's normal side: what a wallet holds, what the bank
        owes us on a clearing account."""
        if self.debit_normal:
            return self.debits_posted - self.credits_posted
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """What can still be spent: the posted balance less outgoing holds."""
        if self.debit_normal:
            return self.debits_posted - self.credits_posted - self.credits_pending
        return self.credits_posted - self.debits_posted - self.debits_pending

    @property
    def closed(self) -> bool:
        return bool(self.flags & m.AccountFlags.CLOSED)


def _row_to_transfer(r: Any) -> m.Transfer:
    return m.Transfer(
        id=r.id, debit_account_id=r.debit_account_id, credit_account_id=r.credit_account_id,
        amount=r.amount, ledger=r.ledger, code=r.code, flags=r.flags, pending_id=r.pending_id,
        timeout=r.timeout, ref=r.ref, timestamp=r.timestamp, seq=r.seq,
        prev_hash=r.prev_hash, hash=r.hash,
    )


def _row_to_account(r: Any) -> Account:
    return Account(
        id=r.id, name=r.name, ledger=r.ledger, code=r.code, owner_ref=r.owner_ref,
        flags=r.flags, debits_pending=r.debits_pending, debits_posted=r.debits_posted,
        credits_pending=r.credits_pending, credits_posted=r.credits_posted,
        timestamp=r.timestamp,
    )


def _delta(s: m.AccountState, was: tuple[int, int, int, int]) -> tuple[int, int, int, int, int]:
    dp, dpo, cp, cpo = s.counters()
    return (s.id, dp - was[0], dpo - was[1], cp - was[2], cpo - was[3])


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _is_retryable(exc: DBAPIError) -> bool:
    """Lock timeouts, deadlocks, serialisation failures and lost idempotency races."""
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in ("40001", "40P01", "55P03", "23505"):
        return True
    text = str(orig).lower()
    if isinstance(exc, IntegrityError):
        return "unique" in text
    return isinstance(exc, OperationalError) and ("locked" in text or "busy" in text)


class Ledger:
    """Double-entry ledger: accounts, transfers, two-phase holds, linked chains."""

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self._pg = engine.dialect.name == "postgresql"
        # Accounts seen with and without a balance rule (fees, clearing, reserves: the hot
        # ones have none). A rule is fixed when an account is opened, so the caches never
        # go stale; a Batcher with two writers leaves the unruled out when it keeps
        # concurrent batches apart.
        self.ruled_ids: set[int] = set()
        self.unruled_ids: set[int] = set()
        self.stats = {"transactions": 0, "retries": 0}

    # -- transactions -------------------------------------------------------------------
    def transaction(self, work: Callable[[Connection], Any]) -> Any:
        """Run ``work`` in one transaction, retrying conflicts with jittered backoff.

        For callers that post through a :class:`~paycell.ledger.posting.Posting`: ``work``
        is re-run whole on a retry, so it must not call the outside world."""
        return self._transaction(work)

    def _transaction(self, work: Callable[[Connection], Any]) -> Any:
        """Run ``work`` in one transaction, retrying conflicts with jittered backoff."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self.engine.begin() as conn:
                    out = work(conn)
                self.stats["transactions"] += 1
                return out
            except DBAPIError as exc:
                if attempt == MAX_ATTEMPTS or not _is_retryable(exc):
                    raise
                self.stats["retries"] += 1
                time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
        raise AssertionError("unreachable")

    def _lock(self, stmt: Any) -> Any:
        return stmt.with_for_update() if self._pg else stmt

    # -- accounts -----------------------------------------------------------------------
    def create_account(
        self, name: str, *, ledger: str = "CNY", code: int, flags: int = 0,
        owner_ref: str | None = None,
    ) -> Account:
        """Create the account called ``name``, or return it if it exists with the same fields.

        Idempotent by name. Raises :class:`AccountExistsError` if the name is taken by an
        account with another ledger, code, flags or owner.
        """
        if flags & m.AccountFlags.CLOSED:
            raise e.FlagsInvalidError("an account cannot be created closed")
        if flags & 3 == 3:
            raise e.FlagsInvalidError("an account limits one side, not both")

        def work(conn: Connection) -> Account:
            row = conn.execute(select(accounts).where(accounts.c.name == name)).first()
            if row is None:
                conn.execute(accounts.insert().values(
                    name=name, ledger=ledger, code=code, flags=flags, owner_ref=owner_ref,
                    timestamp=self.clock.now_us()))
                row = conn.execute(select(accounts).where(accounts.c.name == name)).one()
            acct = _row_to_account(row)
            same = (acct.ledger, acct.code, acct.flags & ~m.AccountFlags.CLOSED, acct.owner_ref)
            if same != (ledger, code, flags, owner_ref):
                raise e.AccountExistsError(f"account {name!r} exists with other fields")
            return acct

        result: Account = self._transaction(work)
        return result

    def account(self, account_id: int, conn: Connection | None = None) -> Account:
        stmt = select(accounts).where(accounts.c.id == account_id)
        row = self._read(lambda c: c.execute(stmt).first(), conn)
        if row is None:
            raise e.AccountNotFoundError(f"account {account_id} does not exist")
        return _row_to_account(row)

    def account_by_name(self, name: str) -> Account:
        row = self._read(lambda c: c.execute(select(accounts).where(accounts.c.name == name))
                         .first())
        if row is None:
            raise e.AccountNotFoundError(f"no account named {name!r}")
        return _row_to_account(row)

    def accounts(self, ids: Sequence[int]) -> dict[int, Account]:
        def read(c: Connection) -> dict[int, Account]:
            out = {}
            for part in _chunks(list(ids)):
                for r in c.execute(select(accounts).where(accounts.c.id.in_(part))):
                    out[r.id] = _row_to_account(r)
            return out

        result: dict[int, Account] = self._read(read)
        return result

    def accounts_by_code(self, code: int, currency: str = "CNY") -> list[Account]:
        """Every account of a type, read in one statement: one consistent snapshot of their
        counters (a single SELECT sees one committed state on both databases)."""

        def read(c: Connection) -> list[Account]:
            rows = c.execute(select(accounts).where(accounts.c.code == code,
                                                    accounts.c.ledger == currency)
                             .order_by(accounts.c.id))
            return [_row_to_account(r) for r in rows]

        result: list[Account] = self._read(read)
        return result

    def close_account(self, account_id: int) -> Account:
        """Close an account: no new transfer may touch it. Refused while holds are pending."""

        def work(conn: Connection) -> Account:
            row = conn.execute(self._lock(select(accounts).where(accounts.c.id == account_id))
                               ).first()
            if row is None:
                raise e.AccountNotFoundError(f"account {account_id} does not exist")
            if row.debits_pending or row.credits_pending:
                raise e.AccountHasHoldsError(f"account {account_id} has pending holds")
            conn.execute(update(accounts).where(accounts.c.id == account_id)
                         .values(flags=row.flags | m.AccountFlags.CLOSED))
            return _row_to_account(conn.execute(
                select(accounts).where(accounts.c.id == account_id)).one())

        result: Account = self._transaction(work)
        return result

    def _read(self, fn: Callable[[Connection], Any], conn: Connection | None = None) -> Any:
        if conn is not None:
            return fn(conn)
        with reading(self.engine) as c:
            return fn(c)

    # -- transfers ----------------------------------------------------------------------
    def post(
        self, requests: Sequence[m.TransferRequest], *, hook: WriteHook | None = None,
        before: Callable[[Connection], None] | None = None,
        decided: Callable[[], None] | None = None,
    ) -> list[m.TransferResult]:
        """Apply a batch of transfers in one database transaction; a result per request.

        Idempotent per transfer id. Each request succeeds or fails on its own except linked
        chains, which are all-or-nothing. ``before(conn)``, if given, runs first in the same
        transaction: it may lock the caller's rows and check its own rules (limits, states),
        and an exception it raises aborts the whole call with nothing written.
        ``hook(conn, results)`` runs after the balances are written and before the journal
        rows are appended (the chain head, the lock every transaction shares, is taken
        last and held only to the commit), so a caller can record its own state change
        atomically with the money movement. Both are re-run if the transaction
        is retried, so they must not call the outside world. ``decided()``, if given, is
        called once the batch is decided, before its writes and commit (the Batcher lets its
        next writer start then); it may be called again on a retry.
        """
        return self._post(requests, hook=hook, before=before, expiring=False, decided=decided)

    def post_one(self, request: m.TransferRequest) -> m.Transfer:
        """Post one transfer; return it (created or already existing) or raise its error."""
        return self.post([request])[0].unwrap()

    def _post(
        self, requests: Sequence[m.TransferRequest], *, hook: WriteHook | None,
        expiring: bool, before: Callable[[Connection], None] | None = None,
        decided: Callable[[], None] | None = None,
    ) -> list[m.TransferResult]:
        if not requests:
            return []

        attempts = 0

        def work(conn: Connection) -> list[m.TransferResult]:
            nonlocal attempts
            attempts += 1
            if before is not None:
                before(conn)
            # On PostgreSQL the first attempt does not look the ids up: the journal's unique
            # index refuses one that exists, and the retry then looks them up and answers
            # `exists`. A batch of fresh ids, nearly every one, saves the query.
            decision = self._apply(conn, requests, expiring, decided,
                                   optimistic=self._pg and attempts == 1)
            if hook is not None:
                hook(conn, decision.results)
            # The journal goes last, after the caller's own writes: the chain head is the
            # one lock every transaction shares, held from here to the commit.
            if decision.created:
                self._append(conn, decision)
            return decision.results

        result: list[m.TransferResult] = self._transaction(work)
        return result

    def _apply(
        self, conn: Connection, requests: Sequence[m.TransferRequest], expiring: bool,
        decided: Callable[[], None] | None = None, *, optimistic: bool = False,
    ) -> m.Decision:
        now = self.clock.now_us()
        if optimistic:
            existing: dict[str, m.Transfer] = {}
        else:
            ids = list({r.id for r in requests if m.usable_key(r.id)})
            existing = {r.id: _row_to_transfer(r) for r in self._existing(conn, ids)}
        hold_ids = sorted({r.pending_id for r in requests
                           if r.pending_id is not None and m.usable_key(r.pending_id)})
        hold_states = {
            h.transfer_id: m.HoldState(h.transfer_id, h.debit_account_id, h.credit_account_id,
                                       h.amount, h.ledger, h.status, h.expires_at,
                                       h.resolved_by)
            for h in self._lock_holds(conn, hold_ids)}
        account_ids: set[int] = set()
        for req in requests:
            if req.id in existing:
                continue
            account_ids.update(x for x in (req.debit_account_id, req.credit_account_id)
                               if isinstance(x, int) and 0 < x < 2**63)
        for hs in hold_states.values():
            account_ids.update((hs.debit_account_id, hs.credit_account_id))
        # Rows come as (id, ledger, flags, dp, dpo, cp, cpo): AccountState's field order.
        rows = self._load_accounts(conn, sorted(account_ids))
        states = {row[0]: m.AccountState(*row) for row in rows}
        before = {aid: s.counters() for aid, s in states.items()}
        pristine = {h: replace(hs) for h, hs in hold_states.items()}  # decide mutates
        decision = m.decide(requests, states, hold_states, existing, now, expiring=expiring)
        late = self._late_duplicates(conn, decision, existing)
        if late:
            # A concurrent call committed some of these very ids while this one waited for
            # the locks (PostgreSQL reads each statement afresh): decide again, so a retry
            # racing its original is answered `exists`, not judged on the moved balances.
            existing.update(late)
            states = {row[0]: m.AccountState(*row) for row in rows}
            decision = m.decide(requests, states, pristine, existing, now, expiring=expiring)
        if decided is not None:
            decided()
        if decision.created:
            self._write(conn, decision, states, before)
        return decision

    def _late_duplicates(self, conn: Connection, decision: m.Decision,
                         existing: dict[str, m.Transfer]) -> dict[str, m.Transfer]:
        """Transfers of this call's failed ids that exist now though they did not when
        it started (PostgreSQL only: on SQLite the write lock is held from BEGIN)."""
        if not self._pg:
            return {}
        failed = [r.id for r in decision.results
                  if r.status == "failed" and r.id not in existing and m.usable_key(r.id)]
        if not failed:
            return {}
        return {r.id: _row_to_transfer(r) for r in self._existing(conn, failed)}

    # Loads and locks: PostgreSQL's fast path in pgbulk, the portable path here.
    def _existing(self, conn: Connection, ids: list[str]) -> list[Any]:
        if self._pg:
            return pgbulk.existing_transfers(conn, ids) if ids else []
        return [r for part in _chunks(ids)
                for r in conn.execute(select(transfers).where(transfers.c.id.in_(part)))]

    def _lock_holds(self, conn: Connection, ids: list[str]) -> list[Any]:
        if not ids:
            return []
        if self._pg:
            return pgbulk.lock_holds(conn, ids)
        return [r for part in _chunks(ids) for r in conn.execute(
            select(holds).where(holds.c.transfer_id.in_(part)).order_by(holds.c.transfer_id))]

    def _load_accounts(self, conn: Connection, ids: list[int]) -> list[Any]:
        """The accounts a batch touches, those with a balance rule locked.

        On PostgreSQL an account without a balance rule (fees, clearing: the hot ones) is
        read without a lock: nothing about it needs checking, and its counters are written
        as deltas under a lock taken only for the write (see ``_write``). So the hot fee
        account is locked for a batch's write and commit, not for its whole decision, and a
        second writer can decide its batch meanwhile. Every PostgreSQL ledger, in every
        process, takes its locks in this one order (ruled accounts here, unruled ones to
        write, the chain head last), so no two transactions can wait for each other. On
        SQLite the whole transaction holds the database lock anyway.
        """
        if not ids:
            return []
        if self._pg:
            # Accounts seen for the first time are read once without a lock to learn their
            # rule. Then one query locks the ruled ones in id order and reads the unruled
            # ones (usually the fee account) without a lock.
            ruled, unruled = self.ruled_ids, self.unruled_ids
            unknown = [i for i in ids if i not in ruled and i not in unruled]
            if unknown:
                for r in pgbulk.read_accounts(conn, unknown):
                    (ruled if r[2] & (m.DR_LIMIT | m.CR_LIMIT) else unruled).add(r[0])
            read = [i for i in ids if i in unruled]
            lock = [i for i in ids if i not in unruled]  # ruled, or not found at all
            if not read:
                return pgbulk.lock_accounts(conn, lock)
            if not lock:
                return pgbulk.read_accounts(conn, read)
            return pgbulk.lock_and_read_accounts(conn, lock, read)
        cols = (accounts.c.id, accounts.c.ledger, accounts.c.flags, accounts.c.debits_pending,
                accounts.c.debits_posted, accounts.c.credits_pending, accounts.c.credits_posted)
        return [r for part in _chunks(ids) for r in conn.execute(
            select(*cols).where(accounts.c.id.in_(part)).order_by(accounts.c.id))]

    def _write(
        self, conn: Connection, d: m.Decision, states: dict[int, m.AccountState],
        before: dict[int, tuple[int, int, int, int]], *, reserve: bool = False,
    ) -> tuple[int, str] | None:
        """Write the balances and holds. With ``reserve`` (the journal is appended next,
        nothing in between), on PostgreSQL the balances' statement also reserves the
        journal's sequence numbers; returns the head as it was, for ``_append``."""
        changed = [s for aid, s in states.items() if s.counters() != before[aid]]
        if self._pg:
            if d.holds_new:
                pgbulk.insert_holds(conn, d.holds_new)
            if d.holds_changed:
                pgbulk.update_holds(conn, d.holds_changed)
            if changed:
                # The write phase locks the accounts read without a lock, in id order,
                # and adds each account's net change for the batch, in one statement.
                unruled = sorted(s.id for s in changed if not s.flags & (m.DR_LIMIT | m.CR_LIMIT))
                deltas = [_delta(s, before[s.id]) for s in changed]
                if reserve and d.created:
                    return pgbulk.add_and_reserve(conn, deltas, unruled, len(d.created))
                pgbulk.add_to_accounts(conn, deltas, lock_first=unruled)
        else:
            self._write_portable(conn, d, changed)
        return None

    def _append(self, conn: Connection, d: m.Decision, head: tuple[int, str] | None = None
                ) -> None:
        """Chain the decision's new transfers after the journal's head and write them.

        The chain head is the last lock taken and the journal's single point of order: on
        PostgreSQL one statement locks it and reserves the sequence numbers (``head``, if
        ``_write`` did that already), one writes the rows and the new head, and the commit
        follows, so it is held for three round trips.
        """
        if self._pg:
            head_seq, head_hash = head or pgbulk.reserve_seqs(conn, len(d.created))
            linked = journal.chain(d.created, head_seq, head_hash)
            pgbulk.append_journal(conn, linked)
            self._answer_chained(d, linked)
            return
        head = conn.execute(select(chain_head.c.seq, chain_head.c.hash)
                            .where(chain_head.c.id == 1)).one()
        linked = journal.chain(d.created, head.seq, head.hash)
        conn.execute(transfers.insert(), [
            {"seq": t.seq, "id": t.id, "debit_account_id": t.debit_account_id,
             "credit_account_id": t.credit_account_id, "amount": t.amount,
             "ledger": t.ledger, "code": t.code, "flags": t.flags,
             "pending_id": t.pending_id, "timeout": t.timeout, "ref": t.ref,
             "timestamp": t.timestamp, "prev_hash": t.prev_hash, "hash": t.hash}
            for t in linked])
        conn.execute(update(chain_head).where(chain_head.c.id == 1)
                     .values(seq=linked[-1].seq, hash=linked[-1].hash))
        self._answer_chained(d, linked)

    @staticmethod
    def _answer_chained(d: m.Decision, linked: list[m.Transfer]) -> None:
        # Every answer naming a transfer of this batch gets the chained row, including the
        # `exists` answer to a second copy of an id within the same batch.
        by_id = {t.id: t for t in linked}
        for i, r in enumerate(d.results):
            if r.transfer is not None and r.transfer.id in by_id:
                d.results[i] = m.TransferResult(r.id, r.status, by_id[r.transfer.id], None)

    def _write_portable(
        self, conn: Connection, d: m.Decision, changed: list[m.AccountState],
    ) -> None:
        if d.holds_new:
            conn.execute(holds.insert(), [
                {"transfer_id": h.transfer_id, "debit_account_id": h.debit_account_id,
                 "credit_account_id": h.credit_account_id, "amount": h.amount,
                 "ledger": h.ledger, "status": h.status, "expires_at": h.expires_at,
                 "resolved_by": h.resolved_by} for h in d.holds_new])
        if d.holds_changed:
            conn.execute(
                update(holds).where(holds.c.transfer_id == bindparam("tid"))
                .values(status=bindparam("st"), resolved_by=bindparam("rb")),
                [{"tid": h.transfer_id, "st": h.status, "rb": h.resolved_by}
                 for h in d.holds_changed])
        if changed:
            conn.execute(
                update(accounts).where(accounts.c.id == bindparam("aid")).values(
                    debits_pending=bindparam("dp"), debits_posted=bindparam("dpo"),
                    credits_pending=bindparam("cp"), credits_posted=bindparam("cpo")),
                [{"aid": s.id, "dp": s.debits_pending, "dpo": s.debits_posted,
                  "cp": s.credits_pending, "cpo": s.credits_posted} for s in changed])

    # -- reads --------------------------------------------------------------------------
    def head(self) -> tuple[int, str]:
        """The journal's position: the last sequence number and its hash."""
        row = self._read(lambda c: c.execute(
            select(chain_head.c.seq, chain_head.c.hash).where(chain_head.c.id == 1)).one())
        return int(row.seq), str(row.hash)

    def transfer(self, transfer_id: str) -> m.Transfer | None:
        row = self._read(lambda c: c.execute(
            select(transfers).where(transfers.c.id == transfer_id)).first())
        return None if row is None else _row_to_transfer(row)

    def transfers_of(
        self, account_id: int, *, after_seq: int = 0, limit: int = 100,
    ) -> list[m.Transfer]:
        """The account's transfers in journal order, after ``after_seq`` (a cursor)."""
        cond = and_(transfers.c.seq > after_seq,
                    (transfers.c.debit_account_id == account_id)
                    | (transfers.c.credit_account_id == account_id))
        stmt = select(transfers).where(cond).order_by(transfers.c.seq).limit(limit)
        return [_row_to_transfer(r) for r in self._read(lambda c: c.execute(stmt).all())]

    def hold(self, transfer_id: str) -> m.HoldState | None:
        h = self._read(lambda c: c.execute(
            select(holds).where(holds.c.transfer_id == transfer_id)).first())
        if h is None:
            return None
        return m.HoldState(h.transfer_id, h.debit_account_id, h.credit_account_id, h.amount,
                           h.ledger, h.status, h.expires_at, h.resolved_by)

    # -- background ---------------------------------------------------------------------
    def expire_holds(self, limit: int = 1000) -> int:
        """Void holds whose timeout has passed. Returns how many were released.

        Safe to run from several workers at once: each void has the id ``expire:<hold>``,
        so a hold is released once whoever gets there first.
        """
        now = self.clock.now_us()
        stmt = (select(holds.c.transfer_id)
                .where(holds.c.status == "pending", holds.c.expires_at <= now)
                .order_by(holds.c.expires_at).limit(limit))
        due = [r.transfer_id for r in self._read(lambda c: c.execute(stmt).all())]
        if not due:
            return 0
        reqs = [m.TransferRequest(id=f"expire:{tid}", flags=m.TransferFlags.VOID_PENDING,
                                  pending_id=tid, ledger=None, ref="hold expired")
                for tid in due]
        results = self._post(reqs, hook=None, expiring=True)
        return sum(1 for r in results if r.status == "created")
