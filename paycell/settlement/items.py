"""Settlement items: what is owed to a party and not yet paid out (see ``tables.items``).

The caller posts the ledger transfer that credits the party's payable account and adds the
item in the same transaction (``post_recorded(..., record=...)``), so an item exists exactly
when its money is in the payable account.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from paycell.settlement.tables import items

PARTY_KINDS = ("merchant", "partner")


class ItemConflictError(Exception):
    """A second item under the same ``source_ref`` says something different: a bug."""


@dataclass(frozen=True, slots=True)
class Item:
    id: int
    party_kind: str
    party_id: int
    account_id: int
    business_date: str
    kind: str
    amount_fen: int
    source_ref: str
    payout_id: int | None
    created_at: int

    @classmethod
    def of(cls, row: Any) -> Item:
        return cls(row.id, row.party_kind, row.party_id, row.account_id, row.business_date,
                   row.kind, row.amount_fen, row.source_ref, row.payout_id, row.created_at)


def add_item(conn: Connection, *, party_kind: str, party_id: int, account_id: int,
             business_date: str, kind: str, amount_fen: int, source_ref: str,
             now_us: int) -> Item:
    """Record an item once per ``source_ref``: a second call with the same values returns
    the first item; with different values it raises ItemConflictError."""
    if party_kind not in PARTY_KINDS:
        raise ValueError(f"party_kind is one of {PARTY_KINDS}")
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool):
        raise TypeError("amount_fen is an integer number of fen")
    values = {"party_kind": party_kind, "party_id": party_id, "account_id": account_id,
              "business_date": business_date, "kind": kind, "amount_fen": amount_fen}
    row = conn.execute(select(items).where(items.c.source_ref == source_ref)).first()
    if row is None:
        conn.execute(items.insert().values(**values, source_ref=source_ref, created_at=now_us))
        row = conn.execute(select(items).where(items.c.source_ref == source_ref)).one()
    elif any(getattr(row, k) != v for k, v in values.items()):
        raise ItemConflictError(f"settlement item {source_ref} exists with other values")
    return Item.of(row)


def unpaid(conn: Connection, party_kind: str, party_id: int) -> list[Item]:
    """The party's items no payout has taken, oldest first."""
    rows = conn.execute(select(items).where(
        items.c.party_kind == party_kind, items.c.party_id == party_id,
        items.c.payout_id.is_(None)).order_by(items.c.id))
    return [Item.of(r) for r in rows]
