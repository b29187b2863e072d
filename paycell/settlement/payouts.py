"""Settlement payouts (结算, T+1): a batch per business date, the payout file for the bank,
and the bank's result file (docs/settlement.md has both formats).

A batch for date D pays every party (merchant or channel partner) whose settlement items of
D and earlier are unpaid, add up to more than zero, are covered by its payable balance, and
who is not on payout hold: one ``PAYOUT`` transfer payable -> ``bank_clearing:<bank>`` per
party, keyed by the payout's ``reference``, in the same transaction as the payout rows and
the items they take. The bank's answer per payout: paid (``PAYOUT_CONFIRM`` bank clearing ->
custody reserve) or returned (``PAYOUT_RETURN`` back to the payable; the items are unpaid
again and the party goes on hold until an operator clears it).
"""

from __future__ import annotations

import csv
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, inspect, select, text

from paycell.context import Context
from paycell.crypto import unseal
from paycell.funding.cash_common import insert_ignore
from paycell.ledger import TransferRequest, TransferResult
from paycell.ledger import errors as le
from paycell.ledger.chart import Code, TransferCode, system_account
from paycell.ledger.tables import accounts
from paycell.merchants.tables import merchants
from paycell.operators.model import Operator
from paycell.settlement.errors import (
    BatchNotFoundError,
    BusinessDateNotClearedError,
    HoldNotFoundError,
    PayoutFileInvalidError,
    PayoutResultConflictError,
    SettlementInvalidError,
)
from paycell.settlement.tables import batches, days, holds, items, payouts

FILE_TAG = "PAYCELL-PAYOUT"
RESULT_TAG = "PAYCELL-PAYOUT-RESULT"
VERSION = "1"
PURPOSES = {"merchant": "merchant-bank-account", "partner": "partner-bank-account"}
CHUNK = 500


@dataclass(frozen=True)
class Payee:
    party_kind: str
    party_id: int
    account_id: int
    amount_fen: int
    bank_name: str
    holder: str
    sealed: str
    last4: str


def reference_for(on: str, party_kind: str, party_id: int) -> str:
    """Stable: the batch date, the party kind's letter and id (``STL20261125M0000012``)."""
    return f"STL{on.replace('-', '')}{party_kind[0].upper()}{party_id:07d}"


def _bank_details(conn: Connection, kind: str, ids: list[int]) -> dict[int, Any]:
    if not ids:
        return {}
    if kind == "merchant":
        m = merchants
        rows = conn.execute(select(m.c.id, m.c.bank_name, m.c.bank_account_holder,
                                   m.c.bank_account_sealed, m.c.bank_account_last4)
                            .where(m.c.id.in_(ids)))
        return {r.id: r for r in rows}
    if not inspect(conn).has_table("partners"):
        return {}
    out = {}
    for i in range(0, len(ids), CHUNK):
        part = ids[i:i + CHUNK]
        rows = conn.execute(text(
            "SELECT id, bank_name, bank_account_holder, bank_account_sealed, "
            "bank_account_last4 FROM partners WHERE id IN (" + ",".join(
                str(int(x)) for x in part) + ")"))
        out.update({r.id: r for r in rows})
    return out


def _payees(conn: Connection, on: str) -> tuple[list[Payee], int]:
    """Who the batch pays and the highest item id it may take."""
    it = items
    max_id = conn.execute(select(func.max(it.c.id))).scalar() or 0
    rows = conn.execute(
        select(it.c.party_kind, it.c.party_id, it.c.account_id, func.sum(it.c.amount_fen))
        .where(it.c.payout_id.is_(None), it.c.business_date <= on, it.c.id <= max_id)
        .group_by(it.c.party_kind, it.c.party_id, it.c.account_id)
        .having(func.sum(it.c.amount_fen) > 0)
        .order_by(it.c.party_kind, it.c.party_id)).all()
    held = {(h.party_kind, h.party_id) for h in conn.execute(
        select(holds.c.party_kind, holds.c.party_id).where(holds.c.state == "open"))}
    acct_ids = sorted({r[2] for r in rows})
    avail: dict[int, int] = {}
    for i in range(0, len(acct_ids), CHUNK):
        a = accounts
        for aid, cp, dp, dpe in conn.execute(
                select(a.c.id, a.c.credits_posted, a.c.debits_posted, a.c.debits_pending)
                .where(a.c.id.in_(acct_ids[i:i + CHUNK]))):
            avail[aid] = cp - dp - dpe
    details = {k: _bank_details(conn, k, sorted({r[1] for r in rows if r[0] == k}))
               for k in PURPOSES}
    out = []
    for kind, pid, acct, total in rows:
        d = details[kind].get(pid)
        if (kind, pid) in held or d is None or avail.get(acct, 0) < int(total):
            continue
        out.append(Payee(kind, pid, acct, int(total), d.bank_name, d.bank_account_holder,
                         d.bank_account_sealed, d.bank_account_last4))
    return out, int(max_id)


