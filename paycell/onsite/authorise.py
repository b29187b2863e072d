"""Online authorisation of a tap at a POS terminal, and its reversal, void and refund.

A terminal (already authenticated by its message MAC, see ``terminals.authenticate``)
sends the card's data and ARQC. Checks, in order, each failure a *decline* with an
ISO 8583-like response code (``RESPONSE_CODES``), written as an authorisation row, no money
moved: the merchant and store are the terminal's own (03); the amount is within the
per-tap cap (61); the card is known (14), active and not hot-listed (62, 57 while only
issued); it is a purchase in CNY (12); the ARQC is the card's over the transaction data
(05); above the no-PIN limit the wallet PIN came and is right (55, 75 when PIN use is
locked); then in one transaction that moves the money: the ATC is above any seen (05), the
wallet's state (57) and tier limits (61), its balance (51). Approved: one transfer
``pos:<terminal>:<batch>:<stan>`` wallet -> the merchant's payable (``POS_PURCHASE``), an
ARPC (ARC ``3030``) and a six-digit auth code. A declined message whose ARQC was the card's
gets an ARPC over its own response code, so the card knows the issuer said no.
Reversal, void and refund are in ``pos_returns.py``.

Every message is keyed (terminal, batch, STAN): the same message again answers the first
answer; another message with a used STAN is declined 94 (duplicate). A reversal (the
terminal timed out) undoes an approval exactly once; one that arrives before its original
leaves a tombstone, and the late original is declined 94. A void is a reversal the
cashier asks for in the same batch. A refund (any later batch) moves part or all of the
purchase back: ``posr:<terminal>:<batch>:<stan>`` merchant payable -> wallet
(``POS_REFUND``), never more than the purchase in total.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from paycell.context import Context
from paycell.errors import ConflictError, InvalidRequestError, NotFoundError, PaycellError
from paycell.funding.cash_common import AlreadyAppliedError, locking, post_recorded
from paycell.ledger import TransferRequest, TransferResult, chart
from paycell.ledger import errors as le
from paycell.merchants.service import find_by_code
from paycell.merchants.tables import stores
from paycell.onsite import cards, emv
from paycell.onsite.keystore import KeyStore
from paycell.onsite.terminal_tables import authorisations
from paycell.onsite.terminals import Terminal, lock_terminal, require_open_batch
from paycell.subscribers.errors import (
    LimitExceededError,
    PinLockedError,
    SubscriberClosedError,
    SubscriberFrozenError,
)
from paycell.subscribers.limits import guard_outflow
from paycell.subscribers.service import verify_pin

APPROVED = "00"
RESPONSE_CODES = {
    "00": "approved", "03": "invalid merchant", "05": "do not honour", "12": "invalid "
    "transaction", "14": "invalid card number", "51": "insufficient funds", "55": "incorrect "
    "PIN", "57": "transaction not permitted to cardholder", "61": "exceeds amount limit",
    "62": "restricted card", "75": "PIN tries exceeded", "94": "duplicate transmission",
}
ARC_APPROVED = bytes.fromhex("3030")  # "00"
CNY = "0156"


# -- errors (protocol refusals, not declines) --------------------------------------------------
class AuthorisationInvalidError(InvalidRequestError):
    code = "authorisation_invalid"


class AuthorisationNotFoundError(NotFoundError):
    code = "authorisation_not_found"


class AuthorisationStateError(ConflictError):
    code = "authorisation_state_invalid"


class RefundExceedsPurchaseError(ConflictError):
    code = "refund_exceeds_purchase"


class RefundConflictError(ConflictError):
    code = "refund_stan_conflict"


class MerchantBalanceInsufficientError(ConflictError):
    code = "merchant_balance_insufficient"


# -- messages ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuthRequest:
    """An authorisation request (0100) as the terminal sends it. The TxnData fields are the
    card's CDOL1 data the ARQC covers; ``pin`` (the wallet PIN) only above the no-PIN limit."""

    merchant_code: str
    store_code: str
    batch_no: int
    stan: str
    pan: str
    psn: str
    amount_fen: int
    atc: int
    unpredictable: str
    arqc: str
    date: str
    other_fen: int = 0
    country: str = CNY
    currency: str = CNY
    tvr: str = "0000000000"
    txn_type: str = "00"
    aip: str = "7C00"
    cvr: str = "03A00000"
    pin: str | None = None

    def txn_data(self) -> emv.TxnData:
        return emv.TxnData(amount_fen=self.amount_fen, other_fen=self.other_fen,
                           country=self.country, tvr=self.tvr, currency=self.currency,
                           date=self.date, txn_type=self.txn_type,
                           unpredictable=self.unpredictable, aip=self.aip, atc=self.atc,
                           cvr=self.cvr)

    def digest(self) -> str:
        """What identifies the message for duplicate detection (the PIN left out)."""
        fields = {k: v for k, v in asdict(self).items() if k != "pin"}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Authorisation:
    id: int | None  # None: a 94 answer to a different message under a used STAN
    terminal_id: str
    batch_no: int
    stan: str
    state: str  # approved | declined | reversed | voided
    response_code: str | None
    reason: str | None
    auth_code: str | None
    arpc: str | None
    pan_masked: str | None
    atc: int | None
    amount_fen: int
    refunded_fen: int
    created_at: int

    @property
    def approved(self) -> bool:
        return self.state == "approved" and self.response_code == APPROVED


