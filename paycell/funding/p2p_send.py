"""Sending P2P transfers, many callers' at once: one transaction, a fixed number of statements.

:func:`send_batch` runs a batch of :class:`SendCommand` in one database transaction, and
answers each command exactly as if the commands had run one after another in order: the
PIN, the sender's state and tier limits, the recipient's balance cap and the wallet's
balance are checked against the rows as the earlier commands of the batch left them. A
refused command writes nothing but its PIN failure count; the others go through.

The statements do not grow with the batch: the records already made (a repeat), the
subscribers (senders by id, recipients by number) locked in id order, the usage counters,
the ledger's accounts (:class:`~paycell.ledger.posting.Posting`), then the writes (PIN
counts, usage, P2P records, the ledger) and one commit. The API's per-process desk
(``api/desk.py``) hands it the transfers that arrived while the previous batch ran, so
under load N requests share one round of statements; :func:`send_transfer`, the one-caller
entry (SMS, the demo, tests), is a batch of one.

``ahead`` and ``after`` let the caller add its own rows to the transaction: the API claims
the batch's Idempotency-Keys in ``ahead`` (a replay is answered without running) and stores
the answers in ``after``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from paycell.batching import After, Ahead, around
from paycell.bulk import insert_many, select_any
from paycell.clock import from_us
from paycell.context import Context
from paycell.errors import PaycellError
from paycell.funding import cash_rules as rules
from paycell.funding.cash_tables import p2p_transfers
from paycell.funding.p2p import (
    NOTE_MAX,
    InsufficientBalanceError,
    P2PAmountInvalidError,
    P2PToSelfError,
    P2PTransfer,
    _p2p,
    claimable_account_id,
)
from paycell.gateways.sms import commit_then_text, record_all
from paycell.ledger import TransferFlags, TransferRequest, chart
from paycell.ledger import errors as le
from paycell.ledger.posting import Posting
from paycell.money import format_amount
from paycell.subscribers.batch import Wallets
from paycell.subscribers.service import (
    Subscriber,
    mask_msisdn,
    normalise_msisdn,
)

_ROW_KEYS = ("ref", "sender_id", "sender_msisdn", "recipient_msisdn", "amount_fen", "note",
             "created_at", "state", "recipient_id", "resolved_at", "expires_at")

@dataclass(frozen=True, slots=True)
class SendCommand:
    """One P2P transfer to send: what :func:`send_transfer` takes, unchecked."""

    sender: Subscriber
    to_msisdn: str
    amount_fen: int
    pin: str
    note: str | None = None
    request_key: str | None = None
    confirmed_by_code: bool = False  # an SMS TRF confirmed by a texted code, not the PIN

    @property
    def ref(self) -> str | None:
        """The transfer's business id when it is derived from a request key (else random)."""
        return None if self.request_key is None else rules.p2p_ref(self.sender.id,
                                                                    self.request_key)


@dataclass(slots=True)
class Sent:
    """A command's answer: the transfer (made now or before), or why not; ``answered`` when
    the caller's ``ahead`` answered it without running."""

    transfer: P2PTransfer | None = None
    error: PaycellError | None = None
    answered: Any = None
    created: bool = False

    def unwrap(self) -> P2PTransfer:
        if self.error is not None:
            raise self.error
        assert self.transfer is not None
        return self.transfer




def send_transfer(
    ctx: Context, sender: Subscriber, to_msisdn: str, amount_fen: int, pin: str,
    note: str | None = None, *, request_key: str | None = None,
    confirmed_by_code: bool = False,
) -> P2PTransfer:
    """Send ``amount_fen`` from the sender's wallet to the holder of ``to_msisdn``.

    Idempotent per (sender, ``request_key``): a repeat returns the first transfer. Checks
    the PIN first (``pin_invalid``, counted; ``pin_locked``), then the sender's state and
    tier limits (``subscriber_frozen``, ``limit_exceeded``) and the recipient's balance cap;
    :class:`InsufficientBalanceError` if the wallet does not cover it,
    :class:`P2PToSelfError` for one's own number. A frozen recipient still receives. To a
    number without a wallet the money is held for ``p2p_claim_timeout_s`` (state
    ``pending_claim``) and the number gets an SMS.
    """
    cmd = SendCommand(sender, to_msisdn, amount_fen, pin, note, request_key,
                      confirmed_by_code)
    return send_batch(ctx, [cmd])[0].unwrap()


def send_batch(ctx: Context, cmds: Sequence[SendCommand], *, ahead: Ahead | None = None,
               after: After | None = None) -> list[Sent]:
    """Run ``cmds`` in one transaction; an answer per command, in order (see the module
    docstring). Their refs must differ (the desk keeps repeats for a later batch)."""
    refs = [c.ref for c in cmds if c.ref is not None]
    if len(set(refs)) != len(refs):
        raise ValueError("a batch holds each request key once")
    claimable = claimable_account_id(ctx)  # opened (once) outside the batch's transaction

    def work(conn: Connection) -> tuple[list[Sent], Callable[[], None]]:
        sent = _attempt(ctx, conn, cmds, ahead, after, claimable)
        # The invitations, in the transfers' transaction: one exists iff its transfer does.
        return sent, record_all(ctx.sms, conn, [
            (t.recipient_msisdn,
             f"{mask_msisdn(c.sender.msisdn)} sent you {format_amount(t.amount_fen)} CNY "
             f"with paycell. Open a paycell wallet with this number before "
             f"{from_us(t.expires_at):%Y-%m-%d %H:%M} UTC to receive it; "
             "after that it goes back to the sender.")
            for c, s in zip(cmds, sent, strict=True)
            if s.created and (t := s.transfer) is not None and t.state == "pending_claim"
            and t.expires_at])

    return commit_then_text(ctx.ledger, work)


