"""Faust stream processors: per-item state in tables, figures derived from it."""
