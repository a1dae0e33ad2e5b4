"""Borrowing a person's contact from the service that owns it (intake, complaints)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from eventkit.contacts import Contact, ContactClient
from eventkit.settings import KernelSettings

# Every province (GB/T 2260 first two digits): a dev token for the visits service may read
# contacts anywhere; in production the identity provider's token decides the scope.
ALL_PROVINCES: tuple[str, ...] = tuple(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 "
    "61 62 63 64 65 71 81 82".split()
)
SUBJECT = "svc:visits"


class OwnerContacts:
    """One audited ContactClient per owning service, made on first use."""

    def __init__(
        self,
        settings: KernelSettings,
        scopes: Sequence[str] = ALL_PROVINCES,
        clients: Mapping[str, ContactClient] | None = None,
    ) -> None:
        self.settings, self.scopes = settings, tuple(scopes)
        self.clients: dict[str, ContactClient] = dict(clients or {})

    def client(self, owner: str) -> ContactClient:
        if owner not in self.clients:
            self.clients[owner] = ContactClient.for_owner(
                owner, self.settings, subject=SUBJECT, scopes=self.scopes
            )
        return self.clients[owner]

    async def fetch(
        self, owner: str, item_id: str, purpose: str, correlation_id: str | None
    ) -> Contact:
        return await self.client(owner).fetch(item_id, purpose, correlation_id=correlation_id)

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        self.clients.clear()
