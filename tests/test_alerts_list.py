"""The alert list's order and length (pure): what needs someone first, late-data records
last, at most ``LIST_MAX`` rows and how many more."""

from __future__ import annotations

from typing import Any

import pytest

from components import alerts_panel
from components.alerts_panel import LIST_MAX, list_items, ordered

T0 = 1_796_000_000.0


def alert(id_: str, raised: float, *, severity: str = "warning", cleared: float | None = None,
          ack: bool = False, late: bool = False) -> dict[str, Any]:
    return {"id": id_, "raised_at": T0 + raised, "severity": severity, "cleared_at": None if cleared is None
            else T0 + cleared, "ack": {"by": "li", "at": T0 + raised + 1} if ack else None, "late": late,
            "flashing": False, "text": id_, "line": "BW1", "machine": "ST10", "message": None}


@pytest.mark.parametrize(("alerts", "order"), [
    ([], []),
    # newest first within a group
    ([alert("a", 1), alert("b", 2)], ["b", "a"]),
    # open before cleared before late, whatever their age
    ([alert("late", 9, late=True), alert("cleared", 8, cleared=8.5), alert("open", 1)], ["open", "cleared", "late"]),
    # open and not acknowledged: urgent, warning, info; then acknowledged (any severity)
    ([alert("info", 5, severity="info"), alert("acked", 9, severity="urgent", ack=True),
      alert("urgent", 1, severity="urgent"), alert("warning", 3)], ["urgent", "warning", "info", "acked"]),
    # an acknowledged one that cleared is a cleared one
    ([alert("acked-cleared", 9, ack=True, cleared=10), alert("acked", 1, ack=True)], ["acked", "acked-cleared"]),
])
def test_the_lists_order(alerts: list[dict[str, Any]], order: list[str]) -> None:
    assert [a["id"] for a in ordered(alerts)] == order


def test_an_open_alert_stays_on_a_list_full_of_late_data_records() -> None:
    late = [alert(f"late{n}", 100 + n, late=True) for n in range(LIST_MAX + 5)]
    rows = list_items([*late, alert("open", 1, severity="urgent")])
    assert len(rows) == LIST_MAX + 1
    first = rows[0].children
    assert first[1].children == "open" and first[3] is not None  # the text, and its Acknowledge button
    assert rows[-1].children == "6 more, not shown"
    assert "d-none" not in alerts_panel.comment_class(late + [alert("open", 1)])  # its button is listed
    assert "d-none" in alerts_panel.comment_class(late)
