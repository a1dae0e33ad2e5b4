"""Choosing a place by name on the complaint form: the chooser as rendered (with and without a
county chosen), and the public division look-ups with their refusals. No database: divisions
are package data, and the look-ups refuse bad codes before touching the store."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import httpx
import pytest
from eventkit import divisions
from eventkit.problems import Problem
from eventkit.settings import KernelSettings
from jingmin_complaints.entrypoints import pages
from jingmin_complaints.entrypoints.app import create_app
from jingmin_complaints.entrypoints.places import division_children
from jingmin_complaints.entrypoints.ratelimit import LOOKUP, RateLimiter


class Selects(HTMLParser):
    """Each <select>'s options (value, label), selected values and disabled flag, by id."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.options: dict[str, list[tuple[str, str]]] = {}
        self.selected: dict[str, str] = {}
        self.disabled: set[str] = set()
        self.hidden: dict[str, str] = {}
        self.forms: list[str] = []
        self.owner: dict[str, str] = {}
        self._select: str | None = None
        self._value: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append(f"{a.get('method')} {a.get('id')}")
        elif tag == "select":
            self._select = a["id"] or ""
            self.options[self._select] = []
            self.owner[self._select] = self.forms[-1]
            if "disabled" in a:
                self.disabled.add(self._select)
        elif tag == "option" and self._select:
            self._value = a.get("value") or ""
            if "selected" in a:
                self.selected[self._select] = self._value
        elif tag == "input" and a.get("type") == "hidden":
            self.hidden[a.get("name") or ""] = a.get("value") or ""
            self.owner[f"input:{a.get('name')}"] = self.forms[-1]

    def handle_data(self, data: str) -> None:
        if self._select and self._value is not None:
            self.options[self._select].append((self._value, data))
            self._value = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def render(bureau: str = "", places: pages.Places | None = None, **kw: object) -> str:
    return pages.form_page(
        bureau=bureau,
        units=kw.pop("units", {}),  # type: ignore[arg-type]
        token="t0k3n",
        places=places,
        **kw,  # type: ignore[arg-type]
    )


def test_an_unbound_form_asks_for_the_place_by_name_not_for_a_code() -> None:
    html = render(places=pages.Places(divisions.children("")))
    assert "行政区划代码" not in html and "330602" not in html
    s = Selects(html)
    assert ("33", "浙江省") in s.options["province"]
    # The chooser is its own GET form: choosing a place never sends what was written.
    assert s.owner["province"] == s.owner["county"] == "get place"
    assert s.owner["unit"] == s.owner["input:bureau"] == "post complaint"
    assert {"city", "county"} <= s.disabled
    assert s.hidden["bureau"] == ""
    assert s.options["unit"] == [("", "不清楚 / 县局机关")]
    assert "下一步" in html and '<script src="/assets/complaints.js"' in html


def test_each_level_chosen_offers_the_next_by_name() -> None:
    places = pages.Places(
        divisions.children(""),
        province="33",
        cities=divisions.children("33"),
        city="3306",
        counties=divisions.children("3306"),
    )
    s = Selects(render(places=places))
    assert (s.selected["province"], s.selected["city"]) == ("33", "3306")
    assert ("3306", "绍兴市") in s.options["city"]
    assert s.options["county"][:3] == [("", "请选择"), ("330602", "越城区"), ("330603", "柯桥区")]
    assert not s.disabled


def test_a_chosen_county_binds_the_form_and_names_its_stations() -> None:
    units = {"330602001": "城南派出所", "330602002": "<b>府山</b>派出所"}
    places = pages.Places(divisions.children(""), lineage=divisions.lineage("330602"))
    html = render("330602", places, units=units, values={"unit": "330602002"})
    s = Selects(html)
    assert s.hidden["bureau"] == "330602" and "province" not in s.options
    assert "浙江省 绍兴市 越城区" in html and 'href="/complain">重新选择' in html
    assert s.options["unit"][0] == ("", "不清楚 / 县局机关")
    assert s.selected["unit"] == "330602002"
    assert "&lt;b&gt;府山&lt;/b&gt;派出所" in html and "<b>府山" not in html


def test_an_error_on_the_place_is_shown_in_the_chooser() -> None:
    html = render(
        places=pages.Places(divisions.children("")),
        values={"account": "经过"},
        errors={"bureau": "请选择所在县（区）"},
    )
    chooser = html[html.index('id="place"') : html.index('id="complaint"')]
    assert "请选择所在县（区）" in chooser and "经过" in html


def test_division_children_are_named_and_unknown_codes_refused() -> None:
    assert division_children("").level == "province"
    cities = division_children("33")
    assert (cities.name, cities.level) == ("浙江省", "city")
    counties = division_children("3306")
    assert ("330602", "越城区") in [(p.code, p.name) for p in counties.children]
    with pytest.raises(Problem) as refused:
        division_children("99")
    assert refused.value.status == 404


def _app() -> object:
    settings = KernelSettings(
        master_key=base64.b64encode(bytes(32)).decode(), kafka_bootstrap_servers="127.0.0.1:9"
    )
    app = create_app(settings, dsn="postgresql://unused@127.0.0.1:9/none")
    app.state.limiter = RateLimiter(clock=lambda: 1000.0)  # no refill during the test
    return app


async def test_the_public_look_ups_answer_json_with_cache_headers_and_refuse_bad_codes() -> None:
    transport = httpx.ASGITransport(app=_app())  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://tousu.test") as c:
        r = await c.get("/v1/public/divisions", params={"parent": "3306"})
        assert r.status_code == 200
        assert r.headers["cache-control"] == "public, max-age=86400"
        assert {"code": "330602", "name": "越城区"} in r.json()["children"]
        provinces = (await c.get("/v1/public/divisions")).json()
        assert provinces["level"] == "province" and provinces["name"] is None
        for bad in ("3", "330602", "ab", "<script>"):
            r = await c.get("/v1/public/divisions", params={"parent": bad})
            assert r.status_code == 422, bad
            assert r.headers["content-type"].startswith("application/problem+json")
        r = await c.get("/v1/public/divisions", params={"parent": "99"})
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("application/problem+json")
        # A county that is not one: refused before the store is asked (none is running).
        for bad, status in (("12345", 422), ("3306021", 422), ("999999", 404)):
            r = await c.get(f"/v1/public/divisions/{bad}/stations")
            assert r.status_code == status, (bad, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
        script = await c.get("/assets/complaints.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert "/v1/public/divisions" in script.text


async def test_the_look_ups_are_rate_limited_per_address() -> None:
    transport = httpx.ASGITransport(app=_app(), client=("198.51.100.7", 5000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://tousu.test") as c:
        for _ in range(LOOKUP.capacity):
            assert (await c.get("/v1/public/divisions")).status_code == 200
        r = await c.get("/v1/public/divisions")
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert r.headers["content-type"].startswith("application/problem+json")


def test_the_openapi_documents_the_look_ups() -> None:
    spec = _app().openapi()  # type: ignore[attr-defined]
    paths = spec["paths"]
    assert "/v1/public/divisions" in paths and "/v1/public/divisions/{county}/stations" in paths
    get = paths["/v1/public/divisions/{county}/stations"]["get"]
    assert {"200", "404", "422"} <= set(get["responses"])
    assert not get.get("security")
    assert re.search("派出所", get["summary"] + get.get("description", ""))
