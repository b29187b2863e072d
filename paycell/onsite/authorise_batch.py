"""Online authorisations of many taps at once: one transaction, a fixed number of statements.

:func:`authorise_batch` answers a batch of taps (any terminals) exactly as ``authorise.py``
answers them one after another, in order: the same checks, the same response codes, the same
rows. What needs no lock is read once for the batch before the transaction (merchants,
stores, cards) and checked tap by tap, with the cryptograms; then one transaction locks the
terminals, finds repeated messages, locks the cards, the wallet holders
(:class:`~paycell.subscribers.batch.Wallets`) and the accounts
(:class:`~paycell.ledger.posting.Posting`), decides each tap against the rows as the taps
before it left them (ATCs, PIN tries, limits, balances), and writes every authorisation, ATC,
count and transfer at once. The API's per-process desk (``api/desk.py``) hands it the taps
that arrived while the previous batch ran; :func:`authorise.authorise` is a batch of one.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from paycell.bulk import insert_many, select_any, update_many
from paycell.context import Context
from paycell.db import reading_each
from paycell.errors import PaycellError
from paycell.ledger import TransferRequest, chart
from paycell.ledger import errors as le
from paycell.ledger.posting import Posting
from paycell.merchants.service import to_merchant
from paycell.merchants.tables import merchants, stores
from paycell.onsite import authorise as au
from paycell.onsite import cards
from paycell.onsite.terminal_auth import Signed, TerminalNonceReplayedError, spend_nonces
from paycell.onsite.terminal_tables import authorisations, terminals
from paycell.onsite.terminals import Terminal, TerminalNotActiveError, require_open_batch
from paycell.subscribers.batch import Wallets
from paycell.subscribers.errors import (
    LimitExceededError,
    PinLockedError,
    SubscriberClosedError,
    SubscriberFrozenError,
)


@dataclass(frozen=True, slots=True)
class Tap:
    term: Terminal
    req: au.AuthRequest
    # The API's message, MAC checked: its nonce is spent and the terminal's state checked
    # in the batch's transaction (None: the caller authenticated the terminal already).
    signed: Signed | None = None

    @property
    def key(self) -> tuple[int, int, str]:
        return self.term.id, self.req.batch_no, self.req.stan


@dataclass(slots=True)
class _Pre:
    """What was found out before the transaction: a decline already, or what to approve."""

    digest: str
    card: cards.Card | None = None
    merchant: Any = None
    store_id: int = 0
    decline: au._Decline | None = None
    need_pin: bool = False
    genuine: bool = False  # the cryptogram is the card's: its ATC is checked in the batch


Answer = au.Authorisation | PaycellError


def authorise(ctx: Context, term: Terminal, req: au.AuthRequest) -> au.Authorisation:
    """Approve or decline one tap; the answer is always an :class:`Authorisation` (its
    ``response_code`` says which). Idempotent per (terminal, batch, STAN): the same message
    again answers the same. Raises only for malformed messages (``authorisation_invalid``)
    and a batch that is not open (``batch_not_open``). A batch of one."""
    answer = authorise_batch(ctx, [Tap(term, req)])[0]
    if isinstance(answer, PaycellError):
        raise answer
    return answer


def authorise_batch(ctx: Context, taps: Sequence[Tap]) -> list[Answer]:
    """An answer per tap, in order: its authorisation (approved or declined), or the
    PaycellError of a malformed message or a batch that is not open."""
    if len({t.key for t in taps}) != len(taps):
        raise ValueError("a batch holds each (terminal, batch, STAN) once")
    refused: list[Answer | None] = [None] * len(taps)  # by the prechecks
    pre = _prechecks(ctx, taps, refused)
    again: dict[int, Any] = {}  # a used STAN with another message: answered after the commit

    def work(conn: Connection) -> list[Answer | None]:
        again.clear()
        answers: list[Answer | None] = [None] * len(taps)
        _decide(ctx, conn, taps, pre, refused, answers, again)
        return answers

    answers = ctx.ledger.transaction(work)
    for i, row in again.items():
        t = taps[i]
        p = pre[i]
        assert p is not None
        answers[i] = au._answer_again(ctx, t.term, t.req, row, p.digest)
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


def _prechecks(ctx: Context, taps: Sequence[Tap], out: list[Answer | None]
               ) -> list[_Pre | None]:
    """``authorise``'s checks before its transaction, with one read per table for all."""
    codes = {t.req.merchant_code.strip().upper() for t in taps}
    with reading_each(ctx.engine) as conn:  # reads only: on SQLite, no wait for the write lock
        by_code = {r.code: to_merchant(r) for r in select_any(conn, merchants, "code", codes)}
        store_ids = {r.id: r for r in select_any(conn, stores, "id",
                                                 {t.term.store_id for t in taps})}
        by_pan = {(r.pan, r.psn): cards._card(r) for r in select_any(
            conn, cards.onsite_cards, "pan", {t.req.pan for t in taps})}
    ks = au._keystore(ctx)
    s = ctx.settings
    pre: list[_Pre | None] = [None] * len(taps)
    for i, t in enumerate(taps):
        term, req = t.term, t.req
        try:
            au._validate(req)
        except PaycellError as exc:
            out[i] = exc
            continue
        p = pre[i] = _Pre(req.digest())
        try:
            merchant = by_code.get(req.merchant_code.strip().upper())
            if merchant is None or merchant.id != term.merchant_id:
                raise au._Decline("03", "merchant_not_terminal_owner")
            store = store_ids.get(term.store_id)
            if store is None or store.merchant_id != merchant.id or store.code != req.store_code:
                raise au._Decline("03", "store_not_terminal_store")
            if merchant.state != "active" or merchant.payable_account_id is None:
                raise au._Decline("03", "merchant_not_active")
            p.merchant, p.store_id = merchant, int(store.id)
            if req.amount_fen > s.onsite_max_txn_fen:
                raise au._Decline("61", "amount_over_cap")
            card = p.card = by_pan.get((req.pan, req.psn))
            if card is None:
                raise au._Decline("14", "card_unknown")
            au._card_usable(card)
            if req.txn_type != "00" or req.currency != au.CNY:
                raise au._Decline("12", "not_a_cny_purchase")
            if not ks.verify_cryptogram(req.pan, req.psn, req.atc, req.txn_data().to_bytes(),
                                        bytes.fromhex(req.arqc)):
                raise au._Decline("05", "cryptogram_invalid")
            p.genuine = True
            if req.atc <= card.last_atc:  # early, so a replayed message never reaches the PIN
                raise au._Decline("05", "atc_replayed")
            if req.amount_fen > s.onsite_no_pin_limit_fen:
                if not req.pin:
                    raise au._Decline("55", "pin_required", verified=True)
                p.need_pin = True
        except au._Decline as d:
            p.decline = d
    return pre


