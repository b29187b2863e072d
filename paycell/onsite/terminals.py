"""POS terminals: registration to a merchant's store (with the deposit), states, sign-on and
batches. The MAC every terminal message carries is checked in ``terminal_auth``.

A terminal is ``T`` + 8 digits. Its key (16 bytes, a double-length 3DES key for the ISO
9797-1 retail MAC) is made at registration, shown once, and kept sealed. Registering costs
the merchant ``settings.terminal_deposit_fen``: one transfer ``terminal-deposit:<id>`` from
its payable to its MERCHANT_DEPOSIT account (``TERMINAL_DEPOSIT``), in the same transaction
as the terminal's row; retiring the terminal returns it (``terminal-deposit:<id>:return``).

States: ``active`` <-> ``suspended`` -> ``retired`` (final). Only an active terminal may
sign on or send messages. Sign-on opens a batch (or answers the open one); closing the batch
at the end of the day freezes its totals.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from paycell.context import Context
from paycell.crypto import seal, unseal
from paycell.errors import ConflictError, ForbiddenError, NotFoundError
from paycell.funding.cash_common import AlreadyAppliedError, locking, post_recorded
from paycell.ledger import TransferRequest, TransferResult, chart
from paycell.ledger import errors as le
from paycell.merchants.errors import MerchantNotFoundError, StoreNotFoundError
from paycell.merchants.service import find_by_code, get_merchant, lock_merchant
from paycell.merchants.tables import stores
from paycell.onsite.terminal_tables import authorisations, batches, pos_refunds, terminals

KEY_PURPOSE = "onsite-terminal-key"
STATES = ("active", "suspended", "retired")
_MOVES = {"suspend": ("active", "suspended"), "resume": ("suspended", "active"),
          "retire": ("active", "retired")}


# -- errors ------------------------------------------------------------------------------------
class TerminalNotFoundError(NotFoundError):
    code = "terminal_not_found"


class TerminalStateError(ConflictError):
    code = "terminal_state_invalid"


class TerminalNotActiveError(ForbiddenError):
    code = "terminal_not_active"


class TerminalDepositInsufficientError(ConflictError):
    code = "terminal_deposit_insufficient"


class MerchantNotActiveForTerminalError(ConflictError):
    code = "merchant_not_active"


class BatchNotOpenError(ConflictError):
    code = "batch_not_open"


# -- model -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Terminal:
    id: int
    terminal_id: str
    merchant_id: int
    store_id: int
    state: str
    deposit_fen: int
    deposit_account_id: int
    batch_no: int
    batch_open: bool
    signed_on_at: int | None
    created_by: str
    created_at: int


@dataclass(frozen=True)
class Registered:
    """A new terminal and its key (hex), which is shown in this answer only."""

    terminal: Terminal
    key_hex: str


@dataclass(frozen=True)
class Batch:
    terminal_id: str
    batch_no: int
    state: str
    opened_at: int
    closed_at: int | None


@dataclass(frozen=True)
class BatchTotals:
    """What one batch did. ``approved``: taps still standing (refunded ones included);
    ``reversed``/``voided``: approvals undone; ``refunded``: refunds made in this batch;
    ``net_fen`` = approved - refunded."""

    terminal_id: str
    batch_no: int
    state: str
    approved_count: int
    approved_fen: int
    reversed_count: int
    reversed_fen: int
    voided_count: int
    voided_fen: int
    refunded_count: int
    refunded_fen: int
    declined_count: int
    balanced: bool | None = None

    @property
    def net_fen(self) -> int:
        return self.approved_fen - self.refunded_fen

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in (
            "approved_count", "approved_fen", "reversed_count", "reversed_fen",
            "voided_count", "voided_fen", "refunded_count", "refunded_fen")}


def to_terminal(r: Any) -> Terminal:
    return Terminal(r.id, r.terminal_id, r.merchant_id, r.store_id, r.state, r.deposit_fen,
                    r.deposit_account_id, r.batch_no, bool(r.batch_open), r.signed_on_at,
                    r.created_by, r.created_at)


def lock_terminal(conn: Connection, terminal_pk: int) -> Any:
    """The terminal's row, locked for this transaction (every money message of a terminal
    takes this lock first, so one terminal's messages are applied one after the other)."""
    return conn.execute(locking(conn, select(terminals).where(terminals.c.id == terminal_pk))
                        ).one()


# Every terminal message reads its terminal: built once, so SQLAlchemy neither rebuilds the
# statement nor recomputes its cache key per message.
_BY_TERMINAL_ID = select(terminals).where(terminals.c.terminal_id == bindparam("tid"))


