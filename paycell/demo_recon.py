"""The demo world's part on reconciliation: statements from the bank (GBK), the carrier
and the transit operator, reconciled against the ledger.

1. **Records to reconcile.** The demo's ledger traffic (``demo.py``) moves money without
   funding records, so on the last demo day four subscribers bind an ICBC card and top up
   from it, two withdraw to it, and four top up by phone bill, all through the funding
   services, against the loopback bank and carrier simulators (started here on loopback
   ports, as the tests do; the bank's texts go through the demo's SMS gateway).
2. **Statements**, written by ``gateways/statement_sim.from_records`` (our records plus one
   discrepancy of each class: a record left out, an amount one yuan more, a line listed
   twice, a line we have no record of) under ``settings.reports_dir``/statements/: the
   bank's in GBK (top-ups, withdrawals and the settlement payouts of the batch the
   settlement part paid), the carrier's and the transit gate's in UTF-8.
3. **Reconciled** through ``reconciliation.service.reconcile_file``, with a report each.
4. **Suspense**: the bank's amount mismatch (the card was charged one yuan more than the
   wallet got) is passed on to the subscriber's wallet: proposed by ``demo-maker``,
   approved by ``demo-checker``. Every other difference stays open for a newcomer.

Idempotent: the funding records are keyed (found again), each statement is imported once
(a statement of the same file name, source, partner and date is matched again instead),
the resolution is found again by its item's state.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import select, text

from paycell.clock import ManualClock, from_us, to_us
from paycell.context import Context
from paycell.funding import cards, topups, withdrawals
from paycell.funding.common import record_id
from paycell.funding.tables import topups as topups_table
from paycell.funding.tables import withdrawals as withdrawals_table
from paycell.gateways import statement_sim
from paycell.gateways.bank import HttpBank, luhn_complete
from paycell.gateways.carrier import HttpCarrier
from paycell.merchants.tables import merchants
from paycell.money import format_amount
from paycell.operators import approvals
from paycell.operators.service import ensure_operator
from paycell.reconciliation import matching, resolve, service
from paycell.reconciliation.formats import Header, OutLine, write
from paycell.reconciliation.tables import statements
from paycell.settlement.calendar import CST
from paycell.subscribers.service import Subscriber, find_by_msisdn
from paycell.subscribers.tables import subscribers

DAYS = 3
BANK = "icbc"
TRANSIT_NAME = "Pearl Metro Line 11"  # the transit operator of demo_onsite.py
MAKER, CHECKER = "demo-maker", "demo-checker"  # the settlement part's operators
KEY = "demo:recon"
# On the last demo day (time CST, demo subscriber, fen): card top-ups and withdrawals
# (ICBC), phone-bill top-ups (the carrier). Subscribers 10-17 have no other funding.
CARD_TOPUPS = (("09:06", 10, 50_000), ("09:41", 11, 30_000), ("11:16", 12, 20_000),
               ("13:31", 13, 100_000), ("15:02", 10, 15_000))
WITHDRAWALS = (("17:20", 11, 12_000), ("19:45", 13, 40_000))
PHONE_TOPUPS = (("10:10", 14, 5_000), ("12:00", 15, 10_000), ("14:20", 16, 3_000),
                ("16:45", 17, 20_000), ("20:10", 14, 2_000))
CARD_HOLDERS = (10, 11, 12, 13)
UNKNOWN_FEN = {"bank": 8_800, "carrier": 5_000, "transit": 400}  # the line we don't know
CLASSES = ("matched", "missing_ours", "missing_theirs", "amount_mismatch", "duplicate")


def card_number(i: int) -> str:
    """Demo subscriber ``i``'s ICBC card (BIN 622202, Luhn), the same every time."""
    return luhn_complete(f"62220288{i:07d}")


@dataclass
class StatementRun:
    statement_id: int
    source: str
    partner: str
    business_date: str
    file: str
    encoding: str
    lines: int
    counts: dict[str, int]
    suspense_fen: int
    state: str
    report: str


@dataclass
class ReconDemo:
    statements: list[StatementRun] = field(default_factory=list)
    records: dict[str, int] = field(default_factory=dict)  # funding records made (by kind)
    suspense_open_fen: int = 0  # open items' suspense, all statements
    open_items: int = 0
    resolved: str = ""  # the item resolved by two operators, in words
    newcomer_item: int | None = None  # left open: the bank's unknown credit
    newcomer_fen: int = 0
    transit_item: int | None = None  # an item that parked nothing: accept it
    transfers_created: int = 0


