"""Dashboard components: pure builders with hand-made reader answers, callbacks called as
plain functions inside the app's request context, and the app's served HTML and assets."""

from __future__ import annotations

import random
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dash.exceptions import PreventUpdate

from api.context import config_of
from components import (
    app_factory,
    data,
    downtime_panel,
    energy_panel,
    line_page,
    line_view,
    machine_page,
    oee_panel,
    overview,
    panel_data,
    ranges,
    theme,
    wall,
)
from config.loader import DEMO_PLANT, load_plant
from config.settings import Settings
from domain import andon, answers
from domain.model import State
from tests.callback_support import call, is_figure, is_patch
from tests.contract_support import checked
from tests.support import Client, in_request

PLANT = load_plant(DEMO_PLANT)
TZ = ZoneInfo(PLANT.timezone)
# Wednesday 25 Nov 2026, 10:32 plant time: shift A, 3 h 32 min in (15 min tea break taken).
NOW = datetime(2026, 11, 25, 10, 32, tzinfo=TZ).timestamp()


# --- a reader that answers with hand-made typed answers --------------------------------------

def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, TZ).isoformat(timespec="seconds")


def _window(start: float, end: float, now: float) -> answers.Window:
    return {"start": start, "end": end, "now": now, "live": end >= now, "start_iso": _iso(start),
            "end_iso": _iso(end)}


def _losses(pbt: float, down_s: float, apt: float, ideal_s: float, quality: float) -> answers.Losses:
    """As ``domain.kpi.KpiReport.losses`` computes them from the figures."""
    return {"equipment_failure": down_s * 0.6, "setup_adjustment": down_s * 0.4, "small_stops": 0.0,
            "reduced_speed": apt - ideal_s, "production_rejects": ideal_s * (1 - quality), "startup_rejects": 0.0,
            "starved_blocked": 0.0, "unexplained": 0.0, "unknown": 0.0,
            "waterfall": [{"step": "planned_busy_time", "kind": "total", "seconds": pbt},
                          {"step": "unknown", "kind": "excluded", "seconds": 0.0},
                          {"step": "availability_losses", "kind": "loss", "seconds": down_s},
                          {"step": "performance_losses", "kind": "loss", "seconds": apt - ideal_s},
                          {"step": "quality_losses", "kind": "loss", "seconds": ideal_s * (1 - quality)},
                          {"step": "fully_productive_time", "kind": "total", "seconds": ideal_s * quality}]}


def _coverage(down_s: float) -> answers.Coverage:
    return {"untagged_coverage": 0.84 if down_s else None, "tagged_down_s": down_s * 0.84,
            "untagged_down_s": down_s * 0.16, "untagged_stops": 1}


def machine_live(mid: str, state: str, since: float | None, *, stale: bool = False, last_data: float | None = None,
                 reason: answers.LiveReason | None = None, power_kw: float | None = None, name: str = "",
                 good: float | None = None) -> answers.MachineLive:
    return {"id": mid, "name": name or mid, "state": state, "since": since,  # type: ignore[typeddict-item]
            "reason": reason, "good": good, "reject": 3 if good is not None else None, "power_kw": power_kw,
            "energy_kwh": None, "last_data": last_data, "stale": stale, "link": None, "bad_nodes": []}


