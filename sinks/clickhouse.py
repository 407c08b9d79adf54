"""Batched, retrying ClickHouse writer and "as of" views; chDB and server alike.

One code path: a DSN `chdb:///abs/folder` opens the embedded engine through
clickhouse-connect's chDB backend, `http://host:8123/db` a ClickHouse server.
chDB admits one engine folder per process, so clients come from a process-wide
cache keyed by DSN and reference-counted (`acquire_client` / `release_client`):
every writer and reader in the process shares one client per DSN. In a Bytewax
flow this means one writer per worker process (the sink is a
`FixedPartitionedSink` with one partition per process, never one per key).

Writes are buffered per table and flushed when a table holds `batch_rows` rows
or the oldest buffered row is `batch_ms` old (checked on every `write` and by
`flush_due`). Inserts are column-oriented. Transient errors (network, timeouts,
too many parts, ...) are retried with capped exponential backoff; anything else,
or running out of attempts, raises `SinkError` with the batch kept in the buffer:
a batch is never dropped silently, and the caller stops and recovers by replay
(row ids make the replayed rows idempotent).

Exception tree:
    SinkError (RuntimeError)    a batch could not be written; `table`, `rows`, `cause`
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arrecon.sinks.migrate import migrate
from arrecon.sinks.rows import COLUMNS, Row, TableRow

__all__ = [
    "VIEWS_DIR",
    "BatchReport",
    "ClickHouseWriter",
    "SinkError",
    "acquire_client",
    "is_transient",
    "release_client",
    "run_view",
    "view_names",
    "view_sql",
]

VIEWS_DIR = Path(__file__).resolve().parent / "views"

# ClickHouse error codes worth retrying: the same insert may succeed later.
_TRANSIENT_CODES = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED
        164,  # READONLY (replica temporarily read-only)
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        252,  # TOO_MANY_PARTS
        319,  # UNKNOWN_STATUS_OF_INSERT
        425,  # SYSTEM_ERROR
        999,  # KEEPER_EXCEPTION
    }
)


class SinkError(RuntimeError):
    """A batch could not be written; the rows stay buffered, nothing is dropped."""

    def __init__(self, message: str, *, table: str = "", rows: int = 0) -> None:
        super().__init__(message)
        self.table = table
        self.rows = rows


@dataclass(frozen=True, slots=True)
class BatchReport:
    """One insert attempt series, for metrics: size, attempts, wall time."""

    table: str
    rows: int
    attempts: int
    latency_ms: float
    ok: bool


BatchHook = Callable[[BatchReport], None]


def is_transient(error: BaseException) -> bool:
    """True for errors where retrying the same insert may succeed."""
    from clickhouse_connect.driver import exceptions as ch_errors

    if isinstance(error, TimeoutError | ConnectionError):
        return True
    if isinstance(error, ch_errors.OperationalError) and getattr(error, "code", None) is None:
        return True  # transport failure: no server error code at all
    return getattr(error, "code", None) in _TRANSIENT_CODES


_clients: dict[str, tuple[Any, int]] = {}
_clients_lock = threading.Lock()


def acquire_client(dsn: str) -> Any:
    """The process-wide client for `dsn`, opened on first use."""
    import clickhouse_connect

    with _clients_lock:
        client, users = _clients.get(dsn, (None, 0))
        if client is None:
            client = clickhouse_connect.get_client(dsn=dsn)
        _clients[dsn] = (client, users + 1)
        return client


def release_client(dsn: str) -> None:
    """Drop one use of `dsn`'s client; the last user closes it (frees a chDB folder)."""
    with _clients_lock:
        client, users = _clients.get(dsn, (None, 0))
        if client is None:
            return
        if users > 1:
            _clients[dsn] = (client, users - 1)
            return
        del _clients[dsn]
    client.close()


