"""Undoing taps: reversal (the terminal timed out), void (the cashier, same batch) and
refund (a later batch, never more than the purchase). See ``authorise.py`` for the keys.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from paycell.context import Context
from paycell.funding.cash_common import AlreadyAppliedError, post_recorded
from paycell.ledger import TransferRequest, TransferResult, chart
from paycell.ledger import errors as le
from paycell.merchants.service import get_merchant
from paycell.onsite import cards
from paycell.onsite.authorise import (
    Authorisation,
    AuthorisationInvalidError,
    AuthorisationNotFoundError,
    AuthorisationStateError,
    MerchantBalanceInsufficientError,
    PosRefund,
    RefundConflictError,
    RefundExceedsPurchaseError,
    _auth,
    _Exists,
    _find,
)
from paycell.onsite.terminal_tables import authorisations, pos_refunds
from paycell.onsite.terminals import Terminal, lock_terminal, require_open_batch
from paycell.subscribers.limits import lock_subscribers, release_outflow


# -- reversal and void ------------------------------------------------------------------------
def reverse(ctx: Context, term: Terminal, batch_no: int, stan: str, amount_fen: int,
            *, void: bool = False) -> Authorisation:
    """Undo the authorisation (``batch_no``, ``stan``) of this terminal's open batch:
    merchant payable -> wallet, the same amount, ``<purchase id>:rev`` (``:void`` for a
    void), and give the wallet's usage back. Idempotent: it restores the balance once
    however often it comes. A reversal of a declined message changes nothing. A reversal
    whose original never arrived records a tombstone, so the original, if it arrives late,
    is declined 94. A void needs the original approved. Refused: ``batch_not_open``,
    ``authorisation_state_invalid`` (refunded already; a void of a missing or declined
    one), ``merchant_balance_insufficient``."""
    if not (len(stan) == 6 and stan.isdigit()):
        raise AuthorisationInvalidError("stan: six digits", field="stan")
    kind = "voided" if void else "reversed"
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        require_open_batch(lock_terminal(conn, term.id), batch_no)
        row = _find(conn, term, batch_no, stan)
        if row is None:
            if void:
                raise AuthorisationNotFoundError(f"no authorisation {batch_no}/{stan}")
            conn.execute(authorisations.insert().values(
                terminal_pk=term.id, batch_no=batch_no, stan=stan, msg_hash=None,
                state="reversed", amount_fen=max(amount_fen, 0),
                currency="CNY", merchant_id=term.merchant_id, store_id=term.store_id,
                reason="reversed_before", created_at=now, updated_at=now, reversed_at=now))
            return _auth(term, _find(conn, term, batch_no, stan))
    if row.state in ("reversed", "voided"):
        return _auth(term, row)
    if row.state == "declined":
        if void:
            raise AuthorisationStateError("a declined authorisation has nothing to void",
                                          state=row.state)
        return _auth(term, row)
    if row.refunded_fen:
        raise AuthorisationStateError("the purchase was refunded in part already",
                                      state="refunded")
    merchant = get_merchant(ctx, term.merchant_id)
    money = TransferRequest(
        id=f"{row.transfer_id}:{'void' if void else 'rev'}",
        debit_account_id=merchant.payable_account_id or 0,
        credit_account_id=cards.get_card(ctx, row.card_id).wallet_account_id,
        amount=row.amount_fen, code=int(chart.TransferCode.POS_REFUND),
        ref=f"{'void' if void else 'reversal'} of {row.transfer_id}")

    def before(conn: Connection) -> None:
        require_open_batch(lock_terminal(conn, term.id), batch_no)
        cur = _find(conn, term, batch_no, stan)
        if cur.state != "approved" or cur.refunded_fen:
            raise _Exists
        lock_subscribers(conn, cur.subscriber_id)  # before the ledger's account locks

    def record(conn: Connection, _results: list[TransferResult]) -> None:
        conn.execute(update(authorisations).where(authorisations.c.id == row.id).values(
            state=kind, updated_at=now, **{f"{kind}_at": now}))
        release_outflow(conn, row.subscriber_id, row.amount_fen, row.created_at)

    try:
        post_recorded(ctx.ledger, [money], before=before, record=record)
    except (_Exists, AlreadyAppliedError):
        pass
    except le.AccountOverdraftError:
        raise MerchantBalanceInsufficientError(
            "the merchant's payable balance cannot cover the reversal") from None
    with ctx.engine.connect() as conn:
        return _auth(term, _find(conn, term, batch_no, stan))


# -- refund -----------------------------------------------------------------------------------
def _refund(term: Terminal, r: Any) -> PosRefund:
    return PosRefund(r.id, r.authorisation_id, term.terminal_id, r.batch_no, r.stan,
                     r.amount_fen, r.transfer_id, r.created_at)


def refund(ctx: Context, term: Terminal, *, batch_no: int, stan: str, original_batch_no: int,
           original_stan: str, amount_fen: int) -> PosRefund:
    """Refund ``amount_fen`` of an approved purchase made at this terminal, in the open
    batch under the refund's own STAN: merchant payable -> the wallet (``POS_REFUND``).
    Idempotent per (batch, STAN); the same STAN with another amount is
    ``refund_stan_conflict``. Refused with nothing moved: ``refund_exceeds_purchase``
    (``refundable_fen``), ``authorisation_not_found``, ``authorisation_state_invalid``
    (declined, reversed, voided), ``merchant_balance_insufficient``, ``batch_not_open``."""
    if not (isinstance(amount_fen, int) and amount_fen > 0):
        raise AuthorisationInvalidError("amount_fen: a positive whole number of fen",
                                        field="amount_fen")
    with ctx.engine.connect() as conn:
        orig = _find(conn, term, original_batch_no, original_stan)
        done = conn.execute(select(pos_refunds).where(
            pos_refunds.c.terminal_pk == term.id, pos_refunds.c.batch_no == batch_no,
            pos_refunds.c.stan == stan)).first()
    if done is not None:
        if orig is None or done.authorisation_id != orig.id or done.amount_fen != amount_fen:
            raise RefundConflictError(f"STAN {stan} of batch {batch_no} was another refund")
        return _refund(term, done)
    if orig is None:
        raise AuthorisationNotFoundError(f"no authorisation {original_batch_no}/{original_stan}")
    if orig.state != "approved":
        raise AuthorisationStateError(f"the authorisation is {orig.state}", state=orig.state)
    merchant = get_merchant(ctx, term.merchant_id)
    tid = f"posr:{term.terminal_id}:{batch_no}:{stan}"
    money = TransferRequest(
        id=tid, debit_account_id=merchant.payable_account_id or 0,
        credit_account_id=cards.get_card(ctx, orig.card_id).wallet_account_id,
        amount=amount_fen, code=int(chart.TransferCode.POS_REFUND),
        ref=f"refund of {orig.transfer_id}")
    now = ctx.clock.now_us()

    def before(conn: Connection) -> None:
        require_open_batch(lock_terminal(conn, term.id), batch_no)
        cur = _find(conn, term, original_batch_no, original_stan, lock=True)
        if cur.state != "approved":
            raise AuthorisationStateError(f"the authorisation is {cur.state}", state=cur.state)
        if cur.refunded_fen + amount_fen > cur.amount_fen:
            raise RefundExceedsPurchaseError(
                "a refund cannot exceed what is left of the purchase",
                refundable_fen=cur.amount_fen - cur.refunded_fen)

    def record(conn: Connection, _results: list[TransferResult]) -> None:
        conn.execute(pos_refunds.insert().values(
            authorisation_id=orig.id, terminal_pk=term.id, batch_no=batch_no, stan=stan,
            amount_fen=amount_fen, transfer_id=tid, created_at=now))
        conn.execute(update(authorisations).where(authorisations.c.id == orig.id).values(
            refunded_fen=authorisations.c.refunded_fen + amount_fen, updated_at=now))

    try:
        post_recorded(ctx.ledger, [money], before=before, record=record)
    except AlreadyAppliedError:
        pass
    except le.AccountOverdraftError:
        raise MerchantBalanceInsufficientError(
            "the merchant's payable balance cannot cover this refund") from None
    with ctx.engine.connect() as conn:
        row = conn.execute(select(pos_refunds).where(pos_refunds.c.transfer_id == tid)).one()
    return _refund(term, row)
