"""The generated deploy files are current, and every image is built the way the issue asks."""

from __future__ import annotations

import re
import subprocess
import sys
from types import ModuleType

from deploy_support import DEPLOY, ROOT


def test_generated_files_match_their_sources(render: ModuleType) -> None:
    stale = [str(p.relative_to(ROOT)) for p in render.stale_files()]
    assert not stale, f"stale generated files (run `make deploy-render`): {stale}"


def test_render_check_exits_zero_from_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "tools" / "render.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_one_dockerfile_per_service_multi_stage_non_root_pinned(render: ModuleType) -> None:
    services = [name for name, _, _ in render.SERVICES]
    for name in [*services, "toolbox"]:
        text = (DEPLOY / "docker" / f"{name}.Dockerfile").read_text()
        froms = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
        assert len(froms) >= 2, f"{name}: not multi-stage"
        for image in froms:
            # An exact version tag (or a digest), never latest or a moving major.
            assert re.search(r":\d+\.\d+\.\d+[\w.-]*$|@sha256:[0-9a-f]{64}$", image), (
                f"{name}: base image {image} is not pinned"
            )
        assert "uv sync --frozen" in text, f"{name}: dependencies not from the lock file"
        users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
        assert users and not users[-1].startswith(("root", "0")), f"{name}: runs as root"
        ignore = DEPLOY / "docker" / f"{name}.Dockerfile.dockerignore"
        assert ignore.exists(), f"{name}: no dockerignore beside the Dockerfile"
        # Everything the Dockerfile copies exists (the build context is the repository).
        for source in re.findall(r"^COPY (?!--from)(\S+(?: \S+)*) \S+$", text, re.MULTILINE):
            for item in source.split():
                assert (ROOT / item).exists(), f"{name}: COPY source {item} is missing"


def test_each_service_image_runs_its_own_api_factory(render: ModuleType) -> None:
    from eventkit.service import ServiceSpec

    specs = _loadable_specs()
    for name, _, port in render.SERVICES:
        spec = specs.get(name)
        if spec is None:
            continue  # not built yet: checked once it declares its entry point
        text = (DEPLOY / "docker" / f"{name}.Dockerfile").read_text()
        assert isinstance(spec, ServiceSpec)
        assert f'"{spec.app}"' in text, f"{name}: the image's CMD is not {spec.app}"
        assert spec.default_port == port, (
            f"{name}: port {port} in render.py, spec says {spec.default_port}"
        )


def _loadable_specs() -> dict[str, object]:
    """Every service whose entry point loads; a service still being written is skipped."""
    from importlib.metadata import entry_points

    specs: dict[str, object] = {}
    for ep in entry_points(group="jingmin.services"):
        try:
            specs[ep.name] = ep.load()
        except ImportError:
            continue
    return specs