@dataclass(frozen=True)
class PosRefund:
    id: int
    authorisation_id: int
    terminal_id: str
    batch_no: int
    stan: str
    amount_fen: int
    transfer_id: str
    created_at: int


class _Decline(Exception):
    def __init__(self, code: str, reason: str, *, verified: bool = False) -> None:
        super().__init__(reason)
        self.code, self.reason, self.verified = code, reason, verified


class _Exists(Exception):
    pass


def _auth(term: Terminal, r: Any) -> Authorisation:
    return Authorisation(r.id, term.terminal_id, r.batch_no, r.stan, r.state, r.response_code,
                         r.reason, r.auth_code, r.arpc, r.pan_masked, r.atc, r.amount_fen,
                         r.refunded_fen, r.created_at)


def _find(conn: Connection, term: Terminal, batch_no: int, stan: str, *,
          lock: bool = False) -> Any:
    a = authorisations
    stmt = select(a).where(a.c.terminal_pk == term.id, a.c.batch_no == batch_no,
                           a.c.stan == stan)
    return conn.execute(locking(conn, stmt) if lock else stmt).first()


def mask_pan(pan: str) -> str:
    return pan[:6] + "*" * max(0, len(pan) - 10) + pan[-4:] if len(pan) > 10 else "****"


def transfer_id(term: Terminal, batch_no: int, stan: str) -> str:
    return f"pos:{term.terminal_id}:{batch_no}:{stan}"


def _keystore(ctx: Context) -> KeyStore:
    ks: KeyStore | None = getattr(ctx, "_onsite_keystore", None)
    if ks is None:
        ks = KeyStore(ctx.settings)
        ctx._onsite_keystore = ks  # type: ignore[attr-defined]
    return ks


def _validate(req: AuthRequest) -> None:
    def bad(field: str, what: str) -> None:
        raise AuthorisationInvalidError(f"{field}: {what}", field=field)

    if not (len(req.stan) == 6 and req.stan.isdigit()):
        bad("stan", "six digits")
    if not (req.pan.isdigit() and 12 <= len(req.pan) <= 19):
        bad("pan", "12 to 19 digits")
    if not (len(req.psn) == 2 and req.psn.isdigit()):
        bad("psn", "two digits")
    if not (isinstance(req.amount_fen, int) and req.amount_fen > 0):
        bad("amount_fen", "a positive whole number of fen")
    if not 0 <= req.atc <= 0xFFFF:
        bad("atc", "0 to 65535")
    try:
        req.txn_data().to_bytes()
    except ValueError as exc:
        bad("txn_data", str(exc))
    try:
        arqc = bytes.fromhex(req.arqc)
    except ValueError:
        arqc = b""
    if len(arqc) != 8:
        bad("arqc", "16 hex digits")


