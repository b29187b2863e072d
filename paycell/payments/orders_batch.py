"""Creating payment orders, many merchants' at once: one transaction, a fixed number of
statements.

:func:`create_batch` answers a batch of :class:`CreateCommand` as ``orders.create_order``
would one after another: each request is validated, an ``out_trade_no`` used before answers
its first order (or ``out_trade_no_conflict``), the merchant must be payable and the payer
an open wallet; then every new order, its first event and its SMS confirmation code are
inserted with one statement per table, and the texts with their codes recorded in the
same transaction (handed to the SMSC after the commit).
``create_order`` is a batch of one; the API's ``order-create`` desk hands it the requests
that arrived while the previous batch ran (no two with the same ``out_trade_no``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from paycell.batching import After, Ahead, around
from paycell.bulk import insert_many, select_any
from paycell.context import Context
from paycell.errors import PaycellError
from paycell.gateways.sms import commit_then_text, record_all
from paycell.merchants.model import Merchant
from paycell.money import format_amount
from paycell.payments import confirmations, rules
from paycell.payments.errors import (
    MerchantNotPayableError,
    PayerNotFoundError,
    PaymentInvalidError,
)
from paycell.payments.orders import (
    Order,
    OrderRequest,
    _same_or_conflict,
    to_order,
    validate,
)
from paycell.payments.tables import payment_events, payment_orders, sms_confirmations
from paycell.subscribers.errors import InvalidMsisdnError
from paycell.subscribers.service import mask_msisdn, normalise_msisdn
from paycell.subscribers.tables import subscribers


@dataclass(frozen=True, slots=True)
class CreateCommand:
    merchant: Merchant
    req: OrderRequest
    text_code: bool = True  # text the payer a summary with a confirmation code


@dataclass(slots=True)
class Created:
    order: Order | None = None
    created: bool = False  # False: the first order of this out_trade_no, answered again
    error: PaycellError | None = None
    answered: Any = None  # by the caller's ``ahead`` (a replayed request)
    code: str | None = None  # to text after the commit

    def unwrap(self) -> tuple[Order, bool]:
        if self.error is not None:
            raise self.error
        assert self.order is not None
        return self.order, self.created




def create_batch(ctx: Context, cmds: Sequence[CreateCommand], *, ahead: Ahead | None = None,
                 after: After | None = None) -> list[Created]:
    """Create ``cmds``' orders in one transaction; an answer per command, in order."""

    def work(conn: Connection) -> tuple[list[Created], Callable[[], None]]:
        done = create_in(ctx, conn, cmds, ahead=ahead, after=after)
        return done, record_codes(ctx, conn, cmds, done)

    return commit_then_text(ctx.ledger, work)


def create_in(ctx: Context, conn: Connection, cmds: Sequence[CreateCommand], *,
              ahead: Ahead | None = None, after: After | None = None) -> list[Created]:
    """:func:`create_batch`'s orders in the caller's transaction (``conn``); the caller
    records their texts with :func:`record_codes`."""
    if len({(c.merchant.id, c.req.out_trade_no) for c in cmds}) != len(cmds):
        raise ValueError("a batch holds each (merchant, out_trade_no) once")
    checked: list[OrderRequest | PaycellError] = [_checked(ctx, c) for c in cmds]
    out = [Created() for _ in cmds]

    def run(todo: list[int]) -> None:
        for i in todo:
            if isinstance(req := checked[i], PaycellError):
                out[i].error = req
        fine = [(i, cmds[i], req) for i in todo
                if isinstance(req := checked[i], OrderRequest)]
        if fine:
            _create(ctx, conn, fine, out)

    return around(conn, out, run, ahead, after)


def record_codes(ctx: Context, conn: Connection, cmds: Sequence[CreateCommand],
                 done: Sequence[Created]) -> Callable[[], None]:
    """Record, in the orders' transaction, a text to each new order's payer with its
    summary and confirmation code: a text exists if and only if its order does. Call what
    this returns after the commit (it hands the texts to the SMSC)."""
    minutes = max(1, ctx.settings.sms_code_ttl_s // 60)
    return record_all(ctx.sms, conn, [
        (o.payer_msisdn, rules.summary_text(c.merchant.name, o.subject,
                                            format_amount(o.amount_fen), d.code, minutes))
        for c, d in zip(cmds, done, strict=True)
        if d.code is not None and (o := d.order) is not None])


def _checked(ctx: Context, c: CreateCommand) -> OrderRequest | PaycellError:
    """The request as stored (the payer's number normalised), or why it is refused."""
    try:
        validate(ctx, c.req)
        try:
            payer = normalise_msisdn(c.req.payer_msisdn)
        except InvalidMsisdnError as exc:
            raise PaymentInvalidError(exc.message, field="payer_msisdn") from None
    except PaycellError as exc:
        return exc
    return OrderRequest(**{**c.req.fingerprint(), "payer_msisdn": payer})


def _create(ctx: Context, conn: Connection,
            todo: list[tuple[int, CreateCommand, OrderRequest]], out: list[Created]) -> None:
    t = payment_orders
    old = {(r.merchant_id, r.out_trade_no): r for r in select_any(
        conn, t, ("merchant_id", "out_trade_no"),
        [(c.merchant.id, req.out_trade_no) for _, c, req in todo])}
    payers = {r.msisdn: r for r in select_any(conn, subscribers, "msisdn",
                                              {req.payer_msisdn for *_, req in todo})
              if r.state != "closed"}
    now = ctx.clock.now_us()
    rows: list[dict[str, Any]] = []
    new: list[tuple[int, CreateCommand, dict[str, Any]]] = []
    for i, c, req in todo:
        m = c.merchant
        try:
            first = old.get((m.id, req.out_trade_no))
            if first is not None:
                out[i].order = _same_or_conflict(first, req.fingerprint())
                continue
            if m.state != "active" or m.payable_account_id is None:
                raise MerchantNotPayableError("this merchant cannot take payments now",
                                              state=m.state)
            payer = payers.get(req.payer_msisdn)
            if payer is None:
                raise PayerNotFoundError(
                    f"no paycell wallet holds {mask_msisdn(req.payer_msisdn)}",
                    field="payer_msisdn")
        except PaycellError as exc:
            out[i].error = exc
            continue
        expires_in = req.expires_in_s or ctx.settings.payment_default_expiry_s
        row = dict(
            trade_no="P" + secrets.token_hex(10), merchant_id=m.id, store_id=req.store_id,
            out_trade_no=req.out_trade_no,
            request_json=json.dumps(req.fingerprint(), sort_keys=True), kind=req.kind,
            amount_fen=req.amount_fen, currency=req.currency, subject=req.subject.strip(),
            payer_subscriber_id=payer.id, payer_msisdn=payer.msisdn,
            notify_url=req.notify_url, return_url=req.return_url, state=rules.WAITING,
            refunded_fen=0, expires_at=now + expires_in * 1_000_000, created_at=now,
            updated_at=now)
        rows.append(row)
        new.append((i, c, row))
    if not rows:
        return
    made = {r.trade_no: r for r in insert_many(conn, t, rows, returning=True)}
    events, codes = [], []
    for i, c, row in new:
        order = to_order(made[row["trade_no"]])
        out[i].order, out[i].created = order, True
        events.append({"order_id": order.id, "from_state": None, "to_state": rules.WAITING,
                       "actor": f"merchant:{c.merchant.id}", "note": None, "at": now})
        if c.text_code:
            out[i].code, fields = confirmations.new_order_code(ctx, order, now)
            codes.append(fields)
    insert_many(conn, payment_events, events)
    insert_many(conn, sms_confirmations, codes)
