"""Entrypoints: the exporter and drill-down API process."""