def terminal_row(ctx: Context, terminal_id: str) -> Any:
    """The terminal's row (its sealed key included), or None."""
    with ctx.engine.connect() as conn:
        return conn.execute(_BY_TERMINAL_ID, {"tid": terminal_id.strip().upper()}).first()


def get_terminal(ctx: Context, terminal_id: str) -> Terminal:
    """The terminal ``T...``; :class:`TerminalNotFoundError` if none."""
    row = terminal_row(ctx, terminal_id)
    if row is None:
        raise TerminalNotFoundError(f"no terminal {terminal_id}")
    return to_terminal(row)


def list_terminals(ctx: Context, *, merchant_id: int | None = None,
                   state: str | None = None, limit: int = 200) -> list[Terminal]:
    stmt = select(terminals).order_by(terminals.c.id.desc()).limit(limit)
    if merchant_id is not None:
        stmt = stmt.where(terminals.c.merchant_id == merchant_id)
    if state is not None:
        stmt = stmt.where(terminals.c.state == state)
    with ctx.engine.connect() as conn:
        return [to_terminal(r) for r in conn.execute(stmt)]


def terminal_key(ctx: Context, terminal: Terminal) -> bytes:
    with ctx.engine.connect() as conn:
        sealed = conn.execute(select(terminals.c.key_sealed).where(
            terminals.c.id == terminal.id)).scalar_one()
    return unseal(ctx.settings.secret_key, KEY_PURPOSE, sealed)


# -- registration --------------------------------------------------------------------------------
class _IdTaken(Exception):
    pass


def deposit_account(ctx: Context, merchant_id: int) -> int:
    return chart.open_account(ctx.ledger, f"merchant_deposit:{merchant_id}",
                              chart.Code.MERCHANT_DEPOSIT, owner_ref=f"merchant:{merchant_id}").id


def register_terminal(ctx: Context, merchant_code: str, store_code: str, actor: str, *,
                      request_key: str | None = None) -> Registered:
    """Register a new terminal to the merchant's open store and take the deposit.

    The terminal's row and the deposit transfer commit together or not at all. Refused:
    ``merchant_not_found``, ``store_not_found`` (or closed), ``merchant_not_active``,
    ``terminal_deposit_insufficient`` (``required_fen``, ``available_fen``) when the
    merchant's payable balance cannot cover the deposit. With a ``request_key`` (the API
    passes its Idempotency-Key) a repeat answers the terminal the first call made, key
    included, even if the first call's answer was lost; without one every call is a new
    terminal.
    """
    if request_key is not None:
        found = _registered(ctx, request_key)
        if found is not None:
            return found
    merchant = find_by_code(ctx, merchant_code)
    if merchant is None:
        raise MerchantNotFoundError(f"no merchant {merchant_code}")
    with ctx.engine.connect() as conn:
        store = conn.execute(select(stores).where(stores.c.merchant_id == merchant.id,
                                                  stores.c.code == store_code)).first()
    if store is None or store.state != "open":
        raise StoreNotFoundError(f"merchant {merchant.code} has no open store {store_code!r}")
    if merchant.state != "active" or merchant.payable_account_id is None:
        raise MerchantNotActiveForTerminalError(f"merchant {merchant.code} is {merchant.state}",
                                                state=merchant.state)
    amount = ctx.settings.terminal_deposit_fen
    dep_id = deposit_account(ctx, merchant.id)
    key = secrets.token_bytes(16)
    sealed = seal(ctx.settings.secret_key, KEY_PURPOSE, key)
    for _ in range(20):
        tid = f"T{secrets.randbelow(10**8):08d}"
        try:
            _register(ctx, tid, merchant.id, store.id, merchant.payable_account_id, dep_id,
                      amount, sealed, actor, request_key)
        except _IdTaken:
            continue
        except IntegrityError:
            # A concurrent call with the same request key committed first: its terminal.
            found = _registered(ctx, request_key) if request_key is not None else None
            if found is None:
                raise
            return found
        return Registered(get_terminal(ctx, tid), key.hex().upper())
    raise ConflictError("could not find a free terminal id; try again")


def _registered(ctx: Context, request_key: str) -> Registered | None:
    with ctx.engine.connect() as conn:
        row = conn.execute(select(terminals).where(
            terminals.c.request_key == request_key)).first()
    if row is None:
        return None
    key = unseal(ctx.settings.secret_key, KEY_PURPOSE, row.key_sealed)
    return Registered(to_terminal(row), key.hex().upper())


