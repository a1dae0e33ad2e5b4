"""Bearer tokens: bad tokens answer 401, out-of-scope or wrong-role calls answer 403."""

from __future__ import annotations

import base64
import io
import json
import stat
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eventkit.auth import (
    ROLES,
    BearerChallenge,
    CurrentPrincipal,
    Principal,
    TokenVerifier,
    authorize,
    dev_jwks,
    dev_token,
    issue_token,
    parse_ttl,
    require_principal,
)
from eventkit.problems import PROBLEM_JSON, Problem
from eventkit.settings import KernelSettings
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.testclient import TestClient


@pytest.fixture
def settings(tmp_path: Path) -> KernelSettings:
    return KernelSettings(jingmin_home=tmp_path / "home")


@pytest.fixture
def verifier(settings: KernelSettings) -> TokenVerifier:
    return TokenVerifier(settings)


def officer_token(settings: KernelSettings, **kw: Any) -> str:
    args: dict[str, Any] = {"subject": "officer-7", "roles": ["officer"], "scopes": ["330602"]}
    args.update(kw)
    return issue_token(settings, **args)


def dev_private_key(settings: KernelSettings) -> Ed25519PrivateKey:
    pem = (settings.jingmin_home / "dev-signing-key.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def signed(
    settings: KernelSettings, claims: dict[str, Any], *, key: Ed25519PrivateKey | None = None
) -> str:
    """A token with hand-made claims, signed by the dev key unless told otherwise."""
    kid = jwt.get_unverified_header(officer_token(settings))["kid"]
    return jwt.encode(
        claims, key or dev_private_key(settings), algorithm="EdDSA", headers={"kid": kid}
    )


