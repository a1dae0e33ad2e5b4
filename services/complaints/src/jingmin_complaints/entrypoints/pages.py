"""Server-rendered pages of the online complaint form: plain HTML that works without script
(a small script only saves the round trips of choosing a place), values escaped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from jingmin_complaints.domain.vocabulary import (
    CATEGORY_LABELS,
    OUTCOME_LABELS,
    STATUS_LABELS,
)

LOCAL = ZoneInfo("Asia/Shanghai")
ACCOUNT_HINT = "时间、地点、经过，越具体越便于调查"

CSS = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.6 system-ui,-apple-system,"PingFang SC","Noto Sans CJK SC",
"Microsoft YaHei",sans-serif;color:#1a1a1a;background:#f4f6f8}
header{background:#0b3d91;color:#fff;padding:14px 16px}
header h1{margin:0;font-size:20px}
main{max-width:640px;margin:0 auto;padding:16px}
form,.card{background:#fff;border-radius:8px;padding:16px;margin-bottom:16px;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
label{display:block;font-weight:600;margin:14px 0 4px}
.hint{display:block;font-weight:400;color:#555;font-size:14px}
input[type=text],input[type=tel],select,textarea{width:100%;font-size:16px;padding:10px;
border:1px solid #9aa5b1;border-radius:6px;background:#fff}
textarea{min-height:140px}
.check{display:flex;gap:8px;align-items:flex-start;font-weight:400}
.check input{margin-top:6px;width:20px;height:20px}
button{display:block;width:100%;margin-top:20px;padding:14px;font-size:18px;border:0;
border-radius:6px;background:#0b3d91;color:#fff}
.errors{border-left:4px solid #b00020;background:#fdecee;padding:8px 12px;margin-bottom:12px}
.field-error{color:#b00020;font-size:14px}
.code{font:700 28px/1.4 ui-monospace,Menlo,Consolas,monospace;letter-spacing:2px;
background:#eef3fb;padding:12px;text-align:center;border-radius:6px}
.trap{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}
dl{display:grid;grid-template-columns:max-content 1fr;gap:6px 16px;margin:0}
dt{color:#555}dd{margin:0;font-weight:600}
a{color:#0b3d91}
fieldset{border:0;margin:0;padding:0}
.place{margin:0}
.next{margin-top:12px;background:#4a5d7e}
.js .next{display:none}
@media (min-width:720px){main{padding:24px}}
"""


