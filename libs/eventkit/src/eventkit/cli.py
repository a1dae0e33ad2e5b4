"""The `jingmin` command: run the dev stack, migrate, relay, replay, issue tokens, erase."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Coroutine
from types import FrameType
from typing import Annotated, Any

import typer

from eventkit import db, devstack, topics
from eventkit.service import ServiceSpec, load_services
from eventkit.settings import KernelSettings, kernel_settings, service_dsn

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    # Locals in tracebacks would print settings, including the master key.
    pretty_exceptions_show_locals=False,
    help="Jingmin platform: development stack and operations.",
)

ServiceOpt = Annotated[str | None, typer.Option("--service", help="One service by name.")]


def _select(names: str | None) -> dict[str, ServiceSpec]:
    specs = load_services()
    if not names:
        return specs
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in specs]
    if unknown:
        raise typer.BadParameter(
            f"unknown service(s) {', '.join(unknown)}; installed: {', '.join(specs) or 'none'}"
        )
    return {n: specs[n] for n in wanted}


def _one(name: str) -> ServiceSpec:
    return _select(name)[name]


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@app.command()
def dev(
    services: Annotated[
        str | None,
        typer.Option(help="Comma-separated service names (default: every installed service)."),
    ] = None,
) -> None:
    """Run every service with its relay and workers, on local Postgres and Kafka."""
    # SIGTERM during setup must still unwind the finally blocks that stop the infrastructure.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    specs = _select(services)
    settings = kernel_settings()
    home = settings.jingmin_home.expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    rc = 0
    try:
        pg = devstack.resolve_postgres(settings)
        try:
            kafka = devstack.resolve_kafka(log_dir=home)
            try:
                settings = settings.model_copy(
                    update={
                        "database_url": pg.address,
                        "kafka_bootstrap_servers": kafka.address,
                        "jingmin_home": home,
                    }
                )
                asyncio.run(_prepare(specs, settings, refill=kafka.started))
                env = {
                    **os.environ,
                    "DATABASE_URL": pg.address,
                    "JINGMIN_HOME": str(home),
                    "KAFKA_BOOTSTRAP_SERVERS": kafka.address,
                    "PYTHONUNBUFFERED": "1",
                }
                _print_urls(specs, pg.address, kafka.address)
                rc = devstack.supervise(devstack.dev_processes(specs), env)
            finally:
                _stop("tansu", kafka)
        finally:
            _stop("embedded postgres", pg)
    except KeyboardInterrupt:
        rc = 130
    raise typer.Exit(rc)


def _stop(what: str, endpoint: devstack.Endpoint) -> None:
    if endpoint.started:
        typer.echo(f"stopping {what}")
    endpoint.stop()


async def _prepare(specs: dict[str, ServiceSpec], settings: KernelSettings, refill: bool) -> None:
    server = devstack.server_url(settings)
    for name, spec in specs.items():
        applied = await devstack.prepare_service(
            spec, server, settings.kafka_bootstrap_servers, settings.database_suffix
        )
        typer.echo(
            f"{name}: database {spec.database} ready"
            + (f" (applied {', '.join(applied)})" if applied else "")
        )
    if refill and specs:
        # A broker we just started is empty (memory storage): refill it from the stores.
        from eventkit.replay import replay_all

        counts = await replay_all(specs, settings, settings.kafka_bootstrap_servers)
        for name, count in counts.items():
            typer.echo(f"{name}: replayed {count} events")


def _print_urls(specs: dict[str, ServiceSpec], pg: str, bootstrap: str) -> None:
    typer.echo(f"postgres: {pg}")
    typer.echo(f"kafka:    {bootstrap}")
    for name, spec in specs.items():
        base = f"http://127.0.0.1:{devstack.service_port(spec)}"
        typer.echo(f"{name}: {base}  docs {base}/docs  metrics {base}/metrics")


@app.command("topics")
def topics_cmd(
    create: Annotated[
        bool, typer.Option("--create", help="Create every service's topics.")
    ] = False,
    bootstrap: Annotated[str | None, typer.Option(help="Default: KAFKA_BOOTSTRAP_SERVERS.")] = None,
) -> None:
    """List topics and their partition counts."""
    servers = bootstrap or kernel_settings().kafka_bootstrap_servers

    async def run() -> dict[str, int]:
        if create:
            for spec in load_services().values():
                await topics.ensure_topics(servers, devstack.service_topics(spec))
        return await topics.list_topics(servers)

    for name, partitions in asyncio.run(run()).items():
        typer.echo(f"{name}\t{partitions}")


@app.command()
def migrate(service: ServiceOpt = None) -> None:
    """Create each service's database if needed and apply its migrations."""
    settings = kernel_settings()
    server = devstack.server_url(settings)

    async def run() -> None:
        for name, spec in _select(service).items():
            applied = await devstack.prepare_service(
                spec, server, bootstrap=None, suffix=settings.database_suffix
            )
            typer.echo(f"{name}: " + (", ".join(applied) if applied else "up to date"))

    asyncio.run(run())


