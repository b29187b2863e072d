"""On-site payment in the demo world (issue 5), through the real services.

Four demo subscribers get an NFC SIM card (fixed ICCIDs), activated, the payment applet
installed and personalised over the air (each job confirmed by the simulated SIM's
proof-of-receipt). Two demo merchants' shops get a POS terminal (the deposit taken from
their payable, topped up first by a fixed bank transfer), sign on and take taps authorised
online with the card simulator's ARQCs: approvals, one above the no-PIN limit with the
wallet PIN, a decline above 500 CNY, a decline for a tampered cryptogram, a reversal (the
terminal lost the answer) and, the next day, a refund; the coffee shop's batches are
closed with the terminal's own totals (balanced), the box office's is left open. A transit
operator (a merchant of category ``transit``) has a gate: two cards load e-cash from their
wallets, ride offline, and the gate's batch is uploaded and cleared; one of them, its purse
tampered with, spends more than it loaded and is hot-listed. Last, one card is reported
lost: it is hot-listed and an OTA lock job is queued, sent and confirmed.

Every id is fixed (ICCIDs, STANs, batch numbers, ATCs, transfer ids, the gate's batch
reference) and each step runs only from the state it expects, so loading again changes
nothing. Terminal keys go to ``var/demo-terminal-keys.txt`` (mode 0600); card keys never
leave the key store (the card simulators are personalised from it in memory).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from paycell.clock import ManualClock
from paycell.context import Context
from paycell.demo_payments import write_private
from paycell.ledger import TransferRequest, chart
from paycell.merchants import service as merchants
from paycell.merchants.demo import DEMO_MERCHANTS, seed_demo
from paycell.merchants.errors import StoreCodeTakenError
from paycell.merchants.model import Merchant
from paycell.money import format_amount
from paycell.onsite import authorise, authorise_batch, cards, ecash, ota, pos_returns, terminals
from paycell.onsite import sim_applet as sa
from paycell.onsite.authorise import AuthRequest
from paycell.onsite.card_sim import CardSim
from paycell.onsite.ecash import ecash_batches
from paycell.onsite.gate_sim import GateSim
from paycell.onsite.keystore import KeyStore
from paycell.onsite.pos_sim import Totals
from paycell.onsite.terminals import BatchTotals
from paycell.subscribers.service import Subscriber, find_by_msisdn

KEYS_FILE = "demo-terminal-keys.txt"
CST = timezone(timedelta(hours=8), "CST")
ACTOR = "demo-onsite"
HOLDERS = 4  # demo subscribers 0..3 get a card
LOST = 3  # ... and this one loses it
TOPUP_FEN = 60_000  # each card holder's wallet is topped up once, by a fixed transfer
PAYABLE_TOPUP_FEN = 100_000  # paid into each terminal owner's payable for the deposit
TRANSIT_NAME = "Pearl Metro Line 11"
TRANSIT_STORE = ("FT-GATES", "Futian station gates", "Futian station, Shenzhen")
GATE_BATCH_REF = "DEMO-GATE-000001"
FARE_FEN = 200
# (merchant slug from paycell.merchants.demo, store code): the POS terminals
POS_SHOPS = (("coffee", "SZ-NS-01"), ("tickets", "GZ-BOX"))


def iccid(i: int) -> str:
    """The demo SIM ``i``'s ICCID (19 digits, Luhn), the same every time."""
    body = f"8986{9 * 10**13 + 2026_0000 + i + 1:014d}"
    return body + cards.luhn_digit(body)


