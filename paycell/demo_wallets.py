"""The demo's wallet funding: recharge vouchers, an agent outlet with cash-ins, and P2P
transfers (one to a number without a wallet, waiting to be claimed), all through the
services, dated just after the demo's ledger traffic.

Idempotent: the voucher batch and the agent are found again by their request keys, the
float top-up and cash-ins by their references, the P2P transfers by their request keys.
Secrets are shown once, so the unredeemed cards (``demo-vouchers.csv``) and the agent's
API key (``demo-agent-key.txt``) are written to ``out_dir`` when they are first created.

Bank cards (and so card top-ups and withdrawals) are left out: binding needs the bank
simulator, whose state lives in the ``paycell serve`` process (see docs/gateways.md).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from sqlalchemy import func, select

from paycell.context import Context
from paycell.funding import agents, cash_rules, p2p_send, vouchers
from paycell.funding.cash_tables import agent_transactions, p2p_transfers
from paycell.funding.cash_tables import vouchers as vouchers_table
from paycell.money import format_amount
from paycell.subscribers.service import Subscriber, find_by_msisdn

VOUCHER_KEY = "demo:vouchers"
VOUCHER_FACE_FEN = 5_000
VOUCHER_COUNT = 20
VOUCHERS_REDEEMED = 5  # by the first five demo subscribers
VOUCHER_CSV = "demo-vouchers.csv"
AGENT_KEY = "demo:agent"
AGENT_CODE = "demo-outlet-01"
AGENT_KEY_FILE = "demo-agent-key.txt"
FLOAT_FEN = 500_000  # 5,000.00 CNY deposited by the agent
CASH_INS = ((5, 20_000), (6, 10_000), (7, 50_000))  # (demo subscriber, fen)
P2P = ((0, 1, 2_000, "lunch"), (2, 3, 1_314, "red packet"), (5, 6, 5_000, "rent share"))
INVITEE = "+8613900139000"  # has no wallet: the money waits for it to sign up
INVITE_FEN = 3_000


@dataclass
class WalletDemo:
    voucher_batch_id: int
    vouchers_redeemed: int
    vouchers_unredeemed: int
    voucher_csv: Path | None  # where the unredeemed cards are (None: not written)
    agent_code: str
    agent_float_fen: int
    cash_ins: int
    agent_key: str | None  # only when the agent was created by this load
    agent_key_file: Path | None
    p2p_completed: int
    p2p_pending_claim: int
    invitee: str = INVITEE
    notes: list[str] = field(default_factory=list)


def _subscriber(ctx: Context, msisdn: str) -> Subscriber:
    sub = find_by_msisdn(ctx, msisdn)
    assert sub is not None, f"demo subscriber {msisdn} is missing"
    return sub


def _write_new(path: Path, text: str) -> None:
    """Write a secret-bearing file readable by its owner only (never overwriting)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", newline="") as f:
        f.write(text)


def _vouchers(ctx: Context, numbers: list[str], out_dir: Path | None,
              notes: list[str]) -> tuple[int, Path | None]:
    today = cash_rules.card_today(ctx.clock.now_us())
    made = vouchers.generate_batch(ctx, VOUCHER_FACE_FEN, VOUCHER_COUNT,
                                   today + timedelta(days=365), request_key=VOUCHER_KEY)
    csv_path = out_dir / VOUCHER_CSV if out_dir is not None else None
    if made.secrets_shown:
        for (card, secret), msisdn in zip(made.cards, numbers[:VOUCHERS_REDEEMED], strict=False):
            vouchers.redeem_voucher(ctx, _subscriber(ctx, msisdn), card, secret)
        left = made.cards[VOUCHERS_REDEEMED:]
        if csv_path is not None:
            buf = io.StringIO()
            out = csv.writer(buf, lineterminator="\n")
            out.writerow(("card_number", "secret", "face_value_cny", "expires_on"))
            out.writerows((n, sec, f"{VOUCHER_FACE_FEN / 100:.2f}", made.batch.expires_on)
                          for n, sec in left)
            if csv_path.exists():
                csv_path.unlink()  # a stale file from a dropped database: its cards are gone
            _write_new(csv_path, buf.getvalue())
    elif csv_path is not None and not csv_path.exists():
        notes.append(f"{csv_path} is missing: the voucher secrets were shown only when the "
                     "demo was first loaded (`paycell vouchers generate` makes new cards)")
        csv_path = None
    return made.batch.id, csv_path


def _agent(ctx: Context, numbers: list[str], out_dir: Path | None,
           notes: list[str]) -> tuple[agents.Agent, str | None, Path | None]:
    agent, key = agents.create_agent(ctx, AGENT_CODE, "Paycell Outlet, Nanjing Road",
                                     "Nanjing Road 100, Shanghai", request_key=AGENT_KEY)
    key_path = out_dir / AGENT_KEY_FILE if out_dir is not None else None
    if key is not None and key_path is not None:
        if key_path.exists():
            key_path.unlink()  # a stale key from a dropped database
        _write_new(key_path, key + "\n")
    elif key_path is not None and not key_path.exists():
        notes.append(f"{key_path} is missing: the agent key was shown only on first load")
        key_path = None
    agents.top_up_float(ctx, agent.id, FLOAT_FEN, "demo-deposit-0001")
    for n, (i, amount) in enumerate(CASH_INS, 1):
        agents.cash_in(ctx, agent, numbers[i], amount, f"demo-cash-in-{n:04d}")
    return agent, key, key_path


