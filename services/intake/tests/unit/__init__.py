"""Intake unit tests (a package, so module names do not clash across the repo)."""
