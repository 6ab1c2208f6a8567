"""What the downtime report sums of a window's stops, one machine at a time, in start order
(``MachineSums``, ``machine_sums``); a machine's settled stops summed once (``Settled``).

A machine's stops are taken as ``downtime.claimed_spans`` takes them (``machine_claims``:
copies of one stop, the most final; each second to the earliest stop covering it; an
ongoing stop ends at ``now``, at the latest where the next one starts) and summed in that
order. The report adds the machines' sums in the order of their (line, machine)
(``sums_by_machine``).

Late in a shift a line has over a thousand stops and every live view sums them all. A
stop's part of the sums does not depend on ``now`` once it has ended and its claim ended
inside the window: the sums up to there are kept (``Settled``, by machine and window
start), with the stop objects they were made of, and used again when a view's stops begin
with the same objects and the next one starts later (a copy of the last one, with its
start, may be more final: summed again from the first stop); the reader's stops stay the
same objects while the stored stops and their classifications do: a view sums only the
stops after them (a machine's last stop too, since it ended: none, mostly).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, is_

from domain.accounting import Stop
from domain.downtime import (
    LOSS_FIELDS,
    NO_REASON_GROUP,
    SMALL_STOP_GROUP,
    PlannedIndex,
    StopClass,
    classify_stop,
    is_counted,
    machine_claims,
)
from domain.plant import LossCategory, Plant
from domain.stop_groups import groups_of

_start = attrgetter("start")
MAX_SETTLED = 20_000  # machines' windows kept (then it starts again): 1000 machines, a few windows each


@dataclass(frozen=True, slots=True)
class GroupSums:
    """One Pareto group's loss stops of one machine: their count and lost time, and the
    first one's start, reason code, label and category (the group's, in the report).
    Never changed (``MachineSums.add`` makes another): copies of the sums share them."""

    first: float
    reason: int
    reason_text: str
    category: str
    count: int = 0
    duration_s: float = 0.0


@dataclass(slots=True)
class MachineSums:
    """One machine's stops summed in start order. Sums start from 0 (an int, as ``sum``)
    where the report's did; ``claimed_until``: where the last stop's claim ended."""

    claimed_until: float = -math.inf
    stops: int = 0  # down-time stops (not planned, not micro) with lost time
    micro_stops: int = 0
    planned_stops: int = 0
    untagged_stops: int = 0  # down-time stops without a reason
    down_s: float = 0
    micro_stop_s: float = 0
    planned_down_s: float = 0
    tagged_s: float = 0.0  # the part of ``down_s`` with a reason
    losses: int = 0  # stops with lost time, not planned (micro or down time)
    lost_s: float = 0.0
    failures: int = 0  # equipment-failure down-time stops
    failure_down_s: float = 0
    groups: dict[str, GroupSums] = field(default_factory=dict)
    # ``downtime.loss_buckets``: the claims by loss field, and the availability-loss stops counted
    buckets: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LOSS_FIELDS, 0.0))
    counted: int = 0

    def copy(self) -> MachineSums:
        return MachineSums(self.claimed_until, self.stops, self.micro_stops, self.planned_stops, self.untagged_stops,
                           self.down_s, self.micro_stop_s, self.planned_down_s, self.tagged_s, self.losses,
                           self.lost_s, self.failures, self.failure_down_s, dict(self.groups), dict(self.buckets),
                           self.counted)

    def add(self, stop: Stop, lost: float, plant: Plant, now: float) -> StopClass:
        """One stop with ``lost`` seconds of its claim in planned time; its class."""
        cls = classify_stop(stop, plant, now)
        self.buckets[cls.loss_field] += lost
        if cls.planned:
            self.planned_stops += 1
            self.planned_down_s += lost
            return cls
        if not lost > 0:
            return cls
        self.losses += 1
        self.lost_s += lost
        reason = stop.reason
        if cls.micro:
            self.micro_stops += 1
            self.micro_stop_s += lost
            key = str(reason) if reason else SMALL_STOP_GROUP
        else:
            self.stops += 1
            self.down_s += lost
            if reason:
                self.tagged_s += lost
            else:
                self.untagged_stops += 1
            if cls.category == LossCategory.EQUIPMENT_FAILURE:
                self.failures += 1
                self.failure_down_s += lost
            key = str(reason) if reason else NO_REASON_GROUP
        group = self.groups.get(key)
        if group is None:
            self.groups[key] = GroupSums(stop.start, reason, cls.reason_text, str(cls.category), 1, 0.0 + lost)
        else:
            self.groups[key] = GroupSums(group.first, group.reason, group.reason_text, group.category,
                                         group.count + 1, group.duration_s + lost)
        return cls


def added(parts: Iterable[MachineSums]) -> MachineSums:
    """Machines' sums added up in their order (not their groups, nor ``claimed_until``)."""
    out = MachineSums()
    for part in parts:
        out.stops += part.stops
        out.micro_stops += part.micro_stops
        out.planned_stops += part.planned_stops
        out.untagged_stops += part.untagged_stops
        out.down_s += part.down_s
        out.micro_stop_s += part.micro_stop_s
        out.planned_down_s += part.planned_down_s
        out.tagged_s += part.tagged_s
        out.losses += part.losses
        out.lost_s += part.lost_s
        out.failures += part.failures
        out.failure_down_s += part.failure_down_s
    return out


