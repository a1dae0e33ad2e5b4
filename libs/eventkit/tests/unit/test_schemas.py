"""Request bodies refuse true and false where a number goes (pydantic's lax mode would read
`true` as 1), as a 422 problem, and still take booleans where the field is one."""

from __future__ import annotations

import httpx
import pytest
from eventkit.http import create_app
from eventkit.problems import PROBLEM_JSON
from eventkit.schemas import Strict, Time
from eventkit.settings import KernelSettings
from pydantic import Field, ValidationError


class Policy(Strict):
    days: int | None = Field(None, ge=1, le=366)
    share: float = 0.5
    grace: int = Field(60, alias="graceSeconds")
    anonymous: bool = False
    either: int | bool = 0
    at: Time | None = None


@pytest.mark.parametrize("field", ["days", "share", "graceSeconds"])
@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_is_no_number(field: str, value: bool) -> None:
    with pytest.raises(ValidationError, match="must be a number, not true or false"):
        Policy.model_validate({field: value})


def test_booleans_numbers_and_times_still_read_as_before() -> None:
    body = '{"days": 3, "share": 1, "graceSeconds": 0, "anonymous": true, "either": true,'
    body += ' "at": "2026-11-02T09:00:00+08:00"}'
    p = Policy.model_validate_json(body)
    assert (p.days, p.share, p.grace, p.anonymous, p.either) == (3, 1.0, 0, True, True)
    assert p.at is not None and p.at.utcoffset() is not None


async def test_the_api_answers_422_problem_json_for_a_boolean_number() -> None:
    app = create_app("toy", KernelSettings(), title="Toy", version="0.0.1")

    @app.put("/policy")
    async def put_policy(policy: Policy) -> dict[str, int | None]:
        return {"days": policy.days}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.put("/policy", json={"days": True})
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM_JSON
        assert "days must be a number" in r.text
        assert (await c.put("/policy", json={"days": 3})).json() == {"days": 3}