class SampleReader:
    """Answers like ``store.reader.PlantReader`` with fixed, hand-made numbers, as the same
    types (``domain.answers``; every answer is checked against its generated schema).

    BW1: ST30 in fault (weld fault) for 12.5 min, line OEE 79 %, ahead of target.
    CM1: all running but performance 72 %: running slow (yellow).
    BR1: roughing mill in a roll change (changeover).
    """

    KPIS = {
        "BW1": (0.88, 0.91, 0.99),
        "CM1": (0.95, 0.72, 0.985),
        "BR1": (0.81, 0.93, 0.994),
    }
    GOOD = {"BW1": 215, "CM1": 40, "BR1": 96}

    def __init__(self, plant: Any = PLANT, stale: set[str] | None = None) -> None:
        self.plant = plant
        self.stale = stale or set()
        self.calls: list[tuple[Any, ...]] = []

    # live
    def lines(self, now: float, only: list[str] | None = None, *, with_andon: bool = False,
              kpis: Any = None) -> answers.Lines | answers.LinesWithAndon:
        """``with_andon``: each line's status and pace as ``PlantReader.lines`` adds them
        (``domain.andon`` over this reader's live state and shift KPIs, read by ``kpis``
        when given)."""
        self.calls.append(("lines", now))
        out: list[answers.LineLive] = []
        for line in self.plant.lines:
            if only is not None and line.id not in only:
                continue
            machines = []
            for i, m in enumerate(line.machines):
                state, since, reason, text = "running", now - 1800 - 60 * i, 0, ""
                if (line.id, m.id) == ("BW1", "ST30"):
                    state, since, reason, text = "fault", now - 754, 2, "Weld fault (gun / transformer)"
                if (line.id, m.id) == ("BR1", "BR-RM"):
                    state, since, reason, text = "changeover", now - 1260, 10, "Roll change"
                stale = line.id in self.stale
                live = machine_live(
                    m.id, "unknown" if stale else state, since, stale=stale, name=m.name,
                    last_data=now - (1500 if stale else 1), good=1000 + i,
                    reason={"code": reason, "text": text, "category": None, "planned": False} if reason else None,
                    power_kw=m.power_running_kw if state == "running" else m.power_idle_kw)
                live["energy_kwh"] = 5000.0 + i
                machines.append(live)
            out.append({"id": line.id, "name": line.name, "output_machine": line.output_machine,
                        "target_oee": line.target_oee, "last_data": max(m["last_data"] or 0 for m in machines),
                        "machines": machines})
        answer: answers.Lines = {"now": now, "gap_timeout_s": self.plant.gap_timeout_s, "lines": out}
        if not with_andon:
            return checked("Lines", answer)
        shift = andon.shift_context(self.plant, now)
        lines = []
        for line_now in out:
            figures = (kpis or self.line_kpis)(line_now["id"], shift.start, min(now, shift.end), now)
            lines.append({**line_now, **andon.line_andon(self.plant.line(line_now["id"]), line_now, figures,
                                                         shift).to_dict()})
        return checked("LinesWithAndon", {**answer, "lines": lines, "shift": shift.to_dict()})

    def _kpis(self, line: str, start: float, end: float, good: int) -> answers.Kpis:
        a, p, q = self.KPIS[line]
        pbt = max(0.0, end - start)
        total = round(good / q)
        return {
            "availability": a, "performance": p, "quality": q, "oee": a * p * q, "teep": a * p * q * 0.9,
            "calendar_s": pbt, "planned_operation_s": pbt, "planned_down_s": 0.0, "planned_busy_s": pbt,
            "known_planned_busy_s": pbt, "run_s": pbt * a * 0.97, "down_s": pbt * (1 - a), "unknown_s": 0.0,
            "micro_stop_s": pbt * a * 0.03, "unplanned_run_s": 0.0, "stops": 4, "total_count": total,
            "good_count": good, "reject_count": total - good, "unplanned_good_count": 0, "unplanned_reject_count": 0,
            "ideal_time_s": pbt * a * p, "losses": _losses(pbt, pbt * (1 - a), pbt * a, pbt * a * p, q),
            "energy": self._energy(),
            "flags": {"performance_over_100": p > 1, "micro_stop_threshold_s": 120},
        }

    @staticmethod
    def _energy() -> answers.EnergyKpis:
        return {"kwh": 812.5, "avg_kw": 230.1, "peak_kw": 301.0, "kwh_per_unit": 3.71, "kwh_per_good_unit": 3.78,
                "not_running_kwh": 96.0, "not_running_share": 0.118, "cost": 612.0, "currency": "CNY",
                "co2_kg": 463.4}

    def line_kpis(self, line: str, start: float, end: float, now: float) -> answers.LineKpis:
        self.calls.append(("line_kpis", line, start, end, now))
        kpis = self._kpis(line, start, end, self.GOOD[line])
        cfg = self.plant.line(line)
        return checked("LineKpis", {**kpis, **_coverage(kpis["down_s"]), "line": line,
                                    "output_machine": cfg.output_machine, "target_oee": cfg.target_oee,
                                    "window": _window(start, end, now)})

    def line_now(self, line: str, start: float, end: float, now: float, *, with_live: bool = True
                 ) -> tuple[answers.Downtime, answers.LineKpis, answers.LineLive | None]:
        return ({**self.downtime(line, start, end, now), "events": []},  # as PlantReader's: no list of stops
                self.line_kpis(line, start, end, now),
                self.lines(now, only=[line])["lines"][0] if with_live else None)

    def machine_kpis(self, line: str, machine: str, start: float, end: float, now: float) -> answers.MachineKpis:
        self.calls.append(("machine_kpis", line, machine, start, end, now))
        kpis = self._kpis(line, start, end, self.GOOD[line])
        return checked("MachineKpis", {**kpis, **_coverage(kpis["down_s"]), "line": line, "machine": machine,
                                       "window": _window(start, end, now),
                                       "flags": {**kpis["flags"], "implausible": []}})

    def downtime(self, line: str, start: float, end: float, now: float) -> answers.Downtime:
        self.calls.append(("downtime", line, start, end, now))
        ids = [m.id for m in self.plant.line(line).machines]

        def stop(machine: str, a: float, b: float | None, reason: int, text: str, category: str) -> answers.StopEvent:
            duration = (b if b is not None else now) - a
            return {"line": line, "machine": machine, "start": a, "end": b, "ongoing": b is None,
                    "duration_s": duration, "in_window_s": duration, "lost_s": duration,
                    "state": "fault" if category == "equipment_failure" else "idle", "reason": reason,
                    "reason_text": text, "category": category, "planned": False, "micro": False}

        events = [
            stop("ST30" if line == "BW1" else ids[1], now - 754, None, 2, "Weld fault (gun / transformer)",
                 "equipment_failure"),
            stop(ids[0], start + 1800, start + 2400, 1, "Tip dress / electrode change", "setup_adjustment"),
            stop(ids[2], start + 3600, start + 3900, 0, "No reason", "unexplained"),
            stop(ids[2], start + 5000, start + 5200, 1, "Tip dress / electrode change", "setup_adjustment"),
        ]
        by_reason: dict[str, answers.ParetoRow] = {}
        for e in events:
            group = str(e["reason"]) if e["reason"] else "no_reason"
            row = by_reason.setdefault(group, {"group": group, "reason": e["reason"] or None,
                                               "label": e["reason_text"], "category": e["category"],
                                               "duration_s": 0.0, "count": 0, "share": 0.0, "cumulative_share": 0.0})
            row["duration_s"] += e["duration_s"]
            row["count"] += 1
        rows = list(by_reason.values())
        total = sum(r["duration_s"] for r in rows)
        for r in rows:
            r["share"] = r["duration_s"] / total
        return checked("Downtime", {
            "line": line,
            "window": _window(start, end, now),
            "micro_stop_threshold_s": 120,
            "events": events,
            "pareto": {"by_duration": sorted(rows, key=lambda r: -r["duration_s"]),
                       "by_count": sorted(rows, key=lambda r: (-r["count"], -r["duration_s"]))},
            "by_machine": [{"line": line, "machine": e["machine"], "count": 1, "duration_s": e["lost_s"]}
                           for e in events],
            "summary": {"stops": 4, "micro_stops": 0, "planned_stops": 0, "down_s": 1854.0, "micro_stop_s": 0.0,
                        "planned_down_s": 0.0, **_coverage(1854.0)},
            "failures": 1, "failure_down_s": 754.0, "run_s": 4800.0, "mtbf_s": 2400.0, "mttr_s": 463.5,
        })

    def energy(self, line: str, start: float, end: float, now: float) -> answers.Energy:
        return checked("Energy", {
            **self._energy(), "line": line, "window": _window(start, end, now), "co2_kg_per_kwh": 0.57,
            "good_count": self.GOOD[line], "total_count": self.GOOD[line] + 2, "quarters": [],
            "machines": [{**self._energy(), "id": m.id, "name": m.name} for m in self.plant.line(line).machines]})

    def health(self, now: float) -> answers.Health:
        return checked("Health", {"ok": True, "status": "ok", "now": now, "redis": {"ok": True, "latency_ms": 0.2},
                                  "lines": [], "durability": None})

    def kpi_series(self, line: str, start: float, end: float, step_s: float, now: float,
                   machine: str | None = None) -> answers.KpiSeries:
        self.calls.append(("kpi_series", line, start, end, step_s, now, machine))
        rng = random.Random(f"{line}{machine}{start}")
        points: list[answers.KpiBucket] = []
        t = start - start % step_s
        while t < end:
            oee = rng.uniform(0.6, 0.95)
            good = rng.randint(40, 70)
            kpis = self._kpis(line, t, t + step_s, good)
            kpis.update(oee=oee, availability=oee ** 0.5, performance=oee ** 0.3, quality=0.99, reject_count=1,
                        total_count=good + 1)
            kpis["energy"].update(kwh=good * 3.5, kwh_per_good_unit=rng.uniform(3.2, 4.4))
            points.append({**kpis, "start": t, "end": t + step_s})
            t += step_s
        return checked("KpiSeries", {"line": line, "machine": machine, "step_s": step_s,
                                     "window": _window(start, end, now), "buckets": points})

    def timeline(self, line: str, start: float, end: float, now: float) -> answers.Timeline:
        self.calls.append(("timeline", line, start, end, now))
        machines: list[answers.MachineTimeline] = []
        for m in self.plant.line(line).machines:
            rng = random.Random(f"{line}{m.id}")
            segs: list[answers.Segment] = []
            t = start
            while t < end:
                length = rng.uniform(600, 2400)
                state = rng.choice(["running"] * 6 + ["fault", "idle", "starved", "changeover"])
                segs.append((t, min(end, t + length), state, 2 if state == "fault" else 0))
                t += length
            machines.append({"id": m.id, "segments": segs})
        return checked("Timeline", {"line": line, "window": _window(start, end, now), "machines": machines})

    def power_series(self, line: str, start: float, end: float, step_s: float, now: float) -> answers.PowerSeries:
        self.calls.append(("power_series", line, start, end, step_s, now))
        first = start - start % step_s
        starts = [first + i * step_s for i in range(int((end - first) // step_s) + 1) if first + i * step_s < end]
        out: dict[str, list[float | None]] = {}
        for m in self.plant.line(line).machines:
            rng = random.Random(f"{m.id}{step_s}")
            out[m.id] = [round(m.power_running_kw * rng.uniform(0.5, 1.0), 2) for _ in starts]
        return checked("PowerSeries", {"line": line, "step_s": step_s, "window": _window(start, end, now),
                                       "starts": starts, "machines": out})


class FailingReader(SampleReader):
    def lines(self, now: float, only: list[str] | None = None, *, with_andon: bool = False,
              kpis: Any = None) -> dict[str, Any]:
        import redis

        raise redis.ConnectionError("Connection refused")


def make_app(reader: Any = None, now: float = NOW) -> Any:
    settings = Settings(plant_path=DEMO_PLANT, plant=PLANT, redis_url=None)
    return app_factory.create_app(settings, lambda: reader or SampleReader(), clock=lambda: now)


@pytest.fixture
def app() -> Any:
    return make_app()


# --- formatting ------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "text"), [
    (0.7479, "74.8\u2009%"), (1.043, "104.3\u2009%"), (None, theme.DASH), (float("nan"), theme.DASH), (0, "0.0\u2009%"),
])
def test_pct_shows_over_100_and_never_invents_zero(value: Any, text: str) -> None:
    assert theme.pct(value) == text


@pytest.mark.parametrize(("kw", "text"), [
    (None, theme.DASH), (85.24, "85.2\u2009kW"), (812.4, "812\u2009kW"), (999.4, "999\u2009kW"),
    (999.6, "1.00\u2009MW"), (6897, "6.90\u2009MW"), (10_540, "10.54\u2009MW"),
])
def test_one_unit_rule_for_power(kw: Any, text: str) -> None:
    assert theme.kw(kw) == text


@pytest.mark.parametrize(("state", "reason", "andon"), [
    (State.IDLE, {"code": 20, "category": "setup_adjustment"}, theme.CHANGEOVER),  # PackML Stopped + changeover
    (State.IDLE, {"code": 30, "category": "starved_blocked"}, theme.DOWN),
    (State.IDLE, None, theme.DOWN),
    (State.CHANGEOVER, None, theme.CHANGEOVER),
    (State.FAULT, {"code": 2, "category": "equipment_failure"}, theme.DOWN),
])
def test_changeover_is_blue_however_the_plc_says_it(state: State, reason: Any, andon: str) -> None:
    assert theme.andon_of(state, reason) == andon


def test_andon_text_contrast_is_at_least_4_5() -> None:
    def luminance(colour: str) -> float:
        def channel(c: float) -> float:
            return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

        r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
        return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)

    def ratio(a: str, b: str) -> float:
        hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
        return (hi + 0.05) / (lo + 0.05)

    text = {theme.RUNNING: "#ffffff", theme.DOWN: "#ffffff", theme.CHANGEOVER: "#ffffff", theme.NO_DATA: "#ffffff",
            theme.POOR: "#17140a", theme.PLANNED: "#101214"}  # as assets/screens.css sets them
    for status, colour in theme.ANDON_COLOURS.items():
        assert ratio(colour, text[status]) >= 4.5, status


