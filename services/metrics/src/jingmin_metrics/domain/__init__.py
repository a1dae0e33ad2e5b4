"""Metrics domain: facts, per-item state, observations and cells (no I/O)."""
