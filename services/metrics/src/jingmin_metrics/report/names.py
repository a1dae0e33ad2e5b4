"""Station names for the report, from the unit register in intake (GET /v1/units?scope=).

The report depends on `UnitNames`, not on intake: tests give it a fake, and a station the
register does not know is shown by its code."""

from __future__ import annotations

from typing import Protocol

import httpx
from eventkit import divisions


class UnitNames(Protocol):
    def names(self, scope: str) -> dict[str, str]:
        """Current names of the units under a scope, by code."""
        ...


class IntakeUnitNames:
    def __init__(self, base_url: str, token: str, client: httpx.Client | None = None) -> None:
        self.base_url, self.token = base_url.rstrip("/"), token
        self.client = client or httpx.Client(timeout=10.0)

    def names(self, scope: str) -> dict[str, str]:
        response = self.client.get(
            f"{self.base_url}/v1/units",
            params={"scope": scope},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        response.raise_for_status()
        return {u["code"]: u["name"] for u in response.json()["items"]}


class NoNames:
    """No register to ask: every station shows its code."""

    def names(self, scope: str) -> dict[str, str]:
        return {}


def scope_name(scope: str) -> str:
    """The GB/T 2260 name of a province, city or county code; the code when unknown."""
    return divisions.name(scope) or scope
