"""Wallet owners: MSISDN, KYC tier, PIN, sessions, lifecycle and outflow limits.

See docs/wallets.md. Use cases live in ``service.py`` (and ``tokens.py``, ``codes.py`` for
sessions and one-time codes); ``limits.py`` is what money-moving code calls inside the
ledger's ``before`` hook.
"""
