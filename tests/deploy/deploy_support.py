"""Helpers for the deploy checks: repository paths, the renderer, kustomize, tools."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMAS = Path(__file__).resolve().parent / "schemas"


@cache
def render_module() -> ModuleType:
    """deploy/tools/render.py, imported by path (it is a script, not a package)."""
    path = DEPLOY / "tools" / "render.py"
    spec = importlib.util.spec_from_file_location("jingmin_deploy_render", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is being built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def tool(name: str) -> str:
    """A command-line tool the checks need; missing is a failure, never a skip.

    A validation that silently stops running would let a broken file through; .ci/run
    installs promtool (Debian `prometheus`) and `uv sync` installs kubectl.
    """
    venv_bin = Path(sys.executable).parent / name
    if venv_bin.is_file():
        return str(venv_bin)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (see .ci/run and the dev dependencies)")
    return found


def kustomize(path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize <path>` (kustomize v5 built into kubectl), parsed."""
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def compose_file() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    return data


# Variables the deploy files may set that no settings class declares: the image's own
# (HEALTH_PORT for its healthcheck), those the kernel reads from os.environ directly
# (JINGMIN_CONTRACTS_DIR: eventkit.contracts; KAFKA_REPLICATION_FACTOR: eventkit.topics;
# the per-service port variables below).
EXTRA_VARIABLES = {"HEALTH_PORT", "JINGMIN_CONTRACTS_DIR", "KAFKA_REPLICATION_FACTOR"}


def known_variables() -> set[str]:
    """Every environment variable a Jingmin process reads through pydantic-settings."""
    import importlib
    from importlib.metadata import entry_points

    from eventkit.settings import KernelSettings
    from pydantic_settings import BaseSettings

    classes: list[type[BaseSettings]] = [KernelSettings]
    for ep in entry_points(group="jingmin.services"):
        package = ep.value.split(".", 1)[0]
        try:
            module = importlib.import_module(f"{package}.settings")
        except ImportError:
            continue
        classes += [
            v
            for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, BaseSettings) and v is not BaseSettings
        ]
    names = set(EXTRA_VARIABLES)
    for cls in classes:
        prefix = str(cls.model_config.get("env_prefix", ""))
        names |= {(prefix + field).upper() for field in cls.model_fields}
    for ep in entry_points(group="jingmin.services"):
        service = ep.name.upper()
        names |= {
            f"{service}_PORT",
            f"{service}_RELAY_METRICS_PORT",
            f"{service}_WORKER_METRICS_PORT",
        }
    return names
