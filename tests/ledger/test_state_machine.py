"""The ledger against a plain-Python model, driven by hypothesis, on SQLite and PostgreSQL.

The model below is written independently of paycell.ledger.model: a dict of balances and a
dict of holds, updated the obvious way. Every step compares all balances; every few steps
the full audit runs. Examples share one database (each example's names are prefixed), so
the audit also proves that examples never disturb each other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace

from helpers import tx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine

from paycell.clock import ManualClock
from paycell.ledger import AccountFlags, Ledger, TransferFlags, TransferRequest
from paycell.ledger.audit import audit

PENDING, POST, VOID, LINKED = (TransferFlags.PENDING, TransferFlags.POST_PENDING,
                               TransferFlags.VOID_PENDING, TransferFlags.LINKED)


@dataclass
class ModelAccount:
    limited: bool  # debits must not exceed credits
    dp: int = 0
    dpo: int = 0
    cp: int = 0
    cpo: int = 0


@dataclass
class ModelHold:
    dr: str
    cr: str
    amount: int
    expires: int | None
    status: str = "pending"


@dataclass
class Model:
    accounts: dict[str, ModelAccount] = field(default_factory=dict)
    holds: dict[str, ModelHold] = field(default_factory=dict)
    sent: dict[str, TransferRequest] = field(default_factory=dict)

    def plain(self, dr: str, cr: str, amount: int, pending: bool, expires: int | None,
              tid: str) -> bool:
        a, b = self.accounts[dr], self.accounts[cr]
        if amount <= 0 or dr == cr:
            return False
        if a.limited and a.dp + a.dpo + amount > a.cpo:
            return False
        if pending:
            a.dp += amount
            b.cp += amount
            self.holds[tid] = ModelHold(dr, cr, amount, expires)
        else:
            a.dpo += amount
            b.cpo += amount
        return True

    def settle(self, hold_id: str, post: bool, amount: int | None, now: int,
               expiring: bool = False) -> bool:
        h = self.holds.get(hold_id)
        if h is None or h.status != "pending":
            return False
        due = h.expires is not None and now >= h.expires
        if due != expiring:
            return False
        amt = h.amount if amount is None else amount
        if post and not 0 < amt <= h.amount:
            return False
        a, b = self.accounts[h.dr], self.accounts[h.cr]
        a.dp -= h.amount
        b.cp -= h.amount
        if post:
            a.dpo += amt
            b.cpo += amt
        h.status = "posted" if post else ("expired" if expiring else "voided")
        return True


class LedgerMachine(RuleBasedStateMachine):
    engine: Engine
    clock: ManualClock

    accounts = Bundle("accounts")
    transfers = Bundle("transfers")
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger(self.engine, self.clock)
        self.model = Model()
        self.prefix = uuid.uuid4().hex[:8]
        self.ids: dict[str, int] = {}
        self.steps = 0

    def _id(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    @initialize(target=accounts)
    def source(self) -> str:
        return self._open("source", limited=False)

    @initialize(target=accounts)
    def first_wallet(self) -> str:
        return self._open("w0", limited=True)

    def _open(self, name: str, limited: bool) -> str:
        flags = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS if limited else AccountFlags.NONE
        acct = self.ledger.create_account(self._id(name), code=100, flags=flags)
        self.ids[name] = acct.id
        self.model.accounts[name] = ModelAccount(limited)
        return name

    @precondition(lambda self: len(self.model.accounts) < 6)
    @rule(target=accounts, n=st.integers(0, 10**6))
    def open_wallet(self, n: int) -> str:
        name = f"w{len(self.model.accounts)}"
        return self._open(name, limited=True)

    @rule(w=accounts, amount=st.integers(1, 5000), tid=st.integers(0, 10**9))
    def fund(self, w: str, amount: int, tid: int) -> None:
        self._send(f"f{tid}", "source", w, amount, pending=False, timeout=0)

    @rule(target=transfers, dr=accounts, cr=accounts, amount=st.integers(-1, 3000),
          tid=st.integers(0, 10**9))
    def transfer(self, dr: str, cr: str, amount: int, tid: int) -> str:
        return self._send(f"t{tid}", dr, cr, amount, pending=False, timeout=0)

    @precondition(lambda self: bool(self.model.sent))
    @rule(data=st.data(), change=st.booleans())
    def retry(self, data: st.DataObject, change: bool) -> None:
        """Send an earlier transfer again: unchanged it is a no-op, changed it is refused."""
        # Linked members are only ever sent together, so they are not retried alone.
        singles = sorted(t for t in self.model.sent if not t.startswith("l"))
        if not singles:
            return
        tid = data.draw(st.sampled_from(singles))
        old = self.model.sent[tid]
        req = replace(old, code=old.code + 1) if change else old
        result = self.ledger.post([req])[0]
        if change:
            assert result.error is not None and result.error.code == "transfer_id_conflict"
        else:
            assert result.status == "exists", result

    @rule(target=holds, dr=accounts, cr=accounts, amount=st.integers(1, 3000),
          tid=st.integers(0, 10**9), timeout=st.sampled_from([0, 10, 100]))
    def hold(self, dr: str, cr: str, amount: int, tid: int, timeout: int) -> str:
        self._send(f"h{tid}", dr, cr, amount, pending=True, timeout=timeout)
        return f"h{tid}"

    def _send(self, tid: str, dr: str, cr: str, amount: int, pending: bool,
              timeout: int) -> str:
        req = tx(self._id(tid), self.ids[dr], self.ids[cr], amount,
                 PENDING if pending else 0, timeout=timeout)
        result = self.ledger.post([req])[0]
        if tid in self.model.sent:
            old = self.model.sent[tid]
            expected = "exists" if old == req else "failed"
            assert result.status == expected, (result, old, req)
            # A changed body is refused: as a conflict, or first as malformed if it is.
            return tid
        now = self.clock.now_us()
        expires = now + timeout * 1_000_000 if timeout else None
        applied = self.model.plain(dr, cr, amount, pending, expires, tid)
        assert result.ok == applied, (result, dr, cr, amount)
        if applied:
            self.model.sent[tid] = req
        return tid

    @rule(h=holds, amount=st.one_of(st.none(), st.integers(0, 3000)), n=st.integers(0, 1))
    def post(self, h: str, amount: int | None, n: int) -> None:
        self._settle(f"p{h}.{n}", h, True, amount)

    @rule(h=holds, n=st.integers(0, 1))
    def void(self, h: str, n: int) -> None:
        self._settle(f"v{h}.{n}", h, False, None)

    def _settle(self, tid: str, h: str, post: bool, amount: int | None) -> None:
        req = TransferRequest(self._id(tid), flags=POST if post else VOID,
                              pending_id=self._id(h), amount=amount, ledger=None)
        result = self.ledger.post([req])[0]
        if tid in self.model.sent:
            old = self.model.sent[tid]
            # Leaving the amount out means "the whole hold": the same request either way.
            full = self.model.holds[h].amount
            # (Only None means that: 0 is an amount, and an invalid one.)
            same = (replace(old, amount=full if old.amount is None else old.amount)
                    == replace(req, amount=full if amount is None else amount))
            assert result.status == ("exists" if same else "failed"), result
            return
        applied = self.model.settle(h, post, amount if post else None, self.clock.now_us())
        assert result.ok == applied, (result, h, self.model.holds.get(h))
        if applied:
            self.model.sent[tid] = req

    @rule(src=accounts, a=accounts, b=accounts, x=st.integers(1, 2000),
          y=st.integers(1, 2000), n=st.integers(0, 10**9))
    def linked_pair(self, src: str, a: str, b: str, x: int, y: int, n: int) -> None:
        """Two transfers that must both apply or neither."""
        reqs = [tx(self._id(f"l{n}a"), self.ids[src], self.ids[a], x, LINKED),
                tx(self._id(f"l{n}b"), self.ids[src], self.ids[b], y)]
        results = self.ledger.post(reqs)
        if f"l{n}a" in self.model.sent:
            return
        snapshot = {k: ModelAccount(**vars(v)) for k, v in self.model.accounts.items()}
        ok = self.model.plain(src, a, x, False, None, "") and \
            self.model.plain(src, b, y, False, None, "")
        if not ok:
            self.model.accounts = snapshot
        assert [r.ok for r in results] == [ok, ok], results
        if ok:
            self.model.sent[f"l{n}a"], self.model.sent[f"l{n}b"] = reqs

    @rule(seconds=st.sampled_from([1, 9, 50, 200]))
    def advance_and_expire(self, seconds: int) -> None:
        self.clock.advance(seconds)
        now = self.clock.now_us()
        self.ledger.expire_holds()
        for name, h in self.model.holds.items():
            if h.status == "pending" and h.expires is not None and now >= h.expires:
                self.model.settle(name, False, None, now, expiring=True)

    @invariant()
    def balances_match_the_model(self) -> None:
        if not self.ids:
            return
        got = self.ledger.accounts(list(self.ids.values()))
        for name, m in self.model.accounts.items():
            a = got[self.ids[name]]
            counters = (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
            assert counters == (m.dp, m.dpo, m.cp, m.cpo), (name, counters, m)
            if m.limited:
                assert a.available >= 0

    @invariant()
    def audit_is_clean(self) -> None:
        self.steps += 1
        if self.steps % 10 == 0:
            report = audit(self.engine)
            assert report.ok, [c for c in report.checks if not c.ok]


def test_ledger_matches_the_model(engine: Engine) -> None:
    LedgerMachine.engine = engine
    LedgerMachine.clock = ManualClock()
    run_state_machine_as_test(LedgerMachine, settings=settings(
        max_examples=40, stateful_step_count=40, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    assert audit(engine).ok