@pytest.mark.parametrize(("seconds", "text"), [
    (45, "45 s"), (754, "12 min"), (3 * 3600 + 5 * 60, "3 h 05 min"), (2 * 86400 + 4 * 3600, "2 d 4 h"),
    (None, theme.DASH),
])
def test_duration(seconds: Any, text: str) -> None:
    assert theme.duration(seconds) == text


def test_since_text_uses_plant_local_time() -> None:
    assert theme.since_text(NOW - 600, NOW, PLANT.timezone) == "no data since 10:22"
    assert theme.since_text(NOW - 86400, NOW, PLANT.timezone) == "no data since 24 Nov 10:32"


# --- live view models --------------------------------------------------------------------

@pytest.mark.parametrize(("pace", "text"), [
    (andon.Pace(200, 183, 428), "+17 ahead"),  # the rules are domain.andon's (tests/test_andon.py)
    (andon.Pace(150, 183, 428), "\u221233 behind"),
    (andon.Pace(183, 183, 428), "on target"),
    (andon.Pace(None, 61, 428), theme.DASH),
])
def test_pace_text(pace: andon.Pace, text: str) -> None:
    assert line_view.pace_text(pace) == text


@pytest.mark.parametrize(("reason", "state", "text"), [
    ({"code": 2, "text": "Weld fault (gun / transformer)"}, "fault", "Weld fault (gun / transformer)"),
    (None, "starved", "Starved: waiting for upstream"),
    (None, "blocked", "Blocked: downstream full"),
    (None, "idle", "No reason given"),
])
def test_reason_text(reason: dict[str, Any] | None, state: str, text: str) -> None:
    assert line_view.reason_text(reason, state) == text


def test_top_reason_is_the_longest_loss() -> None:
    raw = SampleReader().downtime("BW1", NOW - 7200, NOW, NOW)  # its Pareto rows: unplanned losses only
    assert line_view.top_reason(raw) == ("Tip dress / electrode change", 800)
    raw["pareto"]["by_duration"] = []
    assert line_view.top_reason(raw) == ("No stops", None)
    assert line_view.top_reason(None) == (theme.DASH, None)


def test_shift_context_counts_breaks_out() -> None:
    shift = data.shift_context(PLANT, NOW)
    assert shift.name == "A"
    assert shift.planned_s == 8 * 3600 - 3600  # 15 + 30 + 15 min of breaks
    assert shift.planned_elapsed_s == 3 * 3600 + 32 * 60 - 15 * 60
    assert shift.planned_now


# --- wall ------------------------------------------------------------------------------

def test_wall_tile_texts_from_a_line_view() -> None:
    reader = SampleReader()
    cfg = PLANT.line("BW1")
    shift = data.shift_context(PLANT, NOW)
    view = line_view.line_view(cfg, reader.lines(NOW)["lines"][0], reader.line_kpis("BW1", shift.start, NOW, NOW),
                          reader.downtime("BW1", shift.start, NOW, NOW), shift, NOW, PLANT.timezone)
    texts = wall.tile_texts(view)
    assert view["status"] == theme.DOWN
    assert texts["status"] == "Down"
    assert texts["for"] == "since 10:19 \u00b7 12 min"  # "down since 10:19 · 12 min"
    assert texts["reason"] == "ST30: Weld fault (gun / transformer)"
    assert texts["oee"] == "79"  # 0.88 x 0.91 x 0.99 = 0.7928
    assert texts["a"] == "88\u2009%"
    # 11820 s planned elapsed (07:00-10:32 less a 15 min tea break) / 50 s x 0.85 = 200.9
    assert texts["output"] == "215" and texts["target"] == "200"
    assert texts["pace"] == "+15 ahead"
    assert texts["kwh_per_good"] == "3.78\u2009kWh"
    assert "pace-ahead" in wall.tile_class(view) and "andon-down" in wall.tile_class(view)


def test_wall_tile_in_a_shifts_first_minutes_shows_no_speed_yet() -> None:
    """Half a minute into a shift one part (made mostly before it) is 171 % performance: the
    wall shows a dash for performance and OEE, no over-100 flag, until ten ideal cycles of the
    output machine ran (``andon.settled``); availability and output as they are."""
    reader = SampleReader()
    cfg = PLANT.line("BW1")
    shift = data.shift_context(PLANT, NOW)
    kpis = reader.line_kpis("BW1", shift.start, NOW, NOW)
    ideal = cfg.machine(cfg.output_machine).ideal_cycle_time_s
    early = {**kpis, "run_s": 35.0, "planned_busy_s": 35.0, "performance": 1.71, "oee": 1.71,
             "flags": {**kpis["flags"], "performance_over_100": True}}
    live = reader.lines(NOW)["lines"][0]
    downtime = reader.downtime("BW1", shift.start, NOW, NOW)
    view = line_view.line_view(cfg, live, early, downtime, shift, NOW, PLANT.timezone)
    texts = wall.tile_texts(view)
    assert (texts["oee"], texts["p"], texts["a"]) == (theme.DASH, theme.DASH, "88\u2009%")
    assert not view["performance_over_100"] and "perf-over" not in wall.tile_class(view)
    assert texts["output"] == "215"
    settled = {**early, "run_s": 10 * ideal, "planned_busy_s": 10 * ideal}
    texts = wall.tile_texts(line_view.line_view(cfg, live, settled, downtime, shift, NOW, PLANT.timezone))
    assert (texts["oee"], texts["p"]) == ("171", "171\u2009% \u26a0")


def test_wall_layout_rotation_and_single_line() -> None:
    all_lines = wall.layout(PLANT, rotate="15")
    assert "wall-single" in str(all_lines)  # rotating: one big tile at a time
    store = find(all_lines, wall.VIEW)
    assert store.data["rotate"] == 15 and store.data["lines"] == ["BW1", "CM1", "BR1"]
    assert find(all_lines, wall.ROTATE_TICK).disabled is False
    for line in PLANT.lines:  # every line's state stays in view while the big tile rotates
        assert find(all_lines, {"type": wall.STRIP, "line": line.id}) is not None
    views = [{"line": "BW1", "status": theme.DOWN}, {"line": "CM1", "status": theme.RUNNING}]
    assert wall.chip_classes(views, [{"line": "CM1"}, {"line": "BR1"}]) == ["wall-chip andon-running",
                                                                            "wall-chip andon-nodata"]
    stacked = wall.layout(PLANT)
    assert find(stacked, {"type": wall.STRIP, "line": "BW1"}) is None
    assert find(stacked, wall.ROTATE_TICK).disabled is True
    assert "wall-rows-3" in str(stacked)
    one = wall.layout(PLANT, line="CM1")
    assert find(one, wall.VIEW).data["lines"] == ["CM1"]
    assert "No line" in str(wall.layout(PLANT, line="XX"))


