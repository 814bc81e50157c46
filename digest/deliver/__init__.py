"""Delivery: message building, the ledger, the worker and the backends."""
