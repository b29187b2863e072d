"""Clearing (清分), settlement (结算) and the merchants' commission rules: docs/settlement.md."""