def test_wall_refresh_callback_fills_every_field(app: Any) -> None:
    field_ids = [wall.field_id(line, f) for line in ("BW1", "CM1", "BR1") for f in wall.FIELDS]
    tile_ids = [{"type": wall.TILE, "line": line} for line in ("BW1", "CM1", "BR1")]
    view = {"lines": ["BW1", "CM1", "BR1"]}
    fields, tiles, clock, last_ok, _chips, _shown = call(app, wall.refresh, 1, view, None,
                                                         matching={wall.FIELD: field_ids, wall.TILE: tile_ids})
    assert len(fields) == len(field_ids)
    by_id = {(o["line"], o["field"]): v for o, v in zip(field_ids, fields, strict=True)}
    assert by_id[("BW1", "status")] == "Down"
    assert by_id[("CM1", "status")] == "Running slow"
    assert by_id[("BR1", "status")] == "Changeover"
    assert by_id[("BR1", "reason")] == "BR-RM: Roll change"
    assert "andon-poor" in tiles[1]
    assert clock == "Shift A  \u00b7  10:32"
    assert last_ok == {"at": NOW}


def test_wall_shows_no_data_since_when_collectors_stop() -> None:
    app = make_app(SampleReader(stale={"CM1"}))
    field_ids = [wall.field_id("CM1", f) for f in ("status", "nodata", "oee")]
    tile_ids = [{"type": wall.TILE, "line": "CM1"}]
    fields, tiles, *_ = call(app, wall.refresh, 1, {"lines": ["CM1"]}, None,
                             matching={wall.FIELD: field_ids, wall.TILE: tile_ids})
    assert fields[0] == "No data"
    assert fields[1] == "no data since 10:07"
    assert "andon-nodata" in tiles[0]


def test_wall_keeps_last_numbers_to_the_watchdog_when_redis_is_down() -> None:
    app = make_app(FailingReader())
    with pytest.raises(PreventUpdate):
        call(app, wall.refresh, 1, {"lines": ["BW1"]}, None)


# --- overview --------------------------------------------------------------------------

def test_overview_cards_link_to_lines_and_update_in_place(app: Any) -> None:
    page = overview.layout(PLANT)
    hrefs = re.findall(r"href='(/line/[^']+)'", str(page))
    assert {"/line/BW1", "/line/CM1", "/line/BR1"} <= set(hrefs)
    field_ids = [{"type": overview.FIELD, "line": "BW1", "field": f} for f in ("oee", "top_reason", "kw")]
    cards = [{"type": overview.CARD, "line": "BW1"}]
    bars = [{"type": overview.BAR, "line": "BW1"}]
    fields, classes, styles, shift, _, _ = call(app, overview.refresh, 1, {"lines": ["BW1"]}, None,
                                                matching={overview.FIELD: field_ids, overview.CARD: cards,
                                                          overview.BAR: bars})
    assert fields[0] == "79.3\u2009%"
    assert fields[1] == "Tip dress / electrode change"  # 800 s over the weld fault's 754 s
    power = sum(m.power_running_kw for m in PLANT.line("BW1").machines if m.id != "ST30") + 9
    assert fields[2] == theme.kw(power)
    assert classes == ["ov-card andon-down"]
    assert styles[0]["width"].endswith("%")


# --- ranges and URL --------------------------------------------------------------------

@pytest.mark.parametrize(("search", "params", "choice"), [
    ("", {"start": "shift", "end": None}, "shift"),
    ("?start=7d", {"start": "7d", "end": None}, "7d"),
    ("?start=7d&end=2026-01-01T00:00%2B08:00", {"start": "7d", "end": None}, "7d"),
    ("?start=2026-11-24T07:00%2B08:00&end=2026-11-24T15:00%2B08:00",
     {"start": "2026-11-24T07:00+08:00", "end": "2026-11-24T15:00+08:00"}, "custom"),
])
def test_range_params_round_trip_through_the_url(search: str, params: dict[str, Any], choice: str) -> None:
    got = ranges.params_from_search(search)
    assert got == params
    assert ranges.choice_for(got) == choice
    assert ranges.params_from_search(ranges.search_for(got)) == got


@pytest.mark.parametrize(("query", "params"), [
    ({"start": "2026-12-01T07:00"}, {"start": "2026-12-01T07:00+08:00", "end": None}),
    ({"start": "2026-12-01T07:00", "end": "2026-12-01T15:30"},
     {"start": "2026-12-01T07:00+08:00", "end": "2026-12-01T15:30+08:00"}),
    ({"start": "2026-12-01T07:00Z"}, {"start": "2026-12-01T07:00Z", "end": None}),  # an offset stays
    ({"start": "garbage"}, {"start": "garbage", "end": None}),  # left for the API's check to refuse
    ({"start": "yesterday", "end": "2026-12-01T07:00"}, {"start": "yesterday", "end": None}),
])
def test_a_time_without_offset_in_the_url_is_plant_local(query: dict[str, str], params: dict[str, Any]) -> None:
    assert ranges.params_from_query(query, PLANT.timezone) == params


def test_window_label_says_the_range_once() -> None:
    custom = data.resolve_window(PLANT, "2026-11-24T07:00+08:00", "2026-11-24T15:00+08:00", NOW)
    assert ranges.window_text(custom, PLANT.timezone) == "2026-11-24 07:00 \u2192 2026-11-24 15:00"
    shift = data.resolve_window(PLANT, "shift", None, NOW)
    assert ranges.window_text(shift, PLANT.timezone) == \
        "This shift (2026-11-25 A): 2026-11-25 07:00 \u2192 2026-11-25 10:32 (live)"


def test_custom_range_input_becomes_iso_with_plant_offset() -> None:
    assert ranges.local_input_to_iso("2026-11-24T07:00", PLANT.timezone) == "2026-11-24T07:00+08:00"
    assert ranges.iso_to_local_input("2026-11-23T23:00Z", PLANT.timezone) == "2026-11-24T07:00"


@pytest.mark.parametrize(("start", "hours"), [("shift", 3 + 32 / 60), ("last_shift", 8), ("yesterday", 24),
                                               ("7d", 168), ("today", 10 + 32 / 60)])
def test_named_windows_resolve_like_the_api(start: str, hours: float) -> None:
    window = data.resolve_window(PLANT, start, None, NOW)
    assert window.end - window.start == pytest.approx(hours * 3600)
    assert window.label.startswith(data.NAMED_RANGES[start])


def test_range_bar_writes_the_view_into_the_url(app: Any) -> None:
    search, params, choice, box = call(app, ranges.sync, "7d", None, "?foo=1", None, None,
                                       {"start": "shift", "end": None}, triggered=ranges.RANGE)
    assert search == "?foo=1&start=7d"
    assert params == {"start": "7d", "end": None}
    assert choice is ranges.no_update and "d-none" in box
    search, params, _, _ = call(app, ranges.sync, "custom", 1, "", "2026-11-24T07:00", "2026-11-24T15:00", params,
                                triggered=ranges.APPLY)
    assert params == {"start": "2026-11-24T07:00+08:00", "end": "2026-11-24T15:00+08:00"}
    assert ranges.params_from_search(search) == params


