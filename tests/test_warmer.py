"""``components.warm.Warmer``: the live reads screens made of a line, made again for its next
version (pure: a fake clock, reads as plain functions)."""

from __future__ import annotations

import contextvars
from typing import Any

from components.data import DataUnavailable
from components.warm import Warmer

WHO = contextvars.ContextVar("who", default="nobody")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_reads_of_the_line_are_made_again_in_the_asking_request_context() -> None:
    clock = Clock()
    warmer = Warmer(recent_s=30, clock=clock)
    made: list[tuple[str, str]] = []
    token = WHO.set("wall screen")
    try:
        warmer.note("BW1", ("line_kpis", "BW1"), lambda: made.append(("BW1 kpis", WHO.get())))
        warmer.note("CM1", ("line_kpis", "CM1"), lambda: made.append(("CM1 kpis", WHO.get())))
    finally:
        WHO.reset(token)
    warmer.warm("BW1")
    assert made == [("BW1 kpis", "wall screen")]  # only BW1's, as the screen's request saw the world
    assert warmer.warmed == 1


def test_a_read_nobody_asked_for_lately_is_forgotten() -> None:
    clock = Clock()
    warmer = Warmer(recent_s=30, clock=clock)
    made: list[str] = []

    def again() -> None:  # a warm-up that asks through the same path (components.data.line_views)
        made.append("view")
        warmer.note("BW1", "view", again)

    warmer.note("BW1", "view", again)
    clock.t += 20
    warmer.warm("BW1")
    clock.t += 20  # 40 s after the screen asked; the warm-up's own asking does not count
    warmer.warm("BW1")
    assert made == ["view"]
    assert len(warmer) == 0


def test_a_failing_read_stops_that_lines_warm_up_quietly() -> None:
    warmer = Warmer(clock=Clock())
    made: list[str] = []

    def unavailable() -> Any:
        raise DataUnavailable("Redis is restarting")

    warmer.note("BW1", "a", unavailable)
    warmer.note("BW1", "b", lambda: made.append("b"))
    warmer.warm("BW1")  # no exception: the screens will see Redis down themselves
    assert made == []


def test_a_read_marked_first_is_made_before_the_others_of_its_line() -> None:
    """A line's view keeps the KPIs that /api/lines' read then finds: it goes first, the
    others in the order the screens asked."""
    warmer = Warmer(clock=Clock())
    made: list[str] = []
    warmer.note("BW1", "kpis", lambda: made.append("kpis"))
    warmer.note("BW1", "downtime", lambda: made.append("downtime"))
    warmer.note("BW1", "view", lambda: made.append("view"), first=True)
    warmer.warm("BW1")
    assert made == ["view", "kpis", "downtime"]


def test_warm_ups_over_their_cpu_budget_hold_versions_back_until_the_window_passes() -> None:
    """``WarmUps.over_budget``: more than ``budget`` of a core over the last 2 s (the
    finished warm-ups' CPU, kept as a running sum), and no longer once they leave the window."""
    from store.live_warm import BUDGET_WINDOW_S, WarmUps

    warm_ups = WarmUps(budget=0.5)  # 1 s of CPU per 2 s window
    assert not warm_ups.over_budget(100.0)
    warm_ups.finished(1, "BW1", 0.6, 100.0)  # no such batch: only the CPU counts
    assert not warm_ups.over_budget(100.1)
    warm_ups.finished(2, "CM1", 0.5, 100.5)
    assert warm_ups.over_budget(100.6)  # 1.1 s > 1.0 s
    assert not warm_ups.over_budget(100.0 + BUDGET_WINDOW_S + 0.01)  # the first left the window: 0.5 s
    assert warm_ups.cpu and not warm_ups.over_budget(100.5 + BUDGET_WINDOW_S + 0.01)
    assert not warm_ups.cpu
    warm_ups.finished(3, "BR1", 1.2, 200.0)
    assert warm_ups.over_budget(200.0)