def load_recon_demo(ctx: Context, clock: ManualClock, start: datetime,
                    out_dir: Path | None = None) -> ReconDemo | None:
    """Add this part to the demo world. ``start`` is midnight (CST) of the demo's first
    day; ``clock`` is ``ctx``'s (the settlement part left it just after the last demo day's
    cut-off). The files go under ``settings.reports_dir``, not ``out_dir`` (which holds
    secrets). Idempotent; leaves the clock a few minutes later than it found it."""
    first = start.astimezone(CST).date()
    last = first + timedelta(days=DAYS - 1)
    morning = datetime.combine(last + timedelta(days=1), datetime.min.time(), CST)
    after = max(clock.now_us(), to_us(morning + timedelta(minutes=15)))
    seq0 = ctx.ledger.head()[0]
    out = ReconDemo()
    out.records = _funding(ctx, clock, datetime.combine(last, datetime.min.time(), CST))
    clock.set(from_us(after))  # the statements come in after midnight
    folder = Path(ctx.settings.reports_dir) / "statements"
    folder.mkdir(parents=True, exist_ok=True)
    transit = _transit_code(ctx)
    sources = [("bank", BANK, "gbk"), ("carrier", ctx.settings.carrier_name, "utf-8")]
    if transit is not None:
        sources.append(("transit", transit, "utf-8"))
    for source, partner, encoding in sources:
        lines = statement_sim.from_records(
            ctx, source, partner, last,
            statement_sim.Injected(unknown_fen=UNKNOWN_FEN[source]))
        if source == "bank":
            lines = lines[:-1] + _payout_lines(ctx, last.isoformat()) + lines[-1:]
        path = folder / f"{source}-{partner}-{last.isoformat()}.csv"
        out.statements.append(_reconcile(ctx, path, Header(source, partner, last.isoformat(),
                                                           "CNY"), lines, encoding))
    clock.advance(minutes=10)
    _resolve(ctx, clock, out)
    found = service.list_items(ctx, state="open", limit=1000)
    out.open_items = len(found)
    out.suspense_open_fen = sum(i.suspense_fen for i in found)
    out.transfers_created = ctx.ledger.head()[0] - seq0
    return out


# -- 1. funding records through the services ---------------------------------------------------
def _sub(ctx: Context, i: int) -> Subscriber:
    from paycell.demo import msisdns

    sub = find_by_msisdn(ctx, msisdns()[i])
    assert sub is not None, "the demo's subscribers are opened first"
    return sub


def _key(kind: str, n: int) -> str:
    return f"{KEY}:{kind}:{n}"


def _all_there(ctx: Context) -> bool:
    want_t = {record_id("tu_", _sub(ctx, i).id, _key("topup", n))
              for n, (_, i, _) in enumerate(CARD_TOPUPS + PHONE_TOPUPS)}
    want_w = {record_id("wd_", _sub(ctx, i).id, _key("withdrawal", n))
              for n, (_, i, _) in enumerate(WITHDRAWALS)}
    with ctx.engine.connect() as conn:
        t = set(conn.execute(select(topups_table.c.id).where(
            topups_table.c.id.in_(want_t), topups_table.c.state != "pending")).scalars())
        w = set(conn.execute(select(withdrawals_table.c.id).where(
            withdrawals_table.c.id.in_(want_w),
            withdrawals_table.c.state != "pending")).scalars())
    return t == want_t and w == want_w


