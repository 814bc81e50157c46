"""Delivery backends: each is an object with send(batch) -> results and close()."""
