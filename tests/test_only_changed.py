"""A live tick of the line and machine pages sends only what changed (``components.push``:
``digests``, ``changed``). Each panel's drawn record carries a digest per output of what
the browser holds; a tick sends the outputs whose digest moved and writes the record
again, or sends nothing.

The callbacks run through the app's real ``/_dash-update-component`` (``tests.callback_support``):
an output that comes back as ``no_update`` is one the response left out.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import pytest
from dash import html, no_update

from components import downtime_panel, energy_panel, machine_page, oee_panel, push, ranges
from domain import answers
from tests.callback_support import call, is_figure, is_patch
from tests.test_components import NOW, SampleReader, make_app

SHIFT = {"start": "shift", "end": None}
MACHINE = {"line": "BW1", "machine": "ST30"}


class MovingReader(SampleReader):
    """The sample plant, whose figures move when a test says so (at the same clock)."""

    def __init__(self) -> None:
        super().__init__()
        self.GOOD = dict(SampleReader.GOOD)
        self.last_bucket_oee: float | None = None  # the current hour's OEE, when set
        self.last_bucket_kwh_per_good: float | None = None
        self.tip_dress_category: str | None = None  # the first tip dress re-filed, when set

    def kpi_series(self, line: str, start: float, end: float, step_s: float, now: float,
                   machine: str | None = None) -> answers.KpiSeries:
        answer = super().kpi_series(line, start, end, step_s, now, machine)
        last = answer["buckets"][-1]
        if self.last_bucket_oee is not None:
            last["oee"] = self.last_bucket_oee
        if self.last_bucket_kwh_per_good is not None:
            last["energy"]["kwh_per_good_unit"] = self.last_bucket_kwh_per_good
        return answer

    def downtime(self, line: str, start: float, end: float, now: float) -> answers.Downtime:
        answer = super().downtime(line, start, end, now)
        if self.tip_dress_category is not None:
            answer["events"][1]["category"] = self.tip_dress_category
        return answer


def without_digests(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != push.SHOWN}


def moved(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """The outputs whose digests differ between two drawn records."""
    return {name for name, value in after[push.SHOWN].items() if before[push.SHOWN].get(name) != value}


# --- the digests ----------------------------------------------------------------------

@pytest.mark.parametrize(("a", "b", "same"), [
    ({"x": [1, 2], "y": None}, {"y": None, "x": [1, 2]}, True),  # key order does not count
    ({"x": [1, 2]}, {"x": [2, 1]}, False),
    ([1.0, None, "a"], [1.0, None, "a"], True),
    (html.Div("12 min", className="live"), html.Div("12 min", className="live"), True),
    (html.Div("12 min", className="live"), html.Div("13 min", className="live"), False),
    (html.Div([html.Span("a")]), html.Div([html.Span("b")]), False),  # nested components by their content
    (go.Figure(go.Bar(x=[1], y=[2])), go.Figure(go.Bar(x=[1], y=[2])), True),
    (go.Figure(go.Bar(x=[1], y=[2])), go.Figure(go.Bar(x=[1], y=[3])), False),
])
def test_a_digest_follows_the_content(a: Any, b: Any, same: bool) -> None:
    assert (push.digest(a) == push.digest(b)) is same
    assert len(push.digest(a)) == 16


def test_changed_names_the_outputs_whose_digest_moved() -> None:
    shown = push.digests({"tiles": [1], "note": "x"})
    assert push.changed(None, shown) == {"tiles", "note"}  # nothing held: everything
    assert push.changed({"params": SHIFT}, shown) == {"tiles", "note"}  # a record without digests
    assert push.changed({push.SHOWN: shown}, shown) == set()
    assert push.changed({push.SHOWN: {**shown, "note": "old"}}, shown) == {"note"}
    assert push.unless_held({"tiles": [1], "note": "x"}, {"note"}) == [no_update, "x"]


# --- the OEE panel --------------------------------------------------------------------

def test_oee_tick_sends_only_the_outputs_that_changed() -> None:
    reader = MovingReader()
    app = make_app(reader, NOW)
    full = call(app, oee_panel.refresh, SHIFT, None, None, "BW1", None, triggered=ranges.WINDOW)
    assert set(full[5][push.SHOWN]) == {"tiles", "note", "hourly", "waterfall"}
    tick = call(app, oee_panel.refresh, SHIFT, None, 1, "BW1", full[5], triggered=oee_panel.LIVE.pulse)
    assert all(v is no_update for v in tick)  # right after the draw, same data: the response is empty

    reader.GOOD["BW1"] += 5  # five more good parts: the quality tile's text
    reader.last_bucket_oee = 0.5  # this hour's bar
    tiles, note, hourly, waterfall, table, record = call(app, oee_panel.refresh, SHIFT, None, 2, "BW1", full[5],
                                                         triggered=oee_panel.LIVE.pulse)
    assert "220 good" in str(tiles) and is_patch(hourly)
    assert [op["params"]["value"][-1] for op in hourly["operations"]
            if op["location"] == ["data", 0, "y"]] == [50.0]
    assert note is no_update and waterfall is no_update and table is no_update
    assert without_digests(record) == without_digests(full[5])  # params, filter, live as the draw wrote them
    assert record["params"] == SHIFT and record["live"] is True and record["filter"] is None
    assert record["redraw_after_ms"] == ranges.REDRAW_AFTER_MS
    assert moved(full[5], record) == {"tiles", "hourly"}
    again = call(app, oee_panel.refresh, SHIFT, None, 3, "BW1", record, triggered=oee_panel.LIVE.pulse)
    assert all(v is no_update for v in again)  # the browser holds those now


def test_oee_draw_digests_what_a_tick_would_send() -> None:
    """A redraw and a tick compute the same digests: a draw is never followed by a tick
    that sends its values again."""
    reader = MovingReader()
    app = make_app(reader, NOW)
    full = call(app, oee_panel.refresh, SHIFT, None, None, "BW1", None, triggered=ranges.WINDOW)
    reader.last_bucket_oee = 0.4
    tick = call(app, oee_panel.refresh, SHIFT, None, 1, "BW1", full[5], triggered=oee_panel.LIVE.pulse)
    redraw = call(app, oee_panel.refresh, SHIFT, 1, None, "BW1", full[5], triggered=oee_panel.LIVE.redraw)
    assert is_figure(redraw[2]) and redraw[5] == tick[5]


# --- the energy panel -----------------------------------------------------------------

def test_energy_tick_sends_the_bars_only_when_they_changed() -> None:
    reader = MovingReader()
    app = make_app(reader, NOW)
    tiles, fig, _extend, per_good, power, full = call(app, energy_panel.refresh, SHIFT, None, None, "BW1", None, None,
                                                      triggered=ranges.WINDOW)
    assert is_figure(fig) and is_figure(per_good) and set(full[push.SHOWN]) == {"tiles", "per_good"}
    tick = call(app, energy_panel.refresh, SHIFT, None, 1, "BW1", full, power, triggered=energy_panel.LIVE.pulse)
    assert all(v is no_update for v in tick)  # no new kW point, same figures: an empty response

    reader.last_bucket_kwh_per_good = 9.25
    tiles2, fig2, extend2, per_good2, power2, record = call(app, energy_panel.refresh, SHIFT, None, 2, "BW1", full,
                                                            power, triggered=energy_panel.LIVE.pulse)
    assert is_patch(per_good2) and "9.25" in str(per_good2)
    assert all(v is no_update for v in (tiles2, fig2, extend2, power2))
    assert without_digests(record) == without_digests(full) and moved(full, record) == {"per_good"}


# --- the downtime panel ---------------------------------------------------------------

def test_downtime_tick_right_after_a_draw_sends_nothing() -> None:
    app = make_app(MovingReader(), NOW)
    full = call(app, downtime_panel.refresh, SHIFT, None, None, None, "BW1", None, triggered=ranges.WINDOW)
    cells = {downtime_panel.ONGOING: [{"type": downtime_panel.ONGOING, "row": 0}]}
    assert set(full[6][push.SHOWN]) == {*downtime_panel.OUTPUTS, "ongoing"}
    tick = call(app, downtime_panel.refresh, SHIFT, None, None, 1, "BW1", full[6],
                triggered=downtime_panel.LIVE.pulse, matching=cells)
    assert tick == (*[no_update] * 7, [no_update])  # the ongoing stop's cell too: the same minute


def test_downtime_tick_after_a_stop_changed_sends_what_shows_it() -> None:
    reader = MovingReader()
    app = make_app(reader, NOW)
    full = call(app, downtime_panel.refresh, SHIFT, None, None, None, "BW1", None, triggered=ranges.WINDOW)
    cells = {downtime_panel.ONGOING: [{"type": downtime_panel.ONGOING, "row": 0}]}
    reader.tip_dress_category = "equipment_failure"  # a tip dress re-filed: the list's category column
    summary, timeline, by_duration, by_count, stops, label, record, ongoing = call(
        app, downtime_panel.refresh, SHIFT, None, None, 2, "BW1", full[6],
        triggered=downtime_panel.LIVE.pulse, matching=cells)
    assert "Tip dress" in str(stops) and "Equipment failure" in str(stops)
    # the timeline, the Paretos, the tiles and the filter label show nothing of it: not sent
    assert all(v is no_update for v in (summary, timeline, by_duration, by_count, label))
    assert ongoing == [no_update]  # the new list brings its cells
    assert record["key"] != full[6]["key"] and moved(full[6], record) == {"stops"}
    assert without_digests({**record, "key": None}) == without_digests({**full[6], "key": None})


def test_downtime_tick_a_minute_later_patches_the_ongoing_stop() -> None:
    """An ongoing stop's duration grows with the clock (the reader's ``duration_s`` too):
    the stops and segments are the same, so the figures are patched, the list stays and
    only its ongoing cell moves (drawing the timeline whole on every tick cost the server
    more than the rest of the tick)."""
    class StopGoesOn(MovingReader):
        """The sample plant's stops as of NOW (the sample's are placed relative to the
        clock), the ongoing one lasting to the clock's now, as the real reader's does."""

        def downtime(self, line: str, start: float, end: float, now: float) -> answers.Downtime:
            answer = super().downtime(line, start, end, NOW)
            for event in answer["events"]:
                if event["end"] is None:
                    event["duration_s"] = event["in_window_s"] = event["lost_s"] = now - event["start"]
            return answer

    reader = StopGoesOn()
    full = call(make_app(reader, NOW), downtime_panel.refresh, SHIFT, None, None, None, "BW1", None,
                triggered=ranges.WINDOW)
    cells = {downtime_panel.ONGOING: [{"type": downtime_panel.ONGOING, "row": 0}]}
    summary, timeline, by_duration, by_count, stops, label, record, ongoing = call(
        make_app(reader, NOW + 60), downtime_panel.refresh, SHIFT, None, None, 1, "BW1", full[6],
        triggered=downtime_panel.LIVE.pulse, matching=cells)
    assert is_patch(timeline) and not is_figure(by_duration)  # patched (here its rows did not move)
    assert stops is no_update and by_count is no_update and label is no_update
    assert ongoing != [no_update]  # "13 min" now
    assert record["key"] == full[6]["key"] and "stops" not in moved(full[6], record)


# --- the machine page -----------------------------------------------------------------

def test_machine_tick_sends_only_the_outputs_that_changed() -> None:
    reader = MovingReader()
    app = make_app(reader, NOW)
    full = call(app, machine_page.refresh, SHIFT, None, None, MACHINE, None, triggered=ranges.WINDOW)
    assert set(full[7][push.SHOWN]) == set(machine_page.OUTPUTS)
    reader.GOOD["BW1"] += 1
    tick = call(app, machine_page.refresh, SHIFT, None, 1, MACHINE, full[7], triggered=machine_page.LIVE_IDS.pulse)
    assert "216 good" in str(tick[1])
    assert [i for i, v in enumerate(tick[:7]) if v is not no_update] == [1]  # the tiles only
    assert without_digests(tick[7]) == without_digests(full[7]) and moved(full[7], tick[7]) == {"tiles"}


def test_machine_tick_a_minute_later_moves_the_clock_texts() -> None:
    full = call(make_app(SampleReader(), NOW), machine_page.refresh, SHIFT, None, None, MACHINE, None,
                triggered=ranges.WINDOW)
    tick = call(make_app(SampleReader(), NOW + 60), machine_page.refresh, SHIFT, None, 1, MACHINE, full[7],
                triggered=machine_page.LIVE_IDS.pulse)
    assert "Fault since 10:20 \u00b7 12 min" in str(tick[0])  # the live card follows the clock (and this reader)
    assert is_figure(tick[3])  # the timeline's open segment grew
    assert without_digests(tick[7]) == without_digests(full[7])
