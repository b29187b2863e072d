"""``paycell audit``: prove the ledger consistent, from the database alone.

Checks (each set-based SQL except the hash chain, which is streamed in journal order):
1. per currency, Σ debits = Σ credits, posted and pending separately;
2. no account breaches its flags;
3. every account's four counters equal what its transfers add up to;
4. the journal's sequence is gapless and its hash chain unbroken up to the chain head;
5. every hold agrees with the journal (one resolution at most, status to match).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, text

from paycell.db import reading
from paycell.ledger.journal import GENESIS_HASH, hash_transfer
from paycell.ledger.model import Transfer


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    problems: list[str] = field(default_factory=list)


@dataclass
class AuditReport:
    checks: list[Check]
    transfers: int
    accounts: int

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


Progress = Callable[[int, int], None]

_BALANCE = """
SELECT ledger,
       SUM(debits_posted) AS dpo, SUM(credits_posted) AS cpo,
       SUM(debits_pending) AS dp, SUM(credits_pending) AS cp
FROM ledger_accounts GROUP BY ledger ORDER BY ledger
"""

_FLAGS = """
SELECT id, name, flags, debits_pending, debits_posted, credits_pending, credits_posted
FROM ledger_accounts
WHERE ((flags & 1) <> 0 AND debits_pending + debits_posted > credits_posted)
   OR ((flags & 2) <> 0 AND credits_pending + credits_posted > debits_posted)
   OR debits_pending < 0 OR credits_pending < 0
LIMIT 50
"""

# What each account's counters should be, from the journal alone. A post or void releases
# its hold's full amount from pending; a post adds its own amount to posted.
_RECOMPUTE = """
WITH legs AS (
  SELECT debit_account_id AS acct, 'd' AS side,
         CASE WHEN (flags & 10) = 0 THEN amount ELSE 0 END AS posted,
         CASE WHEN (flags & 2) <> 0 THEN amount ELSE 0 END AS pend_add
  FROM ledger_transfers
  UNION ALL
  SELECT credit_account_id, 'c',
         CASE WHEN (flags & 10) = 0 THEN amount ELSE 0 END,
         CASE WHEN (flags & 2) <> 0 THEN amount ELSE 0 END
  FROM ledger_transfers
),
releases AS (
  SELECT p.debit_account_id AS d_acct, p.credit_account_id AS c_acct, p.amount AS amount
  FROM ledger_transfers t JOIN ledger_transfers p ON p.id = t.pending_id
  WHERE (t.flags & 12) <> 0
),
sums AS (
  SELECT acct,
    SUM(CASE WHEN side = 'd' THEN posted ELSE 0 END) AS dpo,
    SUM(CASE WHEN side = 'c' THEN posted ELSE 0 END) AS cpo,
    SUM(CASE WHEN side = 'd' THEN pend_add ELSE 0 END) AS dp,
    SUM(CASE WHEN side = 'c' THEN pend_add ELSE 0 END) AS cp
  FROM legs GROUP BY acct
),
rel AS (
  SELECT acct, SUM(d) AS d, SUM(c) AS c FROM (
    SELECT d_acct AS acct, amount AS d, 0 AS c FROM releases
    UNION ALL SELECT c_acct, 0, amount FROM releases
  ) x GROUP BY acct
)
SELECT a.id, a.name,
       a.debits_posted, COALESCE(s.dpo, 0) AS e_dpo,
       a.credits_posted, COALESCE(s.cpo, 0) AS e_cpo,
       a.debits_pending, COALESCE(s.dp, 0) - COALESCE(r.d, 0) AS e_dp,
       a.credits_pending, COALESCE(s.cp, 0) - COALESCE(r.c, 0) AS e_cp
FROM ledger_accounts a
LEFT JOIN sums s ON s.acct = a.id
LEFT JOIN rel r ON r.acct = a.id
WHERE a.debits_posted <> COALESCE(s.dpo, 0)
   OR a.credits_posted <> COALESCE(s.cpo, 0)
   OR a.debits_pending <> COALESCE(s.dp, 0) - COALESCE(r.d, 0)
   OR a.credits_pending <> COALESCE(s.cp, 0) - COALESCE(r.c, 0)
LIMIT 50
"""

_ORPHANS = """
SELECT t.id FROM ledger_transfers t
WHERE t.debit_account_id NOT IN (SELECT id FROM ledger_accounts)
   OR t.credit_account_id NOT IN (SELECT id FROM ledger_accounts)
LIMIT 50
"""

_HOLDS = """
SELECT 'pending transfer without its hold: ' || p.id
FROM ledger_transfers p LEFT JOIN ledger_holds h ON h.transfer_id = p.id
WHERE (p.flags & 2) <> 0 AND (h.transfer_id IS NULL OR h.amount <> p.amount
      OR h.debit_account_id <> p.debit_account_id OR h.credit_account_id <> p.credit_account_id)
