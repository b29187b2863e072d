"""The journal's hash chain: each transfer row carries the hash of its content and of its
predecessor's hash, so an edited, removed or reordered row breaks every hash after it
(``paycell audit`` recomputes them)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from paycell.ledger.model import Transfer

GENESIS_HASH = "0" * 64


def hash_transfer(prev_hash: str, t: Transfer) -> str:
    """SHA-256 over the predecessor's hash and this transfer's content, in a fixed order."""
    return _hash(prev_hash, t.seq, t)


def _hash(prev_hash: str, seq: int, t: Transfer) -> str:
    content = "|".join((
        prev_hash, str(seq), t.id, str(t.debit_account_id), str(t.credit_account_id),
        str(t.amount), t.ledger, str(t.code), str(t.flags), t.pending_id or "",
        str(t.timeout), t.ref or "", str(t.timestamp),
    ))
    return hashlib.sha256(content.encode()).hexdigest()


def chain(transfers: Iterable[Transfer], head_seq: int, head_hash: str) -> list[Transfer]:
    """Give transfers consecutive sequence numbers after the head and link their hashes."""
    out = []
    prev = head_hash
    seq = head_seq
    for t in transfers:
        seq += 1
        h = _hash(prev, seq, t)
        out.append(Transfer(t.id, t.debit_account_id, t.credit_account_id, t.amount, t.ledger,
                            t.code, t.flags, t.pending_id, t.timeout, t.ref, t.timestamp,
                            seq, prev, h))
        prev = h
    return out
