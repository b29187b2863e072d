"""Operators: named back-office users with roles and API keys; maker-checker approvals."""
