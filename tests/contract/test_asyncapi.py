"""Every contracts/*/asyncapi.yaml parses cleanly with the reference AsyncAPI parser."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "contracts" / "tools"


def test_asyncapi_documents_are_valid() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (TOOLS / "node_modules").is_dir():
        pytest.skip("AsyncAPI parser not installed: run `npm ci --prefix contracts/tools`")
    if not any((ROOT / "contracts").glob("*/asyncapi.yaml")):
        # contracts-check already fails a context with schemas but no AsyncAPI document.
        pytest.skip("no contracts/*/asyncapi.yaml yet")

    result = subprocess.run(
        ["node", str(TOOLS / "validate.mjs")], cwd=ROOT, capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 0, result.stderr + result.stdout
