"""`jingmin report` on a month of figures in a real metrics database: the PDF's text
(pdftotext) names every station in Chinese and holds the JSON API's figures for the same
scope and month; the workbook has the same numbers; page 1 renders (pdftoppm)."""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from eventkit.auth import issue_token
from eventkit.testing import DatabaseFactory
from jingmin_metrics.domain.clock import local_day, parse_us
from jingmin_metrics.domain.item import Observation
from jingmin_metrics.report import cells
from jingmin_metrics.report.cli import produce, report
from jingmin_metrics.report.league import HEADLINES
from jingmin_metrics.service import SERVICE
from openpyxl import load_workbook
from support import _dims, figures_api, snapshot_records, store_figures
from typer.testing import CliRunner, Result

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler-utils not installed"),
]

COUNTY = "330602"
FUSHAN, TASHAN = "330602001", "330602002"
NAMES = {FUSHAN: "府山派出所", TASHAN: "塔山派出所"}
NOV, OCT = datetime(2026, 11, 15, 2, tzinfo=UTC), datetime(2026, 10, 15, 2, tzinfo=UTC)
# (station, instant) -> (measure, {dim: value}, count): fixed, so every figure is known.
MONTH: dict[tuple[str, datetime], list[tuple[str, dict[str, str], int]]] = {
    (FUSHAN, NOV): [
        ("callback.answered", {"satisfaction": "satisfied"}, 40),
        ("callback.answered", {"satisfaction": "dissatisfied"}, 10),
        ("intake.received", {}, 200),
        ("complaints.received", {}, 6),
        ("intake.arrival_target", {"on_target": "true"}, 30),
        ("intake.arrival_target", {"on_target": "false"}, 10),
    ],
    (TASHAN, NOV): [
        ("callback.answered", {"satisfaction": "satisfied"}, 18),
        ("callback.answered", {"satisfaction": "dissatisfied"}, 6),
        ("intake.received", {}, 100),
        # 3 of 5 on target: a small cell, shown as "—" (never 60 %).
        ("intake.arrival_target", {"on_target": "true"}, 3),
        ("intake.arrival_target", {"on_target": "false"}, 2),
    ],
    (FUSHAN, OCT): [
        ("callback.answered", {"satisfaction": "satisfied"}, 35),
        ("callback.answered", {"satisfaction": "dissatisfied"}, 15),
    ],
    (TASHAN, OCT): [("callback.answered", {"satisfaction": "satisfied"}, 20)],
}


class FakeNames:
    def names(self, scope: str) -> dict[str, str]:
        return NAMES


def _observations() -> list[Observation]:
    out = []
    for (station, at), rows in MONTH.items():
        us = parse_us(at.isoformat())
        for measure, values, n in rows:
            if measure.startswith("callback"):
                values = {"trigger": "case_resolved", **values}
            dims = _dims(measure, station, us, **values)
            out.append(Observation(measure, COUNTY, local_day(us), dims, n))
    return out


@pytest.fixture
async def stack(
    tmp_path: Path, metrics_broker: str, fresh_database: DatabaseFactory
) -> AsyncIterator[tuple[httpx.AsyncClient, str, dict[str, str]]]:
    dsn = await fresh_database([SERVICE.migrations])
    await store_figures(dsn, snapshot_records(_observations()))
    async with figures_api(tmp_path, metrics_broker, dsn) as (c, settings):
        token = issue_token(settings, subject="u", roles=["commander"], scopes=[COUNTY])
        yield c, dsn, {"Authorization": f"Bearer {token}"}


async def _api(c: httpx.AsyncClient, headers: dict[str, str], scope: str) -> dict[str, Any]:
    r = await c.get(
        "/v1/figures",
        params={"scope": scope, "from": "2026-11-01", "to": "2026-11-30"},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    figures: dict[str, Any] = r.json()["figures"]
    return figures


def _pdftotext(pdf: Path) -> str:
    done = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    )
    return done.stdout


def _page1(pdf: Path, prefix: Path) -> None:
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(prefix)], check=True
    )


def _json_value(figures: dict[str, Any], key: str) -> Any:
    group, name = key.split(".")
    value = figures[group][name]
    return value["rate"] if isinstance(value, dict) else value


async def test_report_pdf_and_xlsx_hold_the_json_apis_figures_with_names(
    stack: tuple[httpx.AsyncClient, str, dict[str, str]], tmp_path: Path
) -> None:
    c, dsn, headers = stack
    api = {code: await _api(c, headers, code) for code in (FUSHAN, TASHAN, COUNTY)}
    pdf = await asyncio.to_thread(produce, dsn, COUNTY, "2026-11", "pdf", FakeNames())
    xlsx = await asyncio.to_thread(produce, dsn, COUNTY, "2026-11", "xlsx", FakeNames())
    (tmp_path / "r.pdf").write_bytes(pdf)
    text = await asyncio.to_thread(_pdftotext, tmp_path / "r.pdf")
    lines = text.splitlines()
    assert "越城区" in text and "附录" in text
    workbook = load_workbook(io.BytesIO(xlsx))
    names = {**NAMES, COUNTY: "越城区"}
    for h in HEADLINES:
        sheet = {row[1]: row for row in workbook[h.label].iter_rows(min_row=3, values_only=True)}
        for code, name in names.items():
            want = _json_value(api[code], h.key)
            got = sheet[code]
            assert got[0] == name
            small = code == TASHAN and h.key == "intake.arrival_on_target"
            if want is None or small:
                assert got[2] == "—", (code, h.key)
                continue
            assert got[2] == want, (code, h.key)
            # The league table's row of this unit shows the same value.
            shown = cells.shown(h, cells.Value(0, 0, want, want))
            assert any(name in line and shown in line for line in lines), (name, shown)
    # Pooled county total, ranks and the change from October.
    assert api[COUNTY]["callbacks"]["satisfaction"]["rate"] == round(58 / 74, 4)
    rows = workbook["满意率"].iter_rows(min_row=3, values_only=True)
    satisfaction = {row[1]: row for row in rows}
    assert satisfaction[FUSHAN][6] == 1 and satisfaction[TASHAN][6] == 2
    assert satisfaction[FUSHAN][7] == round(0.8 - 0.7, 4)
    assert "60.0%" not in text  # Tashan's 3 of 5 arrivals on target stay hidden
    await asyncio.to_thread(_page1, tmp_path / "r.pdf", tmp_path / "page")
    rendered = list(tmp_path.glob("page*.png"))
    assert len(rendered) == 1 and rendered[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _cli(args: list[str]) -> Result:
    app = typer.Typer()
    app.command()(report)
    return CliRunner().invoke(app, args)


async def test_the_command_writes_the_file_it_names(
    stack: tuple[httpx.AsyncClient, str, dict[str, str]], tmp_path: Path
) -> None:
    _, dsn, _ = stack
    out = tmp_path / "通报.xlsx"
    args = ["--scope", COUNTY, "--month", "2026-11", "--format", "xlsx", "--out", str(out)]
    result = await asyncio.to_thread(_cli, [*args, "--dsn", dsn])
    assert result.exit_code == 0, result.output
    sheet = load_workbook(out)["满意率"]
    # No register given: stations are shown by their code.
    assert [row[0] for row in sheet.iter_rows(min_row=3, values_only=True)] == [
        FUSHAN,
        TASHAN,
        "越城区",
    ]
