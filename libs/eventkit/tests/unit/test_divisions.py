"""GB/T 2260 names shipped with the kernel."""

from __future__ import annotations

from eventkit import divisions


def test_names_at_each_level() -> None:
    assert divisions.name("33") == "浙江省"
    assert divisions.name("3306") == "绍兴市"
    assert divisions.name("330602") == "越城区"


def test_an_unknown_code_has_no_name() -> None:
    assert divisions.name("339999") is None
    assert divisions.name("") is None


def test_children_of_a_prefix() -> None:
    counties = divisions.children("3306")
    assert ("330602", "越城区") in counties
    assert all(len(code) == 6 and code.startswith("3306") for code, _ in counties)
    assert ("33", "浙江省") in divisions.children("")


def test_lineage_names_a_station_by_its_county_and_above() -> None:
    assert divisions.lineage("330602001") == [
        ("33", "浙江省"),
        ("3306", "绍兴市"),
        ("330602", "越城区"),
    ]
    assert divisions.lineage("3306") == [("33", "浙江省"), ("3306", "绍兴市")]
