"""Online authorisation of a tap at a POS terminal, and its reversal, void and refund.

This module holds the messages, the answers and the rules; the use case that applies them
(one tap or many at once) is ``authorise_batch.py``.

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
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from paycell.context import Context
from paycell.errors import ConflictError, InvalidRequestError, NotFoundError
from paycell.funding.cash_common import locking
from paycell.onsite import cards, emv
from paycell.onsite.keystore import KeyStore
from paycell.onsite.terminal_tables import authorisations
from paycell.onsite.terminals import Terminal

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


# -- authorisation (the use case is authorise_batch.py) -------------------------------------
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


def _card_usable(card: cards.Card) -> None:
    if card.hot_listed:
        raise _Decline("62", "card_hot_listed")
    if card.state == "issued":
        raise _Decline("57", "card_not_activated")
    if card.state != "active":
        raise _Decline("62", f"card_{card.state}")


def _row_values(term: Terminal, req: AuthRequest, card: cards.Card | None,
                store_id: int, digest: str, now: int) -> dict[str, Any]:
    return dict(terminal_pk=term.id, batch_no=req.batch_no, stan=req.stan, msg_hash=digest,
                card_id=None if card is None else card.id, pan_masked=mask_pan(req.pan),
                atc=req.atc, amount_fen=req.amount_fen, currency="CNY",
                subscriber_id=None if card is None else card.subscriber_id,
                merchant_id=term.merchant_id, store_id=store_id, created_at=now,
                updated_at=now)


def list_authorisations(ctx: Context, term: Terminal, batch_no: int | None = None
                        ) -> list[Authorisation]:
    a = authorisations
    stmt = select(a).where(a.c.terminal_pk == term.id).order_by(a.c.id)
    if batch_no is not None:
        stmt = stmt.where(a.c.batch_no == batch_no)
    with ctx.engine.connect() as conn:
        return [_auth(term, r) for r in conn.execute(stmt)]
