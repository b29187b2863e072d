"""Matching a statement against our records, set-based, and posting the result.

1. **Ours**: the records the partner should list, materialised into ``recon_ours`` with one
   INSERT ... SELECT per kind (top-ups, withdrawals, settlement payouts, phone-bill
   charges, transit fares) over the statement's date +- ``recon_date_window_days``.
2. **Classify** the lines with a few UPDATEs: a reference seen again in the file or already
   matched by an earlier statement is a ``duplicate``; a line whose reference is ours, dated
   within the window, is ``matched`` (same amount) or ``amount_mismatch``; the rest are
   ``missing_ours``. Our records of the statement's own date that no line matched are
   ``missing_theirs``. Each difference becomes a ``recon_items`` row (INSERT ... SELECT).
3. **Post**: per statement and direction one ``BANK_CONFIRM`` for what matched (clearing or
   the carrier receivable <-> the custody reserve) and per category one ``RECON_SUSPENSE``
   for the differences; in one ledger call that also marks the statement ``posted``.

Steps 1-2 run in one transaction (state ``classified``), step 3 in another; both are
idempotent, so re-running ``match`` on a statement changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, select, text, update

from paycell.context import Context
from paycell.funding.cash_common import AlreadyAppliedError, post_recorded
from paycell.ledger import TransferRequest
from paycell.ledger import errors as le
from paycell.ledger.chart import Code, TransferCode, system_account
from paycell.reconciliation.errors import (
    CustodyReserveShortError,
    StatementInvalidError,
    StatementNotFoundError,
)
from paycell.reconciliation.formats import day_no
from paycell.reconciliation.tables import statements
from paycell.settlement.calendar import window

CATEGORIES = ("matched", "missing_ours", "missing_theirs", "amount_mismatch", "duplicate")
_DAY = "CAST(({col} + 28800000000) / 86400000000 AS INTEGER)"  # CST day number


@dataclass
class Summary:
    statement_id: int
    source: str
    partner: str
    business_date: str
    state: str
    lines: int
    counts: dict[str, int] = field(default_factory=dict)
    amounts: dict[str, int] = field(default_factory=dict)  # their amount (ours: missing_theirs)
    confirmed_in_fen: int = 0
    confirmed_out_fen: int = 0
    suspense_fen: int = 0
    created: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def _ours_sql(source: str, transit_merchant: int | None) -> list[str]:
    """One SELECT per kind of our records: (reference, kind, direction, amount, created_at)."""
    if source == "bank":
        parts = [
            "SELECT 'topup:' || id AS r, 'topup' AS k, 'in' AS d, amount_fen AS a, "
            "created_at AS ts FROM topups "
            "WHERE source = 'card' AND partner = :p AND (state = 'confirmed' OR "
            "held_in_suspense) AND created_at >= :lo AND created_at < :hi",
            "SELECT 'withdrawal:' || id AS r, 'withdrawal' AS k, 'out' AS d, "
            "amount_fen AS a, created_at AS ts "
            "FROM withdrawals WHERE bank = :p AND state = 'confirmed' "
            "AND created_at >= :lo AND created_at < :hi",
        ]
        parts.append(
            "SELECT reference AS r, 'payout' AS k, 'out' AS d, amount_fen AS a, "
            "created_at AS ts "
            "FROM settlement_payouts WHERE bank = :p AND state IN ('sent', 'paid') "
            "AND created_at >= :lo AND created_at < :hi")
        return parts
    if source == "carrier":
        return ["SELECT 'topup:' || id AS r, 'charge' AS k, 'in' AS d, amount_fen AS a, "
                "created_at AS ts FROM topups "
                "WHERE source = 'phone_bill' AND partner = :p AND (state = 'confirmed' OR "
                "held_in_suspense) AND created_at >= :lo AND created_at < :hi"]
    return ["SELECT pan || ':' || psn || ':' || CAST(atc AS VARCHAR(10)) AS r, 'fare' AS k, "
            "'in' AS d, cleared_fen AS a, created_at AS ts FROM ecash_records "
            f"WHERE merchant_id = {int(transit_merchant or 0)} "
            "AND created_at >= :lo AND created_at < :hi"]


def _exec(conn: Connection, sql: str, **params: Any) -> int:
    return int(conn.execute(text(sql), params).rowcount or 0)


def _transit_merchant(ctx: Context, partner: str) -> int:
    from paycell.merchants.service import find_by_code

    m = find_by_code(ctx, partner)
    if m is None:
        raise StatementInvalidError(
            f"line 2: the transit statement's partner {partner!r} is no merchant code",
            line=2, field="partner")
    return m.id


def classify(ctx: Context, conn: Connection, st: Any, transit: int | None) -> None:
    """Steps 1-2 for statement row ``st`` inside ``conn``'s transaction; ``transit``: the
    transit operator's merchant id for a transit statement."""
    sid, src, w = st.id, st.source, ctx.settings.recon_date_window_days
    day = date.fromisoformat(st.business_date)
    cutoff = ctx.settings.clearing_cutoff
    lo, hi = window(day - timedelta(days=w), cutoff)[0], window(day + timedelta(days=w), cutoff)[1]
    p = {"s": sid, "src": src}
    _exec(conn, "DELETE FROM recon_ours WHERE statement_id = :s", **p)
    for part in _ours_sql(src, transit):
        _exec(conn, "INSERT INTO recon_ours (statement_id, reference, kind, direction, "
                    f"amount_fen, day_no) SELECT :s, r, k, d, a, {_DAY.format(col='ts')} "
                    f"FROM ({part}) o",
              p=st.partner, lo=lo, hi=hi, **p)
    # A record already reported missing by an earlier statement is not matched again: a
    # late line for it is missing_ours, and the two items net out (resolution "rematch").
    _exec(conn, "DELETE FROM recon_ours WHERE statement_id = :s AND reference IN (SELECT "
                "reference FROM recon_items WHERE source = :src AND category = "
                "'missing_theirs')", **p)
    # Only ever run on a statement in state "imported", in the transaction that moves it on:
    # its lines are unclassified (a failed run rolled back), so nothing needs resetting.
    _exec(conn, "UPDATE recon_lines SET category = 'duplicate' WHERE id IN (SELECT id FROM "
                "(SELECT id, ROW_NUMBER() OVER (PARTITION BY reference ORDER BY line_no) AS rn "
                "FROM recon_lines WHERE statement_id = :s) AS d WHERE rn > 1)", **p)
    _exec(conn, "UPDATE recon_lines SET category = 'duplicate' WHERE statement_id = :s AND "
                "category IS NULL AND EXISTS (SELECT 1 FROM recon_lines e WHERE "
                "e.source = :src AND e.reference = recon_lines.reference AND "
                "e.statement_id <> :s AND e.category IN ('matched', 'amount_mismatch'))", **p)
    _exec(conn, "UPDATE recon_lines SET our_amount_fen = o.amount_fen, category = CASE WHEN "
                "o.amount_fen = recon_lines.amount_fen THEN 'matched' ELSE 'amount_mismatch' "
                "END FROM recon_ours o WHERE recon_lines.statement_id = :s AND "
                "recon_lines.category IS NULL AND o.statement_id = :s AND "
                "o.reference = recon_lines.reference AND "
                "o.day_no BETWEEN recon_lines.day_no - :w AND recon_lines.day_no + :w",
          w=w, **p)
    _exec(conn, "UPDATE recon_lines SET category = 'missing_ours' WHERE statement_id = :s "
                "AND category IS NULL", **p)
    _exec(conn, "DELETE FROM recon_items WHERE statement_id = :s", **p)
    now = ctx.clock.now_us()
    # Lines: the partner moved their amount; what differs from ours goes to suspense
    # against the custody reserve. Transit fares move no bank money: nothing to park.
    _exec(conn, "INSERT INTO recon_items (statement_id, line_id, source, partner, category, "
                "kind, direction, reference, their_amount_fen, our_amount_fen, suspense_fen, "
                "counter, state, created_at) SELECT :s, id, source, :p, category, kind, "
                "direction, reference, amount_fen, our_amount_fen, "
                + ("0, 'none'" if src == "transit" else
                   "CASE WHEN direction = 'in' THEN amount_fen - COALESCE(our_amount_fen, 0) "
                   "ELSE COALESCE(our_amount_fen, 0) - amount_fen END, 'reserve'")
                + ", 'open', :now FROM recon_lines "
                "WHERE statement_id = :s AND category <> 'matched'", p=st.partner, now=now, **p)
    # Our records of the day the partner does not list: the money in clearing is parked
    # in suspense (a paid payout has left the reserve already: parked against it).
    _exec(conn, "INSERT INTO recon_items (statement_id, line_id, source, partner, category, "
                "kind, direction, reference, their_amount_fen, our_amount_fen, suspense_fen, "
                "counter, state, created_at) SELECT :s, NULL, '" + src + "', :p, 'missing_theirs', "
                "o.kind, o.direction, o.reference, NULL, o.amount_fen, "
                + ("0, 'none'" if src == "transit" else
                   "CASE WHEN o.direction = 'in' THEN -o.amount_fen ELSE o.amount_fen END, "
                   "CASE WHEN o.kind = 'payout' THEN 'reserve' ELSE 'clearing' END")
                + ", 'open', :now FROM recon_ours o WHERE "
                "o.statement_id = :s AND o.day_no = :day AND NOT EXISTS (SELECT 1 FROM "
                "recon_lines l WHERE l.source = :src AND l.reference = o.reference AND "
                "l.category IN ('matched', 'amount_mismatch'))",
          p=st.partner, now=now, day=day_no(day), **p)
    _exec(conn, "DELETE FROM recon_ours WHERE statement_id = :s", **p)
    conn.execute(update(statements).where(statements.c.id == sid).values(state="classified"))


