"""``domain.slots.shallow_copier``: what ``dataclasses.replace(obj)`` gives, without ``__init__``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from domain.counters import CumulativeCounter
from domain.slots import shallow_copier
from domain.totals import Totals


@pytest.mark.parametrize("value", [
    Totals(calendar_s=60.0, run_s=42.5, good_count=7, state_s={"running": 42.5}, quarter_kwh={900.0: 0.25}),
    Totals(),
    CumulativeCounter(2**16),
])
def test_a_copy_equals_what_replace_gives_and_is_another_object(value: object) -> None:
    copy = shallow_copier(type(value))(value)
    assert copy == replace(value) == value  # type: ignore[type-var]
    assert copy is not value and type(copy) is type(value)


def test_every_field_is_copied_and_shared_not_deep_copied() -> None:
    @dataclass(slots=True)
    class Three:
        a: int = 0
        b: list[int] = field(default_factory=list)
        c: str = "x"

    old = Three(5, [1], "y")
    new = shallow_copier(Three)(old)
    assert (new.a, new.b, new.c) == (5, [1], "y") and new.b is old.b
    new.a = 6
    assert old.a == 5


def test_a_class_that_sets_itself_up_is_refused() -> None:
    @dataclass
    class Checked:
        a: int = 0

        def __post_init__(self) -> None:
            self.a = abs(self.a)

    with pytest.raises(TypeError, match="__post_init__"):
        shallow_copier(Checked)
    with pytest.raises(TypeError, match="dataclass"):
        shallow_copier(int)
