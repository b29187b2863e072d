"""SMS payment (短信支付): what a subscriber can do by texting the short code.

- ``BAL``: the available balance.
- ``PAY <merchant code> <amount>``: pay a merchant, e.g. ``PAY M100001 12.50``.
- ``TRF <mobile number> <amount>``: send money, e.g. ``TRF 13800138000 20``.
- a six-digit code: confirms the payment or transfer it was texted for (an order a
  merchant created, or a ``PAY`` / ``TRF`` above). Money never moves without it.
- anything else: a help text.

Every text gets exactly one reply. :func:`handle_inbound` returns it too (for the CLI and
tests). Commands are case-insensitive; amounts are decimal yuan (``12.5`` = 1250 fen).
"""

from __future__ import annotations

import logging
import re

from paycell.context import Context
from paycell.errors import PaycellError
from paycell.money import AmountFormatError, format_amount, parse_amount
from paycell.payments import confirmations
from paycell.payments.orders import OrderRequest, close_order, create_order
from paycell.payments.paying import pay_order
from paycell.subscribers.errors import InvalidMsisdnError
from paycell.subscribers.service import (
    Subscriber,
    find_by_msisdn,
    mask_msisdn,
    normalise_msisdn,
)
from paycell.subscribers.statement import balance

log = logging.getLogger(__name__)

HELP = ("paycell SMS: BAL for your balance; PAY <merchant code> <amount> to pay a shop "
        "(PAY M100001 12.50); TRF <mobile> <amount> to send money (TRF 13800138000 20). "
        "Each payment is confirmed by a code we text you.")
NO_WALLET = "This number has no paycell wallet. Open one in the paycell app."
CODE = re.compile(r"^\d{6}$")


def handle_inbound(ctx: Context, msisdn: str, body: str) -> str:
    """Act on a text ``body`` received from ``msisdn`` and send the one reply; returns it.
    Never raises for anything the subscriber wrote."""
    try:
        sender = normalise_msisdn(msisdn)
    except InvalidMsisdnError:
        log.warning("text from an unusable number %r ignored", msisdn)
        return ""
    if (body or "").startswith("OTAR1 "):  # a SIM's OTA proof-of-receipt: no reply
        from paycell.onsite.ota import receive_por_sms

        return receive_por_sms(ctx, sender, body)
    try:
        reply = _dispatch(ctx, sender, (body or "").strip())
    except PaycellError as exc:
        reply = f"Not done: {exc.message}."
    ctx.sms.send(sender, reply)
    return reply


def _dispatch(ctx: Context, msisdn: str, text: str) -> str:
    sub = find_by_msisdn(ctx, msisdn)
    if sub is None or sub.state == "closed":
        return NO_WALLET
    if CODE.match(text):
        return _confirm(ctx, sub, text)
    words = text.upper().split()
    if words == ["BAL"]:
        b = balance(ctx, sub)
        return f"Your paycell balance: {format_amount(b.available_fen)} CNY available."
    if len(words) == 3 and words[0] in ("PAY", "TRF"):
        if confirmations.sent_last_hour(ctx, msisdn) >= 2 * ctx.settings.sms_codes_per_hour:
            return "Too many payment requests this hour; try again later or use the app."
        try:
            amount = parse_amount(words[2])
        except AmountFormatError:
            return f"{words[2]!r} is not an amount; write it like 12.50. {HELP}"
        if amount <= 0:
            return "The amount must be more than zero."
        if words[0] == "PAY":
            return _ask_pay(ctx, sub, words[1], amount)
        return _ask_transfer(ctx, sub, words[1], amount)
    return HELP


def _ask(ctx: Context, sub: Subscriber, purpose: str, target: str, amount: int) -> str:
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        code = confirmations.open_code(ctx, conn, msisdn=sub.msisdn, subscriber_id=sub.id,
                                       purpose=purpose, amount_fen=amount, now=now,
                                       target=target)
    return code


def _ask_pay(ctx: Context, sub: Subscriber, merchant_code: str, amount: int) -> str:
    from paycell.merchants.service import find_by_code

    merchant = find_by_code(ctx, merchant_code)
    if merchant is None or merchant.state != "active":
        return f"No shop has the code {merchant_code}. Check the code on the shop's sign."
    code = _ask(ctx, sub, "pay", merchant.code, amount)
    minutes = max(1, ctx.settings.sms_code_ttl_s // 60)
    return (f"Pay {format_amount(amount)} CNY to {merchant.name} ({merchant.code})? "
            f"Reply {code} within {minutes} min to confirm.")


def _ask_transfer(ctx: Context, sub: Subscriber, to: str, amount: int) -> str:
    try:
        recipient = normalise_msisdn(to)
    except InvalidMsisdnError:
        return f"{to} is not a mobile number. {HELP}"
    if recipient == sub.msisdn:
        return "You cannot send money to your own number."
    code = _ask(ctx, sub, "trf", recipient, amount)
    minutes = max(1, ctx.settings.sms_code_ttl_s // 60)
    return (f"Send {format_amount(amount)} CNY to {mask_msisdn(recipient)}? "
            f"Reply {code} within {minutes} min to confirm.")


def _confirm(ctx: Context, sub: Subscriber, code: str) -> str:
    conf, left = confirmations.take(ctx, sub.msisdn, code)
    if conf is None:
        if left < 0:
            return "No payment is waiting for a code from you. " + HELP
        if left == 0:
            return "Wrong code, and no tries are left: start the payment again."
        return f"Wrong code. {left} {'try' if left == 1 else 'tries'} left."
    if conf.subscriber_id != sub.id:  # the number changed hands since the code was sent
        return "This code is no longer valid for this number."
    actor = f"subscriber:{sub.id}"
    if conf.purpose == "order":
        from paycell.payments.escrow import get_order_by_id

        order = pay_order(ctx, get_order_by_id(ctx, conf.order_id or 0), sub, "sms", actor)
        confirmations.record_result(ctx, conf.id, order.trade_no)
        return (f"Paid {format_amount(order.amount_fen)} CNY for \"{order.subject[:40]}\". "
                f"Order {order.trade_no}.")
    if conf.purpose == "pay":
        from paycell.merchants.service import find_by_code

        merchant = find_by_code(ctx, conf.target or "")
        if merchant is None:
            return "That shop no longer takes payments."
        order, _ = create_order(ctx, merchant, OrderRequest(
            out_trade_no=f"sms-{conf.id}", amount_fen=conf.amount_fen,
            subject=f"SMS payment from {mask_msisdn(sub.msisdn)}",
            payer_msisdn=sub.msisdn), text_code=False)
        try:
            order = pay_order(ctx, order, sub, "sms", actor)
        except PaycellError:
            close_order(ctx, merchant, order.trade_no)  # not left waiting for nobody
            raise
        confirmations.record_result(ctx, conf.id, order.trade_no)
        return (f"Paid {format_amount(order.amount_fen)} CNY to {merchant.name}. "
                f"Order {order.trade_no}.")
    from paycell.funding.p2p_send import send_transfer

    t = send_transfer(ctx, sub, conf.target or "", conf.amount_fen, "", note="by SMS",
                      request_key=f"sms-{conf.id}", confirmed_by_code=True)
    confirmations.record_result(ctx, conf.id, t.ref)
    return f"Sent {format_amount(t.amount_fen)} CNY to {mask_msisdn(t.recipient_msisdn)}."