@dataclass(slots=True)
class Settled:
    """A machine's stops (sorted by start, copies included) whose sums do not change any
    more, and the sums after them."""

    stops: list[Stop]
    sums: MachineSums

    def begins(self, stops: Sequence[Stop], edge: float) -> bool:
        """Whether ``stops`` (sorted by start) begin with these, the next one (if any) starting
        later, and all of them end by ``edge`` (the window's, or ``now``)."""
        n = len(self.stops)
        return (len(stops) >= n and self.sums.claimed_until <= edge and all(map(is_, self.stops, stops))
                and (len(stops) == n or n == 0 or stops[n].start > stops[n - 1].start))


# per (line, machine, window start): the plant and the machine's settled stops (the same for
# every window end after them)
KeptSums = dict[tuple[str, str, float], tuple[Plant, Settled]]


def machine_sums(stops: list[Stop], plant: Plant, planned: PlannedIndex, start: float, end: float, now: float,
                 kept: KeptSums | None = None) -> MachineSums:
    """The sums of one machine's stops (sorted by start) in the window [start, end) up to
    ``now`` (``planned``: its planned time up to there); ``kept``: a caller's cache of
    settled stops (module docstring)."""
    if not stops:
        return MachineSums()
    key = (stops[0].line, stops[0].machine, start)
    edge = min(end, now)
    got = kept.get(key) if kept is not None else None
    if got is not None and got[0] is plant and got[1].begins(stops, edge):
        settled = got[1]
    else:
        settled = Settled([], MachineSums())
    sums = settled.sums.copy()
    done = len(settled.stops)  # the stops settled so far (-1: no more)
    for after, stop, claimed_until, span in machine_claims(stops, done, sums.claimed_until, start, edge, now):
        if done >= 0 and kept is not None and (stop.end is None or claimed_until > edge):
            _keep(kept, key, plant, settled, stops, done, sums)
            done = -1  # this one and the rest may still change
        elif done >= 0:
            done = after
        if span is not None:
            cls = sums.add(stop, planned.seconds(*span), plant, now)
            if is_counted(cls, stop, plant, planned, start, edge, now):
                sums.counted += 1
        sums.claimed_until = claimed_until
    if done >= 0 and kept is not None:  # every stop settled, the last one too
        _keep(kept, key, plant, settled, stops, done, sums)
    return sums


def _keep(kept: KeptSums, key: tuple[str, str, float], plant: Plant, settled: Settled, stops: list[Stop],
          done: int, sums: MachineSums) -> None:
    """The sums of ``stops[:done]`` kept, when more stops settled than were kept."""
    if done > len(settled.stops):
        if len(kept) >= MAX_SETTLED:
            kept.clear()
        kept[key] = (plant, Settled(stops[:done], sums.copy()))


def machine_of(stops: Iterable[Stop], plant: Plant, start: float, end: float, now: float,
               kept: KeptSums | None = None, planned: PlannedIndex | None = None) -> MachineSums:
    """``machine_sums`` of one machine's stops of a window (any order; none: empty sums)."""
    got = sums_by_machine(stops, plant, start, end, now, kept, planned) if min(end, now) > start else []
    return got[0][1] if got else MachineSums()


def sums_by_machine(stops: Iterable[Stop], plant: Plant, start: float, end: float, now: float,
                    kept: KeptSums | None = None, planned: PlannedIndex | None = None
                    ) -> list[tuple[tuple[str, str], MachineSums]]:
    """``machine_sums`` of each machine's stops of a window (any order), by (line, machine);
    ``planned``: an index of the plant's planned time covering the window (else built here)."""
    if planned is None or not planned.covers(start, min(end, now)):
        planned = PlannedIndex(plant, start, min(end, now))
    by_machine = groups_of(stops)  # (not changed: sorted copies)
    return [(key, machine_sums(sorted(by_machine[key], key=_start), plant, planned, start, end, now, kept))
            for key in sorted(by_machine)]
