"""Sending SMS: a provider's HTTP API in production, a recording sink in development.

The gateway is the only place a phone number meets the network; it never logs one.
"""

from __future__ import annotations

import uuid
from typing import Protocol

import asyncpg
import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)


class SmsRefused(Exception):
    """The provider refused the message for good (bad number, blocked recipient)."""


class SmsUnavailable(Exception):
    """The provider could not be reached or failed; try again later."""


class SmsGateway(Protocol):
    async def send(self, to: str, text: str, reference: str) -> str:
        """Send one message; returns the provider's message id."""
        ...


def mask(phone: str) -> str:
    """138****8000: enough for a person to recognise their number, not to dial it."""
    digits = "".join(c for c in phone if c.isdigit())
    if len(digits) < 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


class HttpSmsGateway:
    """A provider's JSON API: POST {to, text, sender, reference} with a bearer token.

    5xx and connection errors are retried with backoff (the provider dedupes on
    `reference`); 4xx means the provider will never deliver it.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        token: str | None,
        sender: str | None,
        *,
        backoff: float = 0.5,
    ) -> None:
        self.client, self.url, self.token, self.sender = client, url, token, sender
        self.backoff = backoff

    async def _post(self, payload: dict[str, str]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = await self.client.post(self.url, json=payload, headers=headers)
        except httpx.TransportError as exc:
            raise SmsUnavailable(f"SMS gateway unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise SmsUnavailable(f"SMS gateway answered {response.status_code}")
        return response

    async def send(self, to: str, text: str, reference: str) -> str:
        payload = {"to": to, "text": text, "reference": reference}
        if self.sender:
            payload["sender"] = self.sender
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(SmsUnavailable),
            stop=stop_after_attempt(3),
            wait=wait_exponential(multiplier=self.backoff, max=5),
            reraise=True,
        ):
            with attempt:
                response = await self._post(payload)
        if response.status_code >= 400:
            raise SmsRefused(f"SMS gateway refused the message ({response.status_code})")
        try:
            message_id = str(response.json().get("message_id") or "")
        except ValueError:
            message_id = ""
        return message_id or reference


class SinkSmsGateway:
    """Records each message in `sms_sink` instead of sending it (development and tests).

    The number is kept masked: a developer's database is no place for real phone numbers.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def send(self, to: str, text: str, reference: str) -> str:
        message_id = "sink-" + uuid.uuid4().hex
        await self.pool.execute(
            """INSERT INTO sms_sink (message_id, to_masked, text, reference)
               VALUES ($1, $2, $3, $4)""",
            message_id,
            mask(to),
            text,
            reference,
        )
        return message_id
