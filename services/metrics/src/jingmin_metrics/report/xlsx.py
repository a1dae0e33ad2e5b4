"""The report's tables as a workbook: one sheet per figure, numbers as numbers (a hidden
small cell is "—"), and the definitions."""

from __future__ import annotations

import io

from openpyxl import Workbook
from openpyxl.styles import Font

from jingmin_metrics.figures.definitions import DEFINITIONS
from jingmin_metrics.report.league import HEADLINES, League

HEADER = ["派出所", "代码", "数值", "分子", "n（分母）", "目标", "名次", "较上月"]


def render(league: League) -> bytes:
    wb = Workbook()
    wb.remove(wb.active)
    for h in HEADLINES:
        # Sheet titles: at most 31 characters, none of []:*?/\ (Excel's rules).
        ws = wb.create_sheet(h.label[:31])
        ws.append([f"{league.scope_name}（{league.scope}）{league.first} 至 {league.last}"])
        extra = ["未记录走访的服务"] if h.key == "intake.one_visit" else []
        ws.append(HEADER + extra)
        for c in ws[2]:
            c.font = Font(bold=True)
        for r in [*league.stations, league.total]:
            v = r.values[h.key]
            total = r is league.total
            ws.append([
                r.name, r.code,
                "—" if v.shown is None else v.shown,
                "—" if v.shown is None else v.numerator,
                v.denominator,
                "—" if h.target is None else h.target,
                "" if total else ("—" if v.rank is None else v.rank),
                "—" if v.change is None else v.change,
                *([r.services_unrecorded] if extra else []),
            ])  # fmt: skip
            fmt = "0.00" if h.per_1000 else "0.0%"
            for col in (3, 6, 8):
                ws.cell(ws.max_row, col).number_format = fmt
    defs = wb.create_sheet("指标定义")
    defs.append(["指标", "figure", "分子", "分母", "时间口径", "DOMAIN §4"])
    for d in DEFINITIONS:
        defs.append([d.name_zh, d.figure, d.numerator, d.denominator, d.window, d.domain])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
