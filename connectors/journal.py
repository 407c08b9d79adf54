"""A segmented, append-only local journal: the embedded-mode durable log.

Why: in embedded mode there is no Kafka broker to acknowledge a delivery, so the
receiver must not answer 2xx before the raw envelope is on disk. The journal is
the smallest thing that gives that guarantee and can be replayed after a crash.

On disk: a folder of segment files named `<index:020d>.seg`. Each record is

    u32 little-endian payload length | u32 CRC32(length bytes + payload) | payload

A writer appends whole batches with one write and one fsync (group commit). A
new segment starts when the current one is non-empty and the next record would
cross `segment_bytes` (a single oversized record still fits in its own segment).
On open, the last segment is scanned and cut at the first record that is
incomplete or fails its CRC: that is the torn tail a crash leaves behind, and
none of it was ever acknowledged. Sealed segments were fsync'd before the next
one started; corruption there is reported by the reader, never repaired.

Exception tree:
    JournalError (OSError)
        JournalCorruptError   a sealed record fails its CRC or is cut short
        JournalClosedError    append on a closed journal
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HEADER_BYTES",
    "Journal",
    "JournalClosedError",
    "JournalCorruptError",
    "JournalError",
    "JournalOffset",
    "JournalReader",
    "Recovery",
    "encode_record",
    "segment_indexes",
]

_HEADER = struct.Struct("<II")
HEADER_BYTES = _HEADER.size
_SUFFIX = ".seg"
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
MAX_RECORD_BYTES = 256 * 1024 * 1024


class JournalError(OSError):
    """Base class of journal failures."""


class JournalCorruptError(JournalError):
    """A record that can never be read: bad CRC or cut short in a sealed segment."""

    def __init__(self, offset: JournalOffset, reason: str) -> None:
        super().__init__(f"{reason} at segment {offset.segment} position {offset.position}")
        self.offset = offset
        self.reason = reason


class JournalClosedError(JournalError):
    """The journal was closed; nothing more can be appended."""


@dataclass(frozen=True, slots=True, order=True)
class JournalOffset:
    """Where a record starts; also the resume point of a reader."""

    segment: int
    position: int

    def __str__(self) -> str:
        return f"{self.segment}:{self.position}"

    @classmethod
    def parse(cls, text: str) -> JournalOffset:
        segment, _, position = text.partition(":")
        return cls(int(segment), int(position))


@dataclass(frozen=True, slots=True)
class Recovery:
    """What opening the journal found: how much torn tail was cut away."""

    segment: int
    valid_bytes: int
    truncated_bytes: int
    records: int


def _crc(length_bytes: bytes, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(length_bytes))


def encode_record(payload: bytes) -> bytes:
    """One framed record: header then payload."""
    if not payload:
        raise ValueError("empty journal record")
    length_bytes = len(payload).to_bytes(4, "little")
    return length_bytes + _crc(length_bytes, payload).to_bytes(4, "little") + payload


def _segment_path(directory: Path, index: int) -> Path:
    return directory / f"{index:020d}{_SUFFIX}"


def segment_indexes(directory: Path) -> list[int]:
    """Segment numbers present in `directory`, ascending."""
    if not directory.is_dir():
        return []
    names = (p.name for p in directory.iterdir() if p.name.endswith(_SUFFIX))
    return sorted(int(name.removesuffix(_SUFFIX)) for name in names if name[:-4].isdigit())


def _scan_valid_prefix(data: bytes) -> tuple[int, int]:
    """(valid byte count, record count) of the longest run of intact records."""
    position = 0
    records = 0
    view = memoryview(data)
    while position + HEADER_BYTES <= len(data):
        length, crc = _HEADER.unpack_from(data, position)
        end = position + HEADER_BYTES + length
        if length == 0 or end > len(data):
            break
        payload = view[position + HEADER_BYTES : end]
        if _crc(data[position : position + 4], payload) != crc:
            break
        position = end
        records += 1
    return position, records


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """The writer side. Not thread-safe: one appender at a time (the batcher)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        *,
        fsync: bool = True,
    ) -> None:
        assert segment_bytes > HEADER_BYTES, "segment too small for one record"
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.recovery: Recovery | None = None
        self._fd: int | None = None
        self._segment = 0
        self._position = 0
        self._durable = JournalOffset(0, 0)

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    @property
    def end(self) -> JournalOffset:
        """Offset the next record will get (before any rollover)."""
        return JournalOffset(self._segment, self._position)

    def durable_end(self) -> JournalOffset:
        """End of the synced records: pass as a reader's `limit` in the same process,
        so nothing is processed that an OS crash could still take back."""
        return self._durable

    def open(self) -> Journal:
        """Create the folder, recover the last segment, position at its end."""
        if self._fd is not None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        indexes = segment_indexes(self.directory)
        self._segment = indexes[-1] if indexes else 0
        path = _segment_path(self.directory, self._segment)
        self.recovery = self._recover(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._position = self.recovery.valid_bytes
        self._durable = self.end
        if not indexes:
            _fsync_directory(self.directory)
        return self

    def _recover(self, path: Path) -> Recovery:
        data = path.read_bytes() if path.exists() else b""
        valid_bytes, records = _scan_valid_prefix(data)
        if valid_bytes < len(data):
            with open(path, "r+b") as handle:
                handle.truncate(valid_bytes)
                os.fsync(handle.fileno())
        return Recovery(self._segment, valid_bytes, len(data) - valid_bytes, records)

    def close(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> Journal:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def append(self, payload: bytes) -> JournalOffset:
        """Append and sync one record; prefer `append_batch` for throughput."""
        return self.append_batch([payload])[0]

    def append_batch(self, payloads: Sequence[bytes]) -> list[JournalOffset]:
        """Append records in order, then one fsync; returns each record's offset.

        When this returns, every record in the batch is durable (with `fsync`).
        """
        if self._fd is None:
            raise JournalClosedError("journal is closed")
        offsets: list[JournalOffset] = []
        chunk: list[bytes] = []
        for payload in payloads:
            record = encode_record(payload)
            if len(record) > MAX_RECORD_BYTES:
                raise ValueError(f"record of {len(record)} bytes exceeds the journal limit")
            if self._position > 0 and self._position + len(record) > self.segment_bytes:
                self._write(chunk)
                chunk = []
                self._roll()
            offsets.append(JournalOffset(self._segment, self._position))
            chunk.append(record)
            self._position += len(record)
        self._write(chunk)
        self._sync()
        self._durable = self.end
        return offsets

    def _write(self, chunk: list[bytes]) -> None:
        if not chunk:
            return
        assert self._fd is not None
        data = memoryview(b"".join(chunk))
        while data:
            written = os.write(self._fd, data)
            data = data[written:]

    def _sync(self) -> None:
        if self.fsync and self._fd is not None:
            os.fdatasync(self._fd)

    def _roll(self) -> None:
        """Seal the current segment (synced) and start the next one."""
        self._sync()
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        self._segment += 1
        self._position = 0
        path = _segment_path(self.directory, self._segment)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if self.fsync:
            _fsync_directory(self.directory)

    def delete_before(self, offset: JournalOffset) -> list[int]:
        """Remove whole segments older than `offset`'s segment (retention)."""
        removed = [i for i in segment_indexes(self.directory) if i < offset.segment]
        for index in removed:
            _segment_path(self.directory, index).unlink()
        return removed


class JournalReader:
    """Reads records from an offset on; call `read` again to tail new appends.

    A reader keeps `offset`, the position of the next unread record; persist it
    and pass it back after a restart to resume exactly there. An incomplete
    record at the end of the newest segment is "not yet written" (the writer may
    be mid-append), so the reader waits for it instead of failing. `limit`
    (e.g. `Journal.durable_end`) keeps the reader behind the last fsync.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        offset: JournalOffset | None = None,
        *,
        read_bytes: int = 1024 * 1024,
        limit: Callable[[], JournalOffset] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.offset = offset or JournalOffset(0, 0)
        self.read_bytes = read_bytes
        self.limit = limit

    def read(
        self, max_records: int = 1024, max_bytes: int | None = None
    ) -> list[tuple[JournalOffset, bytes]]:
        """Up to `max_records` complete records after `offset`; [] when caught up.

        `max_bytes` stops the batch once that many payload bytes are in it (at
        least one record is always returned), so a run of large deliveries
        makes a short batch rather than a long one.
        """
        out: list[tuple[JournalOffset, bytes]] = []
        size = 0
        while len(out) < max_records and (max_bytes is None or size < max_bytes):
            got = self._read_segment(max_records - len(out))
            if not got:
                if self._advance_segment():
                    continue
                break
            for offset, record in got:
                if max_bytes is not None and out and size >= max_bytes:
                    self.offset = offset  # the rest is read again next time
                    return out
                out.append((offset, record))
                size += len(record)
        return out

    def __iter__(self) -> Iterator[tuple[JournalOffset, bytes]]:
        """Every record available now, advancing `offset`."""
        while batch := self.read():
            yield from batch

    def _advance_segment(self) -> bool:
        """Move to the next segment if the current one is sealed and fully read."""
        bound = self.limit().segment if self.limit else None
        later = [
            i
            for i in segment_indexes(self.directory)
            if i > self.offset.segment and (bound is None or i <= bound)
        ]
        if not later:
            return False
        path = _segment_path(self.directory, self.offset.segment)
        if path.exists() and path.stat().st_size > self.offset.position:
            raise JournalCorruptError(self.offset, "truncated record in sealed segment")
        self.offset = JournalOffset(later[0], 0)
        return True

    def _budget(self) -> int | None:
        """Bytes readable in the current segment under `limit` (None: unbounded)."""
        if self.limit is None:
            return None
        bound = self.limit()
        if bound.segment > self.offset.segment:
            return None
        if bound.segment < self.offset.segment:
            return 0
        return max(0, bound.position - self.offset.position)

    def _read_segment(self, max_records: int) -> list[tuple[JournalOffset, bytes]]:
        segment, start = self.offset.segment, self.offset.position
        budget = self._budget()
        if budget == 0:
            return []
        try:
            with open(_segment_path(self.directory, segment), "rb") as handle:
                handle.seek(start)
                data = handle.read(
                    self.read_bytes if budget is None else min(budget, self.read_bytes)
                )
                if len(data) >= HEADER_BYTES:
                    length = _HEADER.unpack_from(data)[0]
                    if HEADER_BYTES + length > len(data) and length <= MAX_RECORD_BYTES:
                        wanted = HEADER_BYTES + length - len(data)
                        if budget is not None:
                            wanted = min(wanted, budget - len(data))
                        data += handle.read(wanted)
        except FileNotFoundError:
            return []
        out: list[tuple[JournalOffset, bytes]] = []
        position = 0
        while len(out) < max_records and position + HEADER_BYTES <= len(data):
            offset = JournalOffset(segment, start + position)
            length, crc = _HEADER.unpack_from(data, position)
            if length == 0 or length > MAX_RECORD_BYTES:
                raise JournalCorruptError(offset, "bad record length")
            end = position + HEADER_BYTES + length
            if end > len(data):
                break
            payload = data[position + HEADER_BYTES : end]
            if _crc(data[position : position + 4], payload) != crc:
                raise JournalCorruptError(offset, "crc mismatch")
            out.append((offset, payload))
            position = end
        self.offset = JournalOffset(segment, start + position)
        return out