def test_router_pages(app: Any) -> None:
    page = app_factory.page_for
    assert find(page(PLANT, "/", ""), overview.ROOT) is not None
    assert find(page(PLANT, "/wall", "?rotate=10"), wall.VIEW).data["rotate"] == 10
    assert find(page(PLANT, "/wall/BR1", ""), wall.VIEW).data["lines"] == ["BR1"]
    line = page(PLANT, "/line/BW1", "?start=7d")
    assert find(line, ranges.WINDOW).data == {"start": "7d", "end": None}
    assert find(line, oee_panel.LINE).data == "BW1"
    assert find(page(PLANT, "/line/BW1/machine/ST20", ""), machine_page.IDS).data == {"line": "BW1",
                                                                                       "machine": "ST20"}
    assert "Page not found" in str(page(PLANT, "/nope/x/y", ""))
    # any query string: parameters named like the router's own arguments too
    assert find(page(PLANT, "/wall/BW1", "?line=CM1&rotate=x"), wall.VIEW).data["lines"] == ["BW1"]
    assert find(page(PLANT, "/wall", "?plant=x&line=BW1"), wall.VIEW).data["lines"] == ["BW1", "CM1", "BR1"]
    assert find(page(PLANT, "/", "?plant=x"), overview.ROOT) is not None


def test_machine_links_keep_the_range() -> None:
    ids = [{"line": "BW1", "machine": "ST10"}]
    assert line_page.machine_hrefs(ids, "?start=7d") == ["/line/BW1/machine/ST10?start=7d"]


# --- line page panels ------------------------------------------------------------------

def test_kpi_tiles_flag_performance_over_100() -> None:
    kpis = SampleReader()._kpis("BW1", 0, 3600, 100)
    kpis["performance"] = 1.07
    kpis["flags"]["performance_over_100"] = True
    text = str(oee_panel.kpi_tiles(kpis, 0.85))
    assert "107.0" in text
    assert "over 100 %: check the ideal cycle time" in text
    assert "kpi-flag" in text


def test_threshold_note_names_the_micro_stop_threshold() -> None:
    note = oee_panel.threshold_note({"flags": {"micro_stop_threshold_s": 300}, "micro_stop_s": 420}, 120)
    assert note.startswith("Micro-stop threshold 5 min")
    assert "Small stops in range: 7 min" in note


def test_waterfall_from_the_readers_steps() -> None:
    k: Any = {"losses": {"waterfall": [
        {"step": "planned_busy_time", "kind": "total", "seconds": 25200},
        {"step": "unknown", "kind": "excluded", "seconds": 0},
        {"step": "availability_losses", "kind": "loss", "seconds": 2820},
        {"step": "performance_losses", "kind": "loss", "seconds": 3109},
        {"step": "quality_losses", "kind": "loss", "seconds": 423},
        {"step": "fully_productive_time", "kind": "total", "seconds": 18848},
    ]}}
    steps = oee_panel.waterfall_steps(k)
    assert steps[0] == ("Planned busy time", 7.0)
    assert steps[2] == ("Availability losses", -2820 / 3600)
    assert sum(v for _, v in steps[:-1]) == pytest.approx(steps[-1][1])
    fig = oee_panel.waterfall_figure(steps)
    assert list(fig.data[0].measure) == ["absolute", "relative", "relative", "relative", "relative", "total"]


def test_waterfall_ends_at_fully_productive_time() -> None:
    steps = oee_panel.waterfall_steps(SampleReader().line_kpis("BW1", NOW - 25200, NOW, NOW))
    assert steps[0] == ("Planned busy time", 7.0)
    start = steps[0][1]
    losses = sum(v for _, v in steps[1:-1])
    assert start + losses == pytest.approx(steps[-1][1], abs=0.02)  # the bars add up


def test_hourly_figure_marks_hours_below_target() -> None:
    points = [{"start": NOW - 7200, "oee": 0.9}, {"start": NOW - 3600, "oee": 0.5}, {"start": NOW, "oee": None}]
    fig = oee_panel.hourly_figure(points, 0.85, PLANT.timezone)
    bar = fig.data[0]
    assert list(bar.y) == [90.0, 50.0, None]
    assert bar.marker.color[0] == theme.ANDON_COLOURS[theme.RUNNING]
    assert bar.marker.color[1] == theme.ANDON_COLOURS[theme.DOWN]
    assert any(s.y0 == 85.0 for s in fig.layout.shapes)  # the target line
    assert bar.width == 0.8 * 3600 * 1000  # 80 % of its hour (alone, Plotly draws it a millisecond wide)
    # the axis spans the buckets (an invisible trace): first start to the last one's end
    assert list(fig.data[1].x) == theme.bucket_span([p["start"] for p in points], PLANT.timezone, 3600) == [
        oee_panel.hourly_xy(points[:1], PLANT.timezone)[0][0],
        oee_panel.hourly_xy([{"start": NOW + 3600}], PLANT.timezone)[0][0]]


@pytest.mark.parametrize(("starts", "want"), [
    ([], []),
    ([0.0], ["1970-01-01 08:00", "1970-01-01 09:00"]),  # one bucket (a shift's first hour): its whole hour
    ([0.0, 3600.0, 7200.0], ["1970-01-01 08:00", "1970-01-01 11:00"]),
    ([0.0, 86400.0], ["1970-01-01 08:00", "1970-01-03 08:00"]),  # per day
])
def test_bucket_span(starts: list[float], want: list[str]) -> None:
    step = 86400 if len(starts) == 2 else 3600
    assert theme.bucket_span(starts, "Asia/Shanghai", step) == want


def test_oee_panel_draws_first_then_patches_on_live_ticks(app: Any) -> None:
    shift = {"start": "shift", "end": None}
    with pytest.raises(PreventUpdate):  # nothing drawn yet: a live update has nothing to patch
        oee_panel.update(1, shift, None, "BW1")
    # whatever asks first (here the timer's pulse, before any draw arrived) gets the whole panel
    first = call(app, oee_panel.refresh, shift, None, 1, "BW1", None, triggered=oee_panel.LIVE.pulse)
    assert is_figure(first[2]) and first[5]["params"] == shift
    full = call(app, oee_panel.refresh, shift, None, None, "BW1", None, triggered=ranges.WINDOW)
    assert is_figure(full[2]) and is_figure(full[3])
    held = full[5]
    assert held["params"] == shift and held["live"] is True
    same = call(app, oee_panel.refresh, shift, None, 1, "BW1", held, triggered=oee_panel.LIVE.pulse)
    assert all(v is oee_panel.no_update for v in same)  # same clock, same figures: nothing travels
    # a browser that holds older figures (no digests of them): patches, not figures
    tick = call(app, oee_panel.refresh, shift, None, 1, "BW1", {**held, "shown": {}}, triggered=oee_panel.LIVE.pulse)
    assert is_patch(tick[2]) and is_patch(tick[3])
    assert tick[4] is oee_panel.no_update and tick[5] == held  # the table stays; the record as the draw wrote it
    # a tick that replaced a pending draw of another range: draws that range
    other = call(app, oee_panel.refresh, {"start": "7d", "end": None}, None, 1, "BW1", held,
                 triggered=oee_panel.LIVE.pulse)
    assert is_figure(other[2]) and other[5]["params"] == {"start": "7d", "end": None}
    assert str(tick[0]) == str(full[0])  # same clock, same tiles
    with pytest.raises(PreventUpdate):  # the browser holds another range: the draw for this one will come
        oee_panel.update(1, {"start": "7d", "end": None}, held, "BW1")
    # a past range is drawn whole, once, and says it is not live (so the browser never polls it)
    past = call(app, oee_panel.refresh, {"start": "yesterday", "end": None}, None, None, "BW1", None,
                triggered=ranges.WINDOW)
    assert is_figure(past[2]) and past[5]["live"] is False
    with pytest.raises(PreventUpdate):
        oee_panel.update(1, {"start": "yesterday", "end": None}, past[5], "BW1")


