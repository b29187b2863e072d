"""paycell: an open-source mobile payment platform on one double-entry ledger."""

__version__ = "0.1.0"