# Saves the round trips of choosing a place: each level's names come from the public look-ups
# (entrypoints/places.py) and the chosen county becomes the form's `bureau`. Without it (or
# when a look-up fails) the chooser's own "下一步" does the same through the server.
SCRIPT = """\
(function () {
  "use strict";
  var root = document.documentElement;
  root.classList.add("js");
  function fallBack() { root.classList.remove("js"); }
  function start() {
    var chooser = document.getElementById("place");
    var form = document.getElementById("complaint");
    if (!chooser || !form) { fallBack(); return; }
    var province = chooser.querySelector("#province");
    var city = chooser.querySelector("#city");
    var county = chooser.querySelector("#county");
    var bureau = form.querySelector("#bureau");
    var unit = form.querySelector("#unit");
    var unknown = unit.options[0].cloneNode(true);
    function get(url) {
      return fetch(url, {headers: {Accept: "application/json"}}).then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      });
    }
    function fill(select, places) {
      select.length = 1;
      places.forEach(function (p) { select.add(new Option(p.name, p.code)); });
      select.disabled = places.length === 0;
    }
    function units(places) {
      unit.length = 0;
      unit.add(unknown.cloneNode(true));
      places.forEach(function (p) { unit.add(new Option(p.name, p.code)); });
    }
    province.addEventListener("change", function () {
      fill(city, []); fill(county, []); bureau.value = ""; units([]);
      if (!province.value) { return; }
      get("/v1/public/divisions?parent=" + encodeURIComponent(province.value))
        .then(function (b) { fill(city, b.children); }).catch(fallBack);
    });
    city.addEventListener("change", function () {
      fill(county, []); bureau.value = ""; units([]);
      if (!city.value) { return; }
      get("/v1/public/divisions?parent=" + encodeURIComponent(city.value))
        .then(function (b) { fill(county, b.children); }).catch(fallBack);
    });
    county.addEventListener("change", function () {
      bureau.value = county.value; units([]);
      if (!county.value) { return; }
      get("/v1/public/divisions/" + encodeURIComponent(county.value) + "/stations")
        .then(function (b) { units(b.stations); }).catch(fallBack);
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else { start(); }
})();
"""


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{escape(title)}</title>
<link rel="stylesheet" href="/assets/complaints.css">
<script src="/assets/complaints.js" defer></script>
</head>
<body>
<header><h1>{escape(title)}</h1></header>
<main>
{body}
</main>
</body>
</html>
"""


def _options(choices: Sequence[tuple[str, str]], selected: str) -> str:
    return "".join(
        f'<option value="{escape(v)}"{" selected" if v == selected else ""}>'
        f"{escape(label)}</option>"
        for v, label in choices
    )


def _error(errors: Mapping[str, str], name: str) -> str:
    message = errors.get(name)
    if not message:
        return ""
    return f'<span class="field-error" id="{name}-error">{escape(message)}</span>'


Choices = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Places:
    """The place chooser of an unbound form: each level's choices and what is chosen so far.

    A level is offered once the one above is chosen (server side from GET parameters, or by
    the script from /v1/public/divisions); the county's code is the form's `bureau`.
    """

    provinces: Choices
    province: str = ""
    cities: Choices = ()
    city: str = ""
    counties: Choices = ()
    lineage: Choices = field(default=())  # (code, name) above and at a chosen county


def _place_select(name: str, label: str, choices: Choices, selected: str, level: str) -> str:
    options = _options([("", "请选择"), *choices], selected)
    disabled = "" if choices else " disabled"
    return (
        f'<label for="{name}">{label}</label>'
        f'<select id="{name}" name="{name}" data-level="{level}"{disabled}>{options}</select>'
    )


def place_chooser(places: Places, error: str = "") -> str:
    """Step one of an unbound form: 省 → 市 → 县/区, a GET form of its own ("下一步" without
    script), so choosing a place never sends what the person has written."""
    selects = "".join(
        (
            _place_select(
                "province", "省（自治区、直辖市）", places.provinces, places.province, "province"
            ),
            _place_select("city", "市（地区、州）", places.cities, places.city, "city"),
            _place_select("county", "县（区）", places.counties, "", "county"),
        )
    )
    return f"""<form method="get" action="/complain" id="place" class="place">
<fieldset><legend><strong>所在地</strong><span class="hint">选择事情发生地所在的县（区），
由当地公安局受理</span></legend>
<noscript><p class="hint">请逐级选择后点击“下一步”，选好县（区）后再填写投诉内容。</p></noscript>
{selects}{error}
<button type="submit" class="next">下一步</button>
</fieldset>
</form>"""


def _where(lineage: Choices) -> str:
    names = " ".join(escape(n) for _c, n in lineage)
    return (
        f'<p id="place-chosen">所在地：<strong>{names}</strong> '
        f'<a href="/complain">重新选择</a></p>'
    )


def form_page(
    *,
    bureau: str,
    units: Mapping[str, str],
    token: str,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    places: Places | None = None,
) -> str:
    """The complaint form; re-rendered with the person's input and messages after an error.

    Bound to a bureau (`?bureau=`, or a place chosen without script) the bureau is a hidden
    field; unbound, `places` offers the place chooser and the script fills the field.
    """
    v = dict(values or {})
    e = dict(errors or {})
    summary = ""
    if e:
        items = "".join(f"<li>{escape(m)}</li>" for m in e.values())
        summary = f'<div class="errors" role="alert"><p>请修改以下内容：</p><ul>{items}</ul></div>'
    chooser = where = ""
    if bureau:
        lineage = places.lineage if places else ()
        where = _where(lineage) if lineage else ""
    elif places is not None:
        chooser = place_chooser(places, _error(e, "bureau"))
    bureau_field = f'<input type="hidden" id="bureau" name="bureau" value="{escape(bureau)}">'
    unit_choices = [("", "不清楚 / 县局机关"), *sorted(units.items())]
    categories = [("", "请选择"), *CATEGORY_LABELS.items()]
    anonymous = " checked" if v.get("anonymous") else ""

    def text(name: str, label: str, most: int, extra: str = "") -> str:
        value = escape(v.get(name, ""))
        return (
            f'<label for="{name}">{label}</label>'
            f'<input type="text" id="{name}" name="{name}" maxlength="{most}" '
            f'value="{value}"{extra}>{_error(e, name)}'
        )

    def area(name: str, label: str, extra: str = "") -> str:
        value = escape(v.get(name, ""))
        return (
            f'<label for="{name}">{label}</label>'
            f'<textarea id="{name}" name="{name}" maxlength="4000"{extra}>{value}</textarea>'
            f"{_error(e, name)}"
        )

    phone = escape(v.get("phone", ""))
    body = f"""
