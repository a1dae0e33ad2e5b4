"""`jingmin report`: the monthly assessment report (月度考核通报) of a scope as PDF or XLSX.

The numbers are computed in-process from the metrics database with the code the JSON API
serves (`figures.compute`), so they equal GET /v1/figures for the same scope and month;
station names come from intake's unit register when its URL and a token are given."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Annotated, Literal

import typer
from eventkit import divisions

from jingmin_metrics.figures.select import Cell
from jingmin_metrics.report import league as league_mod
from jingmin_metrics.report.names import IntakeUnitNames, NoNames, UnitNames, scope_name

MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")


def check_month(month: str) -> str:
    if not MONTH.match(month):
        raise typer.BadParameter(f"{month!r} is not a month such as 2026-11", param_hint="--month")
    return month


def check_scope(scope: str) -> str:
    """A province, city or county code GB/T 2260 knows (a report is for a whole bureau or
    above; a station's own figures are in the JSON API)."""
    if not re.fullmatch(r"[0-9]{2}|[0-9]{4}|[0-9]{6}", scope) or divisions.name(scope) is None:
        raise typer.BadParameter(
            f"{scope!r} is no province, city or county code of GB/T 2260", param_hint="--scope"
        )
    return scope


async def _cells(dsn: str) -> dict[str, list[Cell]]:
    from jingmin_metrics.adapters.figures_reader import FiguresReader
    from jingmin_metrics.figures.select import index

    view = await FiguresReader(dsn).catch_up()
    return index(view.merged())


def produce(dsn: str, scope: str, month: str, fmt: str, names: UnitNames) -> bytes:
    data = asyncio.run(_cells(dsn))
    built = league_mod.build(data, scope, month, names.names(scope), scope_name(scope))
    if fmt == "xlsx":
        from jingmin_metrics.report import xlsx

        return xlsx.render(built)
    from jingmin_metrics.report import pdf

    return pdf.render(built)


def report(
    scope: Annotated[str, typer.Option(help="County (or city, province) code, e.g. 330602.")],
    month: Annotated[str, typer.Option(help="The month, YYYY-MM (bureau days, Beijing).")],
    format: Annotated[Literal["pdf", "xlsx"], typer.Option("--format")] = "pdf",
    out: Annotated[
        Path | None, typer.Option(help="Default: report-<scope>-<month>.<format>")
    ] = None,
    dsn: Annotated[str | None, typer.Option(help="Metrics database; default: settings.")] = None,
    intake_url: Annotated[
        str | None, typer.Option(envvar="JINGMIN_INTAKE_URL", help="Intake API for names.")
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="JINGMIN_TOKEN", help="Bearer token for intake.")
    ] = None,
) -> None:
    """Monthly assessment report (月度考核通报): per station each headline figure with n,
    target, rank and change from the previous month; charts; definitions."""
    check_scope(scope)
    check_month(month)
    if dsn is None:
        from jingmin_metrics.settings import metrics_dsn, metrics_settings

        dsn = metrics_dsn(metrics_settings())
    names: UnitNames = IntakeUnitNames(intake_url, token) if intake_url and token else NoNames()
    if isinstance(names, NoNames):
        typer.echo("jingmin report: no --intake-url and --token: stations shown by code", err=True)
    body = produce(dsn, scope, month, format, names)
    path = out or Path(f"report-{scope}-{month}.{format}")
    path.write_bytes(body)
    typer.echo(str(path))
