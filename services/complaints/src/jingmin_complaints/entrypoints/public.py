"""The public's pages: file a complaint online (`/complain`) and track it (`/track/{code}`).

Server-rendered HTML that works without JavaScript. No token: protected by a signed form
token bound to a cookie (CSRF), a per-address rate limit, a honeypot field, and a strict
Content-Security-Policy. Tracking shows status and dates, never anything personal.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import asyncpg
from eventkit import divisions
from eventkit.auth import Principal
from eventkit.commands import CommandRequest
from eventkit.problems import Problem
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from jingmin_complaints.adapters import read_model, unit_names
from jingmin_complaints.application.handlers import new_id
from jingmin_complaints.application.receipts import new_receipt, normalise, receipt_hash
from jingmin_complaints.domain.common import Fact
from jingmin_complaints.domain.complaint import Complaint
from jingmin_complaints.domain.policy import ComplaintPolicy
from jingmin_complaints.domain.units import station_of
from jingmin_complaints.domain.vocabulary import Category, Channel
from jingmin_complaints.entrypoints import pages
from jingmin_complaints.entrypoints.common import commands_of
from jingmin_complaints.entrypoints.formtoken import COOKIE, TTL_SECONDS, FormTokens
from jingmin_complaints.entrypoints.ratelimit import SUBMIT, TRACK, VIEW, Limit, RateLimiter
from jingmin_complaints.entrypoints.routes import complaint_fields, seal_complainant

router = APIRouter(include_in_schema=False)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # The tracking URL holds the receipt code: never send it on as a Referer.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_BUREAU = re.compile(r"^[0-9]{6}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 -]{6,19}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FIELDS = ("bureau", "unit", "category", "account", "involved", "hoped_outcome", "name", "phone")


def _html(content: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(
        content, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})}
    )


def _limited(request: Request, name: str, limit: Limit) -> HTMLResponse | None:
    limiter: RateLimiter = request.app.state.limiter
    client = request.client.host if request.client else "unknown"
    wait = limiter.take(name, limit, client)
    if not wait:
        return None
    return _html(
        pages.message_page("请求过于频繁", f"请求过于频繁，请 {int(wait)} 秒后再试。"),
        429,
        {"Retry-After": str(int(wait))},
    )


def _tokens(request: Request) -> FormTokens:
    tokens: FormTokens = request.app.state.form_tokens
    return tokens


async def _units(request: Request, bureau: str) -> dict[str, str]:
    """The stations a citizen may name in `bureau`, by code: the register's and the policy's."""
    async with request.app.state.pool.acquire() as conn:
        policy: ComplaintPolicy = await commands_of(request).policies.get(conn, bureau)
        return await unit_names.stations(conn, bureau, policy.units)


def _places(bureau: str, province: str, city: str) -> pages.Places:
    """What the place chooser offers: from the chosen county's lineage, else the parameters
    as far as they name real divisions (a stale city of another province is dropped)."""
    if bureau:
        return pages.Places(divisions.children(""), lineage=divisions.lineage(bureau))
    province = province if len(province) == 2 and divisions.name(province) else ""
    city = city if province and len(city) == 4 and city.startswith(province) else ""
    city = city if divisions.name(city) else ""
    return pages.Places(
        provinces=divisions.children(""),
        province=province,
        cities=divisions.children(province) if province else (),
        city=city,
        counties=divisions.children(city) if city else (),
    )


async def _form(
    request: Request,
    bureau: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    province: str = "",
    city: str = "",
) -> HTMLResponse:
    cookie = request.cookies.get(COOKIE) or FormTokens.new_cookie()
    units = await _units(request, bureau) if bureau else {}
    content = pages.form_page(
        bureau=bureau,
        units=units,
        token=_tokens(request).issue(cookie),
        values=values,
        errors=errors,
        places=_places(bureau, province, city),
    )
    response = _html(content, status)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=TTL_SECONDS,
        path="/complain",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _asset(text: str, media_type: str) -> Response:
    return Response(
        text,
        media_type=f"{media_type}; charset=utf-8",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/assets/complaints.css")
async def stylesheet() -> Response:
    return _asset(pages.CSS, "text/css")


@router.get("/assets/complaints.js")
async def script() -> Response:
    return _asset(pages.SCRIPT, "text/javascript")


@router.get("/complain")
async def complaint_form(
    request: Request,
    bureau: str | None = None,
    province: str | None = None,
    city: str | None = None,
    county: str | None = None,
) -> HTMLResponse:
    """The online complaint form (mobile first, no script needed).

    Bound by `?bureau=` (a bureau's own link); otherwise the place chooser, one level per
    "下一步" without script: `?province=33`, then `&city=3306`, then `?county=330602` binds.
    """
    if limited := _limited(request, "view", VIEW):
        return limited
    chosen = bureau or county
    code = chosen if chosen and _BUREAU.match(chosen) else ""
    return await _form(request, code, province=province or "", city=city or "")


_CODES = frozenset({"bureau", "unit", "category", "phone"})


def _clean(name: str, value: str) -> str:
    # Stray control characters go (PostgreSQL text cannot hold NUL). Codes and the phone
    # number fold full-width digits (common in Chinese input) to ASCII; the person's own
    # words keep their punctuation (NFKC would turn ，into ,).
    if name in _CODES:
        value = unicodedata.normalize("NFKC", value)
    return _CONTROL.sub("", value).strip()


def _validate(values: dict[str, str], units: dict[str, str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not _BUREAU.match(values["bureau"]):
        errors["bureau"] = "请选择所在县（区）"
    if values["unit"] and (
        values["unit"] not in units or not values["unit"].startswith(values["bureau"])
    ):
        errors["unit"] = "请从列表中选择被投诉单位"
    if values["category"] not in set(Category):
        errors["category"] = "请选择投诉类别"
    if not values["account"]:
        errors["account"] = "请填写事情经过"
    for name, most in (("account", 4000), ("hoped_outcome", 4000), ("involved", 200), ("name", 50)):
        if len(values[name]) > most:
            errors[name] = f"内容过长，请控制在{most}字以内"
    if not values["anonymous"]:
        if not values["phone"]:
            errors["phone"] = "请填写手机号码，或选择匿名投诉"
        elif not _PHONE.match(values["phone"]):
            errors["phone"] = "手机号码格式不正确"
    return errors


async def _read_form(request: Request) -> dict[str, str] | None:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    try:
        text = (await request.body()).decode("utf-8")
        parsed = parse_qs(text, keep_blank_values=True, max_num_fields=30)
    except (UnicodeDecodeError, ValueError):
        return None
    return {k: v[0] for k, v in parsed.items() if v}


@router.post("/complain")
async def submit_complaint(request: Request) -> HTMLResponse:
    """File the complaint and show its receipt code at once."""
    if limited := _limited(request, "submit", SUBMIT):
        return limited
    raw = await _read_form(request)
    if raw is None:
        return _html(pages.message_page("无法提交", "请通过投诉页面的表单提交。"), 415)
    values = {name: _clean(name, raw.get(name, "")) for name in _FIELDS}
    values["anonymous"] = "1" if raw.get("anonymous") else ""
    bureau = values["bureau"] if _BUREAU.match(values["bureau"]) else ""
    nonce = _tokens(request).check(request.cookies.get(COOKIE), raw.get("token"))
    if nonce is None:
        errors = {"token": "页面已过期或无效，请核对后再次提交"}
        return await _form(request, bureau, values=values, errors=errors, status=403)
    if raw.get("website"):
        # Only a robot fills the invisible field; tell it nothing useful.
        return _html(pages.message_page("无法提交", "提交未被受理。"), 422)
    errors = _validate(values, await _units(request, bureau) if bureau else {})
    if errors:
        return await _form(request, bureau, values=values, errors=errors, status=422)
    try:
        code, complaint_id = await _file(request, values, nonce)
    except Problem as problem:
        if problem.type == "urn:jingmin:problem:idempotency-key-reused":
            return _html(
                pages.message_page(
                    "已提交", "这份表单已经提交过。如需再次投诉，请重新打开投诉页面。"
                ),
                409,
            )
        raise
    async with request.app.state.pool.acquire() as conn:
        row = await read_model.complaint_row(conn, complaint_id)
    due = row["next_due_at"] if row else None
    return _html(pages.receipt_page(code, due), 201)


async def _file(request: Request, values: dict[str, str], nonce: str) -> tuple[str, str]:
    """Run ReceiveComplaint as the public form; a resubmitted form gets its first answer."""
    bureau = values["bureau"]
    subject_unit = values["unit"] or bureau
    anonymous = bool(values["anonymous"])
    principal = Principal("public:online-form", frozenset({"service"}), (bureau,))
    command = CommandRequest(
        principal,
        idempotency_key=f"form:{nonce}",
        fingerprint=_fingerprint(values),
        correlation_id=None,
    )
    code = new_receipt()

    async def decide(
        complaint: Complaint, policy: ComplaintPolicy, conn: asyncpg.Connection, now: datetime
    ) -> list[Fact]:
        person = {k: values[k] for k in ("name", "phone") if values[k]}
        texts: dict[str, str | None] = {
            "account": values["account"],
            "hoped_outcome": values["hoped_outcome"] or None,
            "subject_description": values["involved"] or None,
            "receipt": code,
        }
        subject_id, sealed = await seal_complainant(request, conn, person, anonymous, texts)
        data = complaint_fields(
            bureau=bureau,
            subject_unit=subject_unit,
            channel=Channel.ONLINE,
            category=values["category"],
            subject_id=subject_id,
            anonymous=anonymous,
            code=code,
            received_by=principal.subject,
            sealed=sealed,
        )
        return complaint.receive(data, policy, now, now)

    _status, body = await commands_of(request).execute(
        command,
        Complaint,
        new_id(),
        decide,
        roles=(),
        new_in=station_of(subject_unit),
        status=201,
        public=True,
        extra={"receipt_code": code},
    )
    return str(body["receipt_code"]), str(body["complaint_id"])


def _fingerprint(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


@router.get("/track")
async def track_lookup(request: Request, code: str | None = None) -> Response:
    """The tracking form; with ?code= it goes to that complaint's page."""
    if limited := _limited(request, "track", TRACK):
        return limited
    if code is None:
        return _html(pages.track_form())
    raw = normalise(code)
    if raw is None:
        return _html(pages.track_form("查询码格式不正确，请核对后重新输入"), 404)
    shaped = "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))
    return RedirectResponse(f"/track/{shaped}", 303, headers=SECURITY_HEADERS)


@router.get("/track/{code}")
async def track(request: Request, code: str) -> HTMLResponse:
    """A complaint's status and due date by its receipt code: nothing personal."""
    if limited := _limited(request, "track", TRACK):
        return limited
    found = None
    if normalise(code) is not None:
        async with request.app.state.pool.acquire() as conn:
            found = await read_model.complaint_by_receipt(conn, receipt_hash(code))
    if found is None:
        return _html(pages.track_form("未找到该查询码对应的投诉，请核对后重新输入"), 404)
    return _html(pages.track_page(found))
