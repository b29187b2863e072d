"""Channel partners: merchant-expansion and POS maintenance fees: docs/partners.md."""