def _funding(ctx: Context, clock: ManualClock, day: datetime) -> dict[str, int]:
    """The last demo day's card top-ups, withdrawals and phone-bill top-ups; the simulators
    are started only when something is still to be done (the first load)."""
    counts = {"card top-ups": len(CARD_TOPUPS), "withdrawals": len(WITHDRAWALS),
              "phone-bill top-ups": len(PHONE_TOPUPS)}
    if _all_there(ctx):
        return counts
    from paycell.demo import DEMO_PIN
    from paycell.gateways.bank_sim import BankSimulator
    from paycell.gateways.carrier_sim import CarrierSimulator
    from paycell.gateways.simkit import SimServer

    bank_sim = BankSimulator(ctx.sms, clock=clock, secret=ctx.settings.secret_key)
    carrier_sim = CarrierSimulator(clock=clock)
    bank_srv = SimServer(bank_sim.app(), on_stop=bank_sim.close).start()
    carrier_srv = SimServer(carrier_sim.app(), on_stop=carrier_sim.close).start()
    timeout = ctx.settings.gateway_timeout_s
    fctx = replace(ctx, bank=HttpBank(bank_srv.url, timeout_s=timeout),
                   carrier=HttpCarrier(carrier_srv.url, name=ctx.settings.carrier_name,
                                       timeout_s=timeout))

    def at(hhmm: str) -> None:
        h, m = map(int, hhmm.split(":"))
        clock.set(day + timedelta(hours=h, minutes=m))

    try:
        for i in CARD_HOLDERS:
            sub = _sub(ctx, i)
            at("09:00")
            card = cards.add_card(fctx, sub, card_number(i), key=_key("card", i))
            if card.state == "verifying":  # the code the bank texted the holder
                code = bank_sim.verifications[f"card:{card.id}"].code
                cards.confirm_card(fctx, sub, card.id, code)
        for n, (hhmm, i, fen) in enumerate(CARD_TOPUPS):
            at(hhmm)
            topups.topup_from_card(fctx, _sub(ctx, i), fen, key=_key("topup", n))
        for n, (hhmm, i, fen) in enumerate(PHONE_TOPUPS, len(CARD_TOPUPS)):
            at(hhmm)
            topups.topup_by_phone_bill(fctx, _sub(ctx, i), fen, key=_key("topup", n))
        for n, (hhmm, i, fen) in enumerate(WITHDRAWALS):
            at(hhmm)
            withdrawals.request_withdrawal(fctx, _sub(ctx, i), fen, DEMO_PIN,
                                           key=_key("withdrawal", n))
    finally:
        bank_srv.stop()
        carrier_srv.stop()
    if not _all_there(ctx):
        raise RuntimeError("a demo top-up or withdrawal was not confirmed by the simulators")
    return counts


# -- 2-3. statements, reconciled ---------------------------------------------------------------
def _transit_code(ctx: Context) -> str | None:
    with ctx.engine.connect() as conn:
        code = conn.execute(select(merchants.c.code).where(
            merchants.c.name == TRANSIT_NAME)).scalar()
    return None if code is None else str(code)


def _payout_lines(ctx: Context, day: str) -> list[OutLine]:
    """The settlement payouts of ``day``'s batch the bank paid from our account."""
    with ctx.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT reference, amount_fen FROM settlement_payouts WHERE bank = :b AND "
            "business_date = :d AND state IN ('sent', 'paid') ORDER BY reference"),
            {"b": BANK, "d": day}).all()
    return [OutLine(f"BKP{n:07d}", day, "out", ref, int(fen), "结算付款")
            for n, (ref, fen) in enumerate(rows, 1)]