def _register(ctx: Context, tid: str, merchant_id: int, store_id: int, payable_id: int,
              dep_id: int, amount: int, sealed: str, actor: str,
              request_key: str | None) -> None:
    now = ctx.clock.now_us()
    req = TransferRequest(id=f"terminal-deposit:{tid}", debit_account_id=payable_id,
                          credit_account_id=dep_id, amount=amount,
                          code=int(chart.TransferCode.TERMINAL_DEPOSIT),
                          ref=f"deposit for terminal {tid}")

    def before(conn: Connection) -> None:
        if conn.execute(select(terminals.c.id).where(terminals.c.terminal_id == tid)).first():
            raise _IdTaken
        row = lock_merchant(conn, merchant_id)
        if row.state != "active":
            raise MerchantNotActiveForTerminalError(f"the merchant is {row.state}",
                                                    state=row.state)

    def record(conn: Connection, _results: list[TransferResult]) -> None:
        conn.execute(terminals.insert().values(
            terminal_id=tid, merchant_id=merchant_id, store_id=store_id, key_sealed=sealed,
            state="active", deposit_fen=amount, deposit_account_id=dep_id, batch_no=0,
            batch_open=0, created_by=actor[:80], created_at=now, updated_at=now,
            request_key=request_key))

    try:
        post_recorded(ctx.ledger, [req], before=before, record=record)
    except AlreadyAppliedError:
        raise _IdTaken from None  # a terminal id used once (and retired) is never reused
    except le.AccountOverdraftError as exc:
        raise TerminalDepositInsufficientError(
            f"the merchant's payable balance cannot cover the {amount / 100:.2f} CNY terminal "
            "deposit", required_fen=amount, available_fen=exc.detail.get("available_fen")
        ) from None


def change_state(ctx: Context, terminal_id: str, action: str, actor: str) -> Terminal:
    """``suspend``, ``resume`` or ``retire`` the terminal. Idempotent (already there: the
    terminal as it is); ``terminal_state_invalid`` otherwise. Retiring closes its open batch
    and returns the deposit to the merchant's payable in the same transaction."""
    if action not in _MOVES:
        raise TerminalStateError(f"unknown action {action!r}", action=action)
    frm, to = _MOVES[action]
    term = get_terminal(ctx, terminal_id)
    if term.state == to:
        return term
    if term.state != frm and not (action == "retire" and term.state == "suspended"):
        raise TerminalStateError(f"terminal {term.terminal_id} is {term.state}",
                                 state=term.state, action=action)
    now = ctx.clock.now_us()

    def apply(conn: Connection) -> None:
        row = lock_terminal(conn, term.id)
        if row.state == to:
            return
        if row.state != term.state:
            raise TerminalStateError(f"terminal {term.terminal_id} is {row.state}",
                                     state=row.state, action=action)
        if to == "retired" and row.batch_open:
            _close(ctx, conn, term, row.batch_no, None, now)
        conn.execute(update(terminals).where(terminals.c.id == term.id)
                     .values(state=to, updated_at=now, batch_open=0 if to == "retired"
                             else row.batch_open))

    if to != "retired":
        with ctx.engine.begin() as conn:
            apply(conn)
        return get_terminal(ctx, term.terminal_id)
    merchant = get_merchant(ctx, term.merchant_id)
    req = TransferRequest(id=f"terminal-deposit:{term.terminal_id}:return",
                          debit_account_id=term.deposit_account_id,
                          credit_account_id=merchant.payable_account_id or 0,
                          amount=term.deposit_fen,
                          code=int(chart.TransferCode.TERMINAL_DEPOSIT),
                          ref=f"deposit of retired terminal {term.terminal_id}")
    with contextlib.suppress(AlreadyAppliedError):  # returned already: nothing to do
        post_recorded(ctx.ledger, [req], before=None, record=lambda conn, _r: apply(conn))
    return get_terminal(ctx, term.terminal_id)


# -- sign-on and batches -------------------------------------------------------------------------
def _batch(terminal_id: str, r: Any) -> Batch:
    return Batch(terminal_id, r.batch_no, r.state, r.opened_at, r.closed_at)


def sign_on(ctx: Context, terminal: Terminal) -> Batch:
    """Sign the terminal on: the open batch if there is one (a repeated sign-on answers the
    same batch), otherwise a new one, numbered one more than the last. Refused for a
    terminal that is not active (``terminal_not_active``)."""
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        row = lock_terminal(conn, terminal.id)
        if row.state != "active":
            raise TerminalNotActiveError(f"terminal {row.terminal_id} is {row.state}",
                                         state=row.state)
        batch_no = row.batch_no
        if not row.batch_open:
            batch_no = row.batch_no % 999_999 + 1  # six digits, as ISO 8583 field 60 has
            conn.execute(batches.insert().values(terminal_pk=terminal.id, batch_no=batch_no,
                                                 state="open", opened_at=now))
        conn.execute(update(terminals).where(terminals.c.id == terminal.id).values(
            batch_no=batch_no, batch_open=1, signed_on_at=now, updated_at=now))
        b = conn.execute(select(batches).where(batches.c.terminal_pk == terminal.id,
                                               batches.c.batch_no == batch_no)).one()
    return _batch(terminal.terminal_id, b)


