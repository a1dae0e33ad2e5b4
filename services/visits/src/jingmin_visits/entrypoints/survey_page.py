"""The public SMS survey page: `GET /s/{token}` shows it, `POST /s/{token}` answers it.

Server-rendered, no JavaScript, Chinese, mobile first. The link is the only credential:
it is signed, single-use and expiring, and the page says nothing about the case.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from jingmin_visits.adapters import survey_tokens
from jingmin_visits.application.handlers import CallbackCommands
from jingmin_visits.application.wave_sms import Answer, WaveSms
from jingmin_visits.domain.survey import ANSWER_ITEMS, QUESTIONNAIRE
from jingmin_visits.domain.vocabulary import Satisfaction, Security

router = APIRouter(include_in_schema=False)

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
)
SATISFACTION = ((Satisfaction.SATISFIED, "满意"), (Satisfaction.BASICALLY_SATISFIED, "基本满意"),
                (Satisfaction.DISSATISFIED, "不满意"))  # fmt: skip
SECURITY = ((Security.SAFE, "安全"), (Security.BASICALLY_SAFE, "基本安全"),
            (Security.UNSAFE, "不安全"))  # fmt: skip
MAX_COMMENT = 1000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# The link is a bearer credential: never cached, never sent on as a Referer, never indexed;
# the page runs no script and posts only to itself.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
}

MESSAGES: dict[survey_tokens.State, tuple[int, str, list[str]]] = {
    survey_tokens.State.UNKNOWN: (
        404,
        "链接无效",
        ["请检查短信中的链接是否完整。如需帮助，请拨打当地公安机关的咨询电话。"],
    ),
    survey_tokens.State.USED: (410, "您已提交过评价", ["此链接只能使用一次。感谢您的参与！"]),
    survey_tokens.State.EXPIRED: (
        410,
        "评价链接已过期",
        ["此链接已超过有效期，评价未被记录。感谢您的关注！"],
    ),
}


def _page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = TEMPLATES.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _message(state: survey_tokens.State) -> HTMLResponse:
    status, heading, lines = MESSAGES[state]
    return _page("survey_message.html", status, heading=heading, lines=lines)


def _form(status: int = 200, error: str | None = None, **chosen: Any) -> HTMLResponse:
    return _page(
        "survey_form.html",
        status,
        error=error,
        chosen=chosen,
        satisfaction_choices=[(v.value, label) for v, label in SATISFACTION],
        security_choices=[(v.value, label) for v, label in SECURITY],
        max_comment=MAX_COMMENT,
    )


def _token_id(request: Request, token: str) -> str | None:
    key: bytes = request.app.state.survey_key
    return survey_tokens.verified_id(key, token)


# The wave questionnaire's coded items, in order; the respondent may skip any of them
# (answering both headline items makes a completed interview, fewer a partial one).
WAVE_QUESTIONS = [dict(q, required=False) for q in QUESTIONNAIRE if not q.get("free_text")]


def _wave_form(status: int = 200, error: str | None = None, **chosen: Any) -> HTMLResponse:
    return _page(
        "survey_wave_form.html",
        status,
        error=error,
        chosen=chosen,
        questions=WAVE_QUESTIONS,
        max_text=MAX_COMMENT,
    )


@router.get("/s/{token}", response_class=HTMLResponse)
async def survey_form(token: str, request: Request) -> HTMLResponse:
    token_id = _token_id(request, token)
    if token_id is None:
        return _message(survey_tokens.State.UNKNOWN)
    async with request.app.state.pool.acquire() as conn:
        found = await survey_tokens.look_up(conn, token_id)
    if found.state is not survey_tokens.State.VALID:
        return _message(found.state)
    return _wave_form() if found.wave_id else _form()


def _wave_answer(form: dict[str, list[str]]) -> tuple[Answer | None, str | None, dict[str, Any]]:
    """The submitted questionnaire, or why it cannot be taken (and what to show again)."""
    answers: dict[str, str] = {}
    for item, vocabulary in ANSWER_ITEMS.items():
        value = _one(form, item)
        if value in {v.value for v in vocabulary}:
            answers[item] = str(value)
    texts = {k: _CONTROL.sub("", _one(form, k) or "").strip() for k in ("comment", "problem_text")}
    chosen: dict[str, Any] = {**answers, **{k: v[:MAX_COMMENT] for k, v in texts.items()}}
    if any(len(v) > MAX_COMMENT for v in texts.values()):
        return None, f"每项文字请不要超过{MAX_COMMENT}字。", chosen
    if not answers and not any(texts.values()):
        return None, "请至少回答一题后再提交。", chosen
    answer = Answer(answers, texts["comment"] or None, texts["problem_text"] or None)
    return answer, None, chosen


async def _answer_wave(request: Request, token_id: str, raw: bytes) -> HTMLResponse:
    form = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=10)
    answer, error, chosen = _wave_answer(form)
    if answer is None:
        return _wave_form(422, error, **chosen)
    sms: WaveSms = request.app.state.wave_sms
    state = await sms.answer(token_id, answer)
    if state is not survey_tokens.State.VALID:
        return _message(state)
    lines = ["您的回答我们已经收到，感谢您对公安工作的支持！"]
    if answer.problem_text:
        lines.append("您反映的问题已转交当地派出所受理。")
    return _page("survey_message.html", heading="感谢您参加调查！", lines=lines)


def _one(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


@router.post("/s/{token}", response_class=HTMLResponse)
async def survey_answer(token: str, request: Request) -> HTMLResponse:
    token_id = _token_id(request, token)
    if token_id is None:
        return _message(survey_tokens.State.UNKNOWN)
    raw = await request.body()
    async with request.app.state.pool.acquire() as conn:
        found = await survey_tokens.look_up(conn, token_id)
    if found.state is not survey_tokens.State.VALID:
        return _message(found.state)
    if found.wave_id is not None:
        return await _answer_wave(request, token_id, raw)
    form = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=10)
    satisfaction, security = _one(form, "satisfaction"), _one(form, "security")
    comment = _CONTROL.sub("", _one(form, "comment") or "").strip()
    complaint = _one(form, "complaint") == "yes"
    valid_satisfaction = satisfaction in {v.value for v, _ in SATISFACTION}
    valid_security = security in {v.value for v, _ in SECURITY}
    if (
        satisfaction is None
        or security is None
        or not (valid_satisfaction and valid_security)
        or len(comment) > MAX_COMMENT
    ):
        error = (
            f"意见建议请不要超过{MAX_COMMENT}字。"
            if len(comment) > MAX_COMMENT
            else "请回答第1题和第2题后再提交。"
        )
        return _form(
            422,
            error,
            satisfaction=satisfaction if valid_satisfaction else None,
            security=security if valid_security else None,
            comment=comment[:MAX_COMMENT],
            complaint=complaint,
        )
    commands: CallbackCommands = request.app.state.commands
    state = await commands.answer_survey(
        token_id,
        Satisfaction(satisfaction),
        Security(security),
        comment or None,
        wants_complaint=complaint,
    )
    if state is not survey_tokens.State.VALID:
        return _message(state)
    lines = ["您的意见我们已经收到，我们会认真改进工作。"]
    if complaint:
        lines.append("您的投诉将转交督察部门受理，工作人员会在规定时限内与您联系。")
    return _page("survey_message.html", heading="感谢您的评价！", lines=lines)
