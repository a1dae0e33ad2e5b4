"""Jingmin shared kernel: infrastructure every service uses, and no domain words."""
