"""Outbound webhooks for CRMs: an outbox written with the change, signed deliveries, retries, dead letters."""