@app.command()
def relay(service: Annotated[str, typer.Option("--service")]) -> None:
    """Publish a service's outbox to Kafka until stopped."""
    from eventkit.relay import run_relay

    _run_until_stopped(run_relay(_one(service), kernel_settings()))


@app.command()
def worker(service: Annotated[str, typer.Option("--service")]) -> None:
    """Run a service's background workers until stopped."""
    from eventkit.worker import run_workers

    _run_until_stopped(run_workers(_one(service), kernel_settings()))


def _run_until_stopped(main: Coroutine[Any, Any, None]) -> None:
    # SIGTERM (what the supervisor sends) unwinds like Ctrl-C, so the loops' cleanup runs.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        asyncio.run(main)
    except KeyboardInterrupt:
        pass


@app.command()
def replay(
    service: ServiceOpt = None,
    bootstrap: Annotated[str | None, typer.Option(help="Default: KAFKA_BOOTSTRAP_SERVERS.")] = None,
    force: Annotated[
        bool, typer.Option(help="Replay even while a relay runs (newer events may overtake).")
    ] = False,
) -> None:
    """Republish every stored event to Kafka (after a broker lost its data)."""
    from eventkit.replay import RelayRunning, replay_all

    settings = kernel_settings()
    servers = bootstrap or settings.kafka_bootstrap_servers
    try:
        counts = asyncio.run(replay_all(_select(service), settings, servers, force=force))
    except RelayRunning as exc:
        typer.echo(f"jingmin replay: {exc}", err=True)
        raise typer.Exit(2) from exc
    for name, count in counts.items():
        typer.echo(f"{name}: {count} events")