def require_open_batch(row: Any, batch_no: int) -> None:
    """Raise ``batch_not_open`` unless ``batch_no`` is the terminal's open batch (``row``:
    the terminal's locked row)."""
    if not row.batch_open or row.batch_no != batch_no:
        raise BatchNotOpenError(
            f"batch {batch_no} is not open on terminal {row.terminal_id}; sign on first",
            open_batch_no=row.batch_no if row.batch_open else None)


def _totals(conn: Connection, terminal: Terminal, batch_no: int, state: str) -> BatchTotals:
    a = authorisations
    rows = conn.execute(select(a.c.state, func.count(), func.coalesce(func.sum(a.c.amount_fen), 0))
                        .where(a.c.terminal_pk == terminal.id, a.c.batch_no == batch_no,
                               a.c.auth_code.is_not(None))
                        .group_by(a.c.state)).all()
    by = {r[0]: (int(r[1]), int(r[2])) for r in rows}
    declined = conn.execute(select(func.count()).where(
        a.c.terminal_pk == terminal.id, a.c.batch_no == batch_no,
        a.c.state == "declined")).scalar_one()
    r = conn.execute(select(func.count(), func.coalesce(func.sum(pos_refunds.c.amount_fen), 0))
                     .where(pos_refunds.c.terminal_pk == terminal.id,
                            pos_refunds.c.batch_no == batch_no)).one()
    z = (0, 0)
    return BatchTotals(terminal.terminal_id, batch_no, state,
                       *by.get("approved", z), *by.get("reversed", z), *by.get("voided", z),
                       int(r[0]), int(r[1]), int(declined))


def batch_totals(ctx: Context, terminal: Terminal, batch_no: int | None = None) -> BatchTotals:
    """The totals of one batch (default: the current or last one), from the platform's
    records. ``terminal_not_found``-like ``batch_not_open`` if there is no such batch."""
    batch_no = terminal.batch_no if batch_no is None else batch_no
    with ctx.engine.connect() as conn:
        b = conn.execute(select(batches).where(batches.c.terminal_pk == terminal.id,
                                               batches.c.batch_no == batch_no)).first()
        if b is None:
            raise BatchNotOpenError(f"terminal {terminal.terminal_id} has no batch {batch_no}")
        totals = _totals(conn, terminal, batch_no, b.state)
    balanced = None if b.balanced is None else bool(b.balanced)
    return BatchTotals(**{**totals.__dict__, "balanced": balanced})


def _close(ctx: Context, conn: Connection, terminal: Terminal, batch_no: int,
           claimed: dict[str, int] | None, now: int) -> BatchTotals:
    totals = _totals(conn, terminal, batch_no, "closed")
    balanced = None if claimed is None else all(
        claimed.get(k, 0) == v for k, v in totals.counts().items())
    conn.execute(update(batches).where(batches.c.terminal_pk == terminal.id,
                                       batches.c.batch_no == batch_no)
                 .values(state="closed", closed_at=now, totals_json=json.dumps(totals.counts()),
                         balanced=None if balanced is None else int(balanced)))
    conn.execute(update(terminals).where(terminals.c.id == terminal.id)
                 .values(batch_open=0, updated_at=now))
    return BatchTotals(**{**totals.__dict__, "balanced": balanced})


def close_batch(ctx: Context, terminal: Terminal, batch_no: int,
                claimed: dict[str, int] | None = None) -> BatchTotals:
    """End of day: close the open batch ``batch_no`` and answer its totals. ``claimed``
    (the terminal's own counts, keys as :meth:`BatchTotals.counts`) is compared and the
    answer says whether they ``balanced``. Idempotent: closing a closed batch answers its
    totals. After it no message may use the batch; the next sign-on opens another."""
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        row = lock_terminal(conn, terminal.id)
        b = conn.execute(select(batches).where(batches.c.terminal_pk == terminal.id,
                                               batches.c.batch_no == batch_no)).first()
        if b is not None and b.state == "closed":
            pass
        else:
            require_open_batch(row, batch_no)
            return _close(ctx, conn, terminal, batch_no, claimed, now)
    return batch_totals(ctx, terminal, batch_no)
