"""One typed settings object, read once from the environment (and CLI flags).

Why one object: every part (flow, receiver, sinks) receives the same frozen
value, so a run is described completely by it and tests build it directly
instead of patching the environment.

Environment variables (all optional):

| variable | meaning | default |
|---|---|---|
| ARRECON_DATA_DIR | journal, recovery and chDB folders | ./arrecon-data |
| ARRECON_KAFKA | Kafka bootstrap servers; unset = embedded journal | - |
| ARRECON_REDIS | Redis URL for the resolution index; unset = in-memory | - |
| ARRECON_CLICKHOUSE | ClickHouse DSN (http://... or chdb:///path) | chdb:///<data>/chdb |
| ARRECON_RAW_TOPIC | raw envelope topic | arrecon.raw |
| ARRECON_ALERTS_TOPIC | alerts topic | arrecon.alerts |
| ARRECON_DEADLETTER_TOPIC | dead-letter topic | arrecon.deadletter |
| ARRECON_SNAPSHOT_INTERVAL_S | Bytewax recovery snapshot interval | 5 |
| ARRECON_HOST / ARRECON_PORT | receiver and dashboard address | 127.0.0.1 / 8080 |
| ARRECON_WORKERS | Bytewax workers per process | 1 |
| ARRECON_WALL_CLOCK_TIMERS | 0 = dunning/overdue timers only from event time | 1 |

The receiver's own variables (webhook secrets, feed tokens, size limits) are
read by `arrecon.connectors.webhook.ReceiverSettings.from_env`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = Path("arrecon-data")
    kafka: str | None = None
    redis: str | None = None
    clickhouse: str | None = None
    raw_topic: str = "arrecon.raw"
    alerts_topic: str = "arrecon.alerts"
    deadletter_topic: str = "arrecon.deadletter"
    snapshot_interval_s: float = 5.0
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    wall_clock_timers: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            data_dir=Path(env.get("ARRECON_DATA_DIR", "arrecon-data")),
            kafka=env.get("ARRECON_KAFKA") or None,
            redis=env.get("ARRECON_REDIS") or None,
            clickhouse=env.get("ARRECON_CLICKHOUSE") or None,
            raw_topic=env.get("ARRECON_RAW_TOPIC", "arrecon.raw"),
            alerts_topic=env.get("ARRECON_ALERTS_TOPIC", "arrecon.alerts"),
            deadletter_topic=env.get("ARRECON_DEADLETTER_TOPIC", "arrecon.deadletter"),
            snapshot_interval_s=float(env.get("ARRECON_SNAPSHOT_INTERVAL_S", "5")),
            host=env.get("ARRECON_HOST", "127.0.0.1"),
            port=int(env.get("ARRECON_PORT", "8080")),
            workers=int(env.get("ARRECON_WORKERS", "1")),
            wall_clock_timers=env.get("ARRECON_WALL_CLOCK_TIMERS", "1") != "0",
        )

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with the given fields replaced (CLI flags win over env)."""
        present = {name: value for name, value in changes.items() if value is not None}
        return replace(self, **present)  # type: ignore[arg-type]

    @property
    def clickhouse_dsn(self) -> str:
        return self.clickhouse or f"chdb://{(self.data_dir / 'chdb').resolve()}"

    @property
    def journal_dir(self) -> Path:
        return self.data_dir / "journal"

    @property
    def recovery_dir(self) -> Path:
        return self.data_dir / "recovery"
