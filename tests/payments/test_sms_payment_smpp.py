"""SMS payment (短信支付) end to end over SMPP, on both databases: the paycell app under
uvicorn with ``sms_backend="smpp"`` bound to the loopback SMSC; a merchant creates an order
over HTTP; the subscriber's phone (the SMSC) receives the summary with a six-digit code and
answers with mobile-originated texts (a wrong code, then the right one); the replies and
the SMS commands' answers come back over SMPP too."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from e2e_helpers import (  # type: ignore[import-not-found]
    LiveApp,
    balance,
    count_moves,
    e2e_settings,
    fund,
    live_app,
    onboard,
    order_body,
    signed,
    subscriber,
    transfer_ids,
)
from sqlalchemy import Engine

from paycell.clock import ManualClock
from paycell.gateways.smpp import SmppSms
from paycell.gateways.sms import list_messages
from paycell.gateways.smsc_sim import SmscSim, Text
from paycell.ledger.audit import audit
from paycell.payments.orders import get_order
from paycell.payments.sms_commands import HELP

CODE = re.compile(r"\bReply (\d{6}) within 5 min\b")


@pytest.fixture
def smsc() -> Iterator[SmscSim]:
    sim = SmscSim(system_id="paycell", password="pw").start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def live(engine: Engine, db_url: str, clock: ManualClock, smsc: SmscSim) -> Iterator[LiveApp]:
    settings = e2e_settings(db_url, sms_backend="smpp", smpp_host="127.0.0.1",
                            smpp_port=smsc.port, smpp_system_id="paycell", smpp_password="pw")
    yield from live_app(settings, engine, clock)


class Phone:
    """The subscriber's handset, as the SMSC sees it."""

    def __init__(self, smsc: SmscSim, number: str) -> None:
        self.smsc, self.number = smsc, number
        self.seen = 0

    def inbox(self) -> list[Text]:
        return self.smsc.texts_to(self.number)

    def next_text(self) -> Text:
        """The next text the phone receives (bounded wait)."""
        assert self.smsc.wait_for(lambda: len(self.inbox()) > self.seen), \
            f"no text reached {self.number}; it has {[t.text for t in self.inbox()]}"
        text = self.inbox()[self.seen]
        self.seen += 1
        return text

    def reply(self, text: str) -> str:
        """Text the short code; the one answer that comes back."""
        assert self.smsc.inject_mo(self.number, text), "the SMSC could not deliver the text"
        return self.next_text().text


