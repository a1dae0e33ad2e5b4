"""Jingmin complaints and supervision service."""
