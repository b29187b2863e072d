"""Funding and withdrawal: bank cards, top-ups, phone bill, vouchers, cash agents, P2P."""
