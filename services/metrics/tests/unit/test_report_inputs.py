"""The report's definitions are the README's (written once), and bad input to `jingmin
report` is refused with exit code 2 before any database is touched."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import typer
from jingmin_metrics.figures.definitions import markdown
from jingmin_metrics.report.cli import report
from jingmin_metrics.report.league import month_bounds, previous_month
from jingmin_metrics.report.names import IntakeUnitNames, scope_name
from typer.testing import CliRunner

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_definitions_table_is_rendered_from_the_definitions() -> None:
    assert markdown() in README.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--scope", "330602", "--month", "2026-13"], "--month"),
        (["--scope", "330602", "--month", "November"], "--month"),
        (["--scope", "999999", "--month", "2026-11"], "--scope"),
        (["--scope", "330602001", "--month", "2026-11"], "--scope"),
    ],
)
def test_bad_month_or_unknown_scope_exits_2(args: list[str], says: str) -> None:
    app = typer.Typer()
    app.command()(report)
    result = CliRunner().invoke(app, [*args, "--dsn", "postgresql://nowhere.invalid/x"])
    assert result.exit_code == 2
    assert says in result.output


def test_month_bounds_and_the_month_before() -> None:
    assert month_bounds("2026-11") == ("2026-11-01", "2026-11-30")
    assert month_bounds("2028-02") == ("2028-02-01", "2028-02-29")
    assert previous_month("2026-01") == "2025-12"


def test_station_names_come_from_intakes_unit_register() -> None:
    def units(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/units"
        assert request.url.params["scope"] == "330602"
        assert request.headers["Authorization"] == "Bearer t0k"
        items = [{"code": "330602001", "name": "府山派出所", "kind": "station"}]
        return httpx.Response(200, json={"scope": "330602", "divisions": [], "items": items})

    client = httpx.Client(transport=httpx.MockTransport(units))
    names = IntakeUnitNames("http://intake.test/", "t0k", client).names("330602")
    assert names == {"330602001": "府山派出所"}
    assert scope_name("330602") == "越城区" and scope_name("990000") == "990000"
