"""Profile the intake API under the bench's closed-loop load with py-spy (not part of `make bench`).

    uv run python tests/bench/profile_api.py [--seconds 20] [--clients 16] [--native]
        [--api-env OTEL_SDK_DISABLED=true]

Starts the same throw-away database and uvicorn process (1 worker) as `run.py`, samples
the worker with `py-spy record --format raw` while 16 clients POST /v1/cases, and prints
the functions with the most inclusive and self time. py-spy comes from PyPI through
`uvx py-spy` (or a `py-spy` on PATH); it needs permission to ptrace the worker.
Writes bench-results/profile-<ts>.txt (collapsed stacks, for flamegraph tools) and
bench-results/profile-<ts>.svg.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from eventkit import db, devstack
from eventkit.auth import issue_token
from eventkit.settings import KernelSettings
from jingmin_intake.service import SERVICE

sys.path.insert(0, str(Path(__file__).resolve().parent))

from payloads import SCOPE, bodies
from run import BENCH_DIR, RESULTS, ApiServer, CpuProbe, _poster, closed_loop, http_clients


def py_spy() -> list[str]:
    found = shutil.which("py-spy")
    if found:
        return [found]
    if shutil.which("uvx"):
        return ["uvx", "py-spy"]
    return [sys.executable, "-m", "uv", "tool", "run", "py-spy"]


def _frame(entry: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"; drop the line number.
    name, _, where = entry.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def _package(frame: str) -> str:
    """The library a frame's code belongs to: 'asyncpg', 'opentelemetry', 'stdlib:json'..."""
    path = frame.rpartition(" (")[2].rstrip(")").rsplit(":", 1)[0]
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/src/" in path:
        return path.split("/src/", 1)[1].split("/", 1)[0]
    if ".so" in path or path.startswith("/usr/lib") or "/include/" in path:
        return "native: " + path.rsplit("/", 1)[-1]
    if "/lib/python3" in path:
        return "stdlib: " + path.split("/lib/python3", 1)[1].split("/", 1)[-1].split("/")[0]
    return path.rsplit("/", 1)[-1] or "?"


def by_package(collapsed: str) -> str:
    """Self time per library: each sample goes to the library of its innermost frame."""
    hits: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        hits[_package(stack.rsplit(";", 1)[-1])] += int(count)
    return "\n".join(f"{100 * n / max(total, 1):6.1f}%  {name}" for name, n in hits.most_common(20))


def summarise(collapsed: str, top: int) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        for f in set(frames):
            inclusive[f] += n
        own[frames[-1]] += n
    if not total:
        return "no samples"
    out = [
        f"{total} samples",
        "",
        "self time by library (innermost frame):",
        by_package(collapsed),
        "",
        f"top {top} by inclusive time:",
    ]
    out += [f"{100 * n / total:6.1f}%  {f}" for f, n in inclusive.most_common(top)]
    out += ["", f"top {top} by self time:"]
    out += [f"{100 * n / total:6.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(out)


async def main(args: argparse.Namespace) -> None:
    stamp = datetime.now(UTC)
    ts = stamp.strftime("%Y%m%dT%H%M%SZ")
    home = Path(tempfile.mkdtemp(prefix="jingmin-profile-"))
    settings = KernelSettings(jingmin_home=home)
    endpoint = devstack.resolve_postgres(settings)
    database = f"jingmin_profile_{stamp.strftime('%Y%m%d_%H%M%S')}"
    dsn = db.database_dsn(endpoint.address, database)
    env = {
        **__import__("os").environ,
        "BENCH_DSN": dsn,
        "DATABASE_URL": endpoint.address,
        "JINGMIN_HOME": str(home),
        "PYTHONPATH": str(BENCH_DIR),
    }
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    env.update(dict(args.api_env))
    server = ApiServer(1, env, home / "uvicorn.log")
    RESULTS.mkdir(exist_ok=True)
    raw = RESULTS / f"profile-{ts}.txt"
    try:
        await db.ensure_database(endpoint.address, database)
        await asyncio.to_thread(db.migrate, dsn, SERVICE.migrations)
        token = issue_token(settings, subject="bench", roles=["intake_operator"], scopes=[SCOPE])
        server.launch()
        await server.wait_ready()
        assert server.proc is not None
        spy = [
            *py_spy(),
            "record",
            "--pid",
            str(server.proc.pid),
            "--duration",
            str(int(args.seconds)),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(raw),
            "--full-filenames",
            *(["--native"] if args.native else []),
        ]
        async with http_clients(server.base_url, token, args.clients) as clients:
            post = _poster(clients, bodies(5))
            spy_proc = subprocess.Popen(  # noqa: ASYNC220 (starts at once; waited on below)
                spy, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            result = await closed_loop(
                post, args.clients, 1.0, args.seconds, CpuProbe(dsn=dsn, api_pid=server.proc.pid)
            )
        _, err = spy_proc.communicate(timeout=60)
        print(
            f"load: {result['per_s']} req/s, p50 {result['p50_ms']} ms, "
            f"p99 {result['p99_ms']} ms, cpu {result['cpu']}"
        )
        if not raw.exists():
            print(f"py-spy wrote nothing: {err.decode(errors='replace')[-2000:]}")
            return
        summary = summarise(raw.read_text(), args.top)
        print(summary)
        raw.with_suffix(".summary.txt").write_text(summary + "\n")
        print(f"\ncollapsed stacks: {raw.relative_to(RESULTS.parent)}")
    finally:
        server.stop()
        with contextlib.suppress(Exception):
            await db.drop_database(endpoint.address, database)
        endpoint.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--native", action="store_true", help="include C frames (slower sampling)")
    p.add_argument(
        "--api-env",
        action="append",
        default=[],
        type=lambda s: s.split("=", 1),
        metavar="KEY=VALUE",
        help="extra environment of the API, repeatable",
    )
    asyncio.run(main(p.parse_args()))