def run_batch(ctx: Context, day: date, *, actor: str) -> dict[str, Any]:
    """Create the payout batch of ``day`` (cleared first) and write its file. Idempotent:
    the batch of a date is made once; asking again answers it (and rewrites a lost file).
    Raises :class:`BusinessDateNotClearedError`."""
    on = day.isoformat()
    with ctx.engine.connect() as conn:
        if conn.execute(select(days.c.business_date).where(days.c.business_date == on)
                        ).first() is None:
            raise BusinessDateNotClearedError(f"clear {on} before paying it out",
                                              business_date=on)
        existing = conn.execute(select(batches).where(batches.c.business_date == on)).first()
        if existing is None:
            payees, max_id = _payees(conn, on)
    if existing is None:
        _create(ctx, on, payees, max_id, actor)
    batch = get_batch(ctx, on)
    path = payout_path(ctx, on)
    if not path.exists():
        write_payout_file(ctx, batch["id"], path)
    batch["file"] = str(path)
    return batch


def _create(ctx: Context, on: str, payees: list[Payee], max_id: int, actor: str) -> None:
    bank = ctx.settings.settlement_bank
    clearing = system_account(ctx.ledger, Code.BANK_CLEARING, bank).id
    now = ctx.clock.now_us()
    reqs = [TransferRequest(f"payout:{reference_for(on, p.party_kind, p.party_id)}",
                            p.account_id, clearing, p.amount_fen, code=int(TransferCode.PAYOUT),
                            ref=f"settlement payout {on} {p.party_kind} {p.party_id}")
            for p in payees]

    def record(conn: Connection, results: list[TransferResult]) -> None:
        for r in results:
            if r.error is not None:
                raise r.error
        insert_ignore(conn, batches, business_date=on, bank=bank, payout_count=len(payees),
                      total_fen=sum(p.amount_fen for p in payees),
                      file_name=f"payout-{on}.csv", created_by=actor, created_at=now)
        batch_id = conn.execute(select(batches.c.id).where(batches.c.business_date == on)
                                ).scalar_one()
        for p in payees:
            ref = reference_for(on, p.party_kind, p.party_id)
            if conn.execute(select(payouts.c.id).where(payouts.c.reference == ref)).first():
                continue
            pid = conn.execute(payouts.insert().values(
                batch_id=batch_id, business_date=on, party_kind=p.party_kind,
                party_id=p.party_id, account_id=p.account_id, amount_fen=p.amount_fen,
                currency="CNY", reference=ref, bank=bank, bank_name=p.bank_name,
                bank_account_last4=p.last4, state="sent", created_at=now)
                .returning(payouts.c.id)).scalar_one()
            conn.execute(items.update().where(
                items.c.party_kind == p.party_kind, items.c.party_id == p.party_id,
                items.c.payout_id.is_(None), items.c.business_date <= on,
                items.c.id <= max_id).values(payout_id=pid))

    if reqs:
        ctx.ledger.post(reqs, hook=record)
    else:
        with ctx.engine.begin() as conn:
            record(conn, [])


def payout_path(ctx: Context, on: str) -> Path:
    return Path(ctx.settings.reports_dir) / "payouts" / f"payout-{on}.csv"


def get_batch(ctx: Context, on: str) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        row = conn.execute(select(batches).where(batches.c.business_date == on)).first()
    if row is None:
        raise BatchNotFoundError(f"no payout batch for {on}", business_date=on)
    return dict(row._mapping)