# A tap: (terminal index, batch, day, time CST, STAN, holder, ATC, amount fen, what).
# what: "" an approval; "pin" above the no-PIN limit with the wallet PIN; "cap" declined
# above 500 CNY; "forged" declined, the cryptogram tampered with; "lost" the answer never
# reached the terminal, which reverses; "refund:STAN:fen" a refund of batch 1's STAN.
Tap = tuple[int, int, int, str, str, int, int, int, str]
TAPS: tuple[Tap, ...] = (
    (0, 1, 1, "08:12", "000001", 0, 1, 2_800, ""),
    (0, 1, 1, "08:40", "000002", 1, 1, 3_600, ""),
    (0, 1, 1, "09:05", "000003", 2, 1, 1_900, ""),
    (0, 1, 1, "12:30", "000004", 3, 1, 4_250, "lost"),
    (0, 1, 1, "12:31", "000005", 3, 2, 4_250, ""),
    (0, 1, 1, "15:10", "000006", 0, 2, 2_600, ""),
    (0, 2, 2, "08:05", "000001", 1, 2, 3_200, ""),
    (0, 2, 2, "10:20", "000002", 0, 0, 2_600, "refund:000006:2600"),
    (0, 2, 2, "11:45", "000003", 2, 2, 5_500, ""),
    (1, 1, 2, "13:00", "000001", 0, 3, 32_000, "pin"),
    (1, 1, 2, "13:30", "000002", 1, 3, 52_000, "cap"),
    (1, 1, 2, "14:10", "000003", 2, 3, 18_800, "forged"),
    (1, 1, 2, "14:12", "000004", 2, 4, 18_800, ""),
)
CLOSE = ((0, 1, 1, "22:00"), (0, 2, 2, "22:00"))  # (terminal, batch, day, time): closed


@dataclass
class OnsiteDemo:
    cards: list[tuple[str, str, str, str]]  # (msisdn, iccid, masked PAN, state)
    terminals: list[tuple[str, str, str, str]]  # (terminal id, merchant, store, state)
    batches: list[BatchTotals]
    gate_batch: tuple[int, int, int, int] | None  # (records, cleared, fen cleared, excess)
    hot_list: list[ecash.HotListEntry]
    ota_jobs: dict[str, int]  # the demo SIMs' jobs by state
    transfers_created: int
    keys_file: Path | None


