"""Merchants: onboarding with maker-checker approval, stores, API credentials, signing."""
