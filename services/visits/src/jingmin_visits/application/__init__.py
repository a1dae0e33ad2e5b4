"""Jingmin visits service."""