class _Capture:
    """An SMS gateway in front of the demo's: passes every text on and keeps it, so the
    simulated SIMs can read the OTA packets sent to them."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.sent: list[tuple[str, str]] = []

    def send(self, msisdn: str, body: str) -> None:
        self.inner.send(msisdn, body)  # type: ignore[attr-defined]
        self.sent.append((msisdn, body))


class _Demo:
    def __init__(self, ctx: Context, clock: ManualClock, start: datetime,
                 numbers: list[str], pin: str) -> None:
        self.ctx, self.clock, self.start, self.numbers = ctx, clock, start, numbers
        self.pin = pin  # the wallets' PIN, asked above the no-PIN limit
        self.ks = KeyStore(ctx.settings)
        self.holders: list[Subscriber] = []
        self.cards: list[cards.Card] = []
        self.sims: list[CardSim] = []

    def at(self, day: int, hhmm: str) -> None:
        hours, minutes = map(int, hhmm.split(":"))
        self.clock.set(self.start + timedelta(days=day, hours=hours, minutes=minutes))

    def today(self) -> str:
        return datetime.fromtimestamp(self.clock.now_us() / 1e6, UTC).astimezone(CST
                                                                              ).strftime("%y%m%d")

    def bank_in(self, tid: str, account_id: int, amount: int, ref: str) -> None:
        ledger = self.ctx.ledger
        bank = chart.system_account(ledger, chart.Code.BANK_CLEARING, "icbc")
        res = ledger.post([TransferRequest(id=tid, debit_account_id=bank.id,
                                           credit_account_id=account_id, amount=amount,
                                           code=int(chart.TransferCode.TOPUP_BANK), ref=ref)])[0]
        if not res.ok:
            raise RuntimeError(f"demo transfer {tid} refused: {res.error!r}")

    # -- cards and their SIMs ----------------------------------------------------------------
    def issue_cards(self) -> None:
        self.at(0, "07:40")
        for i in range(HOLDERS):
            sub = find_by_msisdn(self.ctx, self.numbers[i])
            assert sub is not None, f"demo subscriber {self.numbers[i]} is missing"
            self.bank_in(f"demo:onsite:topup:{i}", sub.wallet_account_id, TOPUP_FEN,
                         "top-up by ICBC card")
            card = cards.issue_card(self.ctx, sub, iccid(i), actor=ACTOR)
            if card.state == "issued":
                card = cards.activate(self.ctx, card.id, actor=ACTOR)
            self.holders.append(sub)
            self.cards.append(card)
            self.sims.append(CardSim.personalised(self.ks, card.pan, card.psn))
        self.at(0, "07:50")
        for card in self.cards:
            applet = sa.SimApplet.provision(self.ks.ota_master_key(), card.iccid)
            for command in ("install", "personalise"):
                self.ota(applet, card, command, f"demo:onsite:{card.iccid}:{command}")

    def ota(self, applet: sa.SimApplet, card: cards.Card, command: str,
            request_key: str | None = None, job: ota.OtaJob | None = None) -> ota.OtaJob:
        """Queue (unless given) and send an OTA job; the SIM answers with its PoR."""
        job = job or ota.create_job(self.ctx, card.iccid, command, actor=ACTOR,
                                    card_id=card.id, request_key=request_key)
        if job.state == "confirmed":
            applet.state = {"install": "installed", "personalise": "personalised",
                            "lock": "locked"}.get(command, applet.state)
            return job
        capture = _Capture(self.ctx.sms)
        ota.send_job(replace(self.ctx, sms=capture), job.id)
        self.clock.advance(seconds=20)
        for _, text in capture.sent:
            por = applet.receive(text)
            if por is not None:
                job = ota.receive_por(self.ctx, card.iccid, por)
        return job

    # -- POS ---------------------------------------------------------------------------------
    def terminal(self, m: Merchant, store_code: str) -> terminals.Terminal:
        store = next(s for s in merchants.list_stores(self.ctx, m.id) if s.code == store_code)
        found = [t for t in terminals.list_terminals(self.ctx, merchant_id=m.id)
                 if t.store_id == store.id and t.state != "retired"]
        if found:
            return min(found, key=lambda t: t.id)
        assert m.payable_account_id is not None
        self.bank_in(f"demo:onsite:deposit-in:{m.code}:{store_code}", m.payable_account_id,
                     PAYABLE_TOPUP_FEN, "terminal deposit paid in by bank transfer")
        return terminals.register_terminal(self.ctx, m.code, store_code, ACTOR).terminal

    def pos(self, terms: list[tuple[terminals.Terminal, Merchant, str]]) -> None:
        """The taps, reversals, refunds and batch closes of ``TAPS`` and ``CLOSE``."""
        totals: dict[tuple[int, int], Totals] = {}

        def close_open(t: int) -> None:
            term = terminals.get_terminal(self.ctx, terms[t][0].terminal_id)
            for ct, cb, day, hhmm in CLOSE:
                if (ct, cb) == (t, term.batch_no) and term.batch_open:
                    self.at(day, hhmm)
                    terminals.close_batch(self.ctx, term, cb,
                                          totals.get((t, cb), Totals()).as_json())

        for t, batch, day, hhmm, stan, who, atc, amount, what in TAPS:
            term, merchant, store = terms[t]
            term = terminals.get_terminal(self.ctx, term.terminal_id)
            if term.batch_no > batch or (term.batch_no == batch and not term.batch_open):
                continue  # done on an earlier load
            if term.batch_no < batch and term.batch_open:
                close_open(t)
            self.at(day, hhmm)
            term = terminals.get_terminal(self.ctx, term.terminal_id)
            if not term.batch_open:
                terminals.sign_on(self.ctx, term)
                term = terminals.get_terminal(self.ctx, term.terminal_id)
            tally = totals.setdefault((t, batch), Totals())
            if what.startswith("refund:"):
                _, original, fen = what.split(":")
                pos_returns.refund(self.ctx, term, batch_no=batch, stan=stan,
                                   original_batch_no=batch - 1, original_stan=original,
                                   amount_fen=int(fen))
                tally.refunded_count += 1
                tally.refunded_fen += int(fen)
                continue
            sim = self.sims[who]
            sim.atc = atc - 1
            ac = sim.generate_ac(amount, unpredictable=f"5EED{stan[-4:]}", date=self.today())
            arqc = ac.cryptogram.hex().upper()
            if what == "forged":
                arqc = arqc[:-1] + ("0" if arqc[-1] != "0" else "1")
            tx = ac.txn
            req = AuthRequest(
                merchant_code=merchant.code, store_code=store, batch_no=batch, stan=stan,
                pan=sim.pan, psn=sim.psn, amount_fen=amount, atc=tx.atc,
                unpredictable=tx.unpredictable, arqc=arqc, date=tx.date, tvr=tx.tvr,
                aip=tx.aip, cvr=tx.cvr, pin=self.pin if what == "pin" else None)
            a = authorise_batch.authorise(self.ctx, term, req)
            if not a.approved:
                continue
            if what == "lost":  # the answer never came back: the terminal reverses
                self.clock.advance(seconds=30)
                pos_returns.reverse(self.ctx, term, batch, stan, amount)
                tally.reversed_count += 1
                tally.reversed_fen += amount
                continue
            sim.second_generate_ac(bytes.fromhex(a.arpc or ""), authorise.ARC_APPROVED)
            tally.approved_count += 1
            tally.approved_fen += amount
        for t in range(len(terms)):
            close_open(t)

    # -- transit -----------------------------------------------------------------------------
    def transit_operator(self) -> Merchant:
        found = [m for m in merchants.list_merchants(self.ctx, limit=500)
                 if m.name == TRANSIT_NAME]
        if found:
            m = min(found, key=lambda x: x.id)
        else:
            m = merchants.create_active_merchant(
                self.ctx, name=TRANSIT_NAME, category="transit",
                company="Pearl Metro Operations Co., Ltd.").merchant
        code, name, address = TRANSIT_STORE
        with contextlib.suppress(StoreCodeTakenError):
            merchants.add_store(self.ctx, m.id, code, name, address, ACTOR)
        return merchants.get_merchant(self.ctx, m.id)

    def transit(self, gate_term: terminals.Terminal) -> None:
        with self.ctx.engine.connect() as conn:
            done = conn.execute(select(ecash_batches.c.id).where(
                ecash_batches.c.batch_ref == GATE_BATCH_REF)).first()
        if done is not None:
            return
        rider, cheat = self.sims[0], self.sims[1]
        self.at(2, "07:00")  # the app loads the purse from the wallet (圈存)
        for who, amount in ((0, 3_000), (1, 500)):
            sim, card = self.sims[who], self.cards[who]
            sim.atc, sim.ecash_fen = 9, 0
            ac = sim.generate_ac(amount, unpredictable=f"10AD{who:04d}", date=self.today(),
                                 txn_type="60")
            res = ecash.load_ecash(self.ctx, card.id, ac.txn, ac.cryptogram, sim.ecash_fen,
                                   actor=ACTOR)
            sim.second_generate_ac(res.arpc, res.arc, scripts=(res.script,))
            self.clock.advance(minutes=1)
        gate = GateSim(gate_term.terminal_id, FARE_FEN, clock=self.clock)
        for hhmm, sim in (("07:32", rider), ("07:45", cheat), ("12:10", rider),
                          ("18:05", rider)):
            self.at(2, hhmm)
            gate.tap(sim)
        cheat.ecash_fen = 5_000  # a tampered purse: the card now claims 50.00 CNY
        for hhmm in ("18:20", "19:02"):
            self.at(2, hhmm)
            gate.tap(cheat)
        self.at(2, "23:30")  # the gate uploads its day
        ecash.clear_batch(self.ctx, gate_term, gate.close_batch(), batch_ref=GATE_BATCH_REF)

    # -- a lost card -------------------------------------------------------------------------
    def lose_card(self) -> None:
        card = cards.get_card(self.ctx, self.cards[LOST].id)
        self.at(2, "23:40")
        if card.state != "lost":
            card = cards.report_lost(self.ctx, card.id, f"subscriber:{card.subscriber_id}",
                                     reason="phone lost on the metro")
        jobs = [j for j in ota.list_jobs(self.ctx, iccid=card.iccid) if j.command == "lock"]
        if not jobs:
            raise RuntimeError(f"no OTA lock job was queued for lost card {card.id}")
        applet = sa.SimApplet.provision(self.ks.ota_master_key(), card.iccid)
        applet.state = "personalised"
        self.at(2, "23:41")
        self.ota(applet, card, "lock", job=jobs[0])


def _write_keys(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """The terminals' keys, readable by the owner only; rewritten only if changed."""
    lines = ["# paycell demo terminals: MAC terminal API requests with the key "
             "(docs/onsite.md, 'The terminal API and its MAC').",
             "# terminal_id  key  merchant  store"]
    lines += [" ".join(r) for r in rows]
    return write_private(path, "\n".join(lines) + "\n")