UNION ALL
SELECT 'hold resolved more than once: ' || pending_id
FROM ledger_transfers WHERE (flags & 12) <> 0 GROUP BY pending_id HAVING COUNT(*) > 1
UNION ALL
SELECT 'hold ' || h.transfer_id || ' is ' || h.status || ' but the journal says otherwise'
FROM ledger_holds h LEFT JOIN ledger_transfers t
  ON t.pending_id = h.transfer_id AND (t.flags & 12) <> 0
WHERE (h.status = 'pending' AND t.id IS NOT NULL)
   OR (h.status = 'posted' AND (t.id IS NULL OR (t.flags & 4) = 0))
   OR (h.status IN ('voided', 'expired') AND (t.id IS NULL OR (t.flags & 8) = 0))
   OR (h.status <> 'pending' AND t.id <> h.resolved_by)
UNION ALL
SELECT 'hold without a pending transfer: ' || h.transfer_id
FROM ledger_holds h LEFT JOIN ledger_transfers p ON p.id = h.transfer_id
WHERE p.id IS NULL
"""


def audit(engine: Engine, progress: Progress | None = None) -> AuditReport:
    """Run every check; never writes. ``progress(done, total)`` follows the hash chain."""
    with reading(engine) as conn:
        n_transfers = conn.execute(text("SELECT COUNT(*) FROM ledger_transfers")).scalar_one()
        n_accounts = conn.execute(text("SELECT COUNT(*) FROM ledger_accounts")).scalar_one()
        checks = [
            _check_balanced(conn),
            _rows_check(conn, "account flags respected", _FLAGS,
                        lambda r: f"account {r.id} ({r.name}) breaches flags {r.flags}"),
            _rows_check(conn, "balances equal the sum of their transfers", _RECOMPUTE,
                        lambda r: f"account {r.id} ({r.name}): posted dr/cr "
                                  f"{r.debits_posted}/{r.credits_posted} vs journal "
                                  f"{r.e_dpo}/{r.e_cpo}, pending dr/cr {r.debits_pending}/"
                                  f"{r.credits_pending} vs journal {r.e_dp}/{r.e_cp}"),
            _rows_check(conn, "transfers name existing accounts", _ORPHANS,
                        lambda r: f"transfer {r.id} names a missing account"),
            _rows_check(conn, "holds agree with the journal", _HOLDS, lambda r: str(r[0])),
            _check_chain(conn, n_transfers, progress),
        ]
    return AuditReport(checks, n_transfers, n_accounts)


def _check_balanced(conn: Connection) -> Check:
    problems = []
    ledgers = 0
    for r in conn.execute(text(_BALANCE)):
        ledgers += 1
        if r.dpo != r.cpo:
            problems.append(f"{r.ledger}: posted debits {r.dpo} != posted credits {r.cpo}")
        if r.dp != r.cp:
            problems.append(f"{r.ledger}: pending debits {r.dp} != pending credits {r.cp}")
    return Check("debits equal credits per currency", not problems,
                 f"{ledgers} currencies" if not problems else problems[0], problems)


def _rows_check(conn: Connection, name: str, sql: str, describe: Callable) -> Check:
    problems = [describe(r) for r in conn.execute(text(sql))]
    return Check(name, not problems, "ok" if not problems else problems[0], problems)


def _check_chain(conn: Connection, total: int, progress: Progress | None) -> Check:
    problems: list[str] = []
    prev_hash, expect_seq, done = GENESIS_HASH, 1, 0
    rows = conn.execution_options(yield_per=20_000).execute(text(
        "SELECT seq, id, debit_account_id, credit_account_id, amount, ledger, code, flags,"
        " pending_id, timeout, ref, timestamp, prev_hash, hash"
        " FROM ledger_transfers ORDER BY seq"))
    for r in rows:
        t = Transfer(r.id, r.debit_account_id, r.credit_account_id, r.amount, r.ledger, r.code,
                     r.flags, r.pending_id, r.timeout, r.ref, r.timestamp, r.seq,
                     r.prev_hash, r.hash)
        if t.seq != expect_seq:
            problems.append(f"journal sequence jumps from {expect_seq - 1} to {t.seq}")
        if t.prev_hash != prev_hash:
            problems.append(f"transfer {t.id} (seq {t.seq}) does not link to its predecessor")
        if hash_transfer(t.prev_hash, t) != t.hash:
            problems.append(f"transfer {t.id} (seq {t.seq}) was altered: its hash differs")
        prev_hash, expect_seq = t.hash, t.seq + 1
        done += 1
        if progress is not None and done % 20_000 == 0:
            progress(done, total)
        if len(problems) >= 50:
            break
    if progress is not None:
        progress(done, total)
    head = conn.execute(text("SELECT seq, hash FROM ledger_chain_head WHERE id = 1")).one()
    if not problems and (head.seq != expect_seq - 1 or head.hash != prev_hash):
        problems.append(f"chain head (seq {head.seq}) does not match the journal's last "
                        f"transfer (seq {expect_seq - 1}): rows were removed or added")
    return Check("journal hash chain intact", not problems,
                 f"{done} transfers" if not problems else problems[0], problems)
