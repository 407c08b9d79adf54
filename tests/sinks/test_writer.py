"""ClickHouseWriter: retries (fake client), batching and idempotency (real chDB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from arrecon.sinks.clickhouse import BatchReport, ClickHouseWriter, SinkError, is_transient
from arrecon.sinks.rows import TableRow, outcome_rows
from arrecon.state.outcomes import Overpaid

AT = datetime(2025, 3, 1, tzinfo=UTC)


def overpaid_rows(prefix: str, count: int) -> list[TableRow]:
    outcomes = [
        Overpaid(f"{prefix}-{i}", AT + timedelta(seconds=i), f"ch_{i}", "C1", i, "USD")
        for i in range(count)
    ]
    return [outcome_rows(outcome)[0] for outcome in outcomes]


class FlakyClient:
    """Fails the first `failures` inserts with `error`, then records them."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0
        self.inserted: list[tuple[str, list[list[Any]], list[str]]] = []

    def create_insert_context(
        self, table: str, *, column_names: list[str], column_oriented: bool
    ) -> tuple[str, list[str]]:
        assert column_oriented
        return table, column_names

    def insert(self, *, data: list[list[Any]], context: tuple[str, list[str]]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        table, column_names = context
        self.inserted.append((table, data, column_names))


def flaky_writer(client: FlakyClient, retries: int = 3) -> tuple[ClickHouseWriter, list[Any]]:
    sleeps: list[float] = []
    reports: list[BatchReport] = []
    writer = ClickHouseWriter(
        client=client, retries=retries, backoff_ms=100, max_backoff_ms=250,
        run_migrations=False, sleep=sleeps.append, on_batch=reports.append,
    )  # fmt: skip
    writer.open()
    return writer, [sleeps, reports]


def test_transient_errors_are_retried_with_backoff() -> None:
    client = FlakyClient(3, OperationalError("connection reset"))
    writer, (sleeps, reports) = flaky_writer(client)
    writer.write(overpaid_rows("t", 4))
    writer.flush()
    assert client.calls == 4
    assert sleeps == [0.1, 0.2, 0.25]
    assert [(r.table, r.rows, r.attempts, r.ok) for r in reports] == [("exceptions", 4, 4, True)]
    table, data, columns = client.inserted[0]
    assert table == "exceptions"
    assert data[columns.index("exception_id")] == ["t-0", "t-1", "t-2", "t-3"]
    assert writer.pending_rows == 0


def test_running_out_of_retries_raises_and_keeps_the_batch() -> None:
    client = FlakyClient(10, DatabaseError("Code: 159. timeout", code=159))
    writer, (_, reports) = flaky_writer(client, retries=2)
    writer.write(overpaid_rows("x", 3))
    with pytest.raises(SinkError, match="3 attempt") as caught:
        writer.flush()
    assert (caught.value.table, caught.value.rows) == ("exceptions", 3)
    assert client.calls == 3
    assert writer.pending_rows == 3  # nothing dropped
    assert reports[-1].ok is False
    client.failures = 0  # the server came back: the same batch goes through
    writer.flush()
    assert writer.pending_rows == 0
    assert len(client.inserted[0][1][0]) == 3


def test_permanent_error_is_not_retried() -> None:
    client = FlakyClient(1, DatabaseError("Code: 60. Unknown table", code=60))
    writer, (sleeps, _) = flaky_writer(client)
    writer.write(overpaid_rows("p", 2))
    with pytest.raises(SinkError, match="Unknown table"):
        writer.flush()
    assert (client.calls, sleeps, writer.pending_rows) == (1, [], 2)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (OperationalError("HTTP connection refused"), True),
        (TimeoutError("read timed out"), True),
        (ConnectionResetError("reset"), True),
        (DatabaseError("too many parts", code=252), True),
        (DatabaseError("memory limit", code=241), True),
        (DatabaseError("unknown table", code=60), False),
        (DatabaseError("syntax", code=62), False),
        (OperationalError("bad type", code=53), False),
        (ValueError("invalid literal for int()"), False),
    ],
)
def test_is_transient(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ClickHouseWriter()
    with pytest.raises(ValueError, match="batch_rows"):
        ClickHouseWriter("chdb:///tmp/x", batch_rows=0)
    unopened = ClickHouseWriter("chdb:///tmp/x", batch_rows=5)
    unopened.write(overpaid_rows("u", 1))
    with pytest.raises(SinkError, match="not open"):
        unopened.flush()


def test_unknown_table_and_missing_column_are_refused() -> None:
    writer, _ = flaky_writer(FlakyClient(0, RuntimeError()))
    with pytest.raises(SinkError, match="unknown table"):
        writer.write([("nope", {})])
    writer.write([("reminders", {"reminder_id": "r"})])
    with pytest.raises(SinkError, match="without column"):
        writer.flush()


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def count(client: Any, prefix: str, final: bool = False) -> int:
    table = "exceptions FINAL" if final else "exceptions"
    query = f"SELECT count() FROM {table} WHERE startsWith(exception_id, {{p:String}})"
    return int(client.query(query, parameters={"p": prefix}).result_rows[0][0])


@pytest.mark.integration
def test_size_bound_flushes_full_batches(module_chdb: Any) -> None:
    reports: list[BatchReport] = []
    writer = ClickHouseWriter(
        client=module_chdb, batch_rows=3, batch_ms=60_000, on_batch=reports.append
    ).open()
    writer.write(overpaid_rows("size", 7))
    assert [r.rows for r in reports] == [3, 3]
    assert count(module_chdb, "size-") == 6
    writer.close()
    assert [r.rows for r in reports] == [3, 3, 1]
    assert count(module_chdb, "size-") == 7
    assert all(r.ok and r.attempts == 1 and r.latency_ms >= 0 for r in reports)


@pytest.mark.integration
def test_time_bound_flushes_after_batch_ms(module_chdb: Any) -> None:
    clock = Clock()
    writer = ClickHouseWriter(
        client=module_chdb, batch_rows=1_000, batch_ms=200, clock=clock
    ).open()
    writer.write(overpaid_rows("time", 2))
    clock.now_s = 0.15
    assert writer.flush_due() is False
    assert count(module_chdb, "time-") == 0
    clock.now_s = 0.21
    assert writer.flush_due() is True
    assert count(module_chdb, "time-") == 2
    assert writer.pending_rows == 0


@pytest.mark.integration
def test_rewriting_the_same_rows_changes_nothing(module_chdb: Any) -> None:
    rows = overpaid_rows("again", 5)
    for _ in range(3):
        with ClickHouseWriter(client=module_chdb, run_migrations=False) as writer:
            writer.write(rows)
    assert count(module_chdb, "again-", final=True) == 5
    sums = module_chdb.query(
        "SELECT sum(amount_minor) FROM exceptions FINAL WHERE startsWith(exception_id, 'again-')"
    ).result_rows
    assert sums == [(0 + 1 + 2 + 3 + 4,)]


@pytest.mark.integration
def test_taken_rows_are_written_by_insert_while_new_rows_buffer(module_chdb: Any) -> None:
    """The flow's sink takes rows under its lock and inserts them outside it."""
    reports: list[BatchReport] = []
    writer = ClickHouseWriter(client=module_chdb, batch_ms=60_000, on_batch=reports.append)
    writer.open()
    writer.write(overpaid_rows("taken", 3))
    taken = writer.take()
    assert writer.pending_rows == 0
    writer.write(overpaid_rows("later", 2))  # buffered beside the taken rows
    writer.insert(taken)
    assert (count(module_chdb, "taken-"), count(module_chdb, "later-")) == (3, 0)
    writer.insert(writer.take())  # the same table again: its insert context is reused
    assert (count(module_chdb, "taken-"), count(module_chdb, "later-")) == (3, 2)
    assert [(r.table, r.rows, r.ok) for r in reports] == [
        ("exceptions", 3, True),
        ("exceptions", 2, True),
    ]
