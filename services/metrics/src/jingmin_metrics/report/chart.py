"""Charts of the report, drawn by matplotlib to SVG (text as outlines, so the PDF needs no
font of matplotlib's choosing)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display: the report runs in CI and cron jobs

from matplotlib.figure import Figure

from jingmin_metrics.report.league import League

FONT = ["Noto Sans CJK SC", "DejaVu Sans"]


def bar_svg(league: League, key: str, title: str) -> str:
    """A horizontal bar per station of a share, in percent; suppressed stations are left out
    and said so in the caption rather than drawn as 0."""
    rows = [r for r in league.stations if r.values[key].shown is not None]
    fig = Figure(figsize=(7, 0.45 * max(len(rows), 2) + 1.2))
    ax = fig.add_subplot()
    labels = [r.name for r in rows]
    values = [100 * (r.values[key].shown or 0.0) for r in rows]
    bars = ax.barh(labels, values, color="#2b6cb0")
    ax.bar_label(bars, labels=[f"{v:.1f}%" for v in values], padding=3, fontfamily=FONT)
    ax.set_xlim(0, 110)
    ax.invert_yaxis()
    ax.set_title(title, fontfamily=FONT)
    for label in ax.get_yticklabels():
        label.set_fontfamily(FONT)
    hidden = len(league.stations) - len(rows)
    if hidden:
        ax.set_xlabel(f"另有 {hidden} 个派出所样本不足 5，未列出", fontfamily=FONT)
    fig.tight_layout()
    out = io.StringIO()
    fig.savefig(out, format="svg")
    return out.getvalue()