def load_onsite_demo(ctx: Context, clock: ManualClock, start: datetime, numbers: list[str],
                     pin: str, out_dir: Path | None = None) -> OnsiteDemo:
    """Add on-site payment to the demo world (see the module's docstring). ``start`` is
    midnight (CST) of the demo's first day; ``clock`` is ``ctx``'s. Idempotent."""
    seq_before, _ = ctx.ledger.head()
    demo = _Demo(ctx, clock, start, numbers, pin)
    demo.issue_cards()
    demo.at(0, "08:30")
    by_slug = {d.slug: o.merchant for d, o in zip(DEMO_MERCHANTS, seed_demo(ctx), strict=True)}
    terms = [(demo.terminal(by_slug[slug], store), by_slug[slug], store)
             for slug, store in POS_SHOPS]
    operator = demo.transit_operator()
    gate = demo.terminal(operator, TRANSIT_STORE[0])
    demo.pos(terms)
    demo.transit(gate)
    demo.lose_card()
    all_terms = [*terms, (gate, operator, TRANSIT_STORE[0])]
    rows = []
    for term, m, store in all_terms:
        key = terminals.terminal_key(ctx, term).hex().upper()
        rows.append((term.terminal_id, key, m.code, store))
    keys_file = _write_keys(out_dir / KEYS_FILE, rows) if out_dir is not None else None
    batches = [terminals.batch_totals(ctx, t, b) for t, _, _ in terms
               for b in range(1, terminals.get_terminal(ctx, t.terminal_id).batch_no + 1)]
    with ctx.engine.connect() as conn:
        g = conn.execute(select(ecash_batches).where(
            ecash_batches.c.batch_ref == GATE_BATCH_REF)).first()
    iccids = [c.iccid for c in demo.cards]
    jobs: Counter[str] = Counter(j.state for i in iccids for j in ota.list_jobs(ctx, iccid=i))
    pans = {c.pan for c in demo.cards}
    seq_after, _ = ctx.ledger.head()
    return OnsiteDemo(
        cards=[(s.msisdn, c.iccid, c.pan_masked, cards.get_card(ctx, c.id).state)
               for s, c in zip(demo.holders, demo.cards, strict=True)],
        terminals=[(terminals.get_terminal(ctx, t.terminal_id).terminal_id, m.name, store,
                    terminals.get_terminal(ctx, t.terminal_id).state) for t, m, store in all_terms],
        batches=batches,
        gate_batch=None if g is None else (g.records, g.cleared, g.cleared_fen, g.excess_fen),
        hot_list=[e for e in ecash.hot_list(ctx) if e.pan in pans],
        ota_jobs=dict(jobs), transfers_created=seq_after - seq_before, keys_file=keys_file)


