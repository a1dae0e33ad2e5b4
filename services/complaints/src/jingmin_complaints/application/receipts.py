"""Receipt codes: what a complainant tracks a complaint with, shown once, stored hashed."""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata

# No 0/O, 1/I/L or U/V look-alikes: read aloud on the phone or typed on a phone keyboard.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
GROUPS, GROUP = 3, 4  # 12 characters: 29**12 ≈ 2**58, far beyond guessing at any rate limit
_SHAPE = re.compile(rf"^[{ALPHABET}]{{{GROUPS * GROUP}}}$")


def new_receipt() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP))
    return "-".join(raw[i : i + GROUP] for i in range(0, len(raw), GROUP))


def normalise(code: str) -> str | None:
    """The code's characters as issued, or None if it cannot be one (full-width folded)."""
    folded = unicodedata.normalize("NFKC", code).upper()
    raw = "".join(ch for ch in folded if ch not in " -_")
    return raw if _SHAPE.match(raw) else None


def receipt_hash(code: str) -> str:
    """What the read model keeps: a lookup key that does not let a reader track anything."""
    raw = normalise(code)
    if raw is None:
        raise ValueError("not a receipt code")
    return hashlib.sha256(raw.encode()).hexdigest()