class ClickHouseWriter:
    """Buffers rows per table and writes them in column-oriented batches."""

    def __init__(
        self,
        dsn: str | None = None,
        *,
        client: Any = None,
        batch_rows: int = 10_000,
        batch_ms: int = 200,
        retries: int = 5,
        backoff_ms: int = 50,
        max_backoff_ms: int = 5_000,
        run_migrations: bool = True,
        on_batch: BatchHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if (dsn is None) == (client is None):
            raise ValueError("give exactly one of dsn or client")
        if batch_rows < 1 or batch_ms < 0 or retries < 0:
            raise ValueError("batch_rows >= 1, batch_ms >= 0 and retries >= 0 are required")
        self.dsn = dsn
        self.batch_rows = batch_rows
        self.batch_ms = batch_ms
        self.retries = retries
        self.backoff_ms = backoff_ms
        self.max_backoff_ms = max_backoff_ms
        self.run_migrations = run_migrations
        self.on_batch = on_batch
        self._clock = clock
        self._sleep = sleep
        self._client = client
        self._owns_client = False
        self._buffers: dict[str, list[Row]] = {}
        self._oldest_at: float | None = None
        # Per table, the client's insert context (column types included): without
        # one, every insert first asks the server to DESCRIBE the table, a second
        # query (over HTTP, a second round trip).
        self._insert_contexts: dict[str, Any] = {}

    @property
    def client(self) -> Any:
        if self._client is None:
            raise SinkError("writer is not open")
        return self._client

    def open(self) -> ClickHouseWriter:
        """Connect (shared client per DSN) and bring the schema up to date."""
        if self._client is None and self.dsn is not None:
            self._client = acquire_client(self.dsn)
            self._owns_client = True
        if self.run_migrations:
            migrate(self.client)
        return self

    def __enter__(self) -> ClickHouseWriter:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def pending_rows(self) -> int:
        return sum(len(rows) for rows in self._buffers.values())

    def write(self, rows: Iterable[TableRow]) -> None:
        """Buffer rows; flush tables that are full, and everything when it is due."""
        for table, row in rows:
            if table not in COLUMNS:
                raise SinkError(f"unknown table {table!r}", table=table, rows=1)
            buffer = self._buffers.setdefault(table, [])
            buffer.append(row)
            if self._oldest_at is None:
                self._oldest_at = self._clock()
            if len(buffer) >= self.batch_rows:
                self._flush_table(table)
        self.flush_due()

    def flush_due(self) -> bool:
        """Flush everything if the oldest buffered row waited `batch_ms`; call when idle."""
        if self._oldest_at is None:
            return False
        if (self._clock() - self._oldest_at) * 1000 < self.batch_ms:
            return False
        self.flush()
        return True

    def flush(self) -> None:
        """Write every buffered row now."""
        for table in list(self._buffers):
            self._flush_table(table)
        self._oldest_at = None

    def take(self) -> dict[str, list[Row]]:
        """Hand over every buffered row, leaving the buffers empty.

        With `insert`, a caller can buffer under its own lock and write outside
        it; inserts must then not overlap (they share the insert contexts)."""
        buffers, self._buffers, self._oldest_at = self._buffers, {}, None
        return buffers

    def insert(self, buffers: dict[str, list[Row]]) -> None:
        """Write rows handed over by `take`, table by table (retried like `flush`)."""
        for table, rows in buffers.items():
            if rows:
                self._insert(table, rows)

    def close(self) -> None:
        """Flush, then release the shared client if this writer acquired it."""
        try:
            if self._client is not None:
                self.flush()
        finally:
            self._insert_contexts.clear()  # they belong to the client
            if self._owns_client and self.dsn is not None:
                release_client(self.dsn)
                self._client = None
                self._owns_client = False

    def _flush_table(self, table: str) -> None:
        rows = self._buffers.get(table)
        if not rows:
            return
        self._insert(table, rows)
        del self._buffers[table]
        if not self._buffers:
            self._oldest_at = None

    def _insert(self, table: str, rows: list[Row]) -> None:
        columns = COLUMNS[table]
        try:
            data = [[row[name] for row in rows] for name in columns]
        except KeyError as error:
            raise SinkError(
                f"{table}: row without column {error}", table=table, rows=len(rows)
            ) from None
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                self.client.insert(data=data, context=self._insert_context(table))
            except Exception as error:
                if is_transient(error) and attempt <= self.retries:
                    self._sleep(self._backoff_s(attempt))
                    continue
                self._report(table, len(rows), attempt, started, ok=False)
                raise SinkError(
                    f"insert of {len(rows)} rows into {table} failed after {attempt} "
                    f"attempt(s): {error}",
                    table=table,
                    rows=len(rows),
                ) from error
            self._report(table, len(rows), attempt, started, ok=True)
            return

    def _insert_context(self, table: str) -> Any:
        """Made once per table after `open` (the schema is migrated by then)."""
        context = self._insert_contexts.get(table)
        if context is None:
            context = self.client.create_insert_context(
                table, column_names=list(COLUMNS[table]), column_oriented=True
            )
            self._insert_contexts[table] = context
        return context

    def _backoff_s(self, attempt: int) -> float:
        delay_ms: int = min(self.backoff_ms * 2 ** (attempt - 1), self.max_backoff_ms)
        return delay_ms / 1000

    def _report(self, table: str, rows: int, attempts: int, started: float, *, ok: bool) -> None:
        if self.on_batch is not None:
            latency_ms = (self._clock() - started) * 1000
            self.on_batch(BatchReport(table, rows, attempts, latency_ms, ok))


def view_names() -> tuple[str, ...]:
    """Names of the SQL views in `sinks/views/` (file stems)."""
    return tuple(sorted(path.stem for path in VIEWS_DIR.glob("*.sql")))


def view_sql(name: str) -> str:
    if name not in view_names():
        raise KeyError(f"unknown view {name!r}; known: {', '.join(view_names())}")
    return (VIEWS_DIR / f"{name}.sql").read_text(encoding="utf-8")


def run_view(client: Any, name: str, **params: Any) -> list[dict[str, Any]]:
    """Run `sinks/views/<name>.sql` with server-side query parameters.

    Why server-side parameters (`{as_of:DateTime64(3)}`): values never get
    spliced into SQL text, and the same file runs unchanged on chDB and a server.
    """
    result = client.query(view_sql(name), parameters=params)
    names = result.column_names
    return [dict(zip(names, row, strict=True)) for row in result.result_rows]
