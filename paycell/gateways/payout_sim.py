"""The bank's side of settlement payout files: read a payout file, answer with a result file.

Formats in docs/settlement.md. Scripted returns, by the payee's account number: ending in
``0000`` "account closed", ending in ``9999`` "account holder name mismatch"; every other
line is paid. Streams both files (one line in memory at a time). ``python -m
paycell.gateways.payout_sim PAYOUT_FILE RESULT_FILE`` runs it by hand.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

RESULT_TAG = "PAYCELL-PAYOUT-RESULT"
RETURNS = {"0000": "account closed", "9999": "account holder name mismatch"}


def outcome(account_number: str) -> tuple[str, str]:
    """(``PAID``|``RETURNED``, reason) for a payee's account number."""
    reason = RETURNS.get(account_number[-4:])
    return ("RETURNED", reason) if reason else ("PAID", "")


def answer(payout_file: Path, result_file: Path,
           returns: dict[str, str] | None = None) -> dict[str, int]:
    """Write the result file for ``payout_file``; returns the counts it answered.
    ``returns``: more scripted returns, by payout reference -> reason (the demo's)."""
    counts = {"paid": 0, "returned": 0}
    total = 0
    result_file.parent.mkdir(parents=True, exist_ok=True)
    with payout_file.open(newline="", encoding="utf-8") as src, \
            result_file.open("w", newline="", encoding="utf-8") as dst:
        w = csv.writer(dst, lineterminator="\n")
        for row in csv.reader(src):
            if not row:
                continue
            if row[0] == "H":
                w.writerow(["H", RESULT_TAG, "1", row[3], row[4], row[5]])
            elif row[0] == "D":
                reference, number, amount = row[2], row[7], int(row[8])
                state, reason = outcome(number)
                if returns and reference in returns:
                    state, reason = "RETURNED", returns[reference]
                counts["paid" if state == "PAID" else "returned"] += 1
                total += amount
                w.writerow(["D", reference, amount, state, reason])
            elif row[0] == "T":
                w.writerow(["T", counts["paid"] + counts["returned"], total])
    return counts


if __name__ == "__main__":  # pragma: no cover
    print(answer(Path(sys.argv[1]), Path(sys.argv[2])))