def test_order_confirmed_by_sms_over_smpp(live: LiveApp, smsc: SmscSim, clock: ManualClock,
                                          engine: Engine) -> None:
    ctx = live.ctx
    assert isinstance(ctx.sms, SmppSms)
    assert ctx.sms.bound.wait(10)
    assert [(b.system_id, b.bind_type, b.ok) for b in smsc.binds] == [("paycell", "TRX", True)]
    shop = onboard(ctx, "Corner Cafe")
    buyer, auth = subscriber(ctx)
    fund(ctx, buyer, 10_000)
    phone = Phone(smsc, buyer.msisdn)
    phone.seen = len(phone.inbox())  # whatever opening the wallet texted

    with live.client() as http:
        r = http.post("/v1/payments", auth=signed(shop, clock), json=order_body(
            buyer.msisdn, "CAFE-77", amount_fen=1250, subject="Two flat whites"))
        assert r.status_code == 201, r.text
        trade_no = r.json()["trade_no"]

        received = phone.next_text()
        summary = received.text
        assert "Corner Cafe" in summary and "12.50" in summary and "Two flat whites" in summary
        found = CODE.search(summary)
        assert found, summary
        code = found.group(1)
        parts = [s for s in smsc.submitted if s.message_id in received.message_ids]
        assert len(parts) == len(received.message_ids) >= 1
        assert {(p.source_addr, p.registered_delivery) for p in parts} == {("10690000", 1)}

        # A wrong code first: refused, with the tries left; nothing moves.
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        assert phone.reply(wrong) == "Wrong code. 2 tries left."
        assert get_order(ctx, trade_no).state == "waiting"
        assert balance(ctx, buyer.wallet_account_id) == 10_000

        # The right code pays the order; the answer arrives at the phone.
        paid = phone.reply(code)
        assert paid == f'Paid 12.50 CNY for "Two flat whites". Order {trade_no}.'

        def state() -> str:
            got = http.get(f"/v1/payments/{trade_no}", auth=signed(shop, clock))
            assert got.status_code == 200, got.text
            return str(got.json()["order"]["state"])

        assert smsc.wait_for(lambda: state() == "paid")
        order = http.get(f"/v1/payments/{trade_no}", auth=signed(shop, clock)).json()["order"]
        assert order["paid_via"] == "sms"
        mine = http.get(f"/v1/wallet/payments/{trade_no}", headers=auth).json()["order"]
        assert mine["state"] == "paid"

        # The same code again: spent, nothing more is paid.
        again = phone.reply(code)
        assert again.startswith("No payment is waiting for a code from you.")
        order_id = get_order(ctx, trade_no).id
        assert count_moves(ctx, order_id, "waiting", "paid") == 1
        assert transfer_ids(ctx, trade_no) == [f"pay:{trade_no}"]
        assert balance(ctx, buyer.wallet_account_id) == 10_000 - 1250
        assert balance(ctx, shop.merchant.payable_account_id) == 1250

    # The SMS commands answer over SMPP too.
    assert phone.reply("BAL") == "Your paycell balance: 87.50 CNY available."
    assert phone.reply("Hello, what is this?") == HELP
    ask = phone.reply(f"pay {shop.merchant.code} 5")
    assert ask.startswith(f"Pay 5.00 CNY to Corner Cafe ({shop.merchant.code})? Reply ")
    pay_code = ask.split("Reply ")[1][:6]
    done = phone.reply(pay_code)
    assert done.startswith("Paid 5.00 CNY to Corner Cafe. Order P"), done
    friend, _ = subscriber(ctx)
    ask = phone.reply(f"TRF {friend.msisdn} 20")
    assert ask.startswith("Send 20.00 CNY to ") and "Reply " in ask, ask
    sent = phone.reply(ask.split("Reply ")[1][:6])
    assert sent.startswith("Sent 20.00 CNY to "), sent
    assert balance(ctx, friend.wallet_account_id) == 2000
    assert phone.reply("bal") == "Your paycell balance: 62.50 CNY available."

    # A code lives five minutes on the driven clock.
    with live.client() as http:
        r = http.post("/v1/payments", auth=signed(shop, clock), json=order_body(
            buyer.msisdn, "CAFE-78", amount_fen=300, subject="A croissant"))
        assert r.status_code == 201, r.text
        late_trade_no = r.json()["trade_no"]
    found = CODE.search(phone.next_text().text)
    assert found
    clock.advance(seconds=ctx.settings.sms_code_ttl_s)
    assert phone.reply(found.group(1)).startswith("No payment is waiting for a code from you.")
    assert get_order(ctx, late_trade_no).state == "waiting"

    # Every text in and out is on record; the outbound ones got their delivery receipts.
    inbound = list_messages(engine, direction="in", msisdn=buyer.msisdn)
    assert len(inbound) == 11
    assert {wrong, code, "BAL", "bal", "Hello, what is this?"} <= {m.body for m in inbound}
    assert {m.status for m in inbound} == {"received"}

    def all_delivered() -> bool:
        out = list_messages(engine, direction="out", msisdn=buyer.msisdn)
        return len(out) >= 13 and all(m.status == "delivered" for m in out)

    assert smsc.wait_for(all_delivered), [
        (m.body[:30], m.status) for m in list_messages(engine, direction="out")]
    report = audit(engine)
    assert report.ok, [c.detail for c in report.checks if not c.ok]