def print_onsite_summary(console: Console, o: OnsiteDemo) -> None:
    """The summary's part on on-site payment."""
    table = Table(title="on-site payment (NFC SIM cards, POS terminals, transit gate)")
    for col in ("what", "id", "where / who", "state"):
        table.add_column(col)
    for msisdn, icc, pan, state in o.cards:
        table.add_row("NFC card", pan, f"{msisdn} (SIM {icc})", state)
    for tid, name, store, state in o.terminals:
        table.add_row("terminal", tid, f"{name}, {store}", state)
    for b in o.batches:
        table.add_row("batch", f"{b.terminal_id} #{b.batch_no}",
                      f"{b.approved_count} approved, {b.reversed_count} reversed, "
                      f"{b.refunded_count} refunded, {b.declined_count} declined; net "
                      f"{format_amount(b.net_fen)} CNY", b.state
                      + ("" if b.balanced is None else " (balanced)" if b.balanced
                         else " (NOT balanced)"))
    console.print(table)
    if o.gate_batch is not None:
        n, cleared, fen, excess = o.gate_batch
        console.print(f"transit gate: {n} offline fares uploaded, {cleared} cleared "
                      f"({format_amount(fen)} CNY), {format_amount(excess)} CNY over-spent")
    console.print("hot list: " + (", ".join(f"{e.pan[:6]}...{e.pan[-4:]} ({e.reason})"
                                            for e in o.hot_list) or "empty")
                  + "; OTA jobs: " + ", ".join(f"{n} {s}" for s, n in sorted(o.ota_jobs.items()))
                  + f"; {o.transfers_created} ledger transfers made by this load")
    console.print("try `paycell onsite cards`, `paycell onsite terminals`, "
                  "`paycell onsite hot-list`, `paycell onsite ota-jobs`", soft_wrap=True)
    if o.keys_file is not None:
        console.print(f"terminal keys: [bold]{o.keys_file}[/] (README: On-site payment)")
