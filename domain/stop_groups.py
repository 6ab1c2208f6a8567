"""A window's stops by machine (``stops_by_machine``), and a list of stops that carries that
grouping with it (``GroupedStops``).

Late in a shift a line has over a thousand stops, and every live view of it sums them per
machine (``domain.stop_sums``). Most of them are the stored stops a live window keeps per
commit of the worker's (``store.stop_reads``): grouped there once, the groups are carried
with the list through the classifications (``domain.classification.apply``) to the sums,
and a view groups only the stops it adds (the open edge's) or changes (classified ones).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from operator import attrgetter

from domain.accounting import Stop

Groups = dict[tuple[str, str], list[Stop]]

_line = attrgetter("line")
_start = attrgetter("start")


def stops_by_machine(stops: Iterable[Stop]) -> Groups:
    """The stops by (line, machine), each machine's in the order given (the keys in the order
    they first come); lists of their own (a caller may sort them). Grouped by machine name
    first: a line's view groups its 1,400 stops late in a shift, and a (line, machine) key
    made and hashed per stop cost three times as much; only stops of machines of the same
    name on several lines are grouped by both."""
    if isinstance(stops, GroupedStops):
        return {key: list(group) for key, group in stops.groups.items()}
    stops = stops if isinstance(stops, list) else list(stops)
    by_name: dict[str, list[Stop]] = {}
    for stop in stops:
        group = by_name.get(stop.machine)
        if group is None:
            by_name[stop.machine] = [stop]
        else:
            group.append(stop)
    out: Groups = {}
    for machine, group in by_name.items():
        lines = set(map(_line, group))
        if len(lines) > 1:  # (a plant's report: one name on several lines)
            return _by_line_and_machine(stops)
        out[(group[0].line, machine)] = group
    return out


def _by_line_and_machine(stops: list[Stop]) -> Groups:
    out: Groups = {}
    for stop in stops:
        out.setdefault((stop.line, stop.machine), []).append(stop)
    return out


def groups_of(stops: Iterable[Stop]) -> Mapping[tuple[str, str], Sequence[Stop]]:
    """``stops_by_machine``, read only: a ``GroupedStops``' own groups (not copied)."""
    return stops.groups if isinstance(stops, GroupedStops) else stops_by_machine(stops)


def earliest_start(stops: Iterable[Stop]) -> float:
    """No stop starts before it (inf: none): a ``GroupedStops``' ``low``, kept with it; else
    the earliest start."""
    return stops.low if isinstance(stops, GroupedStops) else min(map(_start, stops), default=math.inf)


def machine_stops(stops: Sequence[Stop], line: str, machine: str) -> Sequence[Stop]:
    """The stops of one machine, in their order (read only)."""
    if isinstance(stops, GroupedStops):
        return stops.groups.get((line, machine), [])
    return [s for s in stops if s.machine == machine and s.line == line]


class GroupedStops(list[Stop]):
    """Stops, in their order, with ``groups``: ``stops_by_machine`` of them, and ``low``: no
    stop starts before it (their earliest start, or earlier: a lower bound; inf when there are
    none). Made once and not changed afterwards (the groups' lists are shared with the
    ``GroupedStops`` made from this one): what adds or replaces stops makes another (``plus``,
    ``replaced``)."""

    __slots__ = ("groups", "low")

    def __init__(self, stops: Iterable[Stop] = (), groups: Groups | None = None, low: float | None = None) -> None:
        """``groups``: ``stops_by_machine(stops)``, when known (else computed here); ``low``:
        the earliest start, or a bound below it, when known (else the earliest, found here)."""
        super().__init__(stops)
        self.groups: Groups = stops_by_machine(list(self)) if groups is None else groups
        self.low: float = min(map(_start, self), default=math.inf) if low is None else low

    def plus(self, more: Sequence[Stop]) -> GroupedStops:
        """These stops, then ``more``: only the groups of ``more``'s machines are copied."""
        groups = dict(self.groups)
        copied: set[tuple[str, str]] = set()
        for stop in more:
            key = (stop.line, stop.machine)
            if key not in copied:
                copied.add(key)
                groups[key] = [*groups.get(key, ())]  # (a new machine: a new key, after the others)
            groups[key].append(stop)
        return GroupedStops([*self, *more], groups, min(self.low, min(map(_start, more), default=math.inf)))

    def replaced(self, out: Sequence[Stop], by: Mapping[int, Sequence[Stop]]) -> GroupedStops:
        """``out``: these stops with each stop ``s`` whose ``id`` is in ``by`` replaced by
        ``by[id(s)]`` (one or more stops of its line and machine, none starting before it)
        where it stood."""
        groups = dict(self.groups)
        for key in {(r[0].line, r[0].machine) for r in by.values()}:
            groups[key] = [r for s in groups[key] for r in by.get(id(s), (s,))]
        return GroupedStops(out, groups, self.low)
