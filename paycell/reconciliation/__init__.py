"""Reconciliation (对账) of partners' statement files against the ledger:
docs/reconciliation.md."""