@pytest.mark.parametrize(("params", "message"), [
    ({"start": "garbage", "end": None}, "start: not an ISO 8601 time with offset: 'garbage'"),
    ({"start": "2026-11-25T09:00+08:00", "end": "2026-11-25T08:00+08:00"}, "end must be after start"),
])
def test_a_refused_range_shows_the_apis_message(app: Any, params: dict[str, Any], message: str) -> None:
    out = call(app, oee_panel.refresh, params, None, None, "BW1", None, triggered=ranges.WINDOW)
    assert str(out[0]).count(f"Bad range: {message}") == 1
    assert out[5] == ranges.drawn(params, None)  # drawn (the browser does not ask again), not live
    label = call(app, ranges.show_window, params, None, None, triggered=ranges.WINDOW)
    assert label[0] == f"Bad range: {message}" and "range-error" in label[1]
    dt = call(app, downtime_panel.refresh, params, None, None, None, "BW1", None, triggered=ranges.WINDOW)
    assert f"Bad range: {message}" in str(dt[0])

def test_a_live_range_label_is_asked_again_when_its_minute_changes(app: Any) -> None:
    """The label of a live range shows its end to the minute: the browser's gate waits
    ``quiet_ms`` before asking again (``oee.panelTick``); a past range never asks again."""
    live = call(app, ranges.show_window, {"start": "today", "end": None}, None, None, triggered=ranges.WINDOW)
    assert live[2]["live"] is True and live[2]["quiet_ms"] == 60_000  # NOW is 10:32:00: the next minute
    assert live[2]["params"] == {"start": "today", "end": None}
    later = call(make_app(now=NOW + 44.75), ranges.show_window, {"start": "shift", "end": None}, None, None,
                 triggered=ranges.WINDOW)
    assert later[2]["quiet_ms"] == 15_250  # 10:32:44.75: 15.25 s to 10:33
    past = call(app, ranges.show_window, {"start": "yesterday", "end": None}, None, None, triggered=ranges.WINDOW)
    assert past[2]["live"] is False and "quiet_ms" not in past[2]


def test_shift_table_and_csv(app: Any) -> None:
    with in_request(app):
        window = data.resolve_window(PLANT, "yesterday", None, NOW)
        rows = oee_panel.shift_rows(oee_panel.shift_kpis("BW1", window, NOW))
    assert [r["shift"].split()[-1] for r in rows] == ["C", "A", "B", "C"]  # C of the day before crosses midnight
    csv = oee_panel.shifts_csv(rows)
    assert csv.splitlines()[0] == "shift,availability,performance,quality,oee,good_count,reject_count,down_s"
    assert len(csv.splitlines()) == 5


def test_pareto_sorted_with_cumulative_share_and_reason_codes() -> None:
    rows = panel_data.pareto_rows(SampleReader().downtime("BW1", NOW - 7200, NOW, NOW), "duration")
    fig = downtime_panel.pareto_figure(rows, "duration")
    assert list(fig.data[0].customdata) == ["1", "2", "no_reason"]  # 800 s, 754 s, 300 s
    assert list(fig.data[0].x) == ["Tip dress / electrode change", "Weld fault (gun / transformer)", "No reason"]
    assert list(fig.data[0].y) == [13.3, 12.6, 5.0]
    assert fig.data[1].y[-1] == 100.0
    assert downtime_panel.reason_from_click({"points": [{"customdata": "2"}]}) == "2"


def test_stops_list_ongoing_first_and_filtered_by_reason() -> None:
    events = SampleReader().downtime("BW1", NOW - 7200, NOW, NOW)["events"]
    ordered = downtime_panel.ordered_stops(events)
    assert ordered[0]["end"] is None
    assert [e["start"] for e in ordered[1:]] == sorted((e["start"] for e in ordered[1:]), reverse=True)
    assert {e["reason"] for e in downtime_panel.ordered_stops(events, "1")} == {1}
    assert {e["machine"] for e in downtime_panel.ordered_stops(events, "no_reason")} == {"ST30"}
    table = str(downtime_panel.stops_table(ordered, NOW, PLANT.timezone))
    assert "ongoing" in table and "Weld fault" in table
    csv = downtime_panel.stops_csv(ordered, PLANT.timezone)
    assert csv.splitlines()[1].startswith("ST30,2026-11-25 10:19:26,,")


def test_timeline_one_trace_per_state() -> None:
    st10 = [[NOW - 600, NOW - 300, "running", 0], [NOW - 300, NOW, "fault", 2]]
    raw = SampleReader().timeline("BW1", NOW - 600, NOW, NOW)
    raw["machines"] = [{"id": "ST10", "segments": st10}, {"id": "ST20", "segments": [[NOW - 600, NOW, "running", 0]]}]
    segs = panel_data.timeline_rows(raw, panel_data.reason_texts(PLANT))
    assert segs["ST10"][1]["reason_text"] == "Weld fault (gun / transformer)"
    fig = downtime_panel.timeline_figure(segs, ["ST10", "ST20"], PLANT.timezone)
    # PackML Stopped (idle) with a changeover reason: blue, as on the wall
    setup = panel_data.timeline_rows(checked("Timeline", {**raw, "machines": [
        {"id": "ST10", "segments": [[NOW - 60, NOW, "idle", 20], [NOW - 90, NOW - 60, "idle", 30]]}]}),
        panel_data.reason_texts(PLANT), panel_data.setup_codes(PLANT))
    assert [s["state"] for s in setup["ST10"]] == ["changeover", "idle"]
    names = [t.name for t in fig.data]
    assert names == ["Running", "Fault"]
    assert list(fig.data[0].y) == ["ST10", "ST20"]
    assert fig.data[1].x[0] == 300_000  # ms


def test_energy_extends_the_power_chart_on_ticks(app: Any) -> None:
    params = {"start": "shift", "end": None}
    tiles, fig, extend, _, held, drawn = call(app, energy_panel.refresh, params, None, None, "BW1", None, None,
                                              triggered=ranges.WINDOW)
    assert is_figure(fig) and len(fig["data"]) == 7 and extend is energy_panel.no_update
    assert held["last_t"] <= NOW - 60 and drawn["live"] is True
    later = make_app(now=NOW + 120)
    tiles2, fig2, extend2, per_good, held2, drawn2 = call(later, energy_panel.refresh, params, None, 3, "BW1",
                                                          drawn, held, triggered=energy_panel.LIVE.pulse)
    assert fig2 is energy_panel.no_update and drawn2 is energy_panel.no_update  # the figure stays
    assert per_good is energy_panel.no_update and tiles2 is energy_panel.no_update  # and what did not change
    update, indices, max_points = extend2
    assert indices == list(range(7)) and max_points == energy_panel.MAX_POINTS
    assert all(len(xs) == 2 for xs in update["x"])  # two new whole minutes
    assert held2["last_t"] == held["last_t"] + 120
    assert "812" in str(tiles) and "CNY" in str(tiles) and "11.8" in str(tiles)

def test_machine_page_callback(app: Any) -> None:
    out = call(app, machine_page.refresh, {"start": "shift", "end": None}, None, None,
               {"line": "BW1", "machine": "ST30"}, None, triggered=ranges.WINDOW)
    live_card = str(out[0])
    assert "Fault since 10:19 \u00b7 12 min" in live_card and "Weld fault" in live_card
    assert "ongoing" in str(out[6])
    assert out[7]["live"] is True
    tick = call(app, machine_page.refresh, {"start": "shift", "end": None}, None, 1,
                {"line": "BW1", "machine": "ST30"}, out[7], triggered=machine_page.LIVE_IDS.pulse)
    assert all(v is machine_page.no_update for v in tick)  # same clock, same page: nothing travels, the record stays

# --- the app: served HTML, assets, callbacks per app ------------------------------------

def test_served_html_references_no_external_url(app: Any) -> None:
    client = Client(app.server)
    html_text = client.get("/").get_data(as_text=True)
    assert '<html lang="en">' in html_text
    external = re.findall(r"""(?:src|href)=["'](https?:)?//""", html_text)
    assert external == [], external
    assert not re.search(r"https?://", html_text.replace("http://www.w3.org", ""))
    css = re.findall(r'href="([^"]+\.css[^"]*)"', html_text)
    assert any("00-bootstrap" in c for c in css) and any("10-dashboard" in c for c in css)
    for url in css + re.findall(r'src="([^"]+\.js[^"]*)"', html_text):
        resp = client.get(url)
        assert resp.status_code == 200, url
        body = resp.get_data(as_text=True)
        assert not re.search(r"url\(\s*['\"]?https?://", body), url  # no web fonts or images from outside
    font = client.get("/assets/fonts/inter-5.3.0-latin-wght-normal.woff2")
    assert font.status_code == 200 and font.data[:4] == b"wOF2"