# -- authorisation ----------------------------------------------------------------------------
def authorise(ctx: Context, term: Terminal, req: AuthRequest) -> Authorisation:
    """Approve or decline one tap; the answer is always an :class:`Authorisation` (its
    ``response_code`` says which). Idempotent per (terminal, batch, STAN): the same message
    again answers the same. Raises only for malformed messages (``authorisation_invalid``)
    and a batch that is not open (``batch_not_open``)."""
    _validate(req)
    digest = req.digest()
    # A repeated message is not looked up here: a first message is the common case, and a
    # repeat finds its answer where a new one would be written (``_approve``'s transaction,
    # ``_decline``'s), having failed the ATC check on the way if its card approved it.
    card: cards.Card | None = None
    try:
        merchant, store_id = _acceptor(ctx, term, req)
        if req.amount_fen > ctx.settings.onsite_max_txn_fen:
            raise _Decline("61", "amount_over_cap")
        card = cards.find_by_pan(ctx, req.pan, req.psn)
        if card is None:
            raise _Decline("14", "card_unknown")
        _card_usable(card)
        if req.txn_type != "00" or req.currency != CNY:
            raise _Decline("12", "not_a_cny_purchase")
        ks = _keystore(ctx)
        if not ks.verify_cryptogram(req.pan, req.psn, req.atc, req.txn_data().to_bytes(),
                                    bytes.fromhex(req.arqc)):
            raise _Decline("05", "cryptogram_invalid")
        if req.atc <= card.last_atc:  # early, so a replayed message never reaches the PIN
            raise _Decline("05", "atc_replayed")
        if req.amount_fen > ctx.settings.onsite_no_pin_limit_fen:
            _check_pin(ctx, card, req.pin)
        return _approve(ctx, term, req, card, merchant, store_id, digest)
    except _Decline as d:
        return _decline(ctx, term, req, digest, d, card)


def _answer_again(ctx: Context, term: Terminal, req: AuthRequest, old: Any,
                  digest: str) -> Authorisation:
    if old.msg_hash == digest:
        return _auth(term, old)
    if old.msg_hash is None and old.state == "reversed":  # the reversal came first
        now = ctx.clock.now_us()
        with ctx.engine.begin() as conn:
            conn.execute(update(authorisations).where(
                authorisations.c.id == old.id, authorisations.c.late_original_at.is_(None))
                .values(late_original_at=now, response_code="94", reason="reversed_before",
                        pan_masked=mask_pan(req.pan), atc=req.atc, updated_at=now))
            old = _find(conn, term, req.batch_no, req.stan)
        return _auth(term, old)
    return Authorisation(None, term.terminal_id, req.batch_no, req.stan, "declined", "94",
                         "stan_reused", None, None, mask_pan(req.pan), req.atc,
                         req.amount_fen, 0, ctx.clock.now_us())


def _acceptor(ctx: Context, term: Terminal, req: AuthRequest) -> tuple[Any, int]:
    """The terminal's merchant and store, if the message names them; decline 03 if not."""
    merchant = find_by_code(ctx, req.merchant_code)
    if merchant is None or merchant.id != term.merchant_id:
        raise _Decline("03", "merchant_not_terminal_owner")
    with ctx.engine.connect() as conn:
        store = conn.execute(select(stores).where(stores.c.merchant_id == merchant.id,
                                                  stores.c.code == req.store_code)).first()
    if store is None or store.id != term.store_id:
        raise _Decline("03", "store_not_terminal_store")
    if merchant.state != "active" or merchant.payable_account_id is None:
        raise _Decline("03", "merchant_not_active")
    return merchant, int(store.id)


def _card_usable(card: cards.Card) -> None:
    if card.hot_listed:
        raise _Decline("62", "card_hot_listed")
    if card.state == "issued":
        raise _Decline("57", "card_not_activated")
    if card.state != "active":
        raise _Decline("62", f"card_{card.state}")


def _check_pin(ctx: Context, card: cards.Card, pin: str | None) -> None:
    if not pin:
        raise _Decline("55", "pin_required", verified=True)
    try:
        verify_pin(ctx, card.subscriber_id, pin)
    except PinLockedError:
        raise _Decline("75", "pin_locked", verified=True) from None
    except SubscriberClosedError:
        raise _Decline("57", "wallet_closed", verified=True) from None
    except PaycellError:
        raise _Decline("55", "pin_invalid", verified=True) from None


