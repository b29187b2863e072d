"""SMS payment (短信支付) with the recording gateway: order codes, BAL, PAY, TRF, help;
codes bound to what they confirm, three tries, five minutes."""

from __future__ import annotations

from payment_helpers import balance, create, fund, last_code, order_body, wallet  # type: ignore[import-not-found]

from paycell.payments.orders import list_orders
from paycell.payments.sms_commands import HELP, NO_WALLET, handle_inbound


def test_reply_with_the_code_pays_the_order(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, _ = wallet(ctx)
    fund(ctx, buyer, 10_000)
    trade_no = create(client, ctx, shop, order_body(buyer.msisdn)).json()["trade_no"]
    code = last_code(ctx, buyer.msisdn)
    reply = handle_inbound(ctx, buyer.msisdn, f" {code} ")
    assert reply.startswith("Paid 49.90 CNY") and trade_no in reply
    assert ctx.sms.last_to(buyer.msisdn) == reply
    assert balance(ctx, buyer.wallet_account_id) == 10_000 - 4990
    again = handle_inbound(ctx, buyer.msisdn, code)  # the code is spent
    assert again.startswith("No payment is waiting")
    assert balance(ctx, buyer.wallet_account_id) == 10_000 - 4990


def test_three_wrong_codes_kill_it(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, _ = wallet(ctx)
    fund(ctx, buyer, 10_000)
    create(client, ctx, shop, order_body(buyer.msisdn))
    code = last_code(ctx, buyer.msisdn)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert handle_inbound(ctx, buyer.msisdn, wrong) == "Wrong code. 2 tries left."
    assert handle_inbound(ctx, buyer.msisdn, wrong) == "Wrong code. 1 try left."
    assert handle_inbound(ctx, buyer.msisdn, wrong).startswith("Wrong code, and no tries")
    assert handle_inbound(ctx, buyer.msisdn, code).startswith("No payment is waiting")
    assert balance(ctx, buyer.wallet_account_id) == 10_000


def test_an_expired_code_does_not_pay(client, ctx, clock, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, _ = wallet(ctx)
    fund(ctx, buyer, 10_000)
    create(client, ctx, shop, order_body(buyer.msisdn))
    code = last_code(ctx, buyer.msisdn)
    clock.advance(seconds=ctx.settings.sms_code_ttl_s)
    assert handle_inbound(ctx, buyer.msisdn, code).startswith("No payment is waiting")
    assert balance(ctx, buyer.wallet_account_id) == 10_000


def test_a_code_is_bound_to_its_number(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    buyer, _ = wallet(ctx)
    other, _ = wallet(ctx)
    fund(ctx, other, 10_000)
    create(client, ctx, shop, order_body(buyer.msisdn))
    code = last_code(ctx, buyer.msisdn)
    assert handle_inbound(ctx, other.msisdn, code).startswith("No payment is waiting")


def test_balance_pay_and_transfer_commands(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    sender, _ = wallet(ctx)
    friend, _ = wallet(ctx)
    fund(ctx, sender, 10_000)
    assert handle_inbound(ctx, sender.msisdn, "bal") == (
        "Your paycell balance: 100.00 CNY available.")
    ask = handle_inbound(ctx, sender.msisdn, f"PAY {shop.merchant.code.lower()} 12.5")
    assert "Pay 12.50 CNY to Inkwell Books" in ask
    paid = handle_inbound(ctx, sender.msisdn, last_code(ctx, sender.msisdn))
    assert paid.startswith("Paid 12.50 CNY to Inkwell Books")
    assert balance(ctx, shop.merchant.payable_account_id) == 1250
    ask = handle_inbound(ctx, sender.msisdn, f"TRF {friend.msisdn} 20")
    assert ask.startswith("Send 20.00 CNY to")
    sent = handle_inbound(ctx, sender.msisdn, last_code(ctx, sender.msisdn))
    assert sent.startswith("Sent 20.00 CNY")
    assert balance(ctx, friend.wallet_account_id) == 2000
    assert balance(ctx, sender.wallet_account_id) == 10_000 - 1250 - 2000


def test_refusals_and_help(client, ctx, shop) -> None:  # type: ignore[no-untyped-def]
    poor, _ = wallet(ctx)
    assert handle_inbound(ctx, poor.msisdn, "hello") == HELP
    assert handle_inbound(ctx, poor.msisdn, "PAY M999999 5").startswith("No shop has")
    assert "is not an amount" in handle_inbound(ctx, poor.msisdn, "PAY M100001 1.234")
    assert handle_inbound(ctx, poor.msisdn, f"TRF {poor.msisdn} 5").startswith("You cannot")
    ask = handle_inbound(ctx, poor.msisdn, f"PAY {shop.merchant.code} 5")
    assert "Reply" in ask
    refused = handle_inbound(ctx, poor.msisdn, last_code(ctx, poor.msisdn))
    assert refused.startswith("Not done: your balance does not cover")
    stray = list_orders(ctx, merchant_id=shop.merchant.id)
    assert [o.state for o in stray] == ["closed"]  # the SMS order is not left waiting
    assert handle_inbound(ctx, "+8613999990000", "BAL") == NO_WALLET
