"""Names of China's provinces, cities and counties by administrative-division code.

The table ships with the package (`data/divisions.tsv`, provenance in `data/README.md`),
so a lookup never touches the network. Codes are the 2, 4 and 6-digit prefixes of
DOMAIN §2: a bureau's code is its county's, and a scope names a province, city or county.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from types import MappingProxyType

LEVELS = {2: "province", 4: "city", 6: "county"}


@cache
def _table() -> Mapping[str, str]:
    text = files("eventkit").joinpath("data/divisions.tsv").read_text(encoding="utf-8")
    pairs = (line.split("\t", 1) for line in text.splitlines() if not line.startswith("#"))
    return MappingProxyType({code: name for code, name in pairs})


def name(code: str) -> str | None:
    """The division's Chinese name (`"330602"` → 越城区); None for a code not in the table."""
    return _table().get(code)


def children(prefix: str) -> list[tuple[str, str]]:
    """(code, name) of the divisions one level below `prefix`, by code; `""` lists provinces."""
    width = len(prefix) + 2
    return sorted(
        (code, n) for code, n in _table().items() if len(code) == width and code.startswith(prefix)
    )


def lineage(code: str) -> list[tuple[str, str]]:
    """(code, name) of the province, city and county a code lies in, as far as it goes.

    A station or beat code (9 or 11 digits) is named by its county and above; prefixes the
    table lacks are left out rather than guessed.
    """
    found = ((code[:width], name(code[:width])) for width in LEVELS if len(code) >= width)
    return [(c, n) for c, n in found if n is not None]
