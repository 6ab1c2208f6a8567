"""Human classifications of stops: a reason (and comment) set by a person overrides the
PLC's, and a stop may be split at a time into two reasons.

Pure. A stop is named by a stable id derived from (line, machine, start in ms): the
stop records the worker writes keep their start, so a classification made today still
applies when last month's window is asked for again. When late data makes the worker
rewrite a stop with another start, the classification follows it by overlap
(``attach``): the stop of the same machine that covers most of the classified interval. ``apply`` turns the PLC's stops
into the stops every figure is computed from (``domain.downtime``, ``domain.kpi``):
the human reason replaces the PLC's in the ``reason`` field, so the Pareto, the loss
categories, availability and the shift table all re-file the stop at once, for any
window; the PLC's code stays on the record (``plc_reason``) so screens show both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress
from operator import is_not
from typing import Any, cast

from domain.accounting import Stop
from domain.answers import Coverage as CoverageAnswer
from domain.downtime import stop_end
from domain.plant import Line, Plant, Reason
from domain.stop_groups import GroupedStops
from domain.stop_sums import KeptSums, MachineSums, added, sums_by_machine

SEP = "~"
MAX_COMMENT = 500


MAX_UNCLASSIFIED = 200_000  # stops kept by ``unclassified``'s cache (then it starts again)


def stop_id(line: str, machine: str, start: float) -> str:
    """Stable id of a stop: ``<line>~<machine>~<start ms>`` (ids use only [A-Za-z0-9_.-])."""
    return f"{line}{SEP}{machine}{SEP}{round(start * 1000)}"


def parse_stop_id(text: str) -> tuple[str, str, float] | None:
    parts = text.split(SEP)
    if len(parts) != 3 or not parts[0] or not parts[1] or not parts[2].isdigit() or len(parts[2]) > 16:
        return None
    return parts[0], parts[1], int(parts[2]) / 1000.0


@dataclass(frozen=True, slots=True)
class Classification:
    """What a person said about one stop: ``reason`` from its start, then each split
    ``(at, reason)`` from ``at`` on (times epoch s, increasing)."""

    reason: int
    comment: str = ""
    by: str = ""
    at: float = 0.0
    splits: tuple[tuple[float, int], ...] = ()
    end: float | None = None  # the stop's end when classified (None: ongoing then, or not recorded)

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "comment": self.comment, "by": self.by, "at": self.at,
                "splits": [[t, r] for t, r in self.splits], "end": self.end}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Classification:
        splits = tuple((float(t), int(r)) for t, r in data.get("splits") or ())
        end = data.get("end")
        return cls(int(data["reason"]), str(data.get("comment") or ""), str(data.get("by") or ""),
                   float(data.get("at") or 0.0), splits, float(end) if end is not None else None)

    def interval(self, start: float) -> tuple[float, float]:
        """The stretch of time this classification was made for (its stop started at
        ``start``): to the stop's end then, else to when it was made (an ongoing stop
        lasted at least that long), at least a second."""
        end = self.end if self.end is not None else self.at
        return start, max(end, start + 1.0)


@dataclass(frozen=True, slots=True)
class ClassifiedStop(Stop):
    """A stop as the figures use it, with what the PLC said and who classified it."""

    plc_reason: int = 0
    stop_id: str = ""
    comment: str = ""
    classified_by: str = ""
    piece: int = 0  # 0, or 1, 2, ... for the parts of a split stop


def attach(stops: Sequence[Stop], classifications: Mapping[str, Classification],
           ids: Sequence[str] | None = None) -> dict[str, Classification]:
    """Which classification each stop carries, by the stop's id: its own id's; else one
    made for a stop of the same machine that late data rewrote with another start, when
    this stop covers most (over half) of the classified interval. A classification
    attaches to one stop at most, a stop carries one at most. ``ids``: the stops' ids
    (``stop_id``), when known."""
    out: dict[str, Classification] = {}
    if not classifications:
        return out
    if ids is None:
        ids = [stop_id(stop.line, stop.machine, stop.start) for stop in stops]
    open_stops: dict[str, list[tuple[str, Stop]]] = {}
    for stop, sid in zip(stops, ids, strict=True):
        if sid in classifications:
            out[sid] = classifications[sid]
        else:
            open_stops.setdefault(stop.machine, []).append((sid, stop))
    used = set(out)
    # newest classification first: a stop moved twice keeps what a person said last
    for csid, cls in sorted(classifications.items(), key=lambda kv: -kv[1].at):
        parsed = parse_stop_id(csid)
        if csid in used or parsed is None:
            continue
        a, b = cls.interval(parsed[2])
        best, best_overlap = None, (b - a) / 2
        for sid, stop in open_stops.get(parsed[1], []):
            overlap = min(b, stop.end if stop.end is not None else math.inf) - max(a, stop.start)
            if sid not in out and overlap > best_overlap:
                best, best_overlap = sid, overlap
        if best is not None:
            out[best] = cls
    return out


# per stop (``id(stop)``): the stop and its ``ClassifiedStop`` without a classification
Unclassified = dict[int, tuple[Stop, ClassifiedStop]]


def unclassified(stop: Stop, kept: Unclassified | None = None) -> ClassifiedStop:
    """The stop as ``apply`` gives it without a classification (its id and PLC code);
    ``kept``: a cache of them by ended stop object (a reader's: its stops stay the same
    objects while the stored stops do), which holds each stop (so its id is not reused
    meanwhile).
    A ``ClassifiedStop`` is that already: ``apply`` is given the PLC's stops, which a reader
    parses into this form (``store.stop_reads``)."""
    if stop.__class__ is ClassifiedStop:
        return stop
    got = kept.get(id(stop)) if kept is not None else None
    if got is not None and got[0] is stop:
        return got[1]
    out = ClassifiedStop(stop.line, stop.machine, stop.start, stop.end, stop.state, stop.reason,
                         plc_reason=stop.reason, stop_id=stop_id(stop.line, stop.machine, stop.start))
    if kept is not None and stop.end is not None:  # an ongoing stop is another object at every read
        if len(kept) >= MAX_UNCLASSIFIED:
            kept.clear()
        kept[id(stop)] = (stop, out)
    return out


# per (stop object, a classification it carries): the stop and its ``ClassifiedStop``s (``apply``)
Pieces = dict[tuple[int, Classification], tuple[Stop, list[ClassifiedStop]]]


def apply(stops: Iterable[Stop], classifications: Mapping[str, Classification],
          kept: Unclassified | None = None, plain: list[ClassifiedStop] | None = None,
          pieces: Pieces | None = None) -> list[Stop]:
    """The stops with human classifications applied (``attach``; unclassified ones
    unchanged, as ``ClassifiedStop`` so every stop carries its id and PLC code: ``unclassified``,
    from ``kept`` when there; ``plain``: those of ``stops``, when made already; ``pieces``:
    a cache of the classified stops' pieces, as ``kept``: the same stop and classification
    give the same objects, which the downtime report's settled sums key on).
    ``GroupedStops`` give ``GroupedStops``: the groups of the machines with a stop replaced
    made again, the others' shared (``domain.stop_groups``)."""
    given, stops = stops, stops if isinstance(stops, list) else list(stops)  # (not changed)
    if plain is None:
        plain = [unclassified(stop, kept) for stop in stops]
    if not classifications:
        if not isinstance(given, GroupedStops):
            return cast(list[Stop], plain)
        if plain is stops or not any(map(is_not, stops, plain)):
            return given  # (the same stops: all of them ``ClassifiedStop`` already)
        # those that were not ``ClassifiedStop`` yet: replaced
        return given.replaced(plain, {id(s): (p,) for s, p in compress(zip(stops, plain, strict=True),
                                                                        map(is_not, stops, plain))})
    attached = attach(stops, classifications, [p.stop_id for p in plain])
    out: list[Stop] = []
    by: dict[int, Sequence[Stop]] = {}  # id(stop) -> what replaced it
    for stop, same in zip(stops, plain, strict=True):
        cls = attached.get(same.stop_id)
        if cls is None:
            out.append(same)
            if same is not stop:
                by[id(stop)] = (same,)
            continue
        if pieces is None or stop.end is None:  # an ongoing stop is another object at every read
            made = _pieces(stop, same.stop_id, cls)
        else:
            got = pieces.get((id(stop), cls))
            if got is None or got[0] is not stop:
                if len(pieces) >= MAX_UNCLASSIFIED:
                    pieces.clear()
                got = pieces[(id(stop), cls)] = (stop, _pieces(stop, same.stop_id, cls))
            made = got[1]
        out.extend(made)
        by[id(stop)] = made
    if isinstance(given, GroupedStops):
        return given.replaced(out, by) if by else given  # (none replaced: the same stops)
    return out


def _pieces(stop: Stop, sid: str, cls: Classification) -> list[ClassifiedStop]:
    cuts = [(t, r) for t, r in cls.splits if t > stop.start and (stop.end is None or t < stop.end)]
    bounds = [(stop.start, cls.reason), *cuts]
    out: list[ClassifiedStop] = []
    for i, (a, reason) in enumerate(bounds):
        b = bounds[i + 1][0] if i + 1 < len(bounds) else stop.end
        out.append(ClassifiedStop(stop.line, stop.machine, a, b, stop.state, reason, plc_reason=stop.reason,
                                  stop_id=sid, comment=cls.comment, classified_by=cls.by,
                                  piece=i + 1 if cuts else 0))
    return out


def reason_choices(plant: Plant, line: Line) -> dict[int, Reason]:
    """The reasons a person may pick on ``line``: its own list, else the plant's (a
    retired reason is never offered)."""
    codes = line.reasons if line.reasons is not None else sorted(plant.reasons)
    return {code: plant.reasons[code] for code in codes if code in plant.reasons and not plant.reasons[code].retired}


def with_reason_lists(plant: Plant, reasons: Mapping[int, Reason] | None,
                      line_lists: Mapping[str, list[int] | None]) -> Plant:
    """The plant with managed reason lists layered over its file's: ``reasons`` (the
    plant-wide catalogue, None: the file's) and each line's own list (absent: the file's;
    None: none, i.e. the plant-wide list)."""
    if reasons is None and not line_lists:
        return plant
    lines = [line.model_copy(update={"reasons": line_lists[line.id]}) if line.id in line_lists else line
             for line in plant.lines]
    return plant.model_copy(update={"reasons": dict(reasons) if reasons is not None else plant.reasons,
                                    "lines": lines})


def grouped_choices(plant: Plant, line: Line) -> dict[str, list[tuple[int, str]]]:
    """The line's reasons grouped by loss category (for pickers), codes in order."""
    out: dict[str, list[tuple[int, str]]] = {}
    for code, reason in sorted(reason_choices(plant, line).items()):
        out.setdefault(str(reason.category), []).append((code, reason.text))
    return out


def check_reason(plant: Plant, line: Line, reason: object) -> str | None:
    """None if ``reason`` may be chosen on ``line``, else what is wrong."""
    if isinstance(reason, bool) or not isinstance(reason, int):
        return "reason: a reason code (integer) is required"
    if reason not in reason_choices(plant, line):
        return f"reason: {reason} is not in line {line.id}'s reason list"
    return None


def check_comment(comment: object) -> str | None:
    if comment is None:
        return None
    if not isinstance(comment, str):
        return "comment: text is required"
    if len(comment) > MAX_COMMENT:
        return f"comment: at most {MAX_COMMENT} characters"
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in comment):
        return "comment: control characters are not allowed"
    return None