def test_every_app_gets_the_panel_callbacks() -> None:
    first, second = make_app(), make_app()
    for a in (first, second):
        client = Client(a.server)
        client.get("/")
        deps = client.get("/_dash-dependencies").get_json()
        outputs = " ".join(d["output"] for d in deps)
        assert wall.CLOCK in outputs and oee_panel.TILES in outputs and app_factory.PAGE in outputs
        assert ranges.WINDOW in outputs and ranges.LABEL in outputs
    assert len(Client(first.server).get("/_dash-dependencies").get_json()) == len(deps)


def test_router_callback_over_http(app: Any) -> None:
    client = Client(app.server)
    client.get("/")
    body = {"output": f"{app_factory.PAGE}.children", "outputs": {"id": app_factory.PAGE, "property": "children"},
            "inputs": [{"id": app_factory.URL, "property": "pathname", "value": "/wall/BW1"}],
            "state": [{"id": app_factory.URL, "property": "search", "value": "?rotate=5"}],
            "changedPropIds": [f"{app_factory.URL}.pathname"]}
    resp = client.post("/_dash-update-component", json=body)
    assert resp.status_code == 200
    assert wall.VIEW in resp.get_data(as_text=True)


def test_reader_is_on_the_server_config(app: Any) -> None:
    assert isinstance(config_of(app.server)[data.READER_KEY], SampleReader)
    assert config_of(app.server)[data.PLANT_KEY] is PLANT


# --- helpers ---------------------------------------------------------------------------

def find(component: Any, target_id: Any) -> Any:
    """The component with ``id == target_id`` in a layout tree (None if absent)."""
    if getattr(component, "id", None) == target_id:
        return component
    children = getattr(component, "children", None)
    if children is None:
        return None
    for child in children if isinstance(children, list | tuple) else [children]:
        got = find(child, target_id)
        if got is not None:
            return got
    return None


def test_downloads_send_the_tables_as_csv(app: Any) -> None:
    params = {"start": "shift", "end": None}
    stops = call(app, downtime_panel.download_stops, 1, params, "BW1", "1")
    assert stops["filename"] == "BW1-stops-shift-reason-1.csv"
    lines = stops["content"].splitlines()
    assert lines[0].startswith("\ufeffmachine,start_local,end_local")  # a UTF-8 BOM: Excel reads Chinese right
    assert len(lines) == 3  # the two tip-dress stops only
    shifts = call(app, oee_panel.download_shifts, 1, {"start": "yesterday", "end": None}, "BW1")
    assert shifts["filename"] == "BW1-shifts-yesterday.csv" and len(shifts["content"].splitlines()) == 5


def test_pareto_click_filters_the_stops_list_through_the_url(app: Any) -> None:
    search = call(app, downtime_panel.select_reason, None, {"points": [{"customdata": "no_reason"}]}, None,
                  "?start=yesterday", triggered=downtime_panel.PARETO_COUNT)
    assert search == "?start=yesterday&reason=no_reason"
    group = downtime_panel.filter_from_url(search, None)
    assert group == "no_reason"
    assert downtime_panel.filter_from_url(search, group) is downtime_panel.no_update
    assert downtime_panel.search_with_reason(search, None) == "?start=yesterday"
    out = call(app, downtime_panel.refresh, {"start": "shift", "end": None}, group, None, None, "BW1", None,
               triggered=downtime_panel.FILTER)
    table, label = str(out[4]), out[5]
    assert label == "only: No reason"  # the reader's text for a stop without a reason
    assert "Tip dress" not in table and "ST30" in table
    assert out[6]["filter"] == group
    # the bookmarked filter is the page's filter
    page = app_factory.page_for(PLANT, "/line/BW1", "?start=yesterday&reason=2")
    assert find(page, downtime_panel.FILTER).data == "2"


def test_stops_table_machine_links_keep_the_range(app: Any) -> None:
    params = {"start": "yesterday", "end": None}
    out = call(app, downtime_panel.refresh, params, None, None, None, "BW1", None, triggered=ranges.WINDOW)
    hrefs = re.findall(r"'href': '([^']+)'", str(out[4]))
    assert hrefs and all(h.startswith("/line/BW1/machine/") and h.endswith("?start=yesterday") for h in hrefs)
    assert downtime_panel.open_machine({"points": [{"y": "ST40"}]}, "BW1", params) == \
        "/line/BW1/machine/ST40?start=yesterday"

class StopsAtNow(SampleReader):
    """The same stops whatever the clock says (the ongoing one started at NOW - 754 s)."""

    def downtime(self, line: str, start: float, end: float, now: float) -> dict[str, Any]:
        return super().downtime(line, start, end, NOW)


def _at(value: Any, location: list[Any]) -> Any:
    for step in location:
        value = value[step]
    return value


def test_downtime_tick_patches_only_what_goes_on_while_the_stops_stay() -> None:
    params, reader = {"start": "shift", "end": None}, StopsAtNow()
    full = call(make_app(reader, NOW), downtime_panel.refresh, params, None, None, None, "BW1", None,
                triggered=ranges.WINDOW)
    assert is_figure(full[1]) and full[6]["key"] and full[6]["live"]
    cells = {downtime_panel.ONGOING: [{"type": downtime_panel.ONGOING, "row": 0}]}
    assert "'row': 0" in str(full[4]) and "'row': 1" not in str(full[4])  # ST30's weld fault: the one ongoing
    later = make_app(reader, NOW + 60)
    tick = call(later, downtime_panel.refresh, params, None, None, 7, "BW1", full[6],
                triggered=downtime_panel.LIVE.pulse, matching=cells)
    summary, timeline, by_duration, by_count, stops, label, sent, durations = tick
    assert is_patch(timeline)
    # this reader's stops are as they were at NOW (Pareto and tiles included): not sent again
    assert all(v is downtime_panel.no_update for v in (summary, by_duration, by_count, stops, label))
    assert durations == ["13 min"]  # 754 s + 60 s
    assert {k: v for k, v in sent.items() if k != "shown"} == {k: v for k, v in full[6].items() if k != "shown"}
    assert {k for k, v in sent["shown"].items() if full[6]["shown"][k] != v} == {"timeline", "ongoing"}
    figure = full[1]
    moved = 0
    for op in timeline["operations"]:
        before = _at(figure, op["location"])  # the index is there in what the browser holds
        if op["location"][2] == "x":  # an open segment: 60 s longer
            assert op["params"]["value"] == before + 60_000
            moved += 1
    assert moved == len(reader.plant.line("BW1").machines)  # every machine's last segment is open

    changed = call(later, downtime_panel.refresh, params, None, None, 7, "BW1",
                   {**full[6], "key": "what the browser held before a stop began", "shown": {}},
                   triggered=downtime_panel.LIVE.pulse, matching=cells)
    assert all(is_figure(f) for f in changed[1:4]) and "Weld fault" in str(changed[4])
    assert changed[7] == [downtime_panel.no_update]  # the new list brings its own cells
    assert changed[6] == sent  # same stops and segments as the tick's, at the same clock
    with pytest.raises(PreventUpdate):  # the filter changed: its draw comes, no live update for the old one
        downtime_panel.update(7, params, "1", full[6], "BW1")

def test_timeline_click_opens_the_machine_page() -> None:
    assert downtime_panel.open_machine({"points": [{"y": "ST40"}]}, "BW1", {"start": "shift", "end": None}) == \
        "/line/BW1/machine/ST40?start=shift"