def _decide(ctx: Context, conn: Connection, taps: Sequence[Tap], pre: list[_Pre | None],
            refused: list[Answer | None], out: list[Answer | None],
            again: dict[int, Any]) -> None:
    now = ctx.clock.now_us()
    # The terminal's authentication first, as for any other message: the nonce, then its
    # state (under its row lock, which every money message of a terminal takes first).
    signed = [(i, t.signed) for i, t in enumerate(taps) if t.signed is not None]
    replayed = {signed[k][0] for k in spend_nonces(conn, [s for _, s in signed], now)
                } if signed else set()
    term_rows = {r.id: r for r in select_any(
        conn, terminals, "id", {t.term.id for i, t in enumerate(taps) if i not in replayed},
        lock=True)}
    live = []
    for i, (t, p) in enumerate(zip(taps, pre, strict=True)):
        if i in replayed:
            out[i] = TerminalNonceReplayedError("this nonce was used already")
        elif t.signed is not None and (state := term_rows[t.term.id].state) != "active":
            out[i] = TerminalNotActiveError(f"terminal {t.term.terminal_id} is {state}",
                                            state=state)
        elif p is None:
            out[i] = refused[i]
        else:
            live.append((i, t, p))
    if not live:
        return
    a = authorisations
    seen = {(r.terminal_pk, r.batch_no, r.stan): r for r in select_any(
        conn, a, ("terminal_pk", "batch_no", "stan"), [t.key for _, t, _ in live])}
    new: list[tuple[int, Tap, _Pre]] = []
    for i, t, p in live:
        old = seen.get(t.key)
        if old is not None:  # a repeat is answered again, even once its batch has closed
            if old.msg_hash == p.digest:
                out[i] = au._auth(t.term, old)
            else:
                again[i] = old
            continue
        try:
            require_open_batch(term_rows[t.term.id], t.req.batch_no)
        except PaycellError as exc:
            out[i] = exc
            continue
        new.append((i, t, p))
    if not new:
        return
    oc = cards.onsite_cards
    locked = {r.id: r for r in select_any(
        conn, oc, "id", {p.card.id for *_, p in new if p.card is not None}, lock=True)}
    atc = {cid: int(r.last_atc) for cid, r in locked.items()}
    approvable = [p for *_, p in new if p.decline is None and p.card is not None]
    w = Wallets(conn, ctx.settings, now, ids=[p.card.subscriber_id for p in approvable
                                              if p.card is not None])
    posting = Posting(ctx.ledger, conn, {x for p in approvable if p.card is not None for x in (
        p.card.wallet_account_id, p.merchant.payable_account_id)})
    rows: list[dict[str, Any]] = []
    for _, t, p in new:
        try:
            # Against the ATCs as the taps before it left them (a decline that verified the
            # cryptogram records its ATC too), before anything else the card's answer says.
            if p.genuine and p.card is not None and t.req.atc <= atc[p.card.id]:
                raise au._Decline("05", "atc_replayed")
            if p.decline is not None:
                raise p.decline
            rows.append(_approve(ctx, w, posting, t, p, locked, atc, now))
        except au._Decline as d:
            card = p.card
            if d.verified and card is not None and t.req.atc > atc[card.id]:
                atc[card.id] = t.req.atc  # this cryptogram can never approve later
            rows.append(_declined(ctx, t, p, d, now))
    update_many(conn, oc, ("id",), ("last_atc",),
                [(cid, n) for cid, n in atc.items() if n != locked[cid].last_atc])
    w.write(conn)
    made = {(r.terminal_pk, r.batch_no, r.stan): r
            for r in insert_many(conn, a, rows, returning=True)}
    for i, t, _ in new:
        out[i] = au._auth(t.term, made[t.key])
    posting.finish()


