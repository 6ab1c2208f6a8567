"""The operator loop's operations: classifying and splitting stops, shift handovers,
users (for admins) and reason lists.

They are plain functions of the caller, so the HTTP views (``api.writes``) and the Dash
pages (``components.untagged``, ``components.handover``, the admin pages) share one set of
rules; each write is authorized by ``domain.roles`` and appended to the audit trail with
the value before and after.
"""

from __future__ import annotations

import logging
import math
from typing import Any, cast
from zoneinfo import ZoneInfo

from api import context
from api.auth import auth
from domain import answers, calendar
from domain.classification import (
    Classification,
    check_comment,
    check_reason,
    check_split,
    grouped_choices,
    parse_stop_id,
)
from domain.roles import ALL_LINES, Action, Principal, refusal
from store.classifications import find_stop
from store.handovers import MAX_NOTE, HandoverError, Handovers
from store.live_feed import FEED_KEY
from store.reader import PlantReader, WindowError, parse_time
from store.reasons import ReasonListError, parse_catalogue, parse_codes, reason_dict
from store.users import UserError

log = logging.getLogger(__name__)


class OpError(Exception):
    """A write that cannot be done: HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- operations (shared by the API and the pages) ------------------------------------------------

def _allowed(who: Principal, action: Action, line: str | None) -> None:
    why = refusal(who, action, line)
    if why is not None:
        auth().record(who, "denied", line=line, target=str(action), after=why, ok=False)
        raise OpError(403, f"forbidden: {why}")


def _stop_of(reader: PlantReader, line: str, sid: str, now: float) -> Any:
    parsed = parse_stop_id(sid)
    if parsed is None or parsed[0] != line:
        raise OpError(404, f"no stop {sid!r} on line {line} (ids: <line>~<machine>~<start ms>)")
    cfg = reader.line(line)
    if cfg.machine(parsed[1]) is None:
        raise OpError(404, f"no stop {sid!r} on line {line}: unknown machine")
    stop = find_stop(reader, line, parsed[1], parsed[2], now)
    if stop is None:
        raise OpError(404, f"no stop {sid!r} on line {line}")
    return stop


def classify(reader: PlantReader, who: Principal, line: str, sid: str, reason: Any, comment: Any,
             now: float) -> answers.Classification:
    """Sets a stop's reason (and comment); keeps an existing split's later parts."""
    _allowed(who, Action.CLASSIFY, line)
    cfg = reader.line(line)
    problem = check_reason(reader.plant, cfg, reason) or check_comment(comment)
    if problem:
        raise OpError(400, problem)
    stop = _stop_of(reader, line, sid, now)
    stored, before = _carried(reader, line, stop)
    if before is not None and before.by != who.name:
        _allowed(who, Action.EDIT_OTHERS, line)
    after = Classification(int(reason), comment if comment is not None else (before.comment if before else ""),
                           who.name, now, before.splits if before else (), stop.end)
    reader.classifications.put(line, sid, after, replaces=stored)
    _amended(line)
    auth().record(who, "classify", line=line, target=sid,
                  before=before.to_dict() if before else {"plc_reason": stop.reason}, after=after.to_dict())
    return cast(answers.Classification, {"id": sid, "plc_reason": stop.reason, **after.to_dict()})


def split(reader: PlantReader, who: Principal, line: str, sid: str, at: Any, before_reason: Any, after_reason: Any,
          comment: Any, now: float) -> answers.Classification:
    """Splits a stop at ``at`` into two reasons (replaces an earlier split)."""
    _allowed(who, Action.CLASSIFY, line)
    cfg = reader.line(line)
    problem = (check_reason(reader.plant, cfg, before_reason) or check_reason(reader.plant, cfg, after_reason)
               or check_comment(comment))
    if problem:
        raise OpError(400, problem.replace("reason:", "before/after:"))
    at_s = _time(at, "at", reader)
    stop = _stop_of(reader, line, sid, now)
    problem = check_split(stop, at_s, now)
    if problem:
        raise OpError(400, problem)
    stored, before = _carried(reader, line, stop)
    if before is not None and before.by != who.name:
        _allowed(who, Action.EDIT_OTHERS, line)
    after = Classification(int(before_reason), comment if comment is not None else (before.comment if before else ""),
                           who.name, now, ((at_s, int(after_reason)),), stop.end)
    reader.classifications.put(line, sid, after, replaces=stored)
    _amended(line)
    auth().record(who, "split", line=line, target=sid,
                  before=before.to_dict() if before else {"plc_reason": stop.reason}, after=after.to_dict())
    return cast(answers.Classification, {"id": sid, "plc_reason": stop.reason, **after.to_dict()})


def _amended(line: str) -> None:
    """The line's figures changed outside its stream: the serving process's live feed gives
    it a new version at once (``LiveFeed.amend``), so the screens read it again. Other
    processes' feeds see the classifications' counter (``Classifications.put`` bumps it)
    within about a second."""
    feed = context.config().get(FEED_KEY)
    if feed is not None:
        feed.amend(line)


def _carried(reader: PlantReader, line: str, stop: Any) -> tuple[str | None, Classification | None]:
    """The classification the stop carries now (under its id, or under the id it had
    before late data moved its start) and the id it is stored under."""
    found = reader.classifications.carried(line, stop)
    return (found[0], found[1]) if found is not None else (None, None)


def _time(value: Any, name: str, reader: PlantReader) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str) and len(value) <= 64:
        try:
            return parse_time(name, value)
        except WindowError as exc:
            raise OpError(400, str(exc)) from None
    raise OpError(400, f"{name}: epoch seconds or an ISO 8601 time with offset")


def _shift(reader: PlantReader, shift_start: str) -> Any:
    try:
        start = float(shift_start)
    except ValueError:
        raise OpError(404, f"no shift starting at {shift_start!r} (epoch seconds)") from None
    tz = ZoneInfo(reader.plant.timezone)
    for inst in calendar.shifts_overlapping(reader.plant.shifts, tz, start - 1, start + 1):
        if abs(inst.start - start) < 1:
            return inst
    raise OpError(404, f"no shift starting at {shift_start}")


def _text_field(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_NOTE:
        raise OpError(400, f"{name}: text of at most {MAX_NOTE} characters")
    return value


def handover_note(reader: PlantReader, who: Principal, line: str, shift_start: str, note: Any, open_issues: Any,
                  now: float) -> answers.Handover:
    _allowed(who, Action.HANDOVER_WRITE, line)
    reader.line(line)
    shift = _shift(reader, shift_start)
    handovers = Handovers(reader.redis)
    before = handovers.get(line, shift.start)
    try:
        after = handovers.write_note(line, shift, _text_field(note, "note"), _text_field(open_issues, "open_issues"),
                                     who.name, now)
    except HandoverError as exc:
        raise OpError(409, str(exc)) from None
    auth().record(who, "handover_note", line=line, target=shift.label,
                  before={k: before[k] for k in ("note", "open_issues")} if before else None,
                  after={k: after[k] for k in ("note", "open_issues")})
    return after


def handover_sign(reader: PlantReader, who: Principal, line: str, shift_start: str,
                  now: float) -> answers.Handover:
    _allowed(who, Action.HANDOVER_SIGN, line)
    shift = _shift(reader, shift_start)
    kpis = reader.line_kpis(line, shift.start, min(shift.end, now), now)
    figures: answers.HandoverFigures = {
        "availability": kpis["availability"], "performance": kpis["performance"], "quality": kpis["quality"],
        "oee": kpis["oee"], "good_count": kpis["good_count"], "reject_count": kpis["reject_count"],
        "down_s": kpis["down_s"], "planned_busy_s": kpis["planned_busy_s"],
        "untagged_coverage": kpis["untagged_coverage"], "window": kpis["window"]}
    try:
        after = Handovers(reader.redis).sign(line, shift.start, who.name, figures, now)
    except HandoverError as exc:
        raise OpError(409, str(exc)) from None
    auth().record(who, "handover_sign", line=line, target=shift.label, before=None,
                  after={"signed_by": who.name, "figures": after["figures"]})
    return after


def handover_acknowledge(reader: PlantReader, who: Principal, line: str, shift_start: str,
                         now: float) -> answers.Handover:
    _allowed(who, Action.HANDOVER_SIGN, line)
    shift = _shift(reader, shift_start)
    try:
        after = Handovers(reader.redis).acknowledge(line, shift.start, who.name, now)
    except HandoverError as exc:
        raise OpError(409, str(exc)) from None
    auth().record(who, "handover_acknowledge", line=line, target=shift.label, after={"acknowledged_by": who.name})
    return after


def add_user(who: Principal, name: Any, role: Any, lines: Any, password: Any) -> answers.User:
    """An admin adds a user (the password is hashed, never recorded)."""
    _allowed(who, Action.MANAGE_USERS, None)
    try:
        user = auth().users.add(str(name or ""), str(role or ""), str(lines or ""), str(password or ""))
    except UserError as exc:
        raise OpError(400, str(exc)) from None
    auth().record(who, "user_add", target=user.name, after=user.public())
    return user.public()


def change_user_of(who: Principal, name: str, disabled: Any = None, password: Any = None) -> answers.User:
    """An admin disables/enables a user or sets a password (either ends their sessions)."""
    _allowed(who, Action.MANAGE_USERS, None)
    users = auth().users
    before = users.get(name)
    if before is None:
        raise OpError(404, f"no user {name}")
    try:
        if disabled is not None:
            users.set_disabled(name, bool(disabled))
        if password is not None:
            users.set_password(name, str(password))
    except UserError as exc:
        raise OpError(400, str(exc)) from None
    after = users.get(name)
    assert after is not None
    auth().record(who, "user_change", target=name, before=before.public(),
                  after={**after.public(), "password_changed": password is not None})
    return after.public()


def reason_catalogue(reader: PlantReader) -> answers.ReasonLists:
    """The plant-wide reason list and each line's (codes; null: the plant-wide list), with
    where each comes from ("managed" or "plant file")."""
    plant, sources = reader.plant, reader.reason_lists.sources()
    entries: list[answers.ReasonEntry] = [
        {"code": code, "text": reason_dict(r)["text"], "category": str(r.category), "planned": r.planned,
         "retired": r.retired} for code, r in sorted(plant.reasons.items())]
    return {"reasons": entries,
            "source": sources["plant"],
            "lines": {line.id: {"codes": line.reasons, "source": sources[line.id]} for line in plant.lines}}


def set_reason_catalogue(reader: PlantReader, who: Principal, items: Any) -> answers.ReasonLists:
    """Replaces the plant-wide reason list (engineers of all lines, admins); a code still
    used by a classification cannot be dropped (409: retire it)."""
    _allowed(who, Action.MANAGE_REASONS, ALL_LINES)
    try:
        before, after = reader.reason_lists.put_catalogue(parse_catalogue(items))
    except ReasonListError as exc:
        raise OpError(exc.status, exc.message) from None
    auth().record(who, "reasons", target="plant", before=before, after=after)
    return reason_catalogue(reader)


def set_line_reasons(reader: PlantReader, who: Principal, line: str, codes: Any) -> answers.Reasons:
    """Sets the codes a person may pick on ``line`` (null: the plant-wide list)."""
    _allowed(who, Action.MANAGE_REASONS, line)
    try:
        before, after = reader.reason_lists.put_line(line, parse_codes(codes))
    except ReasonListError as exc:
        raise OpError(exc.status, exc.message) from None
    auth().record(who, "reasons", line=line, target=f"line {line}", before=before, after=after)
    return line_reasons(reader, line)


def line_reasons(reader: PlantReader, line: str) -> answers.Reasons:
    cfg = reader.line(line)
    return {"line": line, "by_category": grouped_choices(reader.plant, cfg), "codes": cfg.reasons,
            "source": reader.reason_lists.sources()[line]}


def untagged_stops(reader: PlantReader, line: str, start: float, end: float, now: float,
                   untagged: bool) -> answers.Stops:
    """The window's stops with their stable ids (``untagged``: only unplanned down time
    without a reason, longest first, as the queue shows them)."""
    report = reader.downtime(line, start, end, now)
    events = report["events"]
    if untagged:
        events = sorted((e for e in events if not e["reason"] and not e["planned"] and not e["micro"]
                         and e["lost_s"] > 0), key=lambda e: -e["lost_s"])
    summary = report["summary"]
    return {"line": line, "window": report["window"], "stops": events,
            "untagged_coverage": summary["untagged_coverage"], "untagged_stops": summary["untagged_stops"],
            "untagged_down_s": summary["untagged_down_s"], "tagged_down_s": summary["tagged_down_s"]}