def base_claims(settings: KernelSettings, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": "u1",
        "iat": now,
        "exp": now + timedelta(hours=1),
        "roles": ["officer"],
        "scope": ["330602"],
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def rejected(verifier: TokenVerifier, token: str) -> Problem:
    with pytest.raises(Problem) as caught:
        verifier.verify(token)
    assert caught.value.status == 401
    assert caught.value.type == "urn:jingmin:problem:unauthorized"
    return caught.value


# --- scopes and roles ---------------------------------------------------------------------


def test_a_city_scope_covers_its_counties_stations_and_beats() -> None:
    p = Principal("u", frozenset({"officer"}), ("3306",))
    assert p.covers("330602") and p.covers("330602001") and p.covers("33060200101")
    assert not p.covers("330702")
    # A city-level grant does not see the province it sits in.
    assert not p.covers("33")
    assert not p.covers("")


def test_a_province_scope_covers_every_city_in_it() -> None:
    p = Principal("u", frozenset({"commander"}), ("33", "4401"))
    assert p.covers("330602") and p.covers("3310") and p.covers("440105")
    assert not p.covers("440200") and not p.covers("320102")


def test_codes_that_are_not_ascii_digits_are_never_covered() -> None:
    p = Principal("u", frozenset({"officer"}), ("3306",))
    assert not p.covers("3306ab")
    assert not p.covers("３３０６０２")  # full-width digits
    assert not p.covers("3306%")


def test_has_role_means_any_of_the_given_roles() -> None:
    p = Principal("u", frozenset({"officer", "supervisor"}), ("3306",))
    assert p.has_role("supervisor")
    assert p.has_role("commander", "officer")
    assert not p.has_role("admin")
    assert not Principal("u", frozenset({"admin"}), ("33",)).has_role("officer")
    assert {
        "intake_operator",
        "officer",
        "supervisor",
        "commander",
        "partner",
        "admin",
        "service",
    } == ROLES


def test_like_patterns_filter_lists_by_scope() -> None:
    assert Principal("u", frozenset({"officer"}), ("3306", "330702")).like_patterns() == [
        "3306%",
        "330702%",
    ]


def test_authorize_refuses_another_bureau_with_403() -> None:
    p = Principal("u", frozenset({"officer"}), ("330602",))
    authorize(p, "330602001")
    authorize(p, "330602", roles=["officer", "supervisor"])
    with pytest.raises(Problem) as caught:
        authorize(p, "330603")
    assert caught.value.status == 403
    assert caught.value.type == "urn:jingmin:problem:forbidden"
    with pytest.raises(Problem) as caught:
        authorize(p, "330602", roles=["supervisor"])
    assert caught.value.status == 403


def test_authorize_rejects_a_misspelt_role_as_a_programming_error() -> None:
    p = Principal("u", frozenset({"officer"}), ("330602",))
    with pytest.raises(ValueError):
        authorize(p, "330602", roles=["oficer"])


# --- issuing and verifying ----------------------------------------------------------------


def test_issued_token_verifies_to_the_same_principal(
    settings: KernelSettings, verifier: TokenVerifier
) -> None:
    token = issue_token(
        settings,
        subject="cmd-1",
        roles=["commander", "supervisor"],
        scopes=["3306", "330702"],
        extra_claims={"name": "Li"},
    )
    principal = verifier.verify(token)
    assert principal == Principal(
        "cmd-1", frozenset({"commander", "supervisor"}), ("3306", "330702")
    )
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["kid"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == "jingmin-dev" and claims["aud"] == "jingmin"
    assert {"iat", "nbf", "exp"} <= claims.keys()
    assert claims["exp"] - claims["iat"] == 12 * 3600


def test_dev_key_file_is_private(settings: KernelSettings) -> None:
    officer_token(settings)
    mode = (settings.jingmin_home / "dev-signing-key.pem").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_a_space_separated_scope_string_is_accepted(
    settings: KernelSettings, verifier: TokenVerifier
) -> None:
    token = signed(settings, base_claims(settings, scope="3306 330702", roles="officer"))
    assert verifier.verify(token).scopes == ("3306", "330702")


def test_expired_token_is_401(settings: KernelSettings, verifier: TokenVerifier) -> None:
    token = officer_token(settings, now=datetime.now(UTC) - timedelta(hours=13))
    assert "expired" in (rejected(verifier, token).detail or "")


def test_small_clock_skew_is_tolerated(settings: KernelSettings, verifier: TokenVerifier) -> None:
    token = officer_token(settings, now=datetime.now(UTC) + timedelta(seconds=10))
    assert verifier.verify(token).subject == "officer-7"


def test_wrong_issuer_is_401(tmp_path: Path) -> None:
    home = tmp_path / "home"
    token = issue_token(
        KernelSettings(jingmin_home=home, jwt_issuer="someone-else"),
        subject="u",
        roles=["officer"],
        scopes=["330602"],
    )
    problem = rejected(TokenVerifier(KernelSettings(jingmin_home=home)), token)
    assert "issuer" in (problem.detail or "")


def test_wrong_audience_is_401(tmp_path: Path) -> None:
    home = tmp_path / "home"
    token = issue_token(
        KernelSettings(jingmin_home=home, jwt_audience="other-app"),
        subject="u",
        roles=["officer"],
        scopes=["330602"],
    )
    problem = rejected(TokenVerifier(KernelSettings(jingmin_home=home)), token)
    assert "audience" in (problem.detail or "")


def test_unsigned_token_is_401(settings: KernelSettings, verifier: TokenVerifier) -> None:
    token = jwt.encode(base_claims(settings, roles=["admin"], scope=["33"]), None, algorithm="none")
    assert "unsigned" in (rejected(verifier, token).detail or "")


def test_tampered_payload_is_401(settings: KernelSettings, verifier: TokenVerifier) -> None:
    header, payload, signature = officer_token(settings).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["roles"], claims["scope"] = ["admin"], ["33"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    problem = rejected(verifier, f"{header}.{forged}.{signature}")
    assert "signature" in (problem.detail or "")


def test_token_signed_by_another_key_is_401(
    settings: KernelSettings, verifier: TokenVerifier
) -> None:
    token = signed(settings, base_claims(settings), key=Ed25519PrivateKey.generate())
    assert "signature" in (rejected(verifier, token).detail or "")


def test_unknown_kid_and_foreign_algorithms_are_401(
    settings: KernelSettings, verifier: TokenVerifier
) -> None:
    other = jwt.encode(
        base_claims(settings),
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": "someone-elses"},
    )
    assert "unknown key" in (rejected(verifier, other).detail or "")
    hmac_token = jwt.encode(base_claims(settings), "secret", algorithm="HS256")
    assert "not allowed" in (rejected(verifier, hmac_token).detail or "")
    rejected(verifier, "not-a-jwt")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"roles": None}, "roles"),
        ({"roles": []}, "role"),
        ({"roles": ["officer", "sheriff"]}, "unknown role"),
        ({"roles": [1]}, "roles"),
        ({"scope": None}, "scope"),
        ({"scope": []}, "scope"),
        ({"scope": ""}, "scope"),
        ({"scope": ["33x6"]}, "scope"),
        ({"scope": ["３３０６"]}, "scope"),
        ({"scope": ["3"]}, "scope"),
        ({"exp": None}, "exp"),
        ({"iat": None}, "iat"),
        ({"sub": None}, "sub"),
    ],
)
def test_bad_claims_are_401(
    settings: KernelSettings, verifier: TokenVerifier, overrides: dict[str, Any], fragment: str
) -> None:
    token = signed(settings, base_claims(settings, **overrides))
    assert fragment in (rejected(verifier, token).detail or "")