def _clearing(ctx: Context, source: str, partner: str) -> int:
    if source == "carrier":
        return system_account(ctx.ledger, Code.CARRIER_RECEIVABLE, partner).id
    return system_account(ctx.ledger, Code.BANK_CLEARING, partner).id


def _accounts(ctx: Context, st: Any) -> tuple[int, int, int]:
    """(custody reserve, the partner's clearing account, recon suspense), opened if new."""
    return (system_account(ctx.ledger, Code.CUSTODY_RESERVE).id,
            _clearing(ctx, st.source, st.partner),
            system_account(ctx.ledger, Code.SUSPENSE, "recon").id)


def _requests(conn: Connection, st: Any, accounts: tuple[int, int, int]
              ) -> list[TransferRequest]:
    """The statement's transfers: those that fill the custody reserve first."""
    if st.source == "transit":
        return []
    sid, (reserve, clearing, suspense) = st.id, accounts
    conf: dict[str, int] = dict(conn.execute(text(
        "SELECT direction, COALESCE(SUM(our_amount_fen), 0) FROM recon_lines WHERE "
        "statement_id = :s AND category IN ('matched', 'amount_mismatch') AND kind <> "
        "'payout' GROUP BY direction"), {"s": sid}).all())
    reqs: list[TransferRequest] = []
    label = f"{st.source} {st.partner} statement {st.business_date} (#{sid})"
    if conf.get("in"):
        reqs.append(TransferRequest(f"recon:{sid}:confirm:in", reserve, clearing,
                                    int(conf["in"]), code=int(TransferCode.BANK_CONFIRM),
                                    ref=f"{label}: matched money in"))
    if conf.get("out"):
        reqs.append(TransferRequest(f"recon:{sid}:confirm:out", clearing, reserve,
                                    int(conf["out"]), code=int(TransferCode.BANK_CONFIRM),
                                    ref=f"{label}: matched money out"))
    rows = conn.execute(text(
        "SELECT counter, category, COALESCE(SUM(CASE WHEN suspense_fen > 0 THEN suspense_fen "
        "ELSE 0 END), 0), COALESCE(SUM(CASE WHEN suspense_fen < 0 THEN -suspense_fen ELSE 0 "
        "END), 0) FROM recon_items WHERE statement_id = :s AND counter <> 'none' "
        "GROUP BY counter, category ORDER BY counter, category"), {"s": sid}).all()
    for counter, category, plus, minus in rows:
        other = reserve if counter == "reserve" else clearing
        if plus:
            reqs.append(TransferRequest(f"recon:{sid}:suspense:{counter}:{category}:in", other,
                                        suspense, int(plus), code=int(TransferCode.RECON_SUSPENSE),
                                        ref=f"{label}: {category} to suspense"))
        if minus:
            reqs.append(TransferRequest(f"recon:{sid}:suspense:{counter}:{category}:out",
                                        suspense, other, int(minus),
                                        code=int(TransferCode.RECON_SUSPENSE),
                                        ref=f"{label}: {category} from suspense"))
    # Debits of the reserve (money into it) before credits, so its floor holds in between.
    return sorted(reqs, key=lambda r: r.credit_account_id == reserve)


