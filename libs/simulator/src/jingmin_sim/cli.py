"""`jingmin simulate`: registered in the kernel CLI through entry point group `jingmin.cli`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from jingmin_sim.simulate import STREAMS, Config, Result, render


def _urls(overrides: dict[str, str | None]) -> dict[str, str]:
    """Each service's base URL: the option, else 127.0.0.1 on its ServiceSpec port."""
    from eventkit import devstack
    from eventkit.service import load_services

    urls = {}
    for name, spec in load_services().items():
        urls[name] = f"http://127.0.0.1:{devstack.service_port(spec)}"
    for name, url in overrides.items():
        if url:
            urls[name] = url.rstrip("/")
    return urls


def _end(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"--end {value!r} is not an ISO time") from exc
    if t.tzinfo is None:
        raise typer.BadParameter("--end needs a time zone, e.g. 2026-11-20T18:00:00+08:00")
    if t > datetime.now(UTC):
        raise typer.BadParameter("--end lies in the future: the APIs refuse future events")
    return t


def simulate(
    bureaus: Annotated[
        int, typer.Option(help="How many Zhejiang county bureaus (real GB/T 2260 codes).")
    ] = 1,
    bureau_codes: Annotated[
        str | None, typer.Option(help="Exact county codes instead, e.g. 330602,330681.")
    ] = None,
    stations_per_bureau: Annotated[int, typer.Option(min=1, max=99)] = 6,
    days: Annotated[float, typer.Option(min=0.0, help="Length of the simulated window.")] = 1.0,
    hours: Annotated[float, typer.Option(min=0.0, help="Added to --days.")] = 0.0,
    rate: Annotated[float, typer.Option(min=0.001, help="Multiplier on every volume.")] = 1.0,
    compress: Annotated[
        bool,
        typer.Option(
            "--compress/--live",
            help="--compress (default): the window is the last days ending at --end (now), "
            "posted as fast as --concurrency allows, every event time in the past. --live: "
            "the window starts now and runs in real time.",
        ),
    ] = True,
    end: Annotated[
        str | None,
        typer.Option(help="End of a compressed window (ISO time, default: now, whole minute)."),
    ] = None,
    seed: Annotated[str, typer.Option(help="Same seed, same window: same requests.")] = "jingmin",
    concurrency: Annotated[int, typer.Option(min=1, max=512)] = 16,
    only: Annotated[
        str | None, typer.Option(help=f"Comma-separated streams: {', '.join(STREAMS)}.")
    ] = None,
    intake_url: Annotated[str | None, typer.Option(help="Default: 127.0.0.1:8101.")] = None,
    visits_url: Annotated[str | None, typer.Option(help="Default: 127.0.0.1:8102.")] = None,
    complaints_url: Annotated[str | None, typer.Option(help="Default: 127.0.0.1:8103.")] = None,
    metrics_url: Annotated[str | None, typer.Option(help="Default: 127.0.0.1:8104.")] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Production: a token, or a JSON object of role -> token "
            "(intake_operator, officer, supervisor). Default: dev tokens.",
        ),
    ] = None,
    sms_sink: Annotated[
        bool,
        typer.Option(
            help="Answer some SMS surveys on the public page, reading the links from visits' "
            "dev SMS sink (only under `make dev`).",
        ),
    ] = False,
    discover_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for what a consumer creates (a callback…).")
    ] = 60.0,
    http_timeout: Annotated[float, typer.Option()] = 30.0,
    log: Annotated[
        Path | None, typer.Option(help="Write every POST (ids as story names) as JSON lines.")
    ] = None,
    summary_json: Annotated[Path | None, typer.Option(help="Write the summary as JSON.")] = None,
    checks: Annotated[
        bool, typer.Option(help="Run the installed checks (entry points jingmin.sim.checks).")
    ] = False,
    progress: Annotated[bool, typer.Option()] = True,
    drill: Annotated[
        bool,
        typer.Option(
            help="A drill (the chaos load): every callback answered minutes after what it "
            "follows, 满意/基本满意/不满意 all present, recovery orders reported at once."
        ),
    ] = False,
) -> None:
    """Drive the platform with a realistic county-bureau workload, through its HTTP APIs."""
    include = frozenset(STREAMS)
    if only:
        wanted = {x.strip() for x in only.split(",") if x.strip()}
        unknown = wanted - set(STREAMS)
        if unknown:
            raise typer.BadParameter(f"unknown stream(s) {sorted(unknown)}; known: {STREAMS}")
        include = frozenset(wanted | {"cases"})
    config = Config(
        seed=seed,
        bureaus=bureaus,
        bureau_codes=[c.strip() for c in bureau_codes.split(",")] if bureau_codes else None,
        stations=stations_per_bureau,
        days=days + hours / 24,
        end=_end(end),
        live=not compress,
        rate=rate,
        concurrency=concurrency,
        discover_timeout=discover_timeout,
        progress=progress,
        include=include,
        drill=drill,
    )
    try:
        config.window()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    urls = _urls(
        {
            "intake": intake_url,
            "visits": visits_url,
            "complaints": complaints_url,
            "metrics": metrics_url,
        }
    )
    result = asyncio.run(_main(config, urls, token_file, sms_sink, http_timeout, checks, log))
    typer.echo(render(result))
    if summary_json is not None:
        summary_json.write_text(
            json.dumps(result.to_json(), ensure_ascii=False, indent=2), encoding="utf-8"
        )
    if result.stats.error_count or result.stories["crashed"]:
        raise typer.Exit(1)
    if any(check.get("status") == "fail" for check in result.checks):
        raise typer.Exit(1)


async def _main(
    config: Config,
    urls: dict[str, str],
    token_file: Path | None,
    use_sink: bool,
    http_timeout: float,
    run_checks: bool,
    log_path: Path | None,
) -> Result:
    import httpx
    from eventkit.settings import kernel_settings, service_dsn

    from jingmin_sim.api import DevTokens, FileTokens, RequestLog, TokenSource
    from jingmin_sim.checks import CheckContext
    from jingmin_sim.checks import run_checks as checks_of
    from jingmin_sim.geography import pick_bureaus
    from jingmin_sim.simulate import simulate as run_simulation
    from jingmin_sim.sink import SmsSink

    settings = kernel_settings()
    tokens: TokenSource = FileTokens(token_file) if token_file else DevTokens(settings)
    limits = httpx.Limits(max_connections=config.concurrency * 2, max_keepalive_connections=64)
    clients = {
        name: httpx.AsyncClient(base_url=url, timeout=http_timeout, limits=limits)
        for name, url in urls.items()
    }
    sink = None
    if use_sink:
        sink = SmsSink(service_dsn(settings, "jingmin_visits"))
        try:
            await sink.check()
        except Exception as exc:
            await sink.close()
            raise typer.BadParameter(
                f"--sms-sink: visits' dev SMS sink is not readable ({exc})"
            ) from exc
    log = RequestLog()
    try:
        result = await run_simulation(config, clients, tokens, sms_sink=sink, log=log)
        if run_checks:
            context = CheckContext(
                bureaus=tuple(pick_bureaus(config.bureaus, config.bureau_codes)),
                urls=dict(urls),
                tokens=tokens,
            )
            result.checks = await checks_of(result, clients, context)
    finally:
        for client in clients.values():
            await client.aclose()
        if sink is not None:
            await sink.close()
    if log_path is not None:
        log.write(log_path)
    return result
