"""Reason lists managed outside the plant file (engineers and admins, ``api.writes``),
layered over it: the plant file stays the seed; a plant-wide catalogue stored here
replaces the file's ``reasons``, a line's stored list replaces its ``lines[].reasons``
(key: ``domain.contract.reasons_key``).

``effective`` gives the plant with the managed lists applied; ``PlantReader`` serves its
figures and the pickers from it. It reads one small hash, at most once a second per
process (``REFRESH_S``; a write through this process is seen at once), so several
uvicorn workers agree within a second.

A code still used by a classification is never dropped from the catalogue: the write is
refused with the codes and one stop that uses each; mark it ``retired`` instead (kept
for past figures, no longer offered to pick).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Literal

import redis
from pydantic import ValidationError

from domain import contract
from domain.classification import Classification, with_reason_lists
from domain.plant import Plant, Reason

log = logging.getLogger(__name__)

Source = Literal["managed", "plant file"]
REFRESH_S = 1.0
PLANT_FIELD = "plant"
MAX_REASONS = 1000


class ReasonListError(ValueError):
    """A reason list that cannot be stored: ``status`` 400 (malformed) or 409 (conflicts
    with what is stored: a code in use, a line list naming an unknown code)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def line_field(line: str) -> str:
    return f"line:{line}"


def reason_dict(reason: Reason) -> dict[str, Any]:
    return reason.model_dump(mode="json")


def parse_catalogue(items: Any) -> dict[int, Reason]:
    """``[{"code", "text", "category", "planned", "retired"}, ...]`` -> code: Reason (400 if malformed)."""
    if not isinstance(items, list) or len(items) > MAX_REASONS:
        raise ReasonListError(400, f"reasons: a list of at most {MAX_REASONS} objects "
                                   '{"code", "text", "category", "planned", "retired"}')
    out: dict[int, Reason] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ReasonListError(400, f"reasons[{i}]: an object")
        code = item.get("code")
        if isinstance(code, bool) or not isinstance(code, int) or not 0 < code < 2**31:
            raise ReasonListError(400, f"reasons[{i}].code: a positive integer")
        if code in out:
            raise ReasonListError(400, f"reasons[{i}].code: {code} twice")
        try:
            out[code] = Reason.model_validate({k: v for k, v in item.items() if k != "code"})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise ReasonListError(400, f"reasons[{i}].{where}: {first['msg']}") from None
    return out


def parse_codes(codes: Any) -> list[int] | None:
    if codes is None:
        return None
    if not isinstance(codes, list) or len(codes) > MAX_REASONS or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in codes):
        raise ReasonListError(400, "codes: a list of reason codes (integers), or null for the plant-wide list")
    return list(dict.fromkeys(codes))


