"""The audit trail: every write (classification, split, comment, handover, user and token
changes, logins and failed logins) with who, when, from where, and the value before and
after (IEC 62443-3-3 SR 2.8, auditable events).

Append only and hash-chained: each entry carries the SHA-256 of the one before
(``prev``) and its own (``hash``, over its canonical JSON without ``hash``), and the
head (``seq``, ``hash`` of the last entry) is kept apart, so ``verify`` detects a
changed entry, a removed or reordered one, and a removed tail. The chain proves the
trail was not edited after the fact by someone without the code; it does not stop a
Redis administrator from rewriting the whole chain (ship ``python app.py audit
export`` copies elsewhere for that). Secrets never enter an entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import redis

from domain import answers, contract

log = logging.getLogger(__name__)

GENESIS = "0" * 64
PAGE = 1000
MAX_ANSWER = 2000


def canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    entries: int
    problem: str | None = None
    seq: int | None = None  # the first entry that fails


class AuditTrail:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def append(self, *, ts: float, actor: str, role: str, action: str, addr: str | None = None, kind: str = "user",
               line: str | None = None, target: str | None = None, before: Any = None, after: Any = None,
               ok: bool = True) -> dict[str, Any]:
        """Appends one entry (atomically with the head: concurrent writers retry)."""
        key, head_key = contract.audit_key(), contract.audit_head_key()
        while True:
            with self.redis.pipeline() as pipe:
                try:
                    pipe.watch(head_key)
                    head: Any = pipe.hgetall(head_key)
                    seq = int(head.get(b"seq", 0)) + 1
                    prev = head.get(b"hash", GENESIS.encode()).decode()
                    entry = {"seq": seq, "ts": ts, "actor": actor, "kind": kind, "role": role, "addr": addr,
                             "action": action, "line": line, "target": target, "before": before, "after": after,
                             "ok": ok, "prev": prev}
                    entry["hash"] = entry_hash(entry)
                    pipe.multi()
                    pipe.rpush(key, canonical(entry))
                    pipe.hset(head_key, mapping={"seq": seq, "hash": entry["hash"]})
                    pipe.execute()
                    return entry
                except redis.WatchError:
                    continue

    def entries(self) -> Iterator[dict[str, Any] | bytes]:
        """Every entry in order (raw bytes where an entry is not JSON)."""
        key = contract.audit_key()
        i = 0
        while True:
            page: Any = self.redis.lrange(key, i, i + PAGE - 1)
            for raw in page:
                try:
                    yield json.loads(raw)
                except ValueError:
                    yield raw
            if len(page) < PAGE:
                return
            i += PAGE

    def verify(self) -> Verdict:
        prev, n = GENESIS, 0
        for entry in self.entries():
            n += 1
            if not isinstance(entry, dict):
                return Verdict(False, n, f"entry {n} is not JSON", n)
            if entry.get("seq") != n:
                return Verdict(False, n, f"entry {n} has seq {entry.get('seq')}: an entry was removed or moved", n)
            if entry.get("prev") != prev:
                return Verdict(False, n, f"entry {n} does not follow the one before (removed or changed)", n)
            if entry.get("hash") != entry_hash(entry):
                return Verdict(False, n, f"entry {n} was changed after it was written", n)
            prev = entry["hash"]
        head: Any = self.redis.hgetall(contract.audit_head_key())
        if int(head.get(b"seq", 0)) != n or head.get(b"hash", GENESIS.encode()).decode() != prev:
            return Verdict(False, n, f"the trail ends at entry {n} but its head says {int(head.get(b'seq', 0))}: "
                                     "entries were removed from the end", n + 1)
        return Verdict(True, n)

    def query(self, start: float, end: float, lines: set[str] | None,
              limit: int = MAX_ANSWER) -> list[answers.AuditEntry]:
        """Entries with ``start <= ts < end``, newest first; ``lines``: only entries of
        those lines (None: all, with the plant-wide ones such as logins and user changes)."""
        out: list[answers.AuditEntry] = []
        for entry in self.entries():
            if not isinstance(entry, dict) or not start <= float(entry.get("ts", 0)) < end:
                continue
            if lines is not None and entry.get("line") not in lines:
                continue
            out.append(cast(answers.AuditEntry, entry))  # as ``append`` wrote it
        out.reverse()
        return out[:limit]
