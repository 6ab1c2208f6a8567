"""The demo plant's machines send the stop reasons of their own kind of line: welding
faults on BW1, machining on CM1, the mill's on BR1 (plus the codes every line shares),
so the screens' Pareto and stop lists read like the plant they show."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from collectors.sim.machine_model import DEMO_LINE_REASONS, calendar_segments, line_reasons, start_models
from config.loader import DEMO_PLANT, load_plant
from domain.model import Signal

PLANT = load_plant(DEMO_PLANT)
SHARED = {20, 30, 31, 40, 41}


@pytest.mark.parametrize(("line", "codes", "expected"), [
    ("BW1", (2, 3, 4, 5, 6, 7, 9, 11), (2, 3, 4, 5)),
    ("CM1", (2, 3, 4, 5, 6, 7, 9, 11), (6, 7)),
    ("BR1", (1, 8, 10, 12, 20), (10, 12, 20)),
    ("XX9", (1, 8, 10), (1, 8, 10)),  # another plant's line: every code
    ("CM1", (1, 10), (1, 10)),  # none of the line's own: every code rather than none
])
def test_line_reasons(line: str, codes: tuple[int, ...], expected: tuple[int, ...]) -> None:
    assert line_reasons(line, codes) == expected


def test_a_simulated_day_sends_each_line_its_own_reasons() -> None:
    start = 1_764_547_200.0  # 2025-12-01 08:00 plant time
    models = start_models(PLANT, start, seed=3)
    segments = calendar_segments(PLANT, ZoneInfo(PLANT.timezone), start, start + 86_400)
    sent: dict[str, set[int]] = {line.id: set() for line in PLANT.lines}
    for (line, _machine), model in models.items():
        for write in model.advance(segments):
            if write.signal == Signal.REASON and write.value:
                sent[line].add(int(write.value))
    for line, codes in sent.items():
        own = codes - SHARED
        assert own, f"{line} sent no reason of its own"
        assert own <= DEMO_LINE_REASONS[line], (line, sorted(codes))
