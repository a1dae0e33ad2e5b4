"""RFC 9457 problem details: every 4xx/5xx answer is `application/problem+json`."""

from __future__ import annotations

from typing import Any

from eventkit.domain import DomainError

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem document and write nothing."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        type_: str = "about:blank",
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.extensions = extensions
        # Response headers that belong to the problem, e.g. WWW-Authenticate on a 401.
        self.headers: dict[str, str] = {}

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body


def unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, type_="urn:jingmin:problem:unauthorized")


def forbidden(detail: str) -> Problem:
    return Problem(403, "Forbidden", detail, type_="urn:jingmin:problem:forbidden")


def not_found(detail: str) -> Problem:
    return Problem(404, "Not Found", detail, type_="urn:jingmin:problem:not-found")


def conflict(detail: str, **ext: Any) -> Problem:
    return Problem(409, "Conflict", detail, type_="urn:jingmin:problem:conflict", **ext)


def unprocessable(detail: str, **ext: Any) -> Problem:
    return Problem(422, "Unprocessable Content", detail, type_="urn:jingmin:problem:invalid", **ext)


def problem_of(error: DomainError) -> Problem:
    """The answer to a refused command: the one place domain errors become HTTP."""
    return Problem(
        error.status, error.title, error.detail, type_=error.problem_type, **error.extensions
    )
