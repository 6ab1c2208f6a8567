"""Rollups as flat vectors: fast to decode, add in place and turn back into ``Totals``.

Summing a month of hourly rollups for a line is thousands of additions; ``Totals.__add__``
builds a new object (and copies its dicts) every time, so the store sums these
vectors instead and builds one ``Totals`` at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from operator import attrgetter, itemgetter

from domain.contract import ROLLUP_FIELDS, ROLLUP_INT_FIELDS, decode_rollup, encode_rollup
from domain.model import State
from domain.totals import Totals

_CALENDAR = ROLLUP_FIELDS.index("calendar_s")
_PLANNED = ROLLUP_FIELDS.index("planned_operation_s")
_UNKNOWN = ROLLUP_FIELDS.index("unknown_s")
_DICT_FIELDS = {"state_s", "quarter_kwh"}
_NO_DATA_STATE = State.UNKNOWN.value
_rollup_fields = attrgetter(*ROLLUP_FIELDS)  # a Totals' values of ROLLUP_FIELDS, in that order
# the scalars in the order of Totals' fields (its numbers: every one is a rollup field), and which are counts
_TOTALS_NUMBERS = [f.name for f in fields(Totals) if f.name not in _DICT_FIELDS]
_as_totals_order = itemgetter(*(ROLLUP_FIELDS.index(name) for name in _TOTALS_NUMBERS))
_TOTALS_INT_POSITIONS = tuple(i for i, name in enumerate(_TOTALS_NUMBERS) if name in ROLLUP_INT_FIELDS)
if [f.name for f in fields(Totals)][len(_TOTALS_NUMBERS):] != ["state_s", "quarter_kwh"]:
    raise RuntimeError("Totals' dicts must be its last fields (RollupSum.to_totals passes them by position)")


def missing_totals_fields() -> set[str]:
    """Fields of ``Totals`` the rollup format does not store (must stay empty)."""
    return {f.name for f in fields(Totals)} - set(ROLLUP_FIELDS) - _DICT_FIELDS


@dataclass(slots=True)
class RollupSum:
    """Additive totals of one machine (or several) over some interval."""

    scalars: list[float] = field(default_factory=lambda: [0.0] * len(ROLLUP_FIELDS))
    states: dict[str, float] = field(default_factory=dict)
    quarters: dict[float, float] = field(default_factory=dict)

    @classmethod
    def from_totals(cls, totals: Totals) -> RollupSum:
        return cls(
            [float(value) for value in _rollup_fields(totals)],
            dict(totals.state_s),
            {float(q): kwh for q, kwh in totals.quarter_kwh.items()},
        )

    @classmethod
    def decode(cls, text: bytes | str, start: float) -> RollupSum:
        scalars, states, quarters = decode_rollup(text.decode() if isinstance(text, bytes) else text, start)
        return cls(scalars, states, quarters)

    def encode(self, start: float) -> str:
        return encode_rollup(self.scalars, self.states, self.quarters, start)

    def copy(self) -> RollupSum:
        return RollupSum(list(self.scalars), dict(self.states), dict(self.quarters))

    def add(self, other: RollupSum) -> RollupSum:
        """Adds ``other`` in place; returns self."""
        return self._add(other.scalars, other.states, other.quarters)

    def add_totals(self, totals: Totals) -> RollupSum:
        """``add(RollupSum.from_totals(totals))`` without making that sum (the same figures, bit
        for bit: a count adds to a float as its float does); returns self."""
        return self._add(_rollup_fields(totals), totals.state_s, totals.quarter_kwh)

    def _add(self, scalars: Iterable[float], states: Mapping[str, float], quarters: Mapping[float, float]
             ) -> RollupSum:
        mine = self.scalars
        for i, value in enumerate(scalars):
            if value:
                mine[i] += value
        own_states = self.states
        for name, seconds in states.items():
            own_states[name] = own_states.get(name, 0.0) + seconds
        own_quarters = self.quarters
        for q, kwh in quarters.items():
            quarter = float(q)  # (a Totals' quarter may be an int)
            own_quarters[quarter] = own_quarters.get(quarter, 0.0) + kwh
        return self

    def add_no_data(self, calendar_s: float, planned_s: float) -> RollupSum:
        """Adds time that no rollup covers (before a machine's first minute): calendar time in
        the UNKNOWN state whose planned part is unknown time - what the engine closes for a
        minute without data (``domain.accounting.add_time``). No counts, no energy. Planned
        busy time follows when the window is classified (PBT = planned operation time -
        planned down time). Returns self."""
        mine = self.scalars
        for i, value in ((_CALENDAR, calendar_s), (_PLANNED, planned_s), (_UNKNOWN, planned_s)):
            if value:
                mine[i] += value
        states = self.states
        states[_NO_DATA_STATE] = states.get(_NO_DATA_STATE, 0.0) + calendar_s
        return self

    @property
    def calendar_s(self) -> float:
        return self.scalars[_CALENDAR]

    def is_empty(self) -> bool:
        return not any(self.scalars) and not self.states and not self.quarters

    def to_totals(self) -> Totals:
        values = list(_as_totals_order(self.scalars))  # positional: a live view makes one per machine
        for i in _TOTALS_INT_POSITIONS:
            values[i] = round(values[i])
        return Totals(*values, dict(self.states), dict(self.quarters))  # type: ignore[call-arg]  # all of its fields


def sum_all(parts: list[RollupSum]) -> RollupSum:
    out = RollupSum()
    for part in parts:
        out.add(part)
    return out
