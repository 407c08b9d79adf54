"""`arrecon run`: receiver + durable log + Bytewax flow + ClickHouse, in one process.

Embedded (no flags): the receiver appends to a local journal under
`<data>/journal`, the flow tails it, the index is in memory (kept in the
flow's recovery snapshots) and rows go to chDB in `<data>/chdb`. With
`--kafka`, `--redis` and `--clickhouse` the same flow runs against the real
services instead. Recovery is on: Bytewax snapshots every
`snapshot_interval_s` into `<data>/recovery`; a restart resumes from there and
replays the rest, and deterministic row ids keep ClickHouse exact.

The HTTP server (receiver, /metrics, dashboard) runs in a thread beside the
flow, so the dashboard reads chDB through the same process-wide client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from bytewax.testing import cluster_main, run_main
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from arrecon.connectors.intake import DurableSink, JournalSink, KafkaSink, open_embedded
from arrecon.connectors.webhook import ReceiverSettings, create_app
from arrecon.flows.alerts_sink import AlertSink
from arrecon.flows.live import RECENT_LATENCIES_MS, ClickHouseSink, JournalSource, kafka_input
from arrecon.flows.reconcile import FlowConfig, InputSpec, build_flow
from arrecon.flows.recovery import check_recovery, open_recovery
from arrecon.flows.redis_store import redis_store_factory
from arrecon.flows.settings import Settings

__all__ = ["Runtime", "build_runtime", "run"]


@dataclass
class Runtime:
    """Everything `run` starts, so tests and `demo` can drive the same pieces."""

    settings: Settings
    intake: DurableSink
    app: Starlette
    flow_input: InputSpec
    flow_config: FlowConfig
    clickhouse_dsn: str
    stop: threading.Event


def _metrics(_request: Any) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _latencies(request: Any) -> Response:
    """Recent receipt-to-row latencies in ms (one per event), oldest first."""
    return Response(orjson.dumps(list(RECENT_LATENCIES_MS)), media_type="application/json")


def _intake(settings: Settings) -> DurableSink:
    if settings.kafka:
        return KafkaSink(settings.kafka, settings.raw_topic)
    sink, _dead_letters = open_embedded(settings.journal_dir)
    return sink


def build_runtime(
    settings: Settings,
    receiver: ReceiverSettings,
    extra_routes: Callable[[Starlette, str], None] | None = None,
) -> Runtime:
    """Wire intake, app and flow input for `settings`; nothing is started yet."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    intake = _intake(settings)
    app = create_app(receiver, intake)
    app.router.routes.append(Route("/metrics", _metrics))
    app.router.routes.append(Route("/debug/latency", _latencies))
    dsn = settings.clickhouse_dsn
    if extra_routes is not None:
        extra_routes(app, dsn)
    stop = threading.Event()
    if settings.kafka:
        flow_input: InputSpec = kafka_input(settings.kafka, settings.raw_topic)
    else:
        journal = intake.journal if isinstance(intake, JournalSink) else None
        limit = journal.durable_end if journal is not None else None
        flow_input = JournalSource(settings.journal_dir / "raw", stop, limit)
    store = redis_store_factory(settings.redis) if settings.redis else None
    config = FlowConfig(index_store=store, wall_clock_timers=settings.wall_clock_timers)
    return Runtime(settings, intake, app, flow_input, config, dsn, stop)


def _alerts_to_file(path: Path) -> None:
    """Alerts with no Kafka or webhook channel are logged to `<data>/alerts.log`, not stderr."""
    logger = logging.getLogger("arrecon.flows.alerts_sink")
    if not any(isinstance(handler, logging.FileHandler) for handler in logger.handlers):
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def _stop_on_signals(runtime: Runtime) -> None:
    """SIGINT/SIGTERM end the input so the flow drains, flushes and snapshots.

    The journal source ends at once. Kafka's source cannot be ended from
    outside, so in Kafka mode the process exits after the HTTP server has
    drained: recovery resumes from the last snapshot (at-least-once, exact
    rows), the same as after a crash.
    """

    def handle(signum: int, _frame: object) -> None:
        if runtime.stop.is_set() or runtime.settings.kafka:
            os._exit(128 + signum)
        runtime.stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


@contextlib.contextmanager
def serving(app: Starlette, host: str, port: int) -> Iterator[uvicorn.Server]:
    """Run the ASGI app in a background thread until the block ends."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        while not server.started and thread.is_alive():
            threading.Event().wait(0.05)
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def run_flow(runtime: Runtime, process_id: int = 0, addresses: list[str] | None = None) -> None:
    """Run the flow until interrupted; with `addresses`, as one process of a cluster."""
    settings = runtime.settings
    flow = build_flow(
        runtime.flow_input,
        ClickHouseSink(runtime.clickhouse_dsn, process_id=process_id),
        runtime.flow_config,
        record_events=True,
        alert_sink=AlertSink.from_env(),
    )
    processes = len(addresses) if addresses else 1
    recovery = open_recovery(settings.recovery_dir, processes * settings.workers)
    epoch = timedelta(seconds=settings.snapshot_interval_s)
    if addresses is None and settings.workers == 1:
        run_main(flow, epoch_interval=epoch, recovery_config=recovery)  # type: ignore[no-untyped-call]
        return
    cluster_main(  # type: ignore[no-untyped-call]
        flow,
        addresses or [],
        process_id,
        epoch_interval=epoch,
        recovery_config=recovery,
        worker_count_per_proc=settings.workers,
    )


def run(
    settings: Settings,
    receiver: ReceiverSettings,
    *,
    process_id: int = 0,
    addresses: list[str] | None = None,
    extra_routes: Callable[[Starlette, str], None] | None = None,
    on_ready: Callable[[Runtime], None] | None = None,
) -> None:
    """Serve the receiver and run the flow until Ctrl-C.

    Raises IncompatibleRecoveryError, before anything starts, when the recovery
    folder was written by a release with another state format.
    """
    check_recovery(settings.recovery_dir)
    runtime = build_runtime(settings, receiver, extra_routes)
    _alerts_to_file(settings.data_dir / "alerts.log")
    _stop_on_signals(runtime)
    with serving(runtime.app, settings.host, settings.port):
        if on_ready is not None:
            on_ready(runtime)
        run_flow(runtime, process_id, addresses)