def _approve(ctx: Context, w: Wallets, posting: Posting, t: Tap, p: _Pre,
             locked: dict[int, Any], atc: dict[int, int], now: int) -> dict[str, Any]:
    """``authorise._approve``'s checks in the batch's transaction; the approved row."""
    term, req, card = t.term, t.req, p.card
    assert card is not None
    au._card_usable(cards._card(locked[card.id]))
    sid = card.subscriber_id
    if p.need_pin:
        try:
            w.verify_pin(sid, req.pin or "")
        except PinLockedError:
            raise au._Decline("75", "pin_locked", verified=True) from None
        except SubscriberClosedError:
            raise au._Decline("57", "wallet_closed", verified=True) from None
        except PaycellError:
            raise au._Decline("55", "pin_invalid", verified=True) from None
    try:
        w.check_outflow(sid, req.amount_fen)
    except (SubscriberFrozenError, SubscriberClosedError):
        raise au._Decline("57", "wallet_not_active", verified=True) from None
    except LimitExceededError as exc:
        raise au._Decline("61", f"limit_{exc.detail.get('limit')}", verified=True) from None
    tid = au.transfer_id(term, req.batch_no, req.stan)
    result = posting.post(TransferRequest(
        id=tid, debit_account_id=card.wallet_account_id,
        credit_account_id=p.merchant.payable_account_id, amount=req.amount_fen,
        code=int(chart.TransferCode.POS_PURCHASE),
        ref=f"POS {term.terminal_id} batch {req.batch_no} STAN {req.stan}"))
    if isinstance(result.error, le.AccountOverdraftError):
        raise au._Decline("51", "insufficient_funds", verified=True)
    if result.error is not None:  # a closed wallet or payable account
        raise au._Decline("05", f"ledger_{result.error.code}"[:40], verified=True)
    w.count_outflow(sid, req.amount_fen)
    atc[card.id] = req.atc
    arpc = au._keystore(ctx).make_arpc(req.pan, req.psn, req.atc, bytes.fromhex(req.arqc),
                                       au.ARC_APPROVED).hex().upper()
    return {**au._row_values(term, req, card, p.store_id, p.digest, now), "state": "approved",
            "response_code": au.APPROVED, "reason": None,
            "auth_code": f"{secrets.randbelow(10**6):06d}", "arpc": arpc, "transfer_id": tid}


def _declined(ctx: Context, t: Tap, p: _Pre, d: au._Decline, now: int) -> dict[str, Any]:
    req = t.req
    arpc = None
    if d.verified:
        arpc = au._keystore(ctx).make_arpc(req.pan, req.psn, req.atc, bytes.fromhex(req.arqc),
                                           d.code.encode()).hex().upper()
    return {**au._row_values(t.term, req, p.card, t.term.store_id, p.digest, now),
            "state": "declined", "response_code": d.code, "reason": d.reason[:40],
            "auth_code": None, "arpc": arpc, "transfer_id": None}
