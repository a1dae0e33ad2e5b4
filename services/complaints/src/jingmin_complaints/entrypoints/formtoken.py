"""Signed form tokens (CSRF): each form carries a MAC binding it to the browser's cookie.

The page sets a random cookie (SameSite=Strict, HttpOnly) and embeds a token
`<issued>.<nonce>.<mac>`, where mac = HMAC(key, cookie | issued | nonce). Another site can
neither read the cookie nor make the browser send it along, so it cannot forge a post; a
script that never loaded the form has no token. The nonce doubles as the submission's
Idempotency-Key: posting the same form twice files one complaint and shows one receipt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eventkit.personal import master_key
from eventkit.settings import KernelSettings

COOKIE = "jm_form"
TTL_SECONDS = 2 * 3600  # long enough to write a complaint on a phone, short enough to expire


@lru_cache(maxsize=4)
def _derive(kek: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"jingmin-complaints-form"
    ).derive(kek)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class FormTokens:
    def __init__(self, settings: KernelSettings) -> None:
        self._key = _derive(master_key(settings))

    @staticmethod
    def new_cookie() -> str:
        return _b64(secrets.token_bytes(18))

    def _mac(self, cookie: str, issued: int, nonce: str) -> str:
        message = f"{cookie}|{issued}|{nonce}".encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def issue(self, cookie: str, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        nonce = _b64(secrets.token_bytes(12))
        return f"{issued}.{nonce}.{self._mac(cookie, issued, nonce)}"

    def check(self, cookie: str | None, token: str | None, now: float | None = None) -> str | None:
        """The token's nonce if it is valid for this cookie and fresh; else None."""
        if not cookie or not token or token.count(".") != 2:
            return None
        issued_text, nonce, mac = token.split(".")
        if not issued_text.isdigit() or not nonce:
            return None
        issued = int(issued_text)
        current = int(now if now is not None else time.time())
        if not issued - 60 <= current <= issued + TTL_SECONDS:
            return None
        if not hmac.compare_digest(mac, self._mac(cookie, issued, nonce)):
            return None
        return nonce