def check_split(stop: Stop, at: float, now: float) -> str | None:
    """A split time must lie strictly inside the stop (an ongoing one: before now)."""
    end = stop_end(stop, now)
    if not math.isfinite(at) or not stop.start < at < end:
        return "at: the split time must lie inside the stop"
    return None


@dataclass(slots=True)
class Coverage:
    """Untagged coverage: the share of unplanned down time (availability losses) whose
    stop has a reason (from the PLC or a person). None without down time."""

    down_s: float = 0.0
    tagged_s: float = 0.0
    untagged_stops: int = 0
    machines: set[str] = field(default_factory=set)

    @property
    def share(self) -> float | None:
        return self.tagged_s / self.down_s if self.down_s > 0 else None

    @classmethod
    def of(cls, sums: MachineSums) -> Coverage:
        """The coverage of a downtime report's sums (``domain.stop_sums``)."""
        return cls(down_s=float(sums.down_s), tagged_s=sums.tagged_s, untagged_stops=sums.untagged_stops)

    def to_dict(self) -> CoverageAnswer:
        return {"untagged_coverage": self.share, "tagged_down_s": self.tagged_s, "untagged_down_s":
                self.down_s - self.tagged_s, "untagged_stops": self.untagged_stops}


def coverage(stops: Sequence[Stop], plant: Plant, start: float, end: float, now: float,
             kept: KeptSums | None = None) -> Coverage:
    """Down time in [start, min(end, now)) inside planned operation time, by tagged or not:
    the downtime report's figures (``domain.stop_sums``; ``kept``: its settled sums)."""
    if min(end, now) <= start:
        return Coverage()
    return Coverage.of(added(part for _, part in sums_by_machine(stops, plant, start, end, now, kept)))