def _attempt(ctx: Context, conn: Connection, cmds: Sequence[SendCommand],
             ahead: Ahead | None, after: After | None, claimable: int) -> list[Sent]:
    sent = [Sent() for _ in cmds]

    def run(todo: list[int]) -> None:
        checked: list[tuple[int, SendCommand, str, str]] = []  # (index, command, to, ref)
        for i in todo:
            c = cmds[i]
            try:
                to = _checked(c)
            except PaycellError as exc:
                sent[i].error = exc
                continue
            checked.append((i, c, to, c.ref or rules.p2p_ref(c.sender.id, None)))
        if checked:
            _run(ctx, conn, checked, sent, claimable)

    return around(conn, sent, run, ahead, after)


def _checked(c: SendCommand) -> str:
    """The recipient's number, once the command makes sense on its face."""
    a = c.amount_fen
    if not isinstance(a, int) or isinstance(a, bool) or a <= 0:
        raise P2PAmountInvalidError("the amount is a positive number of fen")
    to = normalise_msisdn(c.to_msisdn)
    if to == c.sender.msisdn:
        raise P2PToSelfError("you cannot send money to your own number")
    return to


def _run(ctx: Context, conn: Connection, todo: list[tuple[int, SendCommand, str, str]],
         sent: list[Sent], claimable: int) -> None:
    now = ctx.clock.now_us()
    t = p2p_transfers
    # A repeat of a transfer already made answers with it, before any check (no PIN).
    made = {r.ref: r for r in select_any(conn, t, "ref", [ref for *_, ref in todo])}
    fresh = []
    for item in todo:
        row = made.get(item[3])
        if row is not None:
            sent[item[0]].transfer = _p2p(row)
        else:
            fresh.append(item)
    if not fresh:
        return
    w = Wallets(conn, ctx.settings, now, ids=[c.sender.id for _, c, _, _ in fresh],
                numbers=[to for _, _, to, _ in fresh])
    accounts = {w.row(c.sender.id).wallet_account_id for _, c, _, _ in fresh
                if c.sender.id in w}
    accounts.update(h.wallet_account_id for _, _, to, _ in fresh
                    if (h := w.holder(to)) is not None)
    if any(w.holder(to) is None for _, _, to, _ in fresh):
        accounts.add(claimable)
    posting = Posting(ctx.ledger, conn, accounts)
    records: list[tuple[int, dict[str, Any]]] = []
    for i, c, to, ref in fresh:
        try:
            records.append((i, _one(ctx, w, posting, c, to, ref, claimable)))
        except PaycellError as exc:
            sent[i].error = exc
    w.write(conn)
    if records:
        rows = {r.ref: r for r in insert_many(conn, t, [rec for _, rec in records],
                                              returning=True)}
        for i, rec in records:
            sent[i].transfer = _p2p(rows[rec["ref"]])
            sent[i].created = True
    posting.finish()


def _one(ctx: Context, w: Wallets, posting: Posting, c: SendCommand, to: str, ref: str,
         claimable: int) -> dict[str, Any]:
    """Check and post one command against the batch so far; its P2P record, or raise."""
    sid, amount, now = c.sender.id, c.amount_fen, w.now
    row = w.row(sid)
    if not c.confirmed_by_code:
        w.verify_pin(sid, c.pin)
    recipient = w.holder(to)
    if recipient is not None and recipient.id == sid:
        raise P2PToSelfError("you cannot send money to your own number")
    w.check_outflow(sid, amount)
    note = (c.note.strip()[:NOTE_MAX] or None) if c.note else None
    rec: dict[str, Any] = dict.fromkeys(_ROW_KEYS)
    rec.update(ref=ref, sender_id=sid, sender_msisdn=c.sender.msisdn, recipient_msisdn=to,
               amount_fen=amount, note=note, created_at=now)
    if recipient is not None:
        w.check_inflow(recipient, amount, posting.account(recipient.wallet_account_id))
        rec.update(state="completed", recipient_id=recipient.id, resolved_at=now)
        req = TransferRequest(
            id=f"p2p:{ref}", debit_account_id=row.wallet_account_id,
            credit_account_id=recipient.wallet_account_id, amount=amount,
            code=int(chart.TransferCode.P2P), ref=f"p2p {ref}")
    else:
        timeout = ctx.settings.p2p_claim_timeout_s
        rec.update(state="pending_claim", expires_at=now + timeout * 1_000_000)
        req = TransferRequest(
            id=f"p2p:{ref}", debit_account_id=row.wallet_account_id,
            credit_account_id=claimable, amount=amount,
            code=int(chart.TransferCode.P2P_CLAIMABLE), flags=TransferFlags.PENDING,
            timeout=timeout, ref=f"p2p {ref} for {to}")
    result = posting.post(req)
    if result.error is not None:
        if isinstance(result.error, le.AccountOverdraftError):
            raise InsufficientBalanceError(
                "your balance does not cover this transfer",
                available_fen=result.error.detail.get("available_fen"))
        raise result.error
    w.count_outflow(sid, amount)
    return rec
