"""Merchant notifications: an outbox written with the state change, signed deliveries,
retries on a schedule, attempt logs, re-send by hand."""
