"""Figures: what the processors publish, and what readers derive from it."""