def test_wall_with_a_real_reader_on_seeded_redis(redis_url: str) -> None:
    """The live view models over a real PlantReader (data rolled up by the real worker)."""
    from tests.test_browser import seed_plant

    reader, now = seed_plant(redis_url, PLANT, hours=1.0)
    app = make_app(reader, now)
    field_ids = [wall.field_id(line.id, f) for line in PLANT.lines for f in ("oee", "status", "reason", "output")]
    tile_ids = [{"type": wall.TILE, "line": line.id} for line in PLANT.lines]
    fields, tiles, _, last_ok, *_ = call(app, wall.refresh, 1, {"lines": [ln.id for ln in PLANT.lines]}, None,
                                         matching={wall.FIELD: field_ids, wall.TILE: tile_ids})
    shift = data.shift_context(PLANT, now)
    got = {(o["line"], o["field"]): v for o, v in zip(field_ids, fields, strict=True)}
    for line in PLANT.lines:
        kpis = reader.line_kpis(line.id, shift.start, min(now, shift.end), now)
        settled = andon.settled(line, kpis)[1]  # the seed's clock is the real one: a shift may have just begun
        assert got[(line.id, "oee")] == (theme.pct_number(kpis["oee"]) if settled else theme.DASH)
        assert got[(line.id, "output")] == theme.count(kpis["good_count"])
        if shift.planned_now:  # the seed leaves one machine per line in a fault
            assert got[(line.id, "status")] == "Down"
            assert ": " in got[(line.id, "reason")]  # "<machine>: <reason text>"
    assert all("andon-" in t for t in tiles)
    assert last_ok == {"at": now}


@pytest.mark.parametrize("stale", [set(), {"CM1"}])
def test_wall_and_overview_statuses_are_api_lines_on_the_sample(stale: set[str]) -> None:
    """BW1 down, CM1 running slow (or without data), BR1 in a changeover: the same on the
    wall, the overview and /api/lines."""
    from api import create_api_router

    reader = SampleReader(stale=stale)
    app = make_app(reader)
    app.server.include_router(create_api_router(reader, clock=lambda: NOW))
    with Client(app.server) as client:
        served = {line["id"]: line for line in client.get("/api/lines").get_json()["lines"]}
    ids = list(served)
    tiles = [{"type": wall.TILE, "line": lid} for lid in ids]
    paces = [wall.field_id(lid, "pace") for lid in ids]
    wall_paces, wall_tiles, *_ = call(app, wall.refresh, 1, {"lines": ids}, None,
                                      matching={wall.FIELD: paces, wall.TILE: tiles})
    cards = [{"type": overview.CARD, "line": lid} for lid in ids]
    _f, ov_cards, *_ = call(app, overview.refresh, 1, {"lines": ids}, None, matching={overview.CARD: cards})
    want = {"BW1": "down", "CM1": "nodata" if stale else "poor", "BR1": "changeover"}
    assert {lid: line["status"] for lid, line in served.items()} == want
    assert [t.split()[1] for t in wall_tiles] == [c.split()[1] for c in ov_cards] == [f"andon-{want[i]}" for i in ids]
    assert served["BW1"]["pace"] == 15 and served["BW1"]["target_so_far"] == 200  # as the wall test computes
    assert wall_paces == [line_view.pace_text(andon.Pace(served[i]["output"], served[i]["target_so_far"], None))
                          for i in ids]
    assert served["CM1"]["stale"] is bool(stale)


def test_the_shifts_first_instant_shows_a_target_of_nothing_yet() -> None:
    """At 07:00:00 the shift has no window yet: no KPIs are asked for, nothing is expected."""
    start = datetime(2026, 11, 25, 7, 0, tzinfo=TZ).timestamp()
    reader = SampleReader()
    with in_request(make_app(reader, start)):
        views, _at = data.line_views(["BW1"])
    assert (views[0]["output"], views[0]["target_so_far"], views[0]["pace_text"]) == (None, 0, theme.DASH)
    assert not [c for c in reader.calls if c[0] in ("line_kpis", "downtime")]


def test_wall_and_overview_show_what_api_lines_serves(redis_url: str) -> None:
    """Status, output, target so far and pace on the wall's tiles and the overview's cards
    are /api/lines' fields (``domain.andon``, one definition) at the same time, over a real
    PlantReader: during the shift, and on a break."""
    from api import create_api_router
    from tests.test_browser import seed_plant

    for end in (NOW, datetime(2026, 11, 25, 9, 40, tzinfo=TZ).timestamp()):  # tea break 09:30-09:45
        reader, now = seed_plant(redis_url, PLANT, hours=1.0, end=end)
        app = make_app(reader, now)
        app.server.include_router(create_api_router(reader, clock=lambda now=now: now))
        with Client(app.server) as client:
            served = client.get("/api/lines").get_json()
        assert served["shift"]["planned_now"] is (now == NOW)
        api = {line["id"]: line for line in served["lines"]}
        ids = [ln.id for ln in PLANT.lines]
        names = ("status", "output", "target", "pace", "reason")
        wall_ids = [wall.field_id(lid, f) for lid in ids for f in names]
        tile_ids = [{"type": wall.TILE, "line": lid} for lid in ids]
        fields, tiles, *_ = call(app, wall.refresh, 1, {"lines": ids}, None,
                                 matching={wall.FIELD: wall_ids, wall.TILE: tile_ids})
        on_wall = {(o["line"], o["field"]): v for o, v in zip(wall_ids, fields, strict=True)}
        ov_ids = [{"type": overview.FIELD, "line": lid, "field": f} for lid in ids
                  for f in ("output", "target", "pace")]
        cards = [{"type": overview.CARD, "line": lid} for lid in ids]
        ov_fields, ov_cards, *_ = call(app, overview.refresh, 1, {"lines": ids}, None,
                                       matching={overview.FIELD: ov_ids, overview.CARD: cards})
        on_card = {(o["line"], o["field"]): v for o, v in zip(ov_ids, ov_fields, strict=True)}
        statuses = set()
        for i, lid in enumerate(ids):
            line = api[lid]
            statuses.add(line["status"])
            pace = andon.Pace(line["output"], line["target_so_far"], line["target_shift"])
            assert pace.delta == line["pace"] and pace.behind_by == line["behind_by"]
            assert line["output"] is not None and line["target_so_far"] > 0
            assert f"andon-{line['status']}" in tiles[i].split()
            assert ov_cards[i] == f"ov-card andon-{line['status']}"
            assert on_wall[(lid, "output")] == on_card[(lid, "output")] == theme.count(line["output"])
            assert on_wall[(lid, "target")] == on_card[(lid, "target")] == theme.count(line["target_so_far"])
            assert on_wall[(lid, "pace")] == line_view.pace_text(pace)
            assert on_card[(lid, "pace")] == f"({line_view.pace_text(pace)})"
            assert ("pace-ahead" if line["pace"] >= 0 else "pace-behind") in tiles[i].split()
            if line["status_machine"] and line["status"] in (andon.DOWN, andon.CHANGEOVER, andon.PLANNED):
                assert on_wall[(lid, "reason")].startswith(f"{line['status_machine']}: ")
        # the seed leaves one machine per line in a fault: the line is down in the shift; on the
        # break the stop is planned, and does not stop a line whose other machines run
        assert statuses <= {andon.DOWN} if now == NOW else andon.DOWN not in statuses


def test_callbacks_use_dash_supported_api_only() -> None:
    """No module (the tests included) reaches into Dash's private modules, and every page or panel
    that declares callbacks is registered on each app (``app_factory.PAGE_MODULES``)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    private, declaring = [], set()
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if rel.parts[0].startswith(".") or "site-packages" in rel.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else []
            private += [f"{rel}: {n}" for n in names if n.startswith("dash.") and "._" in n or n.startswith("dash._")]
            declares = isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Callbacks"
            if declares and rel.parts[0] == "components":
                declaring.add(rel.stem)
    assert not private
    assert declaring == {m.__name__.rsplit(".", 1)[-1] for m in app_factory.PAGE_MODULES}