class ReasonLists:
    def __init__(self, client: redis.Redis, base: Plant) -> None:
        self.redis = client
        self.base = base  # the plant file's
        self._lock = threading.Lock()
        self._cached: tuple[float, Plant] | None = None
        # the managed lists last read and the plant made of them: the same lists give the same
        # object, which the readers' caches of what depends on the plant key on
        self._last: tuple[Any, Plant] | None = None

    # --- reading ---------------------------------------------------------------------------

    def _stored(self) -> tuple[dict[int, Reason] | None, dict[str, list[int] | None]]:
        raw: Any = self.redis.hgetall(contract.reasons_key())
        fields = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in raw.items()}
        reasons = None
        if PLANT_FIELD in fields:
            try:
                reasons = {int(code): Reason.model_validate(r) for code, r in json.loads(fields[PLANT_FIELD]).items()}
            except (ValueError, ValidationError):
                log.warning("ignoring an unreadable managed reason catalogue")
        lines: dict[str, list[int] | None] = {}
        for name, value in fields.items():
            if name.startswith("line:") and self.base.line(name[5:]) is not None:
                try:
                    codes = json.loads(value)
                    lines[name[5:]] = None if codes is None else [int(c) for c in codes]
                except (ValueError, TypeError):
                    log.warning("ignoring an unreadable managed reason list of line %s", name[5:])
        return reasons, lines

    def effective(self, max_age_s: float = REFRESH_S) -> Plant:
        """The plant with the managed lists (cached ``max_age_s``; on a Redis error the last
        one read, or the plant file's)."""
        now = time.monotonic()
        cached = self._cached
        if cached is not None and now - cached[0] < max_age_s:
            return cached[1]
        try:
            reasons, lines = self._stored()
        except redis.RedisError:
            return cached[1] if cached is not None else self.base
        last = self._last
        if last is not None and last[0] == (reasons, lines):
            plant = last[1]
        else:
            plant = with_reason_lists(self.base, reasons, lines)
            self._last = ((reasons, lines), plant)
        self._cached = (now, plant)
        return plant

    def sources(self) -> dict[str, Source]:
        """Where each list comes from: ``plant`` and each line id -> "managed" or "plant file"."""
        raw: Any = self.redis.hkeys(contract.reasons_key())
        names = {k.decode() if isinstance(k, bytes) else str(k) for k in raw}

        def source(field: str) -> Source:
            return "managed" if field in names else "plant file"

        out = {"plant": source(PLANT_FIELD)}
        out.update({line.id: source(line_field(line.id)) for line in self.base.lines})
        return out

    # --- writing ---------------------------------------------------------------------------

    def in_use(self, codes: set[int]) -> dict[int, tuple[int, str]]:
        """code -> (how many classifications use it, one of their stop ids), for ``codes``."""
        out: dict[int, tuple[int, str]] = {}
        if not codes:
            return out
        for line in self.base.lines:
            raw: Any = self.redis.hgetall(contract.classifications_key(line.id))
            for sid, value in raw.items():
                try:
                    cls = Classification.from_dict(json.loads(value))
                except (ValueError, KeyError, TypeError):
                    continue
                for code in {cls.reason, *(r for _t, r in cls.splits)} & codes:
                    n, first = out.get(code, (0, sid.decode() if isinstance(sid, bytes) else str(sid)))
                    out[code] = (n + 1, first)
        return out

    def put_catalogue(self, reasons: Mapping[int, Reason]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Stores the plant-wide catalogue; returns (before, after) as {code: reason}."""
        with self._lock:
            current = self._fresh()
            dropped = set(current.reasons) - set(reasons)
            used = self.in_use(dropped)
            if used:
                said = "; ".join(f"{code} by {n} classification(s), e.g. {sid}"
                                 for code, (n, sid) in sorted(used.items()))
                raise ReasonListError(409, f"reason codes still in use: {said}. Keep them with \"retired\": true "
                                           "(shown in past figures, no longer offered)")
            for line in current.lines:
                missing = [c for c in line.reasons or () if c not in reasons]
                if missing:
                    raise ReasonListError(409, f"line {line.id}'s reason list names {missing}: change that list first")
            self.redis.hset(contract.reasons_key(), PLANT_FIELD,
                            json.dumps({str(c): reason_dict(r) for c, r in sorted(reasons.items())}))
            self._cached = None
            return ({str(c): reason_dict(r) for c, r in sorted(current.reasons.items())},
                    {str(c): reason_dict(r) for c, r in sorted(reasons.items())})

    def put_line(self, line: str, codes: list[int] | None) -> tuple[Any, Any]:
        """Stores a line's own list (None: the plant-wide list); returns (before, after)."""
        with self._lock:
            current = self._fresh()
            cfg = current.line(line)
            if cfg is None:
                raise LookupError(f"unknown line {line!r}")
            unknown = [c for c in codes or () if c not in current.reasons]
            if unknown:
                raise ReasonListError(409, f"codes {unknown} are not in the plant-wide reason list")
            self.redis.hset(contract.reasons_key(), line_field(line), json.dumps(codes))
            self._cached = None
            return cfg.reasons, codes

    def _fresh(self) -> Plant:
        self._cached = None
        return self.effective()