def write_payout_file(ctx: Context, batch_id: int, path: Path) -> Path:
    """The batch's payout file (format in docs/settlement.md), written atomically."""
    with ctx.engine.connect() as conn:
        b = conn.execute(select(batches).where(batches.c.id == batch_id)).one()
        rows = conn.execute(select(payouts).where(payouts.c.batch_id == batch_id)
                            .order_by(payouts.c.id)).all()
        details = {k: _bank_details(conn, k, [r.party_id for r in rows if r.party_kind == k])
                   for k in PURPOSES}
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temporary name of this writer's own: two runs at once (the test does that) both
    # write the same content, and each renames its own file into place.
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["H", FILE_TAG, VERSION, b.id, b.business_date, b.bank, len(rows),
                    sum(r.amount_fen for r in rows)])
        for n, r in enumerate(rows, 1):
            d = details[r.party_kind][r.party_id]
            number = unseal(ctx.settings.secret_key, PURPOSES[r.party_kind],
                            d.bank_account_sealed).decode()
            w.writerow(["D", n, r.reference, r.party_kind, r.party_id, d.bank_name,
                        d.bank_account_holder, number, r.amount_fen, r.currency])
        w.writerow(["T", len(rows), sum(r.amount_fen for r in rows)])
    os.replace(tmp, path)
    return path


# -- the bank's result file -----------------------------------------------------------------
@dataclass(frozen=True)
class ResultLine:
    reference: str
    amount_fen: int
    outcome: str  # paid | returned
    reason: str


def _lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        yield from enumerate(csv.reader(fh), 1)


def _parse(path: Path) -> Iterator[tuple[int, Any]]:
    """Header, detail lines and trailer, checked line by line (streamed)."""
    count = total = 0
    state = "header"
    for n, row in _lines(path):
        bad = PayoutFileInvalidError
        if state == "header":
            if len(row) != 6 or row[0] != "H" or row[1] != RESULT_TAG or row[2] != VERSION:
                raise bad(f"line {n}: expected H,{RESULT_TAG},{VERSION},batch,date,bank", line=n)
            state = "body"
            yield n, ("H", row[3], row[4], row[5])
        elif state == "body" and row and row[0] == "D":
            if len(row) != 5 or row[3] not in ("PAID", "RETURNED") or not row[2].isdigit():
                raise bad(f"line {n}: expected D,reference,amount_fen,PAID|RETURNED,reason",
                          line=n)
            if row[3] == "RETURNED" and not row[4].strip():
                raise bad(f"line {n}: a returned payout needs a reason", line=n)
            count += 1
            total += int(row[2])
            yield n, ResultLine(row[1], int(row[2]), row[3].lower(), row[4].strip()[:200])
        elif state == "body" and row and row[0] == "T":
            if len(row) != 3 or row[1] != str(count) or row[2] != str(total):
                raise bad(f"line {n}: the trailer says {row[1:]} but the file has {count} "
                          f"lines for {total} fen", line=n)
            state = "done"
        elif state == "done" and not any(row):
            continue
        else:
            raise bad(f"line {n}: unexpected line", line=n)
    if state != "done":
        raise PayoutFileInvalidError("the file ends without its trailer (T,count,total)")


def import_result(ctx: Context, path: Path) -> dict[str, int]:
    """Apply the bank's result file. Checked whole first (format, trailer, every reference,
    amount and earlier outcome), so a bad file changes nothing; then applied in chunks.
    Idempotent: a line already applied is skipped. Raises ``payout_result_invalid``,
    ``payout_not_found``, ``payout_result_conflict``."""
    if not path.is_file():
        raise SettlementInvalidError(f"no file {path}", field="file")
    chunk: list[ResultLine] = []
    for _, line in _parse(path):
        if isinstance(line, ResultLine):
            chunk.append(line)
            if len(chunk) >= CHUNK:
                _check(ctx, chunk)
                chunk = []
    _check(ctx, chunk)
    out = {"paid": 0, "returned": 0, "already": 0}
    chunk = []
    for _, line in _parse(path):
        if isinstance(line, ResultLine):
            chunk.append(line)
            if len(chunk) >= CHUNK:
                _apply(ctx, chunk, out)
                chunk = []
    _apply(ctx, chunk, out)
    return out


def _load(ctx: Context, lines: list[ResultLine]) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        return {r.reference: r for r in conn.execute(select(payouts).where(
            payouts.c.reference.in_([x.reference for x in lines])))}


def _check(ctx: Context, lines: list[ResultLine]) -> None:
    from paycell.settlement.errors import PayoutNotFoundError

    found = _load(ctx, lines)
    for x in lines:
        p = found.get(x.reference)
        if p is None:
            raise PayoutNotFoundError(f"no payout {x.reference}", reference=x.reference)
        if p.amount_fen != x.amount_fen:
            raise PayoutResultConflictError(
                f"payout {x.reference} was {p.amount_fen} fen, the file says {x.amount_fen}",
                reference=x.reference)
        if p.state not in ("sent", x.outcome):
            raise PayoutResultConflictError(f"payout {x.reference} is {p.state} already",
                                            reference=x.reference, state=p.state)