def _approve(ctx: Context, term: Terminal, req: AuthRequest, card: cards.Card, merchant: Any,
             store_id: int, digest: str) -> Authorisation:
    tid = transfer_id(term, req.batch_no, req.stan)
    money = TransferRequest(
        id=tid, debit_account_id=card.wallet_account_id,
        credit_account_id=merchant.payable_account_id, amount=req.amount_fen,
        code=int(chart.TransferCode.POS_PURCHASE),
        ref=f"POS {term.terminal_id} batch {req.batch_no} STAN {req.stan}")
    now = ctx.clock.now_us()
    arpc = _keystore(ctx).make_arpc(req.pan, req.psn, req.atc, bytes.fromhex(req.arqc),
                                    ARC_APPROVED).hex().upper()
    auth_code = f"{secrets.randbelow(10**6):06d}"

    def before(conn: Connection) -> None:
        row = lock_terminal(conn, term.id)
        require_open_batch(row, req.batch_no)
        if _find(conn, term, req.batch_no, req.stan) is not None:
            raise _Exists
        try:
            locked = cards.check_and_advance_atc(conn, card.id, req.atc)
        except cards.AtcReplayedError:
            raise _Decline("05", "atc_replayed") from None
        _card_usable(locked)
        try:
            guard_outflow(conn, card.subscriber_id, req.amount_fen, now, settings=ctx.settings)
        except (SubscriberFrozenError, SubscriberClosedError):
            raise _Decline("57", "wallet_not_active", verified=True) from None
        except LimitExceededError as exc:
            raise _Decline("61", f"limit_{exc.detail.get('limit')}", verified=True) from None

    made: list[Any] = []

    def record(conn: Connection, _results: list[TransferResult]) -> None:
        made[:] = [conn.execute(authorisations.insert().values(
            **_row_values(term, req, card, store_id, digest, now), state="approved",
            response_code=APPROVED, reason=None, auth_code=auth_code, arpc=arpc,
            transfer_id=tid).returning(*authorisations.c)).one()]

    try:
        post_recorded(ctx.ledger, [money], before=before, record=record)
        return _auth(term, made[0])  # what this call committed is what it wrote
    except (_Exists, AlreadyAppliedError):
        pass
    except le.AccountOverdraftError:
        raise _Decline("51", "insufficient_funds", verified=True) from None
    except le.LedgerError as exc:  # a closed wallet or payable account
        raise _Decline("05", f"ledger_{exc.code}"[:40], verified=True) from None
    with ctx.engine.connect() as conn:
        row = _find(conn, term, req.batch_no, req.stan)
    if row.msg_hash != digest:
        return _answer_again(ctx, term, req, row, digest)
    return _auth(term, row)


def _row_values(term: Terminal, req: AuthRequest, card: cards.Card | None,
                store_id: int, digest: str, now: int) -> dict[str, Any]:
    return dict(terminal_pk=term.id, batch_no=req.batch_no, stan=req.stan, msg_hash=digest,
                card_id=None if card is None else card.id, pan_masked=mask_pan(req.pan),
                atc=req.atc, amount_fen=req.amount_fen, currency="CNY",
                subscriber_id=None if card is None else card.subscriber_id,
                merchant_id=term.merchant_id, store_id=store_id, created_at=now,
                updated_at=now)


def _decline(ctx: Context, term: Terminal, req: AuthRequest, digest: str, d: _Decline,
             card: cards.Card | None) -> Authorisation:
    """Write the decline (no money); a card whose ARQC verified has its ATC recorded too,
    so the same cryptogram cannot be replayed for approval later."""
    now = ctx.clock.now_us()
    arpc = None
    if d.verified:
        arc = d.code.encode()
        arpc = _keystore(ctx).make_arpc(req.pan, req.psn, req.atc, bytes.fromhex(req.arqc),
                                        arc).hex().upper()
    with ctx.engine.begin() as conn:
        row = lock_terminal(conn, term.id)
        old = _find(conn, term, req.batch_no, req.stan)
        if old is None:  # a repeat is answered again even once its batch has closed
            require_open_batch(row, req.batch_no)
            if d.verified and card is not None:
                try:
                    with conn.begin_nested():
                        cards.check_and_advance_atc(conn, card.id, req.atc)
                except cards.AtcReplayedError:
                    pass
            conn.execute(authorisations.insert().values(
                **_row_values(term, req, card, term.store_id, digest, now), state="declined",
                response_code=d.code, reason=d.reason[:40], arpc=arpc))
            old = _find(conn, term, req.batch_no, req.stan)
    if old.msg_hash != digest:
        return _answer_again(ctx, term, req, old, digest)
    return _auth(term, old)


def list_authorisations(ctx: Context, term: Terminal, batch_no: int | None = None
                        ) -> list[Authorisation]:
    a = authorisations
    stmt = select(a).where(a.c.terminal_pk == term.id).order_by(a.c.id)
    if batch_no is not None:
        stmt = stmt.where(a.c.batch_no == batch_no)
    with ctx.engine.connect() as conn:
        return [_auth(term, r) for r in conn.execute(stmt)]
