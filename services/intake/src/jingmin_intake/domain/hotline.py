"""When a case concerns the 12345 government hotline (政务服务便民热线)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

HOTLINE = "12345"
# The hotline's work-order reference on a case it sent us: `12345:<order>` (or `-`, `/`).
_FROM_HOTLINE = re.compile(r"^12345[:/-](?P<ref>[A-Za-z0-9-]{1,40})$")


def hotline_ref(channel: str, source_ref: str | None) -> str | None:
    """The hotline's order number when a case was transferred in from 12345, else None."""
    if channel != "transfer_in" or not source_ref:
        return None
    match = _FROM_HOTLINE.match(source_ref)
    return match.group("ref") if match else None


def is_transfer_to_hotline(data: Mapping[str, Any]) -> bool:
    return data.get("target_type") == "external" and data.get("target") == HOTLINE