def test_issue_token_refuses_what_the_verifier_would_reject(settings: KernelSettings) -> None:
    for roles, scopes in [
        (["sheriff"], ["3306"]),
        ([], ["3306"]),
        (["officer"], []),
        (["officer"], ["33-06"]),
    ]:
        with pytest.raises(ValueError):
            issue_token(settings, subject="u", roles=roles, scopes=scopes)
    with pytest.raises(ValueError):
        issue_token(
            settings,
            subject="u",
            roles=["officer"],
            scopes=["3306"],
            extra_claims={"scope": ["33"]},
        )


def test_verifier_never_accepts_alg_none_even_if_configured(tmp_path: Path) -> None:
    settings = KernelSettings(jingmin_home=tmp_path, jwt_algorithms=["none", "EdDSA"])
    verifier = TokenVerifier(settings)
    assert verifier.algorithms == ["EdDSA"]
    with pytest.raises(ValueError):
        TokenVerifier(KernelSettings(jingmin_home=tmp_path, jwt_algorithms=["none"]))


def test_cli_helper_and_ttl(settings: KernelSettings, verifier: TokenVerifier) -> None:
    assert parse_ttl("12h") == timedelta(hours=12)
    assert parse_ttl("30m") == timedelta(minutes=30)
    assert parse_ttl("7d") == timedelta(days=7)
    assert parse_ttl("90") == timedelta(seconds=90)
    for bad in ("0h", "-1h", "h", "12w", ""):
        with pytest.raises(ValueError):
            parse_ttl(bad)
    token = dev_token(settings, roles=["supervisor"], scopes=["3306"], ttl="30m")
    principal = verifier.verify(token)
    assert principal.subject == "dev-supervisor" and principal.scopes == ("3306",)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 1800


# --- JWKS (production) --------------------------------------------------------------------


