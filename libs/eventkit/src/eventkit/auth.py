"""Bearer-token authentication and administrative-code scopes for every service."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from eventkit import problems
from eventkit.personal import read_or_create_secret_file
from eventkit.settings import KernelSettings

# `service` is another Jingmin service calling an internal API (e.g. visits reading a
# contact from intake at call time); it is scoped by bureau like a person.
ROLES: frozenset[str] = frozenset(
    {"intake_operator", "officer", "supervisor", "commander", "partner", "admin", "service"}
)

# ASCII only: str.isdigit() would also accept full-width and other Unicode digits.
# 2 digits is a province, 12 a village; nothing shorter or longer is an administrative code.
_SCOPE = re.compile(r"[0-9]{2,12}")
_CODE = re.compile(r"[0-9]+")
_LEEWAY = timedelta(seconds=30)
# Registered claims a caller of issue_token may not override.
_RESERVED = frozenset({"iss", "aud", "sub", "iat", "nbf", "exp", "roles", "scope"})
_DEV_ALGORITHM = "EdDSA"
_DEV_KEY_FILE = "dev-signing-key.pem"


@dataclass(frozen=True)
class Principal:
    """Who is calling, what they may do, and which administrative codes they may see."""

    subject: str
    roles: frozenset[str]
    scopes: tuple[str, ...]

    def covers(self, code: str) -> bool:
        """True when some scope is a prefix of `code` ("3306" covers "330602001")."""
        return bool(_CODE.fullmatch(code)) and any(code.startswith(s) for s in self.scopes)

    def has_role(self, *roles: str) -> bool:
        """True when the principal holds any of `roles` (admin is not implicitly every role)."""
        return not self.roles.isdisjoint(roles)

    def like_patterns(self) -> list[str]:
        """SQL LIKE patterns for list queries: `WHERE bureau LIKE ANY($1)`."""
        return [s + "%" for s in self.scopes]


class BearerChallenge(problems.Problem):
    """A 401 problem that also carries the RFC 6750 `WWW-Authenticate: Bearer` challenge.

    The Problem exception handler should copy `headers` onto the response.
    """

    def __init__(self, detail: str, *, invalid_token: bool = True) -> None:
        base = problems.unauthorized(detail)
        super().__init__(base.status, base.title, detail, type_=base.type)
        challenge = 'Bearer realm="jingmin"'
        if invalid_token:
            challenge += ', error="invalid_token"'
        self.headers = {"WWW-Authenticate": challenge}


def _validated(
    roles: Iterable[str], scopes: Iterable[str]
) -> tuple[frozenset[str], tuple[str, ...]]:
    role_set = frozenset(roles)
    if not role_set:
        raise ValueError("at least one role is required")
    unknown = role_set - ROLES
    if unknown:
        raise ValueError(f"unknown role(s) {sorted(unknown)}; known: {sorted(ROLES)}")
    scope_tuple = tuple(dict.fromkeys(scopes))
    if not scope_tuple:
        raise ValueError("at least one scope is required")
    bad = [s for s in scope_tuple if not isinstance(s, str) or not _SCOPE.fullmatch(s)]
    if bad:
        raise ValueError(f"scopes must be 2-12 digit administrative codes, not {bad}")
    return role_set, scope_tuple


# --- dev signing key ----------------------------------------------------------------------


@dataclass(frozen=True)
class _DevKey:
    private: Ed25519PrivateKey
    kid: str
    public_jwk: Mapping[str, str]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@lru_cache(maxsize=4)
def _load_dev_key(path: Path) -> _DevKey:
    pem = read_or_create_secret_file(
        path,
        lambda: Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    private = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    x = _b64url(
        private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    )
    # RFC 7638 thumbprint: the kid changes exactly when the key does.
    thumbprint = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True
    )
    kid = _b64url(hashlib.sha256(thumbprint.encode()).digest())
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": _DEV_ALGORITHM, "use": "sig"}
    return _DevKey(private, kid, jwk)


def _dev_key(settings: KernelSettings) -> _DevKey:
    return _load_dev_key((Path(settings.jingmin_home) / _DEV_KEY_FILE).resolve())


def dev_jwks(settings: KernelSettings) -> dict[str, list[dict[str, str]]]:
    """The dev public key as a JWKS document, e.g. for a dev gateway to serve."""
    return {"keys": [dict(_dev_key(settings).public_jwk)]}


def issue_token(
    settings: KernelSettings,
    *,
    subject: str,
    roles: Iterable[str],
    scopes: Iterable[str],
    ttl: timedelta = timedelta(hours=12),
    extra_claims: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> str:
    """Sign a token with the dev key; refuses roles and scopes the verifier would reject."""
    if not subject:
        raise ValueError("subject must not be empty")
    if ttl <= timedelta(0):
        raise ValueError("ttl must be positive")
    role_set, scope_tuple = _validated(roles, scopes)
    clash = _RESERVED.intersection(extra_claims or {})
    if clash:
        raise ValueError(f"extra_claims may not set {sorted(clash)}")
    key = _dev_key(settings)
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        **(extra_claims or {}),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl,
        "roles": sorted(role_set),
        "scope": list(scope_tuple),
    }
    return jwt.encode(claims, key.private, algorithm=_DEV_ALGORITHM, headers={"kid": key.kid})


def parse_ttl(text: str) -> timedelta:
    """`90s`, `30m`, `12h`, `7d` (or plain seconds) as a timedelta, for `jingmin token --ttl`."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if not match or int(match[1]) == 0:
        raise ValueError(f"ttl {text!r} is not a positive duration like 30m, 12h or 7d")
    unit = {"": "seconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match[2]]
    return timedelta(**{unit: int(match[1])})


def dev_token(
    settings: KernelSettings,
    *,
    roles: Sequence[str],
    scopes: Sequence[str],
    subject: str | None = None,
    ttl: str | timedelta = "12h",
) -> str:
    """What `jingmin token --role R --scope S [--subject X] [--ttl 12h]` prints."""
    role_set, _ = _validated(roles, scopes)
    return issue_token(
        settings,
        subject=subject or "dev-" + "-".join(sorted(role_set)),
        roles=roles,
        scopes=scopes,
        ttl=parse_ttl(ttl) if isinstance(ttl, str) else ttl,
    )


# --- verification -------------------------------------------------------------------------


def _claim_list(claims: Mapping[str, Any], name: str) -> list[str]:
    value = claims.get(name)
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise BearerChallenge(f"token claim {name!r} is missing or not a list of strings")


class TokenVerifier:
    """Checks bearer tokens against a JWKS URL (production) or the local dev key.

    Build one per process and keep it (e.g. on `app.state.verifier`): it caches keys.
    """

    # An unknown kid forces a JWKS refetch at most this often, so junk tokens cannot make
    # every request call the identity provider.
    refresh_interval = 60.0

    def __init__(self, settings: KernelSettings, *, leeway: timedelta = _LEEWAY) -> None:
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.leeway = leeway
        self.algorithms = [a for a in settings.jwt_algorithms if a.lower() != "none"]
        if not self.algorithms:
            raise ValueError("JWT_ALGORITHMS must name at least one signing algorithm")
        self._jwks: jwt.PyJWKClient | None = None
        self._dev: jwt.PyJWK | None = None
        self._dev_kid = ""
        self._last_refresh = 0.0
        self._lock = threading.Lock()
        self._verified: dict[str, tuple[float, Principal]] = {}
        if settings.jwt_jwks_url:
            self._jwks = jwt.PyJWKClient(
                settings.jwt_jwks_url, cache_jwk_set=True, lifespan=300, timeout=5
            )
        else:
            if _DEV_ALGORITHM not in self.algorithms:
                raise ValueError(f"dev tokens use {_DEV_ALGORITHM}; add it to JWT_ALGORITHMS")
            key = _dev_key(settings)
            self._dev = jwt.PyJWK(dict(key.public_jwk), algorithm=_DEV_ALGORITHM)
            self._dev_kid = key.kid

    @property
    def uses_network(self) -> bool:
        """True when verifying may fetch the JWKS (so async callers should use a thread)."""
        return self._jwks is not None

    def _key(self, kid: str) -> jwt.PyJWK:
        if self._dev is not None:
            if kid != self._dev_kid:
                raise BearerChallenge("token is signed by an unknown key")
            return self._dev
        assert self._jwks is not None
        try:
            for fresh in (False, True):
                if fresh:
                    with self._lock:
                        if time.monotonic() - self._last_refresh < self.refresh_interval:
                            break
                        self._last_refresh = time.monotonic()
                for key in self._jwks.get_signing_keys(refresh=fresh):
                    if key.key_id == kid:
                        return key
        except (jwt.PyJWKClientError, jwt.PyJWKSetError):
            # Not the caller's fault: the key set is unreachable or has no usable key.
            raise problems.Problem(
                503, "Service Unavailable", "the identity provider's key set is unavailable"
            ) from None
        raise BearerChallenge("token is signed by an unknown key")

    # A client sends the same token on every request; re-checking its signature each time
    # is a measurable share of a write's CPU. Results are kept briefly, never past `exp`.
    verified_ttl = 60.0
    verified_max = 4096

    def verify(self, token: str) -> Principal:
        """The principal a valid token names; raises a 401 problem for anything else."""
        now = time.time()
        hit = self._verified.get(token)
        if hit is not None and now < hit[0]:
            return hit[1]
        principal, expires = self._verify(token)
        if len(self._verified) >= self.verified_max:
            self._verified.clear()
        self._verified[token] = (min(expires, now + self.verified_ttl), principal)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise BearerChallenge("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise BearerChallenge("unsigned tokens are not accepted")
        if alg not in self.algorithms:
            raise BearerChallenge(f"token algorithm {alg} is not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise BearerChallenge("token header has no key id (kid)")
        key = self._key(kid)
        # PyJWT verifies with the key's own algorithm; refusing a mismatch up front rules out
        # algorithm-confusion tricks whatever the header claims.
        if key.algorithm_name != alg:
            raise BearerChallenge("token algorithm does not match its key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise BearerChallenge("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise BearerChallenge("token is not valid yet") from None
        except jwt.InvalidIssuerError:
            raise BearerChallenge("token has the wrong issuer") from None
        except jwt.InvalidAudienceError:
            raise BearerChallenge("token has the wrong audience") from None
        except jwt.MissingRequiredClaimError as exc:
            raise BearerChallenge(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise BearerChallenge("token signature is invalid") from None
        except jwt.InvalidTokenError:
            raise BearerChallenge("token is invalid") from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise BearerChallenge("token subject is empty")
        try:
            roles, scopes = _validated(_claim_list(claims, "roles"), _claim_list(claims, "scope"))
        except ValueError as exc:
            raise BearerChallenge(f"token {exc}") from None
        return Principal(subject, roles, scopes), float(claims["exp"])


# --- FastAPI ------------------------------------------------------------------------------


def _bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise BearerChallenge("missing Authorization: Bearer token", invalid_token=False)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BearerChallenge("Authorization header must be 'Bearer <token>'")
    return token.strip()


async def _authenticate(verifier: TokenVerifier, request: Request) -> Principal:
    token = _bearer_token(request)
    if verifier.uses_network:
        return await run_in_threadpool(verifier.verify, token)
    return verifier.verify(token)


async def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller, verified by `request.app.state.verifier`."""
    verifier = getattr(request.app.state, "verifier", None)
    if not isinstance(verifier, TokenVerifier):
        raise RuntimeError("app.state.verifier must be a TokenVerifier")
    return await _authenticate(verifier, request)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_principal(
    verifier: TokenVerifier | None = None, *, roles: Iterable[str] | None = None
) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency with an explicit verifier (default: app.state's) and optional roles."""
    wanted = None if roles is None else frozenset(roles)
    if wanted is not None and wanted - ROLES:
        raise ValueError(f"unknown role(s) {sorted(wanted - ROLES)}")

    async def dependency(request: Request) -> Principal:
        principal = (
            await current_principal(request)
            if verifier is None
            else await _authenticate(verifier, request)
        )
        if wanted is not None and not principal.has_role(*wanted):
            raise problems.forbidden(f"requires one of the roles {sorted(wanted)}")
        return principal

    return dependency


def authorize(principal: Principal, code: str, roles: Iterable[str] | None = None) -> None:
    """Raise 403 unless the principal's scopes cover `code` and it holds one of `roles`."""
    if roles is not None:
        wanted = frozenset(roles)
        if wanted - ROLES:
            raise ValueError(f"unknown role(s) {sorted(wanted - ROLES)}")
        if not principal.has_role(*wanted):
            raise problems.forbidden(f"requires one of the roles {sorted(wanted)}")
    if not principal.covers(code):
        raise problems.forbidden(f"your scope does not cover {code!r}")
