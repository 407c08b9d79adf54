"""The `arrecon` command line.

Sub-commands are thin: they build a typed settings object and hand it to the
flow, the receiver or the service helpers. Nothing here holds domain logic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from arrecon import __version__, state


def with_dashboard(token: str | None) -> Callable[[Any, str], None]:
    """The hook that mounts the ops dashboard (and its API) on the server."""

    def mount(app: Any, dsn: str) -> None:
        from arrecon.flows.dashboard_routes import mount_dashboard

        mount_dashboard(app, dsn, token)

    return mount


def _core() -> str:
    """Which reconciliation core runs (see `make native` in the README)."""
    return "compiled" if state.NATIVE else "interpreted"


@contextmanager
def _refusing_old_state() -> Iterator[None]:
    """Recovery snapshots of another state format end the command with what to do."""
    from arrecon.flows.recovery import IncompatibleRecoveryError

    try:
        yield
    except IncompatibleRecoveryError as error:
        raise click.ClickException(str(error)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="arrecon")
def main() -> None:
    """arrecon: real-time accounts-receivable reconciliation."""


@main.group()
def dev() -> None:
    """Developer helpers: start real Kafka and Redis on loopback."""


@dev.command("services")
@click.option("--kafka/--no-kafka", default=True, help="Start an Apache Kafka broker (KRaft).")
@click.option("--redis/--no-redis", default=True, help="Start a redis-server.")
def dev_services(kafka: bool, redis: bool) -> None:
    """Start Kafka and Redis on free loopback ports until Ctrl-C."""
    from arrecon.flows.services import run_services_until_interrupted

    run_services_until_interrupted(kafka=kafka, redis=redis)


@main.command()
@click.argument("input_path", metavar="INPUT.jsonl", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for outcomes.jsonl.",
)
@click.option("--progress/--quiet", default=None, help="Progress bar (default: on a terminal).")
def replay(input_path: Path, out_dir: Path, progress: bool | None) -> None:
    """Run the real flow over recorded deliveries; write OUT/outcomes.jsonl."""
    from arrecon.flows.replay import ReplayError
    from arrecon.flows.replay import replay as run_replay

    try:
        out_path = run_replay(input_path, out_dir, progress=progress)
    except ReplayError as error:
        raise click.ClickException(str(error)) from None
    click.echo(str(out_path), err=True)


@main.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Journal, recovery and chDB folder [env ARRECON_DATA_DIR; ./arrecon-data].",
)
@click.option("--kafka", default=None, help="Kafka bootstrap servers [env ARRECON_KAFKA].")
@click.option("--redis", default=None, help="Redis URL for the index [env ARRECON_REDIS].")
@click.option(
    "--clickhouse",
    default=None,
    help="ClickHouse DSN, http://... or chdb:///path [env ARRECON_CLICKHOUSE].",
)
@click.option("--host", default=None, help="Bind address [127.0.0.1].")
@click.option("--port", type=int, default=None, help="HTTP port [8080].")
@click.option("-w", "--workers", type=int, default=None, help="Bytewax workers per process.")
@click.option("-i", "--process-id", type=int, default=0, help="This process in a cluster.")
@click.option(
    "-a",
    "--addresses",
    default=None,
    help="Comma-separated host:port of every cluster process (with -i).",
)
@click.option("--snapshot-interval", type=float, default=None, help="Recovery snapshot seconds.")
def run(
    *,
    data_dir: Path | None,
    kafka: str | None,
    redis: str | None,
    clickhouse: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    process_id: int,
    addresses: str | None,
    snapshot_interval: float | None,
) -> None:
    """Receive webhooks and feeds, reconcile live, write ClickHouse (Ctrl-C stops)."""
    from arrecon.connectors.webhook import ReceiverSettings
    from arrecon.flows.run import run as run_live
    from arrecon.flows.settings import Settings

    settings = Settings.from_env().with_overrides(
        data_dir=data_dir,
        kafka=kafka,
        redis=redis,
        clickhouse=clickhouse,
        host=host,
        port=port,
        workers=workers,
        snapshot_interval_s=snapshot_interval,
    )
    cluster = addresses.split(",") if addresses else None
    if cluster and not settings.kafka:
        raise click.UsageError("several processes need --kafka (the journal is local)")
    url = f"http://{settings.host}:{settings.port}"
    with _refusing_old_state():  # run_live checks the recovery folder before it starts
        run_live(
            settings,
            ReceiverSettings.from_env(),
            process_id=process_id,
            addresses=cluster,
            extra_routes=with_dashboard(None),
            on_ready=lambda _runtime: click.echo(
                f"arrecon: listening on {url} ({_core()} core)", err=True
            ),
        )


@main.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the demo keeps its engine state [./arrecon-data].",
)
@click.option("--port", type=int, default=None, help="HTTP port [8080].")
@click.option(
    "--rate",
    type=float,
    default=50.0,
    show_default=True,
    help="Deliveries per second (0 = as fast as possible).",
)
@click.option(
    "--events", type=int, default=20_000, show_default=True, help="Length of the generated stream."
)
@click.option("--seed", type=int, default=7, show_default=True, help="Generator seed.")
def demo(*, data_dir: Path | None, port: int | None, rate: float, events: int, seed: int) -> None:
    """Run the embedded engine and feed it a realistic stream over HTTP, live."""
    from arrecon.flows.demo import run_demo
    from arrecon.flows.settings import Settings

    settings = Settings.from_env().with_overrides(data_dir=data_dir, port=port)
    with _refusing_old_state():
        run_demo(
            settings,
            seed=seed,
            rate=rate,
            events=events,
            echo=lambda line: click.echo(line, err=True),
            dashboard=with_dashboard,
        )
