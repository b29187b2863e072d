"""``paycell demo load``: a small, believable world.

Twenty subscribers (opened with ``open_account``, named at tier 1, all with the PIN
``DEMO_PIN`` so that a newcomer can log in), six merchants and the platform's own accounts,
then three days of traffic ending yesterday (China Standard Time), written through the
Ledger API and dated with a :class:`ManualClock`: bank and phone-bill top-ups, purchases
with the merchant's commission taken at once (a linked pair), P2P transfers, escrow holds
(posted, partly posted, voided, and one left for the worker to expire) and the banks'
next-day confirmations. Every id is fixed, so loading again changes nothing; the traffic is
planned in advance against simulated balances, so nothing fails. Then the funding features
(``demo_wallets.py``), merchant payments with their notifications (``demo_payments.py``)
and on-site payment: NFC SIM cards, POS terminals, a transit gate, OTA (``demo_onsite.py``).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from paycell.clock import ManualClock, to_us
from paycell.config import Settings
from paycell.context import Context, build_context
from paycell.demo_onsite import OnsiteDemo, load_onsite_demo, print_onsite_summary
from paycell.demo_partners import PartnersDemo, load_partners_demo, print_partners_summary
from paycell.demo_payments import PaymentDemo, load_payment_demo, print_payment_summary
from paycell.demo_recon import ReconDemo, load_recon_demo, print_recon_summary
from paycell.demo_settlement import SettlementDemo, load_settlement_demo, print_settlement_summary
from paycell.demo_wallets import WalletDemo, load_wallet_demo, print_wallet_summary
from paycell.ledger.chart import Code, TransferCode, open_account, system_account
from paycell.ledger.model import TransferFlags as F
from paycell.ledger.model import TransferRequest as Req
from paycell.ledger.store import Ledger
from paycell.merchants.demo import seed_closed
from paycell.money import allocate, format_amount
from paycell.subscribers.service import find_by_msisdn
from paycell.subscribers.service import open_account as open_wallet

demo_app = typer.Typer(help="Demo data.", no_args_is_help=True)
console = Console()

CST = timezone(timedelta(hours=8), "CST")
DAYS = 3
HOURS = range(8, 22)  # shops are open 08:00 to 22:00
ESCROW_TIMEOUT_S = 7 * 86_400
SHORT_TIMEOUT_S = 2 * 3_600  # the hold left to expire: long past by the time anyone looks
BANKS = ("icbc", "ccb")
SEED = 20_260_101
DEMO_PIN = "246810"  # every demo wallet's PIN: log in with any demo number and this
NAMES = ("Wang Fang", "Li Na", "Zhang Wei", "Liu Yang", "Chen Jing", "Yang Li", "Zhao Lei",
         "Huang Min", "Zhou Jie", "Wu Xia", "Xu Tao", "Sun Qiang", "Ma Lin", "Zhu Hui",
         "Hu Jun", "Guo Mei", "He Ping", "Lin Hua", "Luo Bin", "Gao Yan")


Kind = TransferCode


@dataclass(frozen=True)
class Merchant:
    slug: str
    name: str
    rate_bp: int  # commission, in basis points of the gross
    low_fen: int
    high_fen: int


MERCHANTS = (
    Merchant("hualian-supermarket", "Hualian Supermarket", 60, 1_500, 25_000),
    Merchant("kuaile-burger", "Kuaile Burger (fast food)", 100, 1_500, 6_000),
    Merchant("starlight-cinema", "Starlight Cinema", 150, 3_500, 9_000),
    Merchant("bus-line-108", "City Bus Line 108", 30, 200, 200),
    Merchant("laojie-hotpot", "Laojie Hotpot (restaurant chain)", 120, 5_000, 30_000),
    Merchant("pixel-game-shop", "Pixel Game Shop", 300, 600, 64_800),
)
ESCROW_MERCHANTS = (2, 4, 5)


@dataclass
class World:
    wallets: dict[str, int]  # msisdn -> wallet account id
    merchants: list[int]
    platform: dict[str, int]  # account name -> id


@dataclass
class DemoResult:
    accounts: int
    created: int
    existing: int
    wallet_total_fen: int
    balances: dict[str, int]
    holds: dict[str, str] = field(default_factory=dict)
    subscribers: dict[str, int] = field(default_factory=dict)  # msisdn -> subscriber id
    wallets: WalletDemo | None = None  # vouchers, the agent outlet, P2P
    payments: PaymentDemo | None = None  # merchants, payment orders, notifications
    onsite: OnsiteDemo | None = None  # NFC cards, POS terminals, the transit gate, OTA
    partners: PartnersDemo | None = None  # channel partners and their fees
    settlement: SettlementDemo | None = None  # commission rules, clearing, payouts
    recon: ReconDemo | None = None  # statements reconciled


def msisdns(n: int = 20) -> list[str]:
    """``n`` distinct E.164 China Mobile numbers (+86 138 ...), the same every time."""
    rng = random.Random(SEED)
    out: list[str] = []
    while len(out) < n:
        m = f"+86138{rng.randrange(10**8):08d}"
        if m not in out:
            out.append(m)
    return out


def demo_id_number(i: int) -> str:
    """A well-formed (checksummed) PRC resident ID number for demo subscriber ``i``."""
    born = date(1975, 1, 1) + timedelta(days=397 * i)
    body = f"110105{born:%Y%m%d}{100 + i:03d}"
    total = sum(int(d) * pow(2, 17 - k, 11) for k, d in enumerate(body))
    return body + "10X98765432"[total % 11]


def open_subscribers(ctx: Context) -> dict[str, int]:
    """Open (or find: idempotent by MSISDN) the demo's subscribers; msisdn -> subscriber id."""
    out = {}
    for i, msisdn in enumerate(msisdns()):
        sub = find_by_msisdn(ctx, msisdn) or open_wallet(
            ctx, msisdn, DEMO_PIN, name=NAMES[i % len(NAMES)], id_number=demo_id_number(i))
        out[msisdn] = sub.id
    return out


