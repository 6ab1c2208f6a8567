"""Shift handovers per line and shift instance (key: ``domain.contract.handovers_key``,
field = the shift's start, epoch s).

A handover holds a note (what happened) and open issues, written by a supervisor of
the line until it is signed; signing by the outgoing supervisor freezes the shift's
figures (the line KPIs of the shift as they were at that moment), and a different
supervisor acknowledges it as the incoming one. Signed handovers do not change.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from domain import answers, contract

MAX_NOTE = 4000


class HandoverError(ValueError):
    """A handover step that is not possible now (409: the message says why)."""


class Handovers:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def get(self, line: str, shift_start: float) -> answers.Handover | None:
        raw: Any = self.redis.hget(contract.handovers_key(line), _field(shift_start))
        return json.loads(raw) if raw is not None else None

    def history(self, line: str, start: float, end: float) -> list[answers.Handover]:
        data: Any = self.redis.hgetall(contract.handovers_key(line))
        out = [json.loads(v) for v in data.values()]
        return sorted((h for h in out if start <= h["shift_start"] < end), key=lambda h: h["shift_start"])

    def _put(self, line: str, record: answers.Handover) -> None:
        self.redis.hset(contract.handovers_key(line), _field(record["shift_start"]), json.dumps(record))

    def write_note(self, line: str, shift: Any, note: str, open_issues: str, by: str,
                   now: float) -> answers.Handover:
        record = self.get(line, shift.start) or {
            "line": line, "shift": shift.label, "shift_start": shift.start, "shift_end": shift.end,
            "note": "", "open_issues": "", "signed_by": None, "signed_at": None, "figures": None,
            "acknowledged_by": None, "acknowledged_at": None}
        if record["signed_by"]:
            raise HandoverError("the handover is signed: it can no longer be changed")
        record.update({"note": note, "open_issues": open_issues, "note_by": by, "note_at": now})
        self._put(line, record)
        return record

    def sign(self, line: str, shift_start: float, by: str, figures: answers.HandoverFigures,
             now: float) -> answers.Handover:
        record = self.get(line, shift_start)
        if record is None:
            raise HandoverError("write the handover note before signing it")
        if record["signed_by"]:
            raise HandoverError(f"already signed by {record['signed_by']}")
        record.update({"signed_by": by, "signed_at": now, "figures": figures})
        self._put(line, record)
        return record

    def acknowledge(self, line: str, shift_start: float, by: str, now: float) -> answers.Handover:
        record = self.get(line, shift_start)
        if record is None or not record["signed_by"]:
            raise HandoverError("the outgoing supervisor has not signed this handover yet")
        if record["acknowledged_by"]:
            raise HandoverError(f"already acknowledged by {record['acknowledged_by']}")
        if record["signed_by"] == by:
            raise HandoverError("the incoming supervisor acknowledges: not the one who signed")
        record.update({"acknowledged_by": by, "acknowledged_at": now})
        self._put(line, record)
        return record


def _field(shift_start: float) -> str:
    return str(round(shift_start))
