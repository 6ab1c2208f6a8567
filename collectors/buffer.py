"""Store-and-forward buffer: events the collector could not write to Redis yet.

Events leave in the order they came in. Every event put in is written ahead to
append-only segment files under ``directory`` at once (``seg-<n>.jsonl``, one event per
line as a JSON array ``[line, m, s, v, q, t]`` in the stream contract's encoding), not
kept in memory first: a collector killed during a Redis outage (``kill -9``, a power cut
of the process) loses nothing it had handed to the buffer, and an outage of hours fits.
A new buffer opened on the same directory continues where the old one stopped: a read
cursor (``cursor.json``) is saved whenever events are removed, so what was forwarded is
not sent again (at most the chunk in flight when the process died), and a record torn
by a crash in the middle of a write is cut off.

Past ``disk_bytes`` the buffer drops, says so in the log, and from then on keeps only the
latest event of every (line, machine, signal), in memory: cumulative counters and meters
lose no production, only intermediate values. It stays in that mode until it has been
emptied; ``close()`` writes those latest events to disk as well.

Readers take events with ``peek(n)`` and remove them with ``pop(n)`` once Redis has
stored them, so delivery is at least once.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from domain.contract import FIELDS, decode_event, encode_event
from domain.model import Event

log = logging.getLogger(__name__)

_CURSOR_FILE = "cursor.json"
_FIRST_SEGMENT = 1_000_000_000


def encode_line(event: Event) -> bytes:
    fields = encode_event(event)
    record = [event.line, *(fields[f] for f in FIELDS)]
    return (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def decode_line(raw: bytes) -> Event:
    """Raises ValueError on a record that is not an event (a damaged file)."""
    try:
        line, *values = json.loads(raw)
        return decode_event(line, dict(zip(FIELDS, values, strict=True)))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not a buffered event: {raw[:80]!r}") from exc


def _segment_name(number: int) -> str:
    return f"seg-{number:012d}.jsonl"


@dataclass(frozen=True, slots=True)
class _DiskRecord:
    event: Event
    segment: int
    end: int  # byte offset after this record in its segment
    size: int


class _DiskQueue:
    """Append-only segment files read from a persisted cursor."""

    def __init__(self, directory: Path, segment_bytes: int) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.segments = sorted(int(p.stem.split("-")[1]) for p in self.dir.glob("seg-*.jsonl"))
        self._resume = self._load_cursor()
        self._writer: BinaryIO | None = None
        self._reader: BinaryIO | None = None
        self.read_segment: int | None = None
        self.read_offset = 0
        self.count = 0
        self.bytes = 0
        self._damaged: set[tuple[int, int]] = set()  # (segment, offset) of records skipped
        if self.segments:
            self._truncate_partial_tail()
            self._enter(self.segments[0])
            self._count_remaining()

    def _path(self, number: int) -> Path:
        return self.dir / _segment_name(number)

    def _load_cursor(self) -> dict[int, int]:
        """Read offsets of segments that were partly forwarded before."""
        try:
            data = json.loads((self.dir / _CURSOR_FILE).read_text())
            return {int(k): int(v) for k, v in data["offsets"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}

    def _truncate_partial_tail(self) -> None:
        """A crash in the middle of a write leaves a line without its newline: cut it."""
        path = self._path(self.segments[-1])
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            log.warning("store-and-forward: cutting an incomplete last record from %s", path)
            with path.open("r+b") as f:
                f.truncate(keep)

    def _count_remaining(self) -> None:
        for number in self.segments:
            data = self._path(number).read_bytes()
            start = self.read_offset if number == self.read_segment else self._resume.get(number, 0)
            self.count += data.count(b"\n", start)
            self.bytes += len(data) - start

    def _enter(self, number: int) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self.read_segment = number
        self.read_offset = self._resume.pop(number, 0)

    def append(self, lines: Sequence[bytes]) -> None:
        start = 0
        while start < len(lines):
            if self._writer is None or self._writer.tell() >= self.segment_bytes:
                self._open_writer()
            assert self._writer is not None
            room = self.segment_bytes - self._writer.tell()
            end = start + 1  # at least one record per segment
            room -= len(lines[start])
            while end < len(lines) and len(lines[end]) <= room:
                room -= len(lines[end])
                end += 1
            data = b"".join(lines[start:end])
            self._writer.write(data)
            self._writer.flush()
            self.count += end - start
            self.bytes += len(data)
            start = end

    def _open_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if not self.segments or self._path(self.segments[-1]).stat().st_size >= self.segment_bytes:
            self.segments.append(self.segments[-1] + 1 if self.segments else _FIRST_SEGMENT)
            if len(self.segments) == 1:
                self._enter(self.segments[0])
        self._writer = self._path(self.segments[-1]).open("ab")

    def read(self, n: int) -> list[_DiskRecord]:
        """The next ``n`` records from the cursor, without moving it."""
        out: list[_DiskRecord] = []
        if n <= 0 or self.read_segment is None:
            return out
        resume = dict(self._resume)
        index = self.segments.index(self.read_segment)
        offset = self.read_offset
        while len(out) < n and index < len(self.segments):
            number = self.segments[index]
            with self._path(number).open("rb") as f:
                f.seek(offset)
                for raw in f:
                    if not raw.endswith(b"\n"):
                        break
                    offset += len(raw)
                    try:
                        event = decode_line(raw)
                    except ValueError as exc:
                        self._skip_damaged(number, offset, len(raw), exc)
                        continue
                    out.append(_DiskRecord(event, number, offset, len(raw)))
                    if len(out) == n:
                        break
            if len(out) < n:
                index += 1
                offset = resume.pop(self.segments[index], 0) if index < len(self.segments) else 0
        return out

    def _skip_damaged(self, segment: int, end: int, size: int, exc: ValueError) -> None:
        """A damaged record is passed over (counted out once); the cursor moves past it
        with the next record that is forwarded."""
        if (segment, end) in self._damaged:
            return
        self._damaged.add((segment, end))
        self.count -= 1
        self.bytes -= size
        log.error("store-and-forward: skipping a damaged record in %s: %s", self._path(segment), exc)

    def commit(self, records: Sequence[_DiskRecord]) -> None:
        """Move the cursor past ``records`` (the head of what ``read`` returned)."""
        if not records:
            return
        last = records[-1]
        while self.segments and self.segments[0] != last.segment:
            self._remove_segment(self.segments[0])
        if self.read_segment != last.segment:
            self._enter(last.segment)
        self.read_offset = last.end
        self.count -= len(records)
        self.bytes -= sum(r.size for r in records)
        if self.count == 0:
            self.clear()
        else:
            self._save_cursor()

    def _remove_segment(self, number: int) -> None:
        if self._writer is not None and number == self.segments[-1]:
            self._writer.close()
            self._writer = None
        self._path(number).unlink(missing_ok=True)
        self.segments.remove(number)
        self._resume.pop(number, None)

    def _save_cursor(self) -> None:
        tmp = self.dir / (_CURSOR_FILE + ".tmp")
        offsets = dict(self._resume)
        if self.read_segment is not None:
            offsets[self.read_segment] = self.read_offset
        tmp.write_text(json.dumps({"offsets": {str(k): v for k, v in offsets.items() if v}}))
        os.replace(tmp, self.dir / _CURSOR_FILE)

    def clear(self) -> None:
        """Everything was forwarded: remove the files, start afresh."""
        for number in list(self.segments):
            self._remove_segment(number)
        (self.dir / _CURSOR_FILE).unlink(missing_ok=True)
        self.read_segment = None
        self.read_offset = 0
        self.count = 0
        self.bytes = 0

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.count:
            self._save_cursor()


class StoreAndForwardBuffer:
    """Events waiting for Redis: on disk, then (past the disk bound) latest values."""

    def __init__(
        self,
        directory: Path | str,
        disk_bytes: int = 2 * 1024**3,
        segment_bytes: int = 64 * 1024**2,
    ) -> None:
        self.disk_bytes = disk_bytes
        self._disk = _DiskQueue(Path(directory), segment_bytes)
        self._latest: dict[tuple[str, str, str], Event] = {}
        self._peeked_disk: list[_DiskRecord] = []
        self._peeked_latest: list[Event] = []
        self._peeked = 0
        self.dropped = 0  # events not kept because the disk bound was reached
        self._dropped_reported = 0
        if self._disk.count:
            log.info("store-and-forward: %d events from a previous run are waiting in %s", self._disk.count, directory)

    def __len__(self) -> int:
        return self._disk.count + len(self._latest)

    @property
    def directory(self) -> Path:
        return self._disk.dir

    @property
    def disk_count(self) -> int:
        return self._disk.count

    @property
    def disk_bytes_used(self) -> int:
        return self._disk.bytes

    @property
    def dropping(self) -> bool:
        return bool(self._latest)

    def append(self, event: Event) -> None:
        self.extend((event,))

    def extend(self, events: Iterable[Event]) -> None:
        """Write ``events`` to disk now (written, not synced: they survive the process, not
        the machine)."""
        batch = list(events)
        if not batch:
            return
        if self._latest:
            self._keep_latest(batch)
            return
        lines = [encode_line(e) for e in batch]
        free = self.disk_bytes - self._disk.bytes
        fits = 0
        for raw in lines:
            if len(raw) > free:
                break
            free -= len(raw)
            fits += 1
        self._disk.append(lines[:fits])
        if fits < len(batch):
            log.warning(
                "store-and-forward: disk bound of %d bytes reached; dropping events and keeping only the "
                "latest value of every machine signal until Redis has taken the backlog",
                self.disk_bytes,
            )
            self._keep_latest(batch[fits:])

    def _keep_latest(self, events: list[Event]) -> None:
        for event in events:
            key = (event.line, event.machine, str(event.signal))
            if self._latest.pop(key, None) is not None:
                self.dropped += 1
            self._latest[key] = event  # re-inserted: dict order is the order of last update

    def peek(self, n: int) -> list[Event]:
        """The oldest ``n`` events (fewer if the buffer holds fewer), not removed."""
        self._peeked_disk = self._disk.read(n)
        out = [r.event for r in self._peeked_disk]
        self._peeked_latest = []
        if len(out) < n and len(self._peeked_disk) == self._disk.count:
            self._peeked_latest = list(islice(self._latest.values(), n - len(out)))
            out.extend(self._peeked_latest)
        self._peeked = len(out)
        return out

    def pop(self, n: int) -> None:
        """Remove the first ``n`` events of the last ``peek`` (they were forwarded)."""
        if n > self._peeked:
            raise ValueError(f"pop({n}) after a peek of {self._peeked} events")
        records, self._peeked_disk = self._peeked_disk[:n], self._peeked_disk[n:]
        self._disk.commit(records)
        n -= len(records)
        for event in self._peeked_latest[:n]:
            key = (event.line, event.machine, str(event.signal))
            if self._latest.get(key) is event:
                del self._latest[key]
        self._peeked_latest = self._peeked_latest[n:]
        self._peeked = 0
        if not len(self) and self.dropped > self._dropped_reported:
            log.warning(
                "store-and-forward: backlog forwarded; %d intermediate events were dropped",
                self.dropped - self._dropped_reported,
            )
            self._dropped_reported = self.dropped

    def close(self) -> None:
        """Put everything on disk (the latest values kept past the disk bound), so a
        buffer opened on the same directory resumes."""
        self._disk.append([encode_line(e) for e in self._latest.values()])
        self._latest.clear()
        self._disk.close()
