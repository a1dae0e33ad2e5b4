"""Jingmin metrics service."""
