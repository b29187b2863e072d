"""Merchant payments in the demo world (issue 4), through the real services.

Three merchants (``paycell.merchants.demo``) whose notify URL is the demo merchant mounted
in ``paycell serve`` (``/sim/merchant``), then three days of remote payment orders for
the demo subscribers, each at a fixed time on the demo's clock: most paid with the PIN from
the wallet balance, two by replying to the texted code, partial and full refunds, one
closed by the merchant and one left to expire, two still waiting (for a newcomer to
confirm), and escrow: released by the buyer, disputed and settled by one operator's
proposal approved by another, and one held until its auto-release date (10 days: longer
than the demo, so it is still held). Last, a subscriber texts ``BAL``, ``PAY`` and ``TRF``.

Every order has a fixed ``out_trade_no`` and each step runs only from the state it expects,
so loading again changes nothing. The notifications this queues are delivered by the
worker of ``paycell serve``, never during the load. The merchants' keys go to
``var/demo-merchant-keys.txt`` (mode 0600).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from paycell.clock import ManualClock, rfc3339
from paycell.context import Context
from paycell.gateways.simulators import MERCHANT_PATH, merchant_notify_url, own_base_url
from paycell.gateways.sms import list_messages, record_inbound
from paycell.ledger import TransferRequest, chart
from paycell.merchants import service as merchants
from paycell.merchants.demo import seed_demo
from paycell.merchants.model import Merchant
from paycell.money import format_amount
from paycell.notifications.tables import notifications
from paycell.operators import approvals
from paycell.operators.service import ensure_operator
from paycell.payments import escrow, orders, paying, refunds, rules
from paycell.payments.jobs import run_payment_jobs
from paycell.payments.sms_commands import handle_inbound
from paycell.subscribers.service import Subscriber, find_by_msisdn

KEYS_FILE = "demo-merchant-keys.txt"
WEEK_S = 7 * 86_400
CODE_IN_TEXT = re.compile(r"Reply (\d{6})")


@dataclass(frozen=True)
class DemoOrder:
    merchant: int  # index into merchants.demo.DEMO_MERCHANTS
    payer: int  # index into demo.msisdns()
    amount_fen: int
    subject: str
    kind: str = "direct"
    expires_in_s: int | None = None  # None: the platform's default (15 min)


ORDERS = {
    "HC-0001": DemoOrder(0, 0, 3_200, "Flat white and almond croissant"),
    "INK-0001": DemoOrder(1, 1, 8_900, "The Three-Body Problem (paperback)"),
    "PRT-0001": DemoOrder(2, 2, 18_000, "Concert: Guangzhou Symphony, row 12"),
    "HC-0002": DemoOrder(0, 3, 1_800, "Iced americano"),
    "INK-0002": DemoOrder(1, 4, 4_550, "Learning Chinese, book 1"),
    "PRT-0002": DemoOrder(2, 5, 26_000, "High-speed rail Guangzhou-Shenzhen, 2 seats"),
    "HC-0003": DemoOrder(0, 6, 2_400, "Two lattes to go"),
    "INK-0003": DemoOrder(1, 7, 12_800, "Box set: Jin Yong novels", "escrow"),
    "PRT-0003": DemoOrder(2, 8, 6_000, "Cinema: 2 tickets, Saturday 19:30"),
    "HC-0004": DemoOrder(0, 9, 2_600, "Breakfast set"),
    "INK-0004": DemoOrder(1, 10, 35_600, "E-reader, 7 inch", "escrow"),
    "PRT-0004": DemoOrder(2, 11, 9_900, "Museum annual pass (posted card)", "escrow"),
    "HC-0005": DemoOrder(0, 12, 1_500, "Espresso and a cookie"),
    "INK-0005": DemoOrder(1, 13, 7_200, "Cookbook: Cantonese home cooking"),
    "PRT-0005": DemoOrder(2, 14, 4_500, "Ferry Shekou-Macau, 1 seat"),
    "HC-0006": DemoOrder(0, 15, 3_800, "Beans: Yunnan single origin, 250 g"),
    "INK-0006": DemoOrder(1, 16, 5_800, "Atlas of China", expires_in_s=WEEK_S),
    "PRT-0006": DemoOrder(2, 0, 12_000, "Theme park day ticket", "escrow", WEEK_S),
}

# (day, time CST, action, out_trade_no, argument), in time order. Actions: create (the
# merchant's request; the payer gets a text with a code), pin (the payer confirms in the
# app), sms (the payer replies with the texted code), refund (argument: out_request_no,
# amount), close (by the merchant), receipt (the buyer got the goods), dispute (argument:
# reason), resolve (argument: fen back to the buyer), jobs (the worker's payments job),
# texts (BAL, PAY, TRF by SMS).
Refund = tuple[str, int, str]  # out_request_no, amount_fen, reason
Step = tuple[int, str, str, str, Refund | str | int | None]
STEPS: tuple[Step, ...] = (
    (0, "09:10", "create", "HC-0001", None), (0, "09:11", "pin", "HC-0001", None),
    (0, "11:40", "create", "INK-0001", None), (0, "11:42", "pin", "INK-0001", None),
    (0, "14:05", "create", "PRT-0001", None), (0, "14:06", "pin", "PRT-0001", None),
    (0, "16:30", "create", "HC-0002", None), (0, "16:32", "sms", "HC-0002", None),
    (0, "19:20", "create", "INK-0002", None), (0, "19:24", "pin", "INK-0002", None),
    (0, "20:15", "refund", "PRT-0001", ("PRT-R-0001", 18_000, "concert cancelled")),
    (1, "08:45", "create", "PRT-0002", None), (1, "08:47", "pin", "PRT-0002", None),
    (1, "10:00", "create", "HC-0003", None), (1, "10:30", "jobs", "", None),
    (1, "11:15", "refund", "INK-0001", ("INK-R-0001", 2_000, "cover damaged: discount")),
    (1, "12:30", "create", "INK-0003", None), (1, "12:33", "pin", "INK-0003", None),
    (1, "13:10", "create", "PRT-0003", None), (1, "13:20", "close", "PRT-0003", None),
    (1, "15:20", "create", "HC-0004", None), (1, "15:21", "pin", "HC-0004", None),
    (1, "17:00", "create", "INK-0004", None), (1, "17:04", "pin", "INK-0004", None),
    (1, "19:45", "create", "PRT-0004", None), (1, "19:50", "pin", "PRT-0004", None),
    (2, "09:05", "create", "HC-0005", None), (2, "09:06", "sms", "HC-0005", None),
    (2, "10:00", "receipt", "INK-0003", None),
    (2, "11:00", "dispute", "INK-0004", "the screen arrived cracked"),
    (2, "12:00", "create", "INK-0005", None), (2, "12:02", "pin", "INK-0005", None),
    (2, "14:30", "create", "PRT-0005", None), (2, "14:31", "pin", "PRT-0005", None),
    (2, "15:10", "resolve", "INK-0004", 10_000),
    (2, "16:45", "create", "HC-0006", None), (2, "16:46", "pin", "HC-0006", None),
    (2, "17:30", "refund", "INK-0005", ("INK-R-0002", 3_000, "one chapter misprinted")),
    (2, "17:40", "refund", "INK-0005", ("INK-R-0003", 4_200, "returned the book")),
    (2, "18:00", "texts", "", None),
    (2, "20:30", "create", "INK-0006", None),
    (2, "21:15", "create", "PRT-0006", None),
    (2, "21:30", "jobs", "", None),
)
SMS_TEXTER, TRF_TO = 17, 19  # who texts PAY and TRF, and to whom


@dataclass
class PaymentDemo:
    merchants: list[tuple[Merchant, str, str, str]]  # (merchant, key id, secret, whsec_)
    orders: dict[str, int]  # the demo merchants' orders by state
    notifications: dict[str, int]  # theirs, by delivery state
    transfers_created: int
    keys_file: Path | None
    trade_nos: dict[str, str] = field(default_factory=dict)  # out_trade_no -> trade_no
    texts: list[tuple[str, str, str]] = field(default_factory=list)  # (from, text, reply)
    notify_base: str = ""
    # (out_trade_no, trade_no, payer, amount_fen, kind) of the orders left waiting
    waiting: list[tuple[str, str, str, int, str]] = field(default_factory=list)
    held: list[tuple[str, str, str]] = field(default_factory=list)  # (.., .., release at)


class _Demo:
    def __init__(self, ctx: Context, clock: ManualClock, start: datetime,
                 numbers: list[str], pin: str) -> None:
        self.ctx, self.clock, self.start, self.numbers, self.pin = ctx, clock, start, numbers, pin
        self.merchants: list[Merchant] = []
        self.texts: list[tuple[str, str, str]] = []

    def at(self, day: int, hhmm: str) -> None:
        hours, minutes = map(int, hhmm.split(":"))
        self.clock.set(self.start + timedelta(days=day, hours=hours, minutes=minutes))

    def payer(self, i: int) -> Subscriber:
        sub = find_by_msisdn(self.ctx, self.numbers[i])
        assert sub is not None, f"demo subscriber {self.numbers[i]} is missing"
        return sub

    def order(self, ref: str) -> orders.Order:
        return orders.merchant_order(self.ctx, self.merchants[ORDERS[ref].merchant].id,
                                     out_trade_no=ref)

    def afford(self, sub: Subscriber, amount: int, ref: str) -> None:
        """Top the wallet up by bank card first if it cannot pay ``amount`` (as the main
        demo's planner does): a fixed transfer id, so never twice."""
        ledger = self.ctx.ledger
        short = amount - ledger.account(sub.wallet_account_id).available
        if short <= 0:
            return
        bank = chart.system_account(ledger, chart.Code.BANK_CLEARING, "icbc")
        top = -(-short // 5_000) * 5_000 + 10_000
        res = ledger.post([TransferRequest(
            id=f"demo:topup:pay:{ref}", debit_account_id=bank.id,
            credit_account_id=sub.wallet_account_id, amount=top,
            code=int(chart.TransferCode.TOPUP_BANK), ref="top-up by ICBC card")])[0]
        if not res.ok:
            raise RuntimeError(f"demo top-up for {ref} refused: {res.error!r}")

    def run(self, action: str, ref: str, arg: Refund | str | int | None) -> None:
        ctx = self.ctx
        if action == "jobs":
            run_payment_jobs(ctx)
            return
        if action == "texts":
            self.sms_commands()
            return
        spec = ORDERS[ref]
        merchant = self.merchants[spec.merchant]
        sub = self.payer(spec.payer)
        if action == "create":
            orders.create_order(ctx, merchant, orders.OrderRequest(
                out_trade_no=ref, amount_fen=spec.amount_fen, subject=spec.subject,
                payer_msisdn=sub.msisdn, kind=spec.kind, expires_in_s=spec.expires_in_s))
            return
        order = self.order(ref)
        if action in ("pin", "sms") and order.state == rules.WAITING:
            self.afford(sub, order.amount_fen, ref)
            if action == "pin":
                paying.confirm_order(ctx, sub, order.trade_no, self.pin)
            else:
                self.reply_with_code(sub, order)
        elif action == "refund" and order.state in rules.PAID_STATES:
            assert isinstance(arg, tuple)
            out_request_no, amount, reason = arg
            refunds.refund_order(ctx, merchant, out_request_no=out_request_no,
                                 amount_fen=amount, reason=reason, trade_no=order.trade_no)
        elif action == "close":
            orders.close_order(ctx, merchant, trade_no=order.trade_no)
        elif action == "receipt" and order.state == rules.HELD:
            escrow.confirm_receipt(ctx, sub, order.trade_no, self.pin)
        elif action == "dispute" and order.state == rules.HELD:
            escrow.open_dispute(ctx, sub, order.trade_no, str(arg))
        elif action == "resolve" and order.state == rules.DISPUTED:
            assert isinstance(arg, int)
            self.resolve(order, arg)

    def reply_with_code(self, sub: Subscriber, order: orders.Order) -> None:
        texts = list_messages(self.ctx.engine, sub.msisdn, 1, "out")
        found = CODE_IN_TEXT.search(texts[0].body) if texts else None
        if found is None:
            raise RuntimeError(f"no code was texted to {sub.msisdn} for {order.out_trade_no}")
        reply = self.text(sub, found.group(1))
        if not reply.startswith("Paid"):
            raise RuntimeError(f"the code reply for {order.out_trade_no} failed: {reply}")

    def resolve(self, order: orders.Order, buyer_fen: int) -> None:
        """One operator proposes a split, a second approves it (maker-checker)."""
        support = ensure_operator(self.ctx.engine, self.clock, "demo-support", "operator")
        supervisor = ensure_operator(self.ctx.engine, self.clock, "demo-supervisor",
                                     "operator")
        dispute = escrow.dispute_of_order(self.ctx, order.id)
        pending = approvals.list_pending(self.ctx, action=escrow.DISPUTE_ACTION,
                                         subject=f"dispute:{dispute.id}")
        proposal = pending[0] if pending else escrow.propose_resolution(
            self.ctx, support, dispute.id, "split", buyer_fen,
            "buyer keeps the e-reader at a discount for the cracked screen")
        self.clock.advance(minutes=25)  # the supervisor looks at it a little later
        approvals.approve(self.ctx, supervisor, proposal.id)

    def sms_commands(self) -> None:
        """BAL, then PAY to the coffee shop and TRF to another subscriber, each confirmed
        with the code texted back. Once: skipped when the PAY order exists already."""
        sub, coffee = self.payer(SMS_TEXTER), self.merchants[0]
        done = orders.list_orders(self.ctx, merchant_id=coffee.id,
                                  payer_subscriber_id=sub.id, limit=500)
        if any(o.out_trade_no.startswith("sms-") for o in done):
            return
        self.afford(sub, 1_250 + 2_000, "sms-texts")
        national = self.numbers[TRF_TO].removeprefix("+86")
        for text in ("BAL", f"PAY {coffee.code} 12.50", None, f"TRF {national} 20", None):
            if text is None:  # the code from the previous reply
                found = CODE_IN_TEXT.search(self.texts[-1][2])
                assert found is not None, self.texts[-1]
                text = found.group(1)
                self.clock.advance(minutes=1)
            self.texts.append((sub.msisdn, text, self.text(sub, text)))

    def text(self, sub: Subscriber, body: str) -> str:
        """``sub`` texts ``body`` to the platform (recorded, as ``paycell sms receive``
        does); the reply."""
        record_inbound(self.ctx.engine, self.clock, sub.msisdn, body)
        return handle_inbound(self.ctx, sub.msisdn, body)


def point_at_simulator(ctx: Context, merchant: Merchant, actor: str) -> Merchant:
    """Make the mounted demo merchant the merchant's notify URL (idempotent)."""
    return merchants.set_notify_url(ctx, merchant.id, merchant_notify_url(
        ctx.settings, merchant.code), actor)


def load_payment_demo(ctx: Context, clock: ManualClock, start: datetime, numbers: list[str],
                      pin: str, out_dir: Path | None = None) -> PaymentDemo:
    """Add merchant payments to the demo world (see the module's docstring). ``start`` is
    midnight (CST) of the demo's first day; ``clock`` is ``ctx``'s. Idempotent."""
    seq_before, _ = ctx.ledger.head()
    demo = _Demo(ctx, clock, start, numbers, pin)
    demo.at(0, "07:30")
    onboarded = seed_demo(ctx)
    demo.merchants = [point_at_simulator(ctx, o.merchant, "demo-maker") for o in onboarded]
    for day, hhmm, action, ref, arg in STEPS:
        demo.at(day, hhmm)
        demo.run(action, ref, arg)
    keys = [(m, o.key_id, o.secret, merchants.format_webhook_secret(o.webhook_secret))
            for m, o in zip(demo.merchants, onboarded, strict=True)]
    keys_file = _write_keys(out_dir / KEYS_FILE, keys) if out_dir is not None else None
    ids = [m.id for m in demo.merchants]
    by_state: Counter[str] = Counter()
    for m in demo.merchants:
        by_state.update(o.state for o in orders.list_orders(ctx, merchant_id=m.id, limit=1000))
    with ctx.engine.connect() as conn:
        delivery = {str(state): int(n) for state, n in conn.execute(
            select(notifications.c.state, func.count())
            .where(notifications.c.merchant_id.in_(ids)).group_by(notifications.c.state))}
    seq_after, _ = ctx.ledger.head()
    final = {ref: demo.order(ref) for ref in ORDERS}
    return PaymentDemo(
        merchants=keys, orders=dict(by_state),
        notifications=delivery,
        transfers_created=seq_after - seq_before, keys_file=keys_file,
        trade_nos={ref: o.trade_no for ref, o in final.items()}, texts=demo.texts,
        notify_base=own_base_url(ctx.settings) + MERCHANT_PATH,
        waiting=[(ref, o.trade_no, o.payer_msisdn, o.amount_fen, o.kind)
                 for ref, o in final.items() if o.state == rules.WAITING],
        held=[(ref, o.trade_no, rfc3339(o.release_at)) for ref, o in final.items()
              if o.state == rules.HELD and o.release_at is not None])


def _write_keys(path: Path, keys: list[tuple[Merchant, str, str, str]]) -> Path:
    """The merchants' credentials, readable by the owner only; rewritten only if changed
    (the secrets are kept sealed, so they can be written again on every load)."""
    lines = ["# paycell demo merchants: sign API requests with key_id + secret "
             "(docs/merchant-api.md);",
             "# verify notifications with webhook_secret (docs/notifications.md).",
             "# code     key_id  secret  webhook_secret  name"]
    lines += [f"{m.code} {key_id} {secret} {whsec} {m.name}"
              for m, key_id, secret, whsec in keys]
    return write_private(path, "\n".join(lines) + "\n")


def print_payment_summary(console: Console, p: PaymentDemo) -> None:
    """The summary's part on merchant payments."""
    table = Table(title="demo merchants (remote payments)")
    table.add_column("code")
    table.add_column("name")
    table.add_column("notify URL", overflow="fold")
    for m, _, _, _ in p.merchants:
        table.add_row(m.code, m.name, m.default_notify_url or "")
    console.print(table)
    states = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(p.orders.items()))
    console.print(f"payment orders: {sum(p.orders.values())} ({states}); "
                  f"{p.transfers_created} ledger transfers made by this load")
    counts = ", ".join(f"{n} {s}" for s, n in sorted(p.notifications.items()))
    console.print(f"notifications: {counts or 'none'}; `paycell serve` delivers the pending "
                  f"ones to the demo merchant, see {p.notify_base}/ and "
                  "`paycell notifications list`", soft_wrap=True)
    for ref, trade_no, msisdn, amount, kind in p.waiting:
        console.print(f"  waiting for {msisdn} to pay: {ref} ({kind}) = {trade_no}, "
                      f"{format_amount(amount)} CNY (POST /v1/wallet/payments/{trade_no}/confirm)",
                      soft_wrap=True)
    for ref, trade_no, release_at in p.held:
        console.print(f"  escrow held: {ref} = {trade_no}, released by itself at {release_at} "
                      "unless the buyer confirms receipt or disputes it first", soft_wrap=True)
    for src, text, reply in p.texts:
        console.print(f"  SMS from {src}: {text!r} -> {reply}", markup=False, soft_wrap=True)
    if p.keys_file is not None:
        console.print(f"merchant API keys and webhook secrets: [bold]{p.keys_file}[/] "
                      "(README: Merchant payments)")


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by the owner only (mode 0600 from creation, never
    wider); left alone when it already holds exactly that with such a mode."""
    if path.exists() and path.read_text() == text and path.stat().st_mode & 0o077 == 0:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", newline="") as f:
        f.write(text)
    return path
