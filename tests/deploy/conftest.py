"""Fixtures for the deploy checks: the deploy plan, its renderer, the rendered manifests."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from deploy_support import DEPLOY, kustomize, render_module


@pytest.fixture(scope="session")
def render() -> ModuleType:
    return render_module()


@pytest.fixture(scope="session")
def plan(render: ModuleType) -> Any:
    return render.load_plan()


@pytest.fixture(scope="session")
def rendered() -> Iterator[dict[str, list[dict[str, Any]]]]:
    """The base and every overlay, rendered once per session."""
    overlays = sorted(p.parent for p in (DEPLOY / "k8s" / "overlays").glob("*/kustomization.yaml"))
    yield {
        "base": kustomize(DEPLOY / "k8s" / "base"),
        **{p.name: kustomize(p) for p in overlays},
    }
