"""Adapters: Kafka readers and writers of the metrics service."""