def summarise(conn: Connection, st: Any) -> Summary:
    s = Summary(st.id, st.source, st.partner, st.business_date, st.state, st.lines)
    for cat, n, amount in conn.execute(text(
            "SELECT category, COUNT(*), COALESCE(SUM(amount_fen), 0) FROM recon_lines "
            "WHERE statement_id = :s GROUP BY category"), {"s": st.id}):
        s.counts[cat or "unclassified"] = int(n)
        s.amounts[cat or "unclassified"] = int(amount)
    n, amount = conn.execute(text(
        "SELECT COUNT(*), COALESCE(SUM(our_amount_fen), 0) FROM recon_items WHERE "
        "statement_id = :s AND category = 'missing_theirs'"), {"s": st.id}).one()
    if n:
        s.counts["missing_theirs"], s.amounts["missing_theirs"] = int(n), int(amount)
    s.suspense_fen = int(conn.execute(text(
        "SELECT COALESCE(SUM(suspense_fen), 0) FROM recon_items WHERE statement_id = :s"),
        {"s": st.id}).scalar_one())
    conf: dict[str, int] = dict(conn.execute(text(
        "SELECT direction, COALESCE(SUM(our_amount_fen), 0) FROM recon_lines WHERE "
        "statement_id = :s AND category IN ('matched', 'amount_mismatch') AND kind <> "
        "'payout' AND source <> 'transit' GROUP BY direction"), {"s": st.id}).all())
    s.confirmed_in_fen, s.confirmed_out_fen = int(conf.get("in", 0)), int(conf.get("out", 0))
    return s