<p>对公安民警的执法、服务或作风有意见，可以在这里投诉。我们会在规定时限内受理、调查并答复您。</p>
{summary}
{chooser}
<form method="post" action="/complain" accept-charset="utf-8" novalidate id="complaint">
<input type="hidden" name="token" value="{escape(token)}">
{bureau_field}
{where}
<label for="unit">被投诉单位
<span class="hint">派出所；不清楚或是县（区）公安局机关的，选第一项</span></label>
<select id="unit" name="unit">{_options(unit_choices, v.get("unit", ""))}</select>
{_error(e, "unit")}
<label for="category">投诉类别</label>
<select id="category" name="category" required>
{_options(categories, v.get("category", ""))}</select>
{_error(e, "category")}
{area("account", f'事情经过<span class="hint">{ACCOUNT_HINT}</span>', " required")}
{text("involved", "涉及的民警或单位（如知道）", 200)}
{area("hoped_outcome", "希望如何处理（选填）")}
{text("name", "姓名（选填）", 50, ' autocomplete="name"')}
<label for="phone">手机号码<span class="hint">用于告知办理结果和回访；匿名投诉可不填</span></label>
<input type="tel" id="phone" name="phone" inputmode="tel" maxlength="20" autocomplete="tel"
 value="{phone}">{_error(e, "phone")}
<label class="check"><input type="checkbox" name="anonymous" value="1"{anonymous}>
<span>匿名投诉：不保留姓名和电话，但我们将无法答复您，只能凭查询码查看进度。</span></label>
<div class="trap" aria-hidden="true"><label for="website">请勿填写</label>
<input type="text" id="website" name="website" tabindex="-1" autocomplete="off"></div>
<button type="submit">提交投诉</button>
</form>
<p><a href="/track">已投诉？凭查询码查看办理进度</a></p>
"""
    return _page("网上投诉", body)


def receipt_page(code: str, due: datetime | None) -> str:
    due_text = f"<p>我们将在 <strong>{_date(due)}</strong> 前作出受理决定。</p>" if due else ""
    body = f"""
<div class="card">
<p>您的投诉已提交。请记下查询码，凭它查看办理进度：</p>
<p class="code" id="receipt-code">{escape(code)}</p>
{due_text}
<p>查询码只显示这一次，请截图或抄写保存。</p>
<p><a id="track-link" href="/track/{escape(code)}">查看办理进度</a></p>
</div>
"""
    return _page("投诉已提交", body)


def _date(t: datetime) -> str:
    return t.astimezone(LOCAL).strftime("%Y年%m月%d日")


def track_page(row: Mapping[str, object]) -> str:
    status = str(row["status"])
    received = row["received_at"]
    due = row.get("next_due_at")
    rows = [
        ("办理状态", f'<span id="status">{escape(STATUS_LABELS.get(status, status))}</span>'),
        ("投诉类别", escape(CATEGORY_LABELS.get(str(row["category"]), str(row["category"])))),
        ("提交日期", _date(received) if isinstance(received, datetime) else ""),
    ]
    if isinstance(due, datetime):
        rows.append(("办理期限", f'<span id="due">{_date(due)}</span>'))
    if row.get("extended"):
        rows.append(("延期", "已依规延长调查期限"))
    outcome = row.get("outcome")
    if outcome:
        rows.append(("办理结果", escape(OUTCOME_LABELS.get(str(outcome), str(outcome)))))
    items = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    body = f"""
<div class="card"><dl>{items}</dl></div>
<p>如对办理结果有异议，可在结案后30日内通过原渠道或来电提出复查。</p>
"""
    return _page("投诉办理进度", body)


def track_form(error: str | None = None) -> str:
    message = f'<div class="errors" role="alert">{escape(error)}</div>' if error else ""
    body = f"""
{message}
<form method="get" action="/track">
<label for="code">查询码</label>
<input type="text" id="code" name="code" maxlength="20" autocapitalize="characters" required>
<button type="submit">查询</button>
</form>
"""
    return _page("查询投诉进度", body)


def message_page(title: str, message: str) -> str:
    return _page(title, f'<div class="card"><p>{escape(message)}</p></div>')
