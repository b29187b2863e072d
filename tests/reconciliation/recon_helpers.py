"""Shortcuts for the reconciliation tests: confirmed top-ups and withdrawals written
straight into their tables with their ledger transfers, statement files, operators."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from paycell.context import Context
from paycell.funding.tables import cards, topups, withdrawals
from paycell.ledger import TransferRequest
from paycell.ledger.chart import Code, TransferCode, system_account
from paycell.operators.service import create_operator
from paycell.reconciliation.formats import Header, OutLine, write
from paycell.reconciliation.tables import statements
from paycell.subscribers.service import Subscriber

_n = itertools.count(1)


def topup(ctx: Context, sub: Subscriber, amount_fen: int, *, bank: str = "icbc",
          source: str = "card") -> str:
    """A confirmed top-up (its row and its ledger transfer); returns our reference."""
    tid = f"tu_t{next(_n):06d}"
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        conn.execute(topups.insert().values(
            id=tid, subscriber_id=sub.id, source=source, partner=bank,
            amount_fen=amount_fen, currency="CNY", held_in_suspense=False, state="confirmed",
            created_at=now, updated_at=now, resolved_at=now,
            msisdn=sub.msisdn if source == "phone_bill" else None))
    code = Code.BANK_CLEARING if source == "card" else Code.CARRIER_RECEIVABLE
    src = system_account(ctx.ledger, code, bank)
    ctx.ledger.post_one(TransferRequest(
        f"topup:{tid}", src.id, sub.wallet_account_id, amount_fen,
        code=int(TransferCode.TOPUP_BANK), ref="test top-up"))
    return f"topup:{tid}"


def withdrawal(ctx: Context, sub: Subscriber, amount_fen: int, *, bank: str = "icbc") -> str:
    wid = f"wd_t{next(_n):06d}"
    now = ctx.clock.now_us()
    with ctx.engine.begin() as conn:
        conn.execute(cards.insert().values(
            id=f"card_{wid}", subscriber_id=sub.id, state="active", bank=bank, last4="0007",
            is_default=False, created_at=now, updated_at=now))
        conn.execute(withdrawals.insert().values(
            id=wid, subscriber_id=sub.id, kind="withdrawal", card_id=f"card_{wid}", bank=bank,
            amount_fen=amount_fen, fee_fen=0, currency="CNY", state="confirmed",
            created_at=now, updated_at=now, resolved_at=now))
    clearing = system_account(ctx.ledger, Code.BANK_CLEARING, bank)
    ctx.ledger.post_one(TransferRequest(
        f"withdrawal:{wid}", sub.wallet_account_id, clearing.id, amount_fen,
        code=int(TransferCode.WITHDRAWAL), ref="test withdrawal"))
    return f"withdrawal:{wid}"


def statement(path: Path, lines: list[tuple[str, str, int]], *, source: str = "bank",
              partner: str = "icbc", day: str = "2026-01-01", encoding: str = "utf-8",
              memo: str = "充值") -> Path:
    """Write a statement file of (direction, reference, amount_fen) lines."""
    write(path, Header(source, partner, day, "CNY"),
          (OutLine(f"S{i:06d}", day, d, ref, amt, memo)
           for i, (d, ref, amt) in enumerate(lines, 1)), encoding=encoding)
    return path


def balance(ctx: Context, code: Code, key: str = "main") -> int:
    return system_account(ctx.ledger, code, key).balance


def count_statements(ctx: Context) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(statements)).scalar_one())


def operator(ctx: Context, name: str, role: str = "operator") -> tuple[Any, dict[str, str]]:
    op, key = create_operator(ctx, name, role)
    return op, {"X-API-Key": key}
