"""The report as a Chinese PDF: a Jinja2 HTML template laid out by WeasyPrint, which embeds
the Noto CJK OpenType fonts (fonts-noto-cjk) it finds through fontconfig."""

from __future__ import annotations

import base64

from jinja2 import Environment, PackageLoader, select_autoescape

from jingmin_metrics.figures.definitions import DEFINITIONS
from jingmin_metrics.report import chart, tables
from jingmin_metrics.report.league import HEADLINES, League, previous_month


def title(league: League) -> str:
    year, month = league.month.split("-")
    return f"{league.scope_name}公安局 {year}年{int(month)}月 群众满意度与服务质量考核通报"


def html(league: League) -> str:
    env = Environment(
        loader=PackageLoader("jingmin_metrics.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )
    svg = chart.bar_svg(league, "callbacks.satisfaction", "满意率（满意+基本满意）")
    return env.get_template("report.html.j2").render(
        title=title(league),
        league=league,
        previous=previous_month(league.month),
        lower_better="、".join(h.label for h in HEADLINES if not h.higher_is_better),
        headlines=HEADLINES,
        rows=tables.overview(league),
        details=[tables.detail(league, h) for h in HEADLINES],
        chart="data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode(),
        definitions=DEFINITIONS,
    )


def render(league: League) -> bytes:
    from weasyprint import HTML  # imported late: pango loads with it

    pdf: bytes = HTML(string=html(league)).write_pdf()
    return pdf
