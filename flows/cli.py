"""The `arrecon` command line.

Sub-commands are thin: they build a typed settings object and hand it to the
flow, the receiver or the service helpers. Nothing here holds domain logic.
"""

from __future__ import annotations

from pathlib import Path

import click

from arrecon import __version__


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
