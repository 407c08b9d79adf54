"""The local journal: append/read/resume, segment rollover, crash recovery, CRC checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrecon.connectors.journal import (
    HEADER_BYTES,
    Journal,
    JournalClosedError,
    JournalCorruptError,
    JournalOffset,
    JournalReader,
    encode_record,
    segment_indexes,
)


def _payloads(count: int, size: int = 40) -> list[bytes]:
    return [f"record-{i:05d}-".encode().ljust(size, b"x") for i in range(count)]


def _read_all(directory: Path, offset: JournalOffset | None = None) -> list[bytes]:
    return [payload for _, payload in JournalReader(directory, offset)]


def test_append_then_read_in_order(tmp_path: Path) -> None:
    payloads = _payloads(50)
    with Journal(tmp_path) as journal:
        offsets = journal.append_batch(payloads[:20])
        offsets += [journal.append(p) for p in payloads[20:]]
    assert offsets == sorted(offsets)
    assert len(set(offsets)) == 50
    records = list(JournalReader(tmp_path))
    assert [payload for _, payload in records] == payloads
    assert [offset for offset, _ in records] == offsets


def test_segments_roll_at_the_size_limit(tmp_path: Path) -> None:
    payloads = _payloads(30, size=100)
    record_bytes = HEADER_BYTES + 100
    with Journal(tmp_path, segment_bytes=record_bytes * 4) as journal:
        offsets = journal.append_batch(payloads)
    assert segment_indexes(tmp_path) == list(range(8))  # 30 records, 4 per segment
    assert {o.segment for o in offsets} == set(range(8))
    for index in range(7):
        assert (tmp_path / f"{index:020d}.seg").stat().st_size == record_bytes * 4
    assert _read_all(tmp_path) == payloads


def test_oversized_record_gets_its_own_segment(tmp_path: Path) -> None:
    big = b"B" * 5000
    with Journal(tmp_path, segment_bytes=1000) as journal:
        offsets = journal.append_batch([b"small", big, b"after"])
    assert [o.segment for o in offsets] == [0, 1, 2]
    assert _read_all(tmp_path) == [b"small", big, b"after"]


def test_reader_resumes_from_saved_offset_and_tails_new_appends(tmp_path: Path) -> None:
    payloads = _payloads(40)
    with Journal(tmp_path, segment_bytes=500) as journal:
        journal.append_batch(payloads[:25])
        reader = JournalReader(tmp_path)
        first = reader.read(max_records=10)
        assert [p for _, p in first] == payloads[:10]
        saved = str(reader.offset)
        # A "restarted" reader continues exactly after the last record read.
        resumed = JournalReader(tmp_path, JournalOffset.parse(saved))
        assert [p for _, p in resumed.read(max_records=100)] == payloads[10:25]
        assert resumed.read() == []
        journal.append_batch(payloads[25:])
        assert [p for _, p in resumed.read(max_records=100)] == payloads[25:]


@pytest.mark.parametrize("max_bytes", [1, 99, 100, 250, 1_000, 10_000])
def test_byte_bounded_batches_read_every_record_once_in_order(
    tmp_path: Path, max_bytes: int
) -> None:
    payloads = _payloads(60, size=100)
    with Journal(tmp_path, segment_bytes=(HEADER_BYTES + 100) * 7) as journal:
        journal.append_batch(payloads)
    reader = JournalReader(tmp_path)
    sizes: list[int] = []
    done = 0
    while batch := reader.read(max_records=1_000, max_bytes=max_bytes):
        assert [payload for _, payload in batch] == payloads[done : done + len(batch)]
        done += len(batch)
        sizes.append(len(batch))
        resumed = JournalReader(tmp_path, JournalOffset.parse(str(reader.offset)))
        assert [payload for _, payload in resumed.read(1_000)] == payloads[done:]
    assert done == len(payloads)
    per_batch = -(-max_bytes // 100)  # whole records until the bound is reached
    assert set(sizes[:-1]) <= {per_batch}
    assert 1 <= sizes[-1] <= per_batch


def test_reopen_appends_after_existing_records(tmp_path: Path) -> None:
    payloads = _payloads(10)
    with Journal(tmp_path, segment_bytes=300) as journal:
        journal.append_batch(payloads[:6])
    with Journal(tmp_path, segment_bytes=300) as journal:
        assert journal.recovery is not None
        assert journal.recovery.truncated_bytes == 0
        journal.append_batch(payloads[6:])
    assert _read_all(tmp_path) == payloads


def test_torn_last_record_is_truncated_on_open(tmp_path: Path) -> None:
    payloads = _payloads(12)
    with Journal(tmp_path) as journal:
        journal.append_batch(payloads)
    segment = tmp_path / f"{0:020d}.seg"
    full_size = segment.stat().st_size
    os.truncate(segment, full_size - 7)  # crash in the middle of the last record
    with Journal(tmp_path) as journal:
        assert journal.recovery is not None
        assert journal.recovery.records == 11
        assert journal.recovery.truncated_bytes == len(encode_record(payloads[-1])) - 7
        journal.append(b"after-crash")
    assert _read_all(tmp_path) == [*payloads[:11], b"after-crash"]


def test_garbage_tail_after_crash_is_truncated(tmp_path: Path) -> None:
    payloads = _payloads(5)
    with Journal(tmp_path) as journal:
        journal.append_batch(payloads)
    segment = tmp_path / f"{0:020d}.seg"
    with open(segment, "ab") as handle:
        handle.write(b"\0" * 4096)  # a file system that extended the file with zeros
    with Journal(tmp_path) as journal:
        assert journal.recovery is not None
        assert journal.recovery.truncated_bytes == 4096
    assert _read_all(tmp_path) == payloads


def test_crc_mismatch_in_sealed_segment_is_reported(tmp_path: Path) -> None:
    payloads = _payloads(10, size=100)
    with Journal(tmp_path, segment_bytes=(HEADER_BYTES + 100) * 5) as journal:
        journal.append_batch(payloads)
    segment = tmp_path / f"{0:020d}.seg"
    data = bytearray(segment.read_bytes())
    flip_at = 2 * (HEADER_BYTES + 100) + HEADER_BYTES + 10  # inside the third payload
    data[flip_at] ^= 0x01
    segment.write_bytes(bytes(data))
    reader = JournalReader(tmp_path)
    assert [p for _, p in reader.read(max_records=2)] == payloads[:2]
    with pytest.raises(JournalCorruptError) as caught:
        reader.read()
    assert caught.value.offset == JournalOffset(0, 2 * (HEADER_BYTES + 100))
    assert caught.value.reason == "crc mismatch"


def test_crc_mismatch_in_active_segment_tail_is_cut_on_open(tmp_path: Path) -> None:
    payloads = _payloads(4)
    with Journal(tmp_path) as journal:
        journal.append_batch(payloads)
    segment = tmp_path / f"{0:020d}.seg"
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    with Journal(tmp_path) as journal:
        assert journal.recovery is not None
        assert journal.recovery.records == 3
    assert _read_all(tmp_path) == payloads[:3]


def test_append_after_close_fails(tmp_path: Path) -> None:
    journal = Journal(tmp_path).open()
    journal.close()
    with pytest.raises(JournalClosedError):
        journal.append(b"late")


def test_delete_before_removes_only_older_segments(tmp_path: Path) -> None:
    with Journal(tmp_path, segment_bytes=(HEADER_BYTES + 40) * 2) as journal:
        offsets = journal.append_batch(_payloads(8))
        assert journal.delete_before(offsets[4]) == [0, 1]
    assert _read_all(tmp_path, JournalOffset(2, 0)) == _payloads(8)[4:]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(
        st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=8),
        min_size=1,
        max_size=6,
    ),
    segment_bytes=st.integers(min_value=64, max_value=2048),
    cut=st.integers(min_value=0, max_value=10_000),
)
def test_any_crash_point_recovers_exactly_the_complete_prefix(
    tmp_path_factory: pytest.TempPathFactory,
    batches: list[list[bytes]],
    segment_bytes: int,
    cut: int,
) -> None:
    directory = tmp_path_factory.mktemp("journal")
    with Journal(directory, segment_bytes=segment_bytes, fsync=False) as journal:
        offsets = [o for batch in batches for o in journal.append_batch(batch)]
    payloads = [p for batch in batches for p in batch]
    assert _read_all(directory) == payloads
    # Crash: cut the last segment at an arbitrary byte.
    last = segment_indexes(directory)[-1]
    path = directory / f"{last:020d}.seg"
    size = path.stat().st_size
    keep = cut % (size + 1)
    os.truncate(path, keep)
    survivors = [
        p
        for p, o in zip(payloads, offsets, strict=True)
        if o.segment < last or o.position + len(encode_record(p)) <= keep
    ]
    with Journal(directory, segment_bytes=segment_bytes, fsync=False) as journal:
        journal.append(b"resumed")
    assert _read_all(directory) == [*survivors, b"resumed"]


def test_reader_limit_keeps_it_behind_the_last_sync(tmp_path: Path) -> None:
    payloads = _payloads(30, size=60)
    with Journal(tmp_path, segment_bytes=(HEADER_BYTES + 60) * 4) as journal:
        journal.append_batch(payloads[:10])
        synced_then = journal.durable_end()
        journal.append_batch(payloads[10:])
        assert synced_then < journal.durable_end()
        frozen = JournalReader(tmp_path, limit=lambda: synced_then)
        assert [p for _, p in frozen.read(max_records=100)] == payloads[:10]
        assert frozen.read() == []
        assert frozen.offset == synced_then
        live = JournalReader(tmp_path, frozen.offset, limit=journal.durable_end)
        assert [p for _, p in live.read(max_records=100)] == payloads[10:]
        assert live.offset == journal.durable_end() == journal.end
