"""The ledger inside a caller's own transaction, deciding transfers one at a time.

A batched use case (``funding/p2p_batch.py``) runs many callers' commands in one
transaction: it locks its own rows, then opens a :class:`Posting` on the accounts the batch
may touch, checks each command against what the accounts hold *now* (the earlier commands
of the batch included), posts its transfer, and finally writes everything at once::

    def work(conn):
        lock my rows...
        posting = Posting(ctx.ledger, conn, account_ids)
        for cmd in batch:
            if posting.account(wallet).credits_posted ... : refuse
            result = posting.post(request)  # created, or failed on its own
        my own writes...
        posting.finish()  # balances, holds, then the journal (the chain head last)

    ctx.ledger.transaction(work)

The locks follow the ledger's one order (the caller's rows, ruled accounts at open,
unruled accounts and the chain head in ``finish``), so batches in other processes cannot
deadlock with it. The decision is the ledger's own (:func:`model.decide`), request by
request, so a batch of N answers exactly as N calls one after another would.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from paycell.ledger import model as m
from paycell.ledger.store import Ledger


class Posting:
    """Transfers decided one by one against accounts loaded (ruled ones locked) once."""

    def __init__(self, ledger: Ledger, conn: Connection, account_ids: Iterable[int]) -> None:
        self._ledger, self._conn = ledger, conn
        rows = ledger._load_accounts(conn, sorted(set(account_ids)))
        self._states = {row[0]: m.AccountState(*row) for row in rows}
        self._was = {aid: s.counters() for aid, s in self._states.items()}
        self._now = ledger.clock.now_us()
        self._decision = m.Decision(results=[])

    def account(self, account_id: int) -> m.AccountState | None:
        """The account as this batch has left it so far (None if it was not loaded)."""
        return self._states.get(account_id)

    def post(self, request: m.TransferRequest) -> m.TransferResult:
        """Decide ``request`` now; a failure changes nothing. Its id must be new: a stored
        one is refused by the journal's unique index at ``finish`` (the caller's whole
        transaction is then retried, and should find its record of it)."""
        d = m.decide([request], self._states, {}, {}, self._now)
        whole = self._decision
        whole.results.extend(d.results)
        whole.created.extend(d.created)
        whole.holds_new.extend(d.holds_new)
        whole.holds_changed.extend(d.holds_changed)
        return d.results[0]

    def finish(self) -> list[m.TransferResult]:
        """Write the balances and holds, then chain the new transfers into the journal;
        the results of every ``post``, in order, the created ones with their chained rows."""
        d = self._decision
        if d.created:
            head = self._ledger._write(self._conn, d, self._states, self._was, reserve=True)
            self._ledger._append(self._conn, d, head)
        return d.results