def _p2p(ctx: Context, numbers: list[str], pin: str) -> None:
    for n, (a, b, amount, note) in enumerate(P2P, 1):
        p2p_send.send_transfer(ctx, _subscriber(ctx, numbers[a]), numbers[b], amount, pin,
                               note, request_key=f"demo:p2p:{n}")
    p2p_send.send_transfer(ctx, _subscriber(ctx, numbers[4]), INVITEE, INVITE_FEN, pin,
                           "welcome to paycell", request_key="demo:p2p:invite")


def load_wallet_demo(ctx: Context, numbers: list[str], pin: str,
                     out_dir: Path | None = None) -> WalletDemo:
    """Add the funding features to the demo world (see the module's docstring)."""
    notes: list[str] = []
    batch_id, csv_path = _vouchers(ctx, numbers, out_dir, notes)
    agent, key, key_path = _agent(ctx, numbers, out_dir, notes)
    _p2p(ctx, numbers, pin)
    refs = _p2p_refs(ctx, numbers)  # before the connection: on SQLite it holds the lock
    with ctx.engine.connect() as conn:
        by_state: dict[str, int] = dict(conn.execute(
            select(vouchers_table.c.state, func.count()).where(
                vouchers_table.c.batch_id == batch_id).group_by(vouchers_table.c.state)).all())
        cash_ins = conn.execute(select(func.count()).select_from(agent_transactions).where(
            agent_transactions.c.agent_id == agent.id,
            agent_transactions.c.kind == "cash_in")).scalar_one()
        p2p_states: dict[str, int] = dict(conn.execute(
            select(p2p_transfers.c.state, func.count())
            .where(p2p_transfers.c.ref.in_(refs))
            .group_by(p2p_transfers.c.state)).all())
    return WalletDemo(
        voucher_batch_id=batch_id, vouchers_redeemed=int(by_state.get("redeemed", 0)),
        vouchers_unredeemed=int(by_state.get("issued", 0)), voucher_csv=csv_path,
        agent_code=agent.code, agent_float_fen=agents.float_account(ctx, agent).balance,
        cash_ins=int(cash_ins), agent_key=key, agent_key_file=key_path,
        p2p_completed=int(p2p_states.get("completed", 0)),
        p2p_pending_claim=int(p2p_states.get("pending_claim", 0)), notes=notes)


def _p2p_refs(ctx: Context, numbers: list[str]) -> list[str]:
    senders = [(P2P[n - 1][0], f"demo:p2p:{n}") for n in range(1, len(P2P) + 1)]
    senders.append((4, "demo:p2p:invite"))
    return [cash_rules.p2p_ref(_subscriber(ctx, numbers[i]).id, key) for i, key in senders]


def print_wallet_summary(console: Console, w: WalletDemo, msisdn: str, pin: str) -> None:
    """The summary's part on funding, with curl lines a newcomer can paste."""
    api = "localhost:8000"
    json = "-H 'Content-Type: application/json'"
    console.print(
        f"vouchers: batch {w.voucher_batch_id}, {w.vouchers_redeemed} of "
        f"{w.vouchers_redeemed + w.vouchers_unredeemed} cards of "
        f"{format_amount(VOUCHER_FACE_FEN)} redeemed; "
        + (f"the unredeemed ones are in [bold]{w.voucher_csv}[/]" if w.voucher_csv
           else "no card list (see below)"))
    console.print(f"  T=$(curl -s -X POST {api}/v1/wallet/login -H 'Idempotency-Key: l1' {json}"
                  f" -d '{{\"msisdn\": \"{msisdn}\", \"pin\": \"{pin}\"}}' | jq -r "
                  ".access_token)", markup=False, soft_wrap=True)
    console.print(f"  curl -s -X POST {api}/v1/wallet/vouchers/redeem -H \"Authorization: "
                  f"Bearer $T\" -H 'Idempotency-Key: v1' {json} -d '{{\"card_number\": "
                  "\"<card_number>\", \"secret\": \"<secret>\"}'", markup=False,
                  soft_wrap=True)
    console.print(f"agent outlet {w.agent_code}: float {format_amount(w.agent_float_fen)} CNY, "
                  f"{w.cash_ins} cash-ins; API key "
                  + (f"[bold]{w.agent_key}[/]" if w.agent_key else "(shown on the first load)")
                  + (f", kept in {w.agent_key_file}" if w.agent_key_file else ""))
    console.print(f"  curl -s -X POST {api}/v1/agent/cash-in -H 'X-Agent-Key: <key>' "
                  f"-H 'Idempotency-Key: a1' {json} -d '{{\"msisdn\": \"{msisdn}\", "
                  "\"amount_fen\": 10000, \"reference\": \"my-first-cash-in\"}'",
                  markup=False, soft_wrap=True)
    console.print(f"P2P: {w.p2p_completed} transfers between demo wallets, "
                  f"{w.p2p_pending_claim} to {INVITEE} (no wallet yet: `paycell sms list "
                  f"--msisdn {INVITEE}`; sign up with that number to receive it)")
    console.print("bank cards, card top-ups and withdrawals are not in the demo: bind a card "
                  "yourself (docs/wallets.md, test card 6222020000000007)")
    for note in w.notes:
        console.print(f"[yellow]{note}[/]")