@app.command()
def token(
    role: Annotated[list[str], typer.Option("--role")],
    scope: Annotated[list[str], typer.Option("--scope")],
    subject: Annotated[str, typer.Option()] = "dev",
    ttl: Annotated[str, typer.Option(help="e.g. 15m, 12h, 7d")] = "12h",
) -> None:
    """Print a signed development JWT."""
    from eventkit.auth import issue_token, parse_ttl

    try:
        jwt = issue_token(
            kernel_settings(), subject=subject, roles=role, scopes=scope, ttl=parse_ttl(ttl)
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(jwt)


@app.command()
def erase(subject: str, reason: Annotated[str, typer.Option()]) -> None:
    """Crypto-shred one person's data in every service."""
    import asyncpg

    from eventkit.personal import Vault

    settings = kernel_settings()

    async def run() -> None:
        for name, spec in load_services().items():
            try:
                pool = await db.create_pool(
                    service_dsn(settings, spec.database), min_size=1, max_size=2
                )
            except asyncpg.InvalidCatalogNameError:
                typer.echo(f"{name}: no database {spec.database}, nothing to erase")
                continue
            try:
                async with pool.acquire() as conn:
                    erased = await Vault(pool, settings).erase(
                        conn, subject, by="cli", reason=reason
                    )
            finally:
                await pool.close()
            typer.echo(f"{name}: {'erased' if erased else 'nothing to erase'}")

    asyncio.run(run())


@app.command()
def tail(
    topic: str,
    bootstrap: Annotated[str | None, typer.Option(help="Default: KAFKA_BOOTSTRAP_SERVERS.")] = None,
    follow: Annotated[bool, typer.Option(help="Keep waiting for new records.")] = False,
    limit: Annotated[int, typer.Option(help="Stop after this many records (0: no limit).")] = 0,
) -> None:
    """Print a topic's records from the start: key, CloudEvents headers, body (like kcat)."""
    from eventkit.topics import print_records

    servers = bootstrap or kernel_settings().kafka_bootstrap_servers
    asyncio.run(print_records(servers, topic, follow=follow, limit=limit, echo=typer.echo))


@app.command()
def verify(
    target: Annotated[str, typer.Argument(help="What to verify, e.g. `metrics`.")],
    wait: Annotated[
        float, typer.Option(help="Re-check for up to this many seconds while figures converge.")
    ] = 0.0,
    bootstrap: Annotated[str | None, typer.Option(help="Default: KAFKA_BOOTSTRAP_SERVERS.")] = None,
) -> None:
    """Recompute derived figures from the event stores and print every difference."""
    from importlib.metadata import entry_points

    # Services contribute their oracles through the `jingmin.verify` entry point group.
    found = {ep.name: ep for ep in entry_points(group="jingmin.verify")}
    if target not in found:
        raise typer.BadParameter(f"nothing to verify named {target!r}; known: {sorted(found)}")
    raise typer.Exit(found[target].load()(wait=wait, bootstrap=bootstrap))


@app.command("verify-chain")
def verify_chain(service: ServiceOpt = None) -> None:
    """Check every hash-chained stream; name the first altered, inserted or deleted event."""
    from eventkit.chain import verify_services

    raise typer.Exit(asyncio.run(verify_services(_select(service).values(), kernel_settings())))


@app.command("contracts-check")
def contracts_check() -> None:
    """Check schemas, their compatibility across versions, and the AsyncAPI documents."""
    from eventkit.contracts import run_contracts_check, write_asyncapi

    stale = write_asyncapi(check=True)
    raise typer.Exit(run_contracts_check() or stale)


@app.command()
def asyncapi() -> None:
    """Regenerate contracts/<service>/asyncapi.yaml from the schemas and topics."""
    from eventkit.contracts import write_asyncapi

    raise typer.Exit(write_asyncapi())


PLUGIN_GROUP = "jingmin.cli"


def load_plugins(target: typer.Typer = app) -> list[str]:
    """Add the sub-commands other packages declare in entry point group `jingmin.cli`.

    Each entry point names a typer app (added as a command group) or a plain function
    (added as one command), under the entry point's name. The kernel never imports domain
    code: tools such as `jingmin simulate` plug in here. A plugin that fails to load, or
    that would shadow a kernel command, is reported and skipped, so it cannot take the
    operational commands down with it.
    """
    from importlib.metadata import entry_points

    if target is app and _plugged:
        return []  # loaded at import already (main() and tests may ask again)
    taken = {
        c.name or (c.callback.__name__ if c.callback else "") for c in target.registered_commands
    }
    taken |= {g.name or "" for g in target.registered_groups}
    added: list[str] = []
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        if ep.name in taken or ep.name.replace("-", "_") in taken:
            typer.echo(f"jingmin: plugin {ep.name!r} ignored: the name is taken", err=True)
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # a broken optional tool must not break the CLI
            typer.echo(f"jingmin: plugin {ep.name!r} failed to load: {exc}", err=True)
            continue
        if isinstance(obj, typer.Typer):
            target.add_typer(obj, name=ep.name)
        elif callable(obj):
            target.command(ep.name)(obj)
        else:
            typer.echo(f"jingmin: plugin {ep.name!r} is not a command", err=True)
            continue
        taken.add(ep.name)
        added.append(ep.name)
    if target is app:
        _plugged.append(True)
    return added


_plugged: list[bool] = []
# At import, so `app` is the whole CLI for whoever inspects it (help, the docs check); a
# plugin must therefore not import this module.
load_plugins()


def main() -> None:
    load_plugins()
    app()


if __name__ == "__main__":
    main()