def open_world(ctx: Context) -> World:
    """Open (or find: idempotent) every account of the demo world: the platform's, the
    merchants' and the subscribers' wallets."""
    ledger = ctx.ledger
    platform = [system_account(ledger, Code.CUSTODY_RESERVE)]
    platform += [system_account(ledger, Code.BANK_CLEARING, bank) for bank in BANKS]
    platform += [system_account(ledger, Code.CARRIER_RECEIVABLE, "cmcc")]
    platform += [system_account(ledger, c) for c in
                 (Code.REVENUE_FEES, Code.REVENUE_COMMISSION, Code.SUSPENSE)]
    merchants = [open_account(ledger, f"merchant_payable:demo:{m.slug}", Code.MERCHANT_PAYABLE)
                 for m in MERCHANTS]
    subscriber_ids = open_subscribers(ctx)
    wallets = {}
    for msisdn in subscriber_ids:
        sub = find_by_msisdn(ctx, msisdn)
        assert sub is not None
        wallets[msisdn] = sub.wallet_account_id
    return World(wallets, [a.id for a in merchants], {a.name: a.id for a in platform})


class _Planner:
    """Plans the traffic as batches of requests, one batch per shop hour, against its own
    copy of the wallets' available balances so that every request will succeed."""

    def __init__(self, world: World) -> None:
        self.w = world
        self.rng = random.Random(SEED + 1)
        self.wallets = list(world.wallets.values())
        self.avail = dict.fromkeys(self.wallets, 0)
        self.numbers: Counter[str] = Counter()
        self.bank_due: defaultdict[tuple[int, str], int] = defaultdict(int)
        self.escrows: list[tuple[int, Req]] = []  # (slot, hold) waiting for the buyer
        self.holds: list[str] = []
        self.reqs: list[Req] = []

    def _id(self, kind: str) -> str:
        self.numbers[kind] += 1
        return f"demo:{kind}:{self.numbers[kind]:04d}"

    def _p(self, name: str) -> int:
        return self.w.platform[f"{name}:CNY"]

    def topup(self, day: int, wallet: int, amount: int) -> None:
        if self.rng.random() < 0.2:
            source, kind = self._p("carrier_receivable:cmcc"), Kind.TOPUP_CARRIER
            ref = "top-up by phone bill"
        else:
            bank = BANKS[self.rng.randrange(len(BANKS))]
            self.bank_due[day, bank] += amount
            source, kind = self._p(f"bank_clearing:{bank}"), Kind.TOPUP_BANK
            ref = f"top-up by {bank.upper()} card"
        self.reqs.append(Req(self._id("topup"), source, wallet, amount, code=kind, ref=ref))
        self.avail[wallet] += amount

    def _commission(self, merchant: int, gross: int, ref: str) -> list[Req]:
        rate = MERCHANTS[self.w.merchants.index(merchant)].rate_bp
        fee = allocate(gross, [rate, 10_000 - rate])[0]
        if not fee:
            return []
        return [Req(self._id("commission"), merchant, self._p("revenue_commission:main"), fee,
                    code=Kind.COMMISSION, ref=f"commission on {ref}")]

    def _afford(self, day: int, wallet: int, amount: int) -> None:
        if self.avail[wallet] < amount:  # top up first, as a subscriber would
            self.topup(day, wallet, -(-(amount - self.avail[wallet]) // 5_000) * 5_000 + 10_000)

    def purchase(self, day: int) -> None:
        wallet = self.rng.choice(self.wallets)
        i = self.rng.randrange(len(MERCHANTS))
        m = MERCHANTS[i]
        gross = self.rng.randrange(m.low_fen // 10, m.high_fen // 10 + 1) * 10
        self._afford(day, wallet, gross)
        tid = self._id("purchase")
        legs = [Req(tid, wallet, self.w.merchants[i], gross, code=Kind.PURCHASE,
                    ref=f"order at {m.name}")]
        self.reqs += _linked(legs + self._commission(self.w.merchants[i], gross, tid))
        self.avail[wallet] -= gross

    def p2p(self) -> None:
        a, b = self.rng.sample(self.wallets, 2)
        amount = self.rng.choice([520, 1_314, 2_000, 5_000, 8_888, 10_000])
        if self.avail[a] >= amount:
            self.reqs.append(Req(self._id("p2p"), a, b, amount, code=Kind.P2P,
                                 ref="red packet"))
            self.avail[a] -= amount

    def escrow(self, day: int, slot: int, timeout: int = ESCROW_TIMEOUT_S) -> None:
        wallet = self.rng.choice(self.wallets)
        merchant = self.w.merchants[self.rng.choice(ESCROW_MERCHANTS)]
        amount = self.rng.randrange(50, 500) * 100
        self._afford(day, wallet, amount)
        hold = Req(self._id("escrow"), wallet, merchant, amount, code=Kind.ESCROW_HOLD,
                   flags=F.PENDING, timeout=timeout, ref="escrow order")
        self.reqs.append(hold)
        self.avail[wallet] -= amount
        self.holds.append(hold.id)
        if timeout == ESCROW_TIMEOUT_S:
            self.escrows.append((slot, hold))

    def settle_escrows(self, slot: int, final: bool) -> None:
        """Settle escrows six shop hours old: every third refunded, one posted for less."""
        for entry in [x for x in self.escrows if final or slot - x[0] >= 6]:
            self.escrows.remove(entry)
            h = entry[1]
            amount, n = h.amount or 0, self.holds.index(h.id)
            if n % 3 == 0:
                self.reqs.append(Req(f"{h.id}:refund", pending_id=h.id, ledger=None,
                                     flags=F.VOID_PENDING, code=Kind.ESCROW_REFUND,
                                     ref="refunded: dispute won by buyer"))
                self.avail[h.debit_account_id] += amount
                continue
            posted = amount * 4 // 5 if n == 1 else amount
            tid = f"{h.id}:confirm"
            post = Req(tid, pending_id=h.id, amount=posted, ledger=None,
                       flags=F.POST_PENDING, code=Kind.ESCROW_CONFIRM,
                       ref="buyer confirmed receipt")
            self.reqs += _linked([post, *self._commission(h.credit_account_id, posted, tid)])
            self.avail[h.debit_account_id] += amount - posted

    def confirm_banks(self, day: int) -> None:
        for bank in BANKS:
            amount = self.bank_due.pop((day, bank), 0)
            if amount:
                self.reqs.append(Req(f"demo:bank_confirm:{bank}:day{day}",
                                     self._p("custody_reserve:main"),
                                     self._p(f"bank_clearing:{bank}"), amount,
                                     code=Kind.BANK_CONFIRM, ref=f"{bank.upper()} statement"))

    def take(self) -> list[Req]:
        out, self.reqs = self.reqs, []
        return out


def _linked(legs: list[Req]) -> list[Req]:
    """Chain ``legs`` all-or-nothing: every leg but the last carries LINKED."""
    return [replace(r, flags=r.flags | F.LINKED) for r in legs[:-1]] + legs[-1:]


def plan(world: World, start_us: int) -> list[tuple[int, list[Req]]]:
    """The demo's traffic: (time, requests) batches in time order. Pure and deterministic."""
    p = _Planner(world)
    batches: list[tuple[int, list[Req]]] = []
    slots = [(d, h) for d in range(DAYS) for h in HOURS]
    for slot, (day, hour) in enumerate(slots):
        if slot == 0:
            for wallet in p.wallets:
                p.topup(day, wallet, p.rng.randrange(2, 21) * 5_000)
        if day and hour == 10:
            p.confirm_banks(day - 1)
        p.settle_escrows(slot, final=slot == len(slots) - 1)
        for _ in range(p.rng.randint(2, 4)):
            p.purchase(day)
        if p.rng.random() < 0.5:
            p.p2p()
        if p.rng.random() < 0.3:
            p.topup(day, p.rng.choice(p.wallets), p.rng.randrange(1, 11) * 5_000)
        if hour in (12, 15):
            p.escrow(day, slot)
        if day == DAYS - 1 and hour == 16:
            p.escrow(day, slot, timeout=SHORT_TIMEOUT_S)  # left for the worker to expire
        minute = p.rng.randrange(60)
        batches.append((start_us + ((day * 24 + hour) * 60 + minute) * 60_000_000, p.take()))
    return batches


def demo_start(today: date | None = None) -> datetime:
    """Midnight (CST) three days before ``today`` (CST): the demo's traffic ends yesterday."""
    today = today or datetime.now(CST).date()
    return datetime.combine(today - timedelta(days=DAYS), time(0), CST).astimezone(UTC)


def load_demo(engine: Engine, *, today: date | None = None, out_dir: Path | None = None,
              settings: Settings | None = None) -> DemoResult:
    """Load the demo world. Idempotent: a second load creates nothing and changes no
    balance. Raises RuntimeError if the ledger refuses any transfer (a bug in the plan).
    The voucher cards and the agent's key are written to ``out_dir`` (if given) when first
    created (see :mod:`paycell.demo_wallets`), the demo merchants' keys on every load
    (:mod:`paycell.demo_payments`). ``settings``: the process's by default."""
    start = demo_start(today)
    clock = ManualClock(start - timedelta(hours=1))
    ctx = build_context(engine, clock=clock, settings=settings)
    ledger = ctx.ledger
    world = open_world(ctx)
    created = existing = 0
    holds: list[str] = []
    for at, reqs in plan(world, to_us(start)):
        clock.set(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=at))
        for r, res in zip(reqs, ledger.post(reqs), strict=True):
            if not res.ok:
                raise RuntimeError(f"demo transfer {r.id} refused: {res.error!r}")
            created += res.status == "created"
            existing += res.status == "exists"
            if r.flags & F.PENDING:
                holds.append(r.id)
    # The funding features, through their services, half an hour after the last traffic.
    clock.set(start + timedelta(days=DAYS - 1, hours=HOURS.stop, minutes=30))
    wallet_demo = load_wallet_demo(ctx, msisdns(), DEMO_PIN, out_dir)
    payment_demo = load_payment_demo(ctx, clock, start, msisdns(), DEMO_PIN, out_dir)
    onsite_demo = load_onsite_demo(ctx, clock, start, msisdns(), DEMO_PIN, out_dir)
    # Finance after the traffic: partners' fees, then clearing and payouts of the demo
    # days, then the partners' statement files reconciled against all of it.
    partners_demo = load_partners_demo(ctx, clock, start, out_dir)
    settlement_demo = load_settlement_demo(ctx, clock, start, out_dir)
    recon_demo = load_recon_demo(ctx, clock, start, out_dir)
    seed_closed(ctx)  # last, so the other parts' ids stay as they were: a merchant closed
    ids = [*world.platform.values(), *world.merchants, *world.wallets.values()]
    accounts = ledger.accounts(ids)
    wallet_ids = set(world.wallets.values())
    hold_states = {h: s.status for h in holds if (s := ledger.hold(h)) is not None}
    return DemoResult(
        accounts=len(accounts), created=created, existing=existing,
        wallet_total_fen=sum(a.balance for a in accounts.values() if a.id in wallet_ids),
        balances={a.name: a.balance for a in accounts.values() if a.id not in wallet_ids},
        holds=hold_states,
        subscribers=open_subscribers(ctx),
        wallets=wallet_demo,
        payments=payment_demo,
        onsite=onsite_demo,
        partners=partners_demo,
        settlement=settlement_demo,
        recon=recon_demo,
    )


def _print_summary(r: DemoResult, url: str) -> None:
    table = Table(title="paycell demo world")
    table.add_column("account")
    table.add_column("balance (CNY)", justify="right")
    for name, balance in sorted(r.balances.items()):
        table.add_row(name, format_amount(balance))
    table.add_row("[bold]20 subscriber wallets[/]", f"[bold]{format_amount(r.wallet_total_fen)}")
    console.print(table)
    statuses = Counter(r.holds.values())
    console.print(
        f"{r.accounts} accounts; transfers: [bold]{r.created}[/] created, {r.existing} already "
        f"there; escrow holds: {', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}")
    console.print(f"wallets hold [bold]{format_amount(r.wallet_total_fen)} CNY[/] in total "
                  f"({url.split('://')[0]})")
    numbers = list(r.subscribers)
    console.print(f"log in as any of the {len(numbers)} demo subscribers with PIN "
                  f"[bold]{DEMO_PIN}[/], e.g. {', '.join(numbers[:3])} "
                  "(POST /v1/wallet/login; `paycell subscribers show MSISDN`)")
    if r.wallets is not None:
        print_wallet_summary(console, r.wallets, numbers[0], DEMO_PIN)
    if r.payments is not None:
        print_payment_summary(console, r.payments)
    if r.onsite is not None:
        print_onsite_summary(console, r.onsite)
    if r.partners is not None:
        print_partners_summary(console, r.partners)
    if r.settlement is not None:
        print_settlement_summary(console, r.settlement)
    if r.recon is not None:
        print_recon_summary(console, r.recon)


@demo_app.command("load")
def load(
    if_empty: bool = typer.Option(False, "--if-empty",
                                  help="do nothing if the ledger already has transfers"),
    database_url: str | None = typer.Option(None, "--database-url",
                                            help="defaults to PAYCELL_DATABASE_URL"),
) -> None:
    """Load the demo world (idempotent: loading twice changes nothing)."""
    from sqlalchemy.exc import SQLAlchemyError

    from paycell.config import get_settings
    from paycell.db import make_engine
    from paycell.errors import PaycellError

    url = database_url or get_settings().database_url
    engine = make_engine(url)
    try:
        try:
            seq, _ = Ledger(engine).head()
        except (SQLAlchemyError, PaycellError) as exc:
            console.print(f"[red]cannot read the ledger ({exc.__class__.__name__}); "
                          "run `paycell db upgrade` first[/]")
            raise typer.Exit(1) from exc
        if if_empty and seq:
            console.print(f"the ledger already has {seq} transfers: demo not loaded")
            return
        _print_summary(load_demo(engine, out_dir=Path("var")), url)
    finally:
        engine.dispose()