def test_jwks_mode_verifies_and_limits_refetches_for_unknown_kids(
    settings: KernelSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched: list[str] = []
    jwks = json.dumps(dev_jwks(settings)).encode()

    def urlopen(request: urllib.request.Request, **kw: Any) -> io.BytesIO:
        fetched.append(request.full_url)
        return io.BytesIO(jwks)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    prod = settings.model_copy(update={"jwt_jwks_url": "https://idp.example/jwks.json"})
    verifier = TokenVerifier(prod)
    assert verifier.uses_network
    assert verifier.verify(officer_token(settings)).subject == "officer-7"
    assert verifier.verify(officer_token(settings)).subject == "officer-7"
    auth = {"Authorization": f"Bearer {officer_token(settings)}"}
    assert TestClient(make_app(verifier)).get("/bureaus/330602/cases", headers=auth).json() == {
        "subject": "officer-7"
    }
    assert len(fetched) == 1  # the key set is cached
    junk = jwt.encode(
        base_claims(settings),
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": "rotated-maybe"},
    )
    for _ in range(5):
        rejected(verifier, junk)
    assert len(fetched) == 2  # one forced refresh, not one per junk token


def test_unreachable_jwks_is_503_not_401(
    settings: KernelSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def urlopen(request: urllib.request.Request, **kw: Any) -> io.BytesIO:
        raise urllib.error.URLError("connection refused")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    verifier = TokenVerifier(settings.model_copy(update={"jwt_jwks_url": "https://idp/jwks"}))
    with pytest.raises(Problem) as caught:
        verifier.verify(officer_token(settings))
    assert caught.value.status == 503


# --- FastAPI ------------------------------------------------------------------------------


def make_app(verifier: TokenVerifier) -> FastAPI:
    app = FastAPI()
    app.state.verifier = verifier

    # Stands in for the platform's Problem handler, which should copy `headers` likewise.
    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem) -> Response:
        return JSONResponse(
            exc.to_dict(request.url.path),
            status_code=exc.status,
            media_type=PROBLEM_JSON,
            headers=getattr(exc, "headers", None),
        )

    @app.get("/bureaus/{code}/cases")
    async def cases(code: str, principal: CurrentPrincipal) -> dict[str, str]:
        authorize(principal, code, roles=["officer", "supervisor"])
        return {"subject": principal.subject}

    @app.get("/admin")
    async def admin(
        principal: Principal = Depends(require_principal(verifier, roles=["admin"])),
    ) -> dict[str, str]:
        return {"subject": principal.subject}

    return app


def test_http_missing_token_is_401_with_bearer_challenge(verifier: TokenVerifier) -> None:
    client = TestClient(make_app(verifier))
    response = client.get("/bureaus/330602/cases")
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["type"] == "urn:jingmin:problem:unauthorized"
    response = client.get("/bureaus/330602/cases", headers={"Authorization": "Basic dTpw"})
    assert response.status_code == 401


def test_http_expired_token_is_401(settings: KernelSettings, verifier: TokenVerifier) -> None:
    token = officer_token(settings, now=datetime.now(UTC) - timedelta(days=1))
    response = TestClient(make_app(verifier)).get(
        "/bureaus/330602/cases", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert "expired" in response.json()["detail"]


def test_http_scope_and_role_checks(settings: KernelSettings, verifier: TokenVerifier) -> None:
    client = TestClient(make_app(verifier))
    auth = {"Authorization": f"Bearer {officer_token(settings)}"}
    assert client.get("/bureaus/330602001/cases", headers=auth).json() == {"subject": "officer-7"}
    cross = client.get("/bureaus/330603/cases", headers=auth)
    assert cross.status_code == 403
    assert cross.json()["type"] == "urn:jingmin:problem:forbidden"
    assert client.get("/admin", headers=auth).status_code == 403
    admin = {"Authorization": "Bearer " + officer_token(settings, roles=["admin"])}
    assert client.get("/admin", headers=admin).json() == {"subject": "officer-7"}
    partner = {"Authorization": "Bearer " + officer_token(settings, roles=["partner"])}
    assert client.get("/bureaus/330602/cases", headers=partner).status_code == 403


def test_bearer_challenge_is_an_unauthorized_problem() -> None:
    problem = BearerChallenge("nope")
    assert isinstance(problem, Problem)
    assert problem.to_dict()["status"] == 401