def _apply(ctx: Context, lines: list[ResultLine], out: dict[str, int]) -> None:
    found = _load(ctx, lines)
    todo = [x for x in lines if found[x.reference].state == "sent"]
    out["already"] += len(lines) - len(todo)
    if not todo:
        return
    clearing: dict[str, int] = {}
    reserve = system_account(ctx.ledger, Code.CUSTODY_RESERVE).id
    reqs = []
    for x in todo:
        p = found[x.reference]
        if p.bank not in clearing:
            clearing[p.bank] = system_account(ctx.ledger, Code.BANK_CLEARING, p.bank).id
        if x.outcome == "paid":
            reqs.append(TransferRequest(f"payout:{p.reference}:paid", clearing[p.bank], reserve,
                                        p.amount_fen, code=int(TransferCode.PAYOUT_CONFIRM),
                                        ref=f"bank paid {p.reference}"))
        else:
            reqs.append(TransferRequest(f"payout:{p.reference}:returned", clearing[p.bank],
                                        p.account_id, p.amount_fen,
                                        code=int(TransferCode.PAYOUT_RETURN),
                                        ref=f"bank returned {p.reference}: {x.reason}"[:200]))
    now = ctx.clock.now_us()

    def record(conn: Connection, results: list[TransferResult]) -> None:
        for r in results:
            if r.error is not None:
                raise r.error
        for x in todo:
            p = found[x.reference]
            done = conn.execute(payouts.update().where(payouts.c.id == p.id,
                                                       payouts.c.state == "sent").values(
                state=x.outcome, resolved_at=now,
                returned_reason=x.reason if x.outcome == "returned" else None)).rowcount
            if done != 1 or x.outcome == "paid":
                continue
            conn.execute(items.update().where(items.c.payout_id == p.id).values(payout_id=None))
            insert_ignore(conn, holds, party_kind=p.party_kind, party_id=p.party_id,
                          payout_id=p.id, reason=f"payout {p.reference} returned: {x.reason}"
                          [:200], state="open", created_at=now)
        with_batch = {found[x.reference].batch_id for x in todo}
        conn.execute(batches.update().where(batches.c.id.in_(with_batch)).values(result_at=now))

    try:
        ctx.ledger.post(reqs, hook=record)
    except le.AccountOverdraftError:
        raise PayoutResultConflictError(
            "the custody reserve does not cover the paid payouts: record the bank's "
            "confirmations of top-ups first") from None
    for x in todo:
        out[x.outcome] += 1


# -- holds --------------------------------------------------------------------------------
def list_holds(ctx: Context, *, state: str | None = "open") -> list[dict[str, Any]]:
    stmt = select(holds).order_by(holds.c.id)
    if state:
        stmt = stmt.where(holds.c.state == state)
    with ctx.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def clear_hold(ctx: Context, operator: Operator, hold_id: int, note: str) -> dict[str, Any]:
    """An operator clears a payout hold (the bank details were fixed): the party's unpaid
    items go into the next batch. Idempotent; ``payout_hold_not_found``."""
    note = (note or "").strip()
    if not 0 < len(note) <= 200:
        raise SettlementInvalidError("say what was fixed: a note of 1 to 200 characters",
                                     field="note")
    with ctx.engine.begin() as conn:
        row = conn.execute(select(holds).where(holds.c.id == hold_id)).first()
        if row is None:
            raise HoldNotFoundError(f"no payout hold {hold_id}")
        if row.state == "open":
            conn.execute(holds.update().where(holds.c.id == hold_id, holds.c.state == "open")
                         .values(state="cleared", cleared_by=operator.name, cleared_note=note,
                                 cleared_at=ctx.clock.now_us()))
        row = conn.execute(select(holds).where(holds.c.id == hold_id)).one()
    return dict(row._mapping)


def list_payouts(ctx: Context, *, business_date: str | None = None,
                 party_kind: str | None = None, party_id: int | None = None,
                 limit: int = 1000) -> list[dict[str, Any]]:
    stmt = select(payouts).order_by(payouts.c.id.desc()).limit(limit)
    if business_date:
        stmt = stmt.where(payouts.c.business_date == business_date)
    if party_kind:
        stmt = stmt.where(payouts.c.party_kind == party_kind)
    if party_id is not None:
        stmt = stmt.where(payouts.c.party_id == party_id)
    with ctx.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]