def _load(conn: Connection, sid: int) -> Any:
    st = conn.execute(select(statements).where(statements.c.id == sid)).first()
    if st is None:
        raise StatementNotFoundError(f"statement {sid} does not exist")
    return st


def match(ctx: Context, statement_id: int, *,
          step: Callable[[str], None] | None = None) -> Summary:
    """Classify and post an imported statement. Idempotent: a posted statement is only
    summarised again. Raises StatementNotFoundError, CustodyReserveShortError."""
    say = step or (lambda _s: None)
    with ctx.engine.connect() as conn:
        st = _load(conn, statement_id)
    if st.state == "imported":
        say("matching")
        transit = _transit_merchant(ctx, st.partner) if st.source == "transit" else None
        with ctx.engine.begin() as conn:
            st = _load(conn, statement_id)
            if st.state == "imported":
                classify(ctx, conn, st, transit)
    with ctx.engine.connect() as conn:
        st = _load(conn, statement_id)
    if st.state == "classified":
        say("posting to the ledger")
        _post(ctx, st)
    with ctx.engine.connect() as conn:
        st = _load(conn, statement_id)
        summary = summarise(conn, st)
    return summary


def _post(ctx: Context, st: Any) -> None:
    accounts = _accounts(ctx, st) if st.source != "transit" else (0, 0, 0)
    with ctx.engine.connect() as conn:
        reqs = _requests(conn, st, accounts)
        summary = summarise(conn, st)

    def mark(conn: Connection, _results: Any = None) -> None:
        conn.execute(update(statements).where(statements.c.id == st.id,
                                              statements.c.state == "classified").values(
            state="posted", matched_at=ctx.clock.now_us(),
            summary_json=json.dumps({"counts": summary.counts, "amounts": summary.amounts})))

    if not reqs:
        with ctx.engine.begin() as conn:
            mark(conn)
        return
    try:
        post_recorded(ctx.ledger, reqs, record=mark)
    except AlreadyAppliedError:
        with ctx.engine.begin() as conn:
            mark(conn)
    except le.AccountOverdraftError as exc:
        raise CustodyReserveShortError(
            "posting this statement would take the custody reserve below zero; "
            f"reconcile the statements that bring money in first ({exc})") from None