def _write_atomically(path: Path, header: Header, lines: list[OutLine], encoding: str) -> None:
    """Write the file next to its place and rename it there: a reader (another load of the
    demo on another database) never sees half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp), header, lines, encoding=encoding)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _reconcile(ctx: Context, path: Path, header: Header, lines: list[OutLine],
               encoding: str) -> StatementRun:
    st = statements.c
    with ctx.engine.connect() as conn:
        sid = conn.execute(select(st.id).where(
            st.source == header.source, st.partner == header.partner,
            st.business_date == header.business_date, st.filename == path.name)
            .order_by(st.id).limit(1)).scalar()
    if sid is None or not path.exists():
        _write_atomically(path, header, lines, encoding)
    if sid is None:
        summary = service.reconcile_file(ctx, path, source=header.source, actor="demo")
    else:  # imported by an earlier load: only finished if it was interrupted
        summary = matching.match(ctx, sid)
    report = service.write_report(ctx, summary)
    with ctx.engine.connect() as conn:
        enc = conn.execute(select(st.encoding).where(st.id == summary.statement_id)).scalar()
    return StatementRun(summary.statement_id, summary.source, summary.partner,
                        summary.business_date, str(path), str(enc), summary.lines,
                        {c: summary.counts.get(c, 0) for c in CLASSES}, summary.suspense_fen,
                        summary.state, str(report))


# -- 4. suspense: one item resolved by two operators -------------------------------------------
def _resolve(ctx: Context, clock: ManualClock, out: ReconDemo) -> None:
    bank = next((s for s in out.statements if s.source == "bank"), None)
    if bank is None:
        return
    items = service.list_items(ctx, state=None, statement_id=bank.statement_id, limit=1000)
    unknown = [i for i in items if i.category == "missing_ours" and i.state == "open"]
    if unknown:
        out.newcomer_item, out.newcomer_fen = unknown[0].id, unknown[0].suspense_fen
    transit = next((s for s in out.statements if s.source == "transit"), None)
    if transit is not None:
        t_items = service.list_items(ctx, state=None, statement_id=transit.statement_id)
        out.transit_item = next((i.id for i in t_items if i.state == "open"), None)
    mismatch = next((i for i in items if i.category == "amount_mismatch"), None)
    if mismatch is None:
        return
    with ctx.engine.connect() as conn:  # whose top-up: the wallet the yuan goes to
        sub_msisdn = conn.execute(select(subscribers.c.msisdn).select_from(
            topups_table.join(subscribers, subscribers.c.id == topups_table.c.subscriber_id))
            .where(topups_table.c.id == mismatch.reference.removeprefix("topup:"))).scalar()
    maker = ensure_operator(ctx.engine, ctx.clock, MAKER, "operator")
    checker = ensure_operator(ctx.engine, ctx.clock, CHECKER, "operator")
    if mismatch.state == "open" and sub_msisdn is not None:
        pending = approvals.list_pending(ctx, action=resolve.ACTION,
                                         subject=f"recon_item:{mismatch.id}")
        if pending:
            approval_id = pending[0].id
        else:
            proposed = resolve.resolve(
                ctx, maker, mismatch.id, "pass_on",
                "demo: the bank took one yuan more from the card than the wallet got: "
                "give it to the subscriber", target=f"wallet:{sub_msisdn}")
            approval_id = int(proposed["approval_id"])
        clock.advance(minutes=5)
        approvals.approve(ctx, checker, approval_id)
    log = [r for r in resolve.resolution_log(ctx, limit=1000) if r["item_id"] == mismatch.id]
    if log:
        r = log[0]
        out.resolved = (f"item {mismatch.id} ({mismatch.category}, "
                        f"{format_amount(abs(int(r['amount_fen'])))} CNY) {r['action']} to "
                        f"{r['target']}: proposed by {r['proposed_by']}, approved by "
                        f"{r['approved_by']} (approval {r['approval_id']})")


def print_recon_summary(console: Console, d: ReconDemo) -> None:
    """The summary's part on reconciliation."""
    console.print("[bold]Reconciliation[/] (docs/reconciliation.md): "
                  + ", ".join(f"{n} {k}" for k, n in d.records.items())
                  + " on the last demo day, through the funding services")
    day = d.statements[0].business_date if d.statements else ""
    table = Table(title=f"statements of {day} reconciled")
    table.add_column("class")
    for s in d.statements:
        table.add_column(f"#{s.statement_id} {s.source} {s.partner}", justify="right")
    for c in CLASSES:
        table.add_row(c, *(str(s.counts.get(c, 0)) for s in d.statements))
    table.add_row("to suspense", *(format_amount(s.suspense_fen) for s in d.statements))
    console.print(table)
    for s in d.statements:
        console.print(f"  #{s.statement_id} {s.file} ({s.encoding}, {s.lines} lines)")
    if d.statements:
        console.print(f"  reports: {Path(d.statements[0].report).parent}/")
    console.print(f"  open in suspense: {format_amount(d.suspense_open_fen)} CNY (net) in "
                  f"{d.open_items} open items")
    if d.resolved:
        console.print(f"  resolved by two operators: {d.resolved}")
    console.print("  try `paycell reconcile statements`, `paycell reconcile items`")
    if d.newcomer_item is not None:
        console.print(f"  still open for you: item {d.newcomer_item}, a credit of "
                      f"{format_amount(d.newcomer_fen)} CNY the bank lists and we have no "
                      f"record of: `paycell reconcile resolve {d.newcomer_item} --action "
                      f"write_off --note \"unknown credit\" --as {MAKER}`, then "
                      f"`paycell operators approve ID --as {CHECKER}`")
    if d.transit_item is not None:
        console.print(f"  transit items park no money: `paycell reconcile resolve "
                      f"{d.transit_item} --action accept --note \"checked\" --as {MAKER}`")
