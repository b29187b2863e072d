"""The double-entry ledger: the only code that moves money. See docs/ledger.md."""

from paycell.ledger.model import (
    AccountFlags,
    Transfer,
    TransferFlags,
    TransferRequest,
    TransferResult,
)
from paycell.ledger.store import Account, Ledger

__all__ = [
    "Account",
    "AccountFlags",
    "Ledger",
    "Transfer",
    "TransferFlags",
    "TransferRequest",
    "TransferResult",
]
