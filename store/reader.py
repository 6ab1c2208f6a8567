"""The one query API: the HTTP API and the dashboard both read through ``PlantReader``,
so they always agree. Every method takes ``now`` explicitly and returns a JSON-ready
answer typed in ``domain.answers`` (plain dicts at run time).

How a window [start, end) of a machine is computed:

* **Closed minutes** (before the machine's watermark, the start of its open minute):
  stored rollups, hourly ones for whole hours, minute ones for the rest
  (``store.closed_rollups``). Cost grows with the window's hours, not with the event rate.
* **The open edge** (watermark to ``end``): the machine's carry restored from Redis,
  plus the stream entries the worker has not applied yet, through
  ``MachineAccumulator.edge`` (partial totals and stops in one pass) - so the numbers
  are live to the second.
* **No data** (before the machine's first minute): what neither covers. The worker
  starts a machine's rollups at the minute of its first event and from then on closes
  every minute, with or without events (silence becomes UNKNOWN there), so the only
  part of a window its rollups and edge can miss is a leading one: "today" when the
  collector started at 13:00, a week on a plant installed two days ago, a machine
  that never sent anything. Each bucket's missing seconds (its length minus the
  calendar time summed into it) are added as calendar time in the UNKNOWN state whose
  planned part (one shift-calendar computation per query) is planned busy and unknown
  time, without counts or energy (``_add_no_data``): no data is neither run nor down.
* **Stops** overlapping the window from the stops set (closed ones) and, for the open
  edge, from the restored accumulator; then ``domain.kpi`` / ``domain.downtime``
  classify and compute. Only the machines whose stops a query classifies are turned
  into ``Stop`` records (a line's KPIs: its output machine's).

Resolution: windows are whole minutes at the start (``start`` is floored to its minute);
the end is exact when it lies in the open edge (a window ending now), else floored to
its minute too. ``end`` is capped at ``now``.

No module-level state: caches of parsed closed rollups live on the instance (one per
process under gunicorn).
"""

from __future__ import annotations

import itertools
import logging
import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, cast, overload
from zoneinfo import ZoneInfo

import redis

from domain import andon, answers, contract, downtime, kpi
from domain import classification as human
from domain.accounting import MachineContext, Stop
from domain.engine import MachineAccumulator, feed_order
from domain.model import Event, State
from domain.plant import Line, Machine, Plant
from domain.plausibility import Flag
from domain.totals import Totals
from store import live
from store.bookkeeping import LineSnapshot, snapshot_of
from store.cache import LruCache
from store.classifications import Classifications
from store.closed_rollups import MachineRequest, RollupReads
from store.line_worker import first_minute, usable_event
from store.progress import floor_to, pending_events
from store.reasons import ReasonLists
from store.sums import RollupSum
from store.windows import MAX_WINDOW_DAYS, Window, WindowError, parse_time, resolve_window

__all__ = ["PlantReader", "UnknownLine", "UnknownMachine", "Window", "WindowError", "parse_time", "resolve_window"]

log = logging.getLogger(__name__)

MINUTE_S = 60.0
DAY_S = 86400.0
MAX_BUCKETS = 5000
MAX_FLAGS = 100  # implausible readings listed per answer
# stored rollups cover whole minutes and the edge runs to the window's end: anything
# missing is whole minutes (or the whole window), never a rounding residue
NO_DATA_TOLERANCE_S = 1e-3


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class UnknownLine(LookupError):
    pass


class UnknownMachine(LookupError):
    pass


@dataclass(slots=True)
class Edge:
    """The open edge of one machine: a restored accumulator fed the newer events, and
    (once ``_add_edge`` ran) its stops as of the window's end."""

    acc: MachineAccumulator
    stops: list[Stop] = field(default_factory=list)


class PlantReader:
    """Read-only queries over what the collectors and the rollup worker wrote."""

    def __init__(self, redis_client: redis.Redis, plant: Plant, *, cache_days: int = 4096, cache_hours: int = 512,
                 cache_stop_days: int = 2048, max_edge_events: int = 200_000) -> None:
        self.redis = redis_client
        self.reason_lists = ReasonLists(redis_client, plant)  # the plant file's reason lists, managed ones over them
        self.tz = ZoneInfo(plant.timezone)
        self.rollups = RollupReads(redis_client, cache_days=cache_days, cache_hours=cache_hours)
        self._stop_days: LruCache[tuple[str, float, frozenset[str]], _StopsByMachine] = LruCache(cache_stop_days)
        self.max_edge_events = max_edge_events
        self._warned: set[str] = set()
        self._amend_seen: dict[str, int] = {}
        # per machine: the shift-calendar cache the restored accumulators share
        self._contexts: dict[tuple[str, str], MachineContext] = {}
        self.classifications = Classifications(redis_client)  # people's reasons override the PLC's

    @property
    def plant(self) -> Plant:
        """The plant as the figures see it: the plant file with the reason lists engineers
        manage (``store.reasons``) layered over it."""
        return self.reason_lists.effective()

    # --- lookups --------------------------------------------------------------------

    def line(self, line_id: str) -> Line:
        line = self.plant.line(line_id)
        if line is None:
            raise UnknownLine(f"unknown line {line_id!r}")
        return line

    def _machine_ids(self, line: Line, machine: str | None) -> list[str]:
        if machine is None:
            return [m.id for m in line.machines]
        if line.machine(machine) is None:
            raise UnknownMachine(f"unknown machine {machine!r} in line {line.id!r}")
        return [machine]

    def resolve_window(self, start_param: str | None, end_param: str | None, now: float) -> Window:
        return resolve_window(self.plant, start_param, end_param, now)

    # --- live state and health ---------------------------------------------------------------

    @overload
    def lines(self, now: float, only: Sequence[str] | None = None, *,
              with_andon: Literal[False] = False) -> answers.Lines: ...

    @overload
    def lines(self, now: float, only: Sequence[str] | None = None, *,
              with_andon: Literal[True]) -> answers.LinesWithAndon: ...

    def lines(self, now: float, only: Sequence[str] | None = None, *,
              with_andon: bool = False) -> answers.Lines | answers.LinesWithAndon:
        """Every line (or those in ``only``) with its machines' live state: state (unknown
        when no data for ``gap_timeout_s``, link down or a bad reading), since when, reason,
        counters, power. ``with_andon``: each line also carries its andon status and pace
        this shift (``LineAndon.to_dict``: one line-KPI query per line) and the answer the
        shift they are for (``shift``), as ``/api/lines`` serves them."""
        answer: Any = live.lines_now(self.redis, self.plant, now, only=only)  # Lines, then with the andon
        if with_andon:
            shift, by_line = self.andon_now(now, answer)
            answer["shift"] = shift.to_dict()
            for line in answer["lines"]:
                line.update(by_line[line["id"]].to_dict())
        return answer  # type: ignore[no-any-return]

    def andon_now(self, now: float, lines_now: dict[str, Any] | None = None
                  ) -> tuple[andon.ShiftContext, dict[str, andon.LineAndon]]:
        """Each line's andon status and pace (``domain.andon.line_andon``) from its live state
        (``lines_now``: an answer of ``lines``, else read now) and its KPIs over the current
        shift up to now: what the wall, the overview and ``/api/lines`` show."""
        shift = andon.shift_context(self.plant, now)
        answer = self.lines(now) if lines_now is None else lines_now
        end = min(now, shift.end)
        out = {}
        for line_now in answer["lines"]:
            cfg = self.line(line_now["id"])
            kpis = self.line_kpis(cfg.id, shift.start, end, now) if end > shift.start else None
            out[cfg.id] = andon.line_andon(cfg, line_now, kpis, shift)
        return shift, out

    def health(self, now: float) -> answers.Health:
        """Redis reachable; per line the collectors' last data and the rollup worker's lag."""
        return live.health(self.redis, self.plant, now)


    # --- KPIs ---------------------------------------------------------------------------

    def machine_kpis(self, line: str, machine: str, start: float, end: float, now: float) -> answers.MachineKpis:
        cfg = self.line(line)
        ids = self._machine_ids(cfg, machine)
        window, totals, stops = self._window_data(cfg, ids, start, end, now, stops_of=ids)
        report = kpi.kpis(totals[machine], stops, self.plant, window[0], window[1], now)
        figures = _report_dict(report)
        flags: answers.MachineKpiFlags = {**figures["flags"],
                                          "implausible": self.flags(line, machine, window[0], window[1], now)}
        return {**figures, "line": line, "machine": machine, "window": _window_dict(window, now, self.tz),
                "flags": flags, **human.coverage(stops, self.plant, window[0], window[1], now).to_dict()}

    def line_kpis(self, line: str, start: float, end: float, now: float, *,
                  machines: bool = False) -> answers.LineKpis:
        """The line's KPIs: the output machine's time and counts, all machines' energy.
        ``machines=True`` adds each machine's own KPIs (classifying every machine's stops
        costs about as much again per machine)."""
        cfg = self.line(line)
        ids = self._machine_ids(cfg, None)
        # the line's time comes from its output machine: only its stops are classified
        stops_of = ids if machines else [cfg.output_machine]
        window, totals, stops = self._window_data(cfg, ids, start, end, now, stops_of=stops_of)
        report = kpi.line_kpis(totals, stops, self.plant, cfg, window[0], window[1], now)
        coverage = human.coverage([s for s in stops if s.machine == cfg.output_machine], self.plant, window[0],
                                  window[1], now).to_dict()
        out: answers.LineKpis = {
            "line": line,
            "output_machine": cfg.output_machine,
            "target_oee": cfg.target_oee,
            "window": _window_dict(window, now, self.tz),
            **_report_dict(report),
            **coverage,  # type: ignore[typeddict-item]  # mypy wants ``machines`` (not required: added below)
        }
        if machines:
            by_machine: dict[str, list[Stop]] = {m: [] for m in ids}
            for stop in stops:
                by_machine[stop.machine].append(stop)
            out["machines"] = [
                {"id": m.id, "name": m.name or m.id,
                 **_report_dict(kpi.kpis(totals[m.id], by_machine[m.id], self.plant, window[0], window[1], now)),
                 **human.coverage(by_machine[m.id], self.plant, window[0], window[1], now).to_dict()}
                for m in cfg.machines
            ]
        return out

    def kpi_series(self, line: str, start: float, end: float, step_s: float, now: float,
                   machine: str | None = None) -> answers.KpiSeries:
        """KPIs per bucket (e.g. OEE per hour) for the line (or one machine)."""
        cfg = self.line(line)
        ids = self._machine_ids(cfg, machine)
        window = self._window(start, end, now, ids, None)
        bounds = _bounds(window, step_s, self.tz)
        own = machine or cfg.output_machine  # a line's time comes from its output machine
        sums, stops, window = self._bucket_data(cfg, ids, bounds, now, stops_of=[own])
        bounds = [*bounds[:-1], window.end]
        by_bucket = _stops_by_bucket(stops, bounds, now)
        buckets: list[answers.KpiBucket] = []
        for i, (a, b) in enumerate(itertools.pairwise(bounds)):
            if b <= a:
                continue  # the end was floored onto the last bucket's start
            totals = {m: sums[m][i].to_totals() for m in ids}
            if machine is None:
                report = kpi.line_kpis(totals, by_bucket[i], self.plant, cfg, a, b, now)
            else:
                report = kpi.kpis(totals[machine], by_bucket[i], self.plant, a, b, now)
            buckets.append({"start": a, "end": b, **_report_dict(report)})
        return {"line": line, "machine": machine, "step_s": _step(step_s), "window": _window_dict(window, now, self.tz),
                "buckets": buckets}

    # --- downtime and energy -----------------------------------------------------------------

    def downtime(self, line: str, start: float, end: float, now: float) -> answers.Downtime:
        """Stops of the line's machines: list, Pareto by duration and count, per machine,
        MTBF/MTTR (run time from the same window's totals)."""
        cfg = self.line(line)
        ids = self._machine_ids(cfg, None)
        window, totals, stops = self._window_data(cfg, ids, start, end, now, stops_of=ids)
        run_s = sum(t.run_s for t in totals.values())
        report = downtime.downtime_report(stops, self.plant, window[0], window[1], now, run_s=run_s)
        _annotate(report["events"], stops, self.plant)
        coverage = human.coverage(stops, self.plant, window[0], window[1], now).to_dict()
        return {"line": line, "window": _window_dict(window, now, self.tz),
                "micro_stop_threshold_s": report["micro_stop_threshold_s"], "events": report["events"],
                "pareto": report["pareto"], "by_machine": report["by_machine"],
                "summary": {**report["summary"], **coverage}, "failures": report["failures"],
                "failure_down_s": report["failure_down_s"], "run_s": report["run_s"], "mtbf_s": report["mtbf_s"],
                "mttr_s": report["mttr_s"]}

    def energy(self, line: str, start: float, end: float, now: float) -> answers.Energy:
        """Energy of the line and per machine: kWh, per (good) unit, not-running share,
        peak 15-min demand, cost and CO2."""
        cfg = self.line(line)
        window, totals, _ = self._window_data(cfg, self._machine_ids(cfg, None), start, end, now)
        # energy and counts do not depend on how stops are classified
        line_totals = kpi.with_energy_of(totals[cfg.output_machine], list(totals.values()))
        line_report = kpi.report(line_totals, self.plant, window[0], window[1], now)
        machines: list[answers.MachineEnergy] = []
        for m in cfg.machines:
            report = kpi.report(totals[m.id], self.plant, window[0], window[1], now)
            machines.append({"id": m.id, "name": m.name or m.id, **_clean_energy(report)})
        quarters = line_report.totals.quarter_kwh
        return {
            "line": line,
            "window": _window_dict(window, now, self.tz),
            "co2_kg_per_kwh": self.plant.co2_kg_per_kwh,
            **_clean_energy(line_report),
            "good_count": line_report.totals.good_count,
            "total_count": line_report.totals.total_count,
            # [start, average kW] (lists at run time, as the segments)
            "quarters": cast(list[tuple[float, float]], [[q, kwh * 4.0] for q, kwh in sorted(quarters.items())]),
            "machines": machines,
        }

    def power_series(self, line: str, start: float, end: float, step_s: float, now: float) -> answers.PowerSeries:
        """Average kW per machine per bucket (from the energy in the rollups)."""
        cfg = self.line(line)
        ids = self._machine_ids(cfg, None)
        window = self._window(start, end, now, ids, None)
        bounds = _bounds(window, step_s, self.tz)
        sums, _, window = self._bucket_data(cfg, ids, bounds, now)
        spans = [min(b, window[1]) - a for a, b in itertools.pairwise(bounds)]
        energy = contract.ROLLUP_FIELDS.index("energy_kwh")
        machines = {m: [_kw(s.scalars[energy], span) for s, span in zip(sums[m], spans, strict=True)] for m in ids}
        return {"line": line, "step_s": _step(step_s), "window": _window_dict(window, now, self.tz),
                "starts": list(bounds[:-1]), "machines": machines}

    # --- timeline -----------------------------------------------------------------------

    def timeline(self, line: str, start: float, end: float, now: float) -> answers.Timeline:
        """Per machine, the effective-state segments [start, end, state, reason] of the
        window (same rules as the KPIs); stops give the reasons."""
        cfg = self.line(line)
        ids = self._machine_ids(cfg, None)
        end = min(end, now)
        if end <= start:
            raise WindowError("end must be after start")
        changes = self._states_at(line, ids, start)
        inside: Any = self.redis.zrangebyscore(contract.states_key(line), f"({start}", end)
        for raw in inside:
            machine, t, state = contract.decode_state_member(raw)
            if machine in changes:
                changes[machine].append((t, state))
        snapshot = self._snapshot(line)
        stops = self._stops(cfg, ids, snapshot, {}, start, end, now)
        segments = {m: _segments(changes[m], start, end, [s for s in stops if s.machine == m], now) for m in ids}
        return {"line": line, "window": _window_dict(Window(start, end, ""), now, self.tz),
                "machines": [{"id": m, "segments": segments[m]} for m in ids]}

    def _states_at(self, line: str, machines: list[str], at: float, page: int = 500,
                   max_pages: int = 10) -> dict[str, list[tuple[float, str]]]:
        """Each machine's last state change at or before ``at`` (walking back page by page)."""
        found: dict[str, list[tuple[float, str]]] = {m: [] for m in machines}
        missing = set(machines)
        for n in range(max_pages):
            members: Any = self.redis.zrevrangebyscore(contract.states_key(line), at, "-inf", start=n * page,
                                                       num=page)
            for raw in members:
                machine, t, state = contract.decode_state_member(raw)
                if machine in missing:
                    found[machine].append((t, state))
                    missing.discard(machine)
            if not missing or len(members) < page:
                break
        return found

    # --- implausible readings -----------------------------------------------------------

    def flags(self, line: str, machine: str | None, start: float, end: float, now: float, *,
              limit: int = MAX_FLAGS, page: int = 500, max_pages: int = 20) -> list[answers.Flag]:
        """Readings the rollups did not count because the machine cannot have made them
        (``domain.plausibility``), and events the worker did not use for their timestamp,
        of one machine (or the line's), scored in [start, min(end, now)): newest first, at
        most ``limit`` (a sensor gone mad flags every reading; the newest say what is going
        on). ``time`` is the score: the event time, or for a timestamp flag the arrival
        (its bad timestamp is the value)."""
        cfg = self.line(line)
        wanted = set(self._machine_ids(cfg, machine))
        end = min(end, now)
        out: list[answers.Flag] = []
        key = contract.flags_key(line)
        for n in range(max_pages):
            members: Any = self.redis.zrevrangebyscore(key, f"({end}", start, start=n * page, num=page,
                                                       withscores=True)
            for raw, score in members:
                try:
                    flag = contract.decode_flag_member(line, raw)
                except ValueError:
                    continue
                if flag.machine in wanted:
                    out.append(_flag_dict(flag, float(score), self.tz))
                    if len(out) >= limit:
                        return out
            if len(members) < page:
                break
        return out

    # --- the data behind a window -----------------------------------------------------------

    def _window(self, start: float, end: float, now: float, machines: Sequence[str],
                snapshot: LineSnapshot | None) -> Window:
        if not (math.isfinite(start) and math.isfinite(end)):
            raise WindowError("start and end must be finite")
        end = min(end, now)
        start = floor_to(start, MINUTE_S)
        if end <= start:
            raise WindowError("end must be after start")
        if end - start > MAX_WINDOW_DAYS * 86400.0 + MINUTE_S:
            raise WindowError(f"window longer than {MAX_WINDOW_DAYS} days")
        if snapshot is not None and end != floor_to(end, MINUTE_S):
            closed = [w for m in machines if (w := snapshot.watermark(m)) is not None and w > end]
            if closed:
                end = floor_to(end, MINUTE_S)  # inside closed minutes: minute resolution
                if end <= start:
                    raise WindowError("window shorter than a minute inside closed minutes")
        return Window(start, end, "")

    def _window_data(self, line: Line, machines: list[str], start: float, end: float, now: float,
                     stops_of: Sequence[str] = ()) -> tuple[Window, dict[str, Totals], list[Stop]]:
        window = self._window(start, end, now, machines, None)
        sums, stops, window = self._bucket_data(line, machines, [window.start, window.end], now, stops_of)
        return window, {m: sums[m][0].to_totals() for m in machines}, stops

    def _bucket_data(self, line: Line, machines: list[str], bounds: list[float], now: float,
                     stops_of: Sequence[str] = ()) -> tuple[dict[str, list[RollupSum]], list[Stop], Window]:
        """Bucket sums of ``machines`` and the stops of ``stops_of`` (some of them) overlapping
        the window (none: energy does not depend on stops)."""
        snapshot = self._snapshot(line.id)
        window = self._window(bounds[0], bounds[-1], now, machines, snapshot)
        bounds = [*bounds[:-1], window.end]
        requests = [MachineRequest(m, w, bounds) for m in machines if (w := snapshot.watermark(m)) is not None]
        sums = self.rollups.bucket_sums(line.id, requests)
        for m in machines:
            sums.setdefault(m, [RollupSum() for _ in range(len(bounds) - 1)])
        edges = self._edges(line, snapshot, [m for m in machines if _needs_edge(snapshot, m, window.end)], now)
        for machine, edge in edges.items():
            _add_edge(sums[machine], edge, bounds)
        _add_no_data(sums, bounds, self.plant)
        stops: list[Stop] = []
        if stops_of:
            stops = self._stops(line, machines, snapshot, edges, window.start, window.end, now, stops_of)
        return sums, stops, window

    def _snapshot(self, line_id: str) -> LineSnapshot:
        snapshot = snapshot_of(self.redis.hgetall(contract.rollup_state_key(line_id)))
        if self._amend_seen.setdefault(line_id, snapshot.amend) != snapshot.amend:
            # late data rewrote stored rollups and stops: what was cached as final may have changed
            self._amend_seen[line_id] = snapshot.amend
            self.rollups.days.clear()
            self.rollups.hours.clear()
            self._stop_days.clear()
        return snapshot

    def _edges(self, line: Line, snapshot: LineSnapshot, machines: list[str], now: float) -> dict[str, Edge]:
        """Restored accumulators fed the stream entries the worker has not applied yet."""
        if not machines:
            return {}
        known = [snapshot.last_id(m) for m in machines if m in snapshot.carries]
        after = min(known, key=contract.stream_id_tuple) if known else None  # machines without carry: from there on
        entries = self._stream_after(line.id, after)
        edges: dict[str, Edge] = {}
        for m in machines:
            carry = snapshot.carries.get(m)
            cfg = line.machine(m)
            assert cfg is not None
            if carry is not None:
                edges[m] = Edge(MachineAccumulator(self.plant, line, cfg, float(carry["w"]), carry=carry["acc"],
                                                   context=self._context(line, cfg)))
        wanted = set(machines)
        # events the worker holds back for its watermark, then those it has not read yet
        waiting: dict[str, list[Event]] = {m: pending_events(line, m, snapshot.carries[m])
                                           for m in machines if m in snapshot.carries}
        for entry_id, fields in entries:
            event = usable_event(line, fields, now, 0.0)  # nothing after now counts
            if event is None or isinstance(event, str) or event.machine not in wanted:
                continue
            if contract.stream_id_tuple(entry_id) <= contract.stream_id_tuple(snapshot.last_id(event.machine)):
                continue
            waiting.setdefault(event.machine, []).append(event)
        for m, events in waiting.items():
            events = [e for e in events if e.ts <= now]
            if not events:
                continue
            events.sort(key=feed_order)
            edge = edges.get(m)
            if edge is None:
                cfg = line.machine(m)
                assert cfg is not None
                edge = edges[m] = Edge(MachineAccumulator(
                    self.plant, line, cfg, first_minute(self.plant, events[0].ts, now),
                    context=self._context(line, cfg)))
            for event in events:
                edge.acc.feed(event)  # one older than the worker processed is applied at that time
        return edges

    def _context(self, line: Line, machine: Machine) -> MachineContext:
        key = (line.id, machine.id)
        context = self._contexts.get(key)
        if context is None:
            context = self._contexts[key] = MachineContext.of(self.plant, line, machine)
        return context

    def _stream_after(self, line_id: str, after: str | None) -> list[tuple[str, dict[bytes, bytes]]]:
        low = "-" if after is None else contract.after_stream_id(after)
        entries: Any = self.redis.xrange(contract.events_key(line_id), min=low, count=self.max_edge_events)
        if len(entries) >= self.max_edge_events and line_id not in self._warned:
            self._warned.add(line_id)
            log.warning("line %s: more than %d events not yet rolled up (is the rollup worker running?); "
                        "the open edge uses the first %d", line_id, self.max_edge_events, self.max_edge_events)
        return [(_text(entry_id), fields) for entry_id, fields in entries]

    def _stops(self, line: Line, machines: Sequence[str], snapshot: LineSnapshot, edges: dict[str, Edge],
               start: float, end: float, now: float, stops_of: Sequence[str] | None = None) -> list[Stop]:
        """Stops of ``stops_of`` (default: all ``machines``) overlapping [start, end): closed
        ones from the stops set; the ongoing one from the stops set, or from the open edge
        where it was computed. How far back to look depends on all ``machines``."""
        wanted = set(machines)
        own = wanted if stops_of is None else set(stops_of)
        ongoing = {m: contract.decode_stop_member(c["stop"])[1] for m, c in snapshot.carries.items() if c.get("stop")}
        lookback = max([snapshot.max_stop_s, *(start - s for m, s in ongoing.items() if m in wanted)])
        lo = start - lookback - 1.0
        out: list[Stop] = []
        for stop in self._stored_stops(line.id, lo, end, snapshot, ongoing, own):
            if not lo <= stop.start < end:
                continue
            if stop.end is None and stop.machine in edges:
                continue  # the open edge knows it better
            if _overlaps(stop, start, end, now):
                out.append(stop)
        for machine, edge in edges.items():  # their stops as of ``end``: ``_add_edge``
            if machine in own:
                out.extend(s for s in edge.stops if _overlaps(s, start, end, now))
        return self.classifications.apply(line.id, out)

    def _stored_stops(self, line_id: str, lo: float, hi: float, snapshot: LineSnapshot,
                      ongoing: dict[str, float], wanted: set[str]) -> list[Stop]:
        """Members of the stops set of the ``wanted`` machines with start in about [lo, hi),
        each machine's in stored order. UTC days before every machine's watermark and every
        ongoing stop never change: they are parsed once (kept by machine)."""
        final_until = min([*(float(c["w"]) for c in snapshot.carries.values()), *ongoing.values()], default=-math.inf)
        machines = frozenset(snapshot.carries)  # a machine seen for the first time may bring older stops
        days: list[float] = []
        day = floor_to(lo, DAY_S)
        while day < hi and day + DAY_S <= final_until:
            days.append(day)
            day += DAY_S
        live_from = max(day, lo)
        found: list[_StopsByMachine | None] = []
        missing = []
        for d in days:
            cached = self._stop_days.get((line_id, d, machines))
            if cached is None:
                missing.append(d)
            found.append(cached)  # None: parsed below
        if missing or live_from < hi:
            key = contract.stops_key(line_id)
            with self.redis.pipeline(transaction=False) as pipe:
                for d in missing:
                    pipe.zrangebyscore(key, d, f"({d + DAY_S}")
                if live_from < hi:
                    pipe.zrangebyscore(key, live_from, f"({hi}")
                replies = iter(pipe.execute())
            for i, d in enumerate(days):
                if found[i] is None:
                    read = found[i] = _StopsByMachine(line_id, next(replies))
                    self._stop_days.put((line_id, d, machines), read)
            if live_from < hi:
                found.append(_StopsByMachine(line_id, next(replies)))
        return [stop for by_machine in found if by_machine is not None
                for m in sorted(wanted) for stop in by_machine.of(m)]


# --- helpers (pure) -------------------------------------------------------------------------

def _needs_edge(snapshot: LineSnapshot, machine: str, end: float) -> bool:
    watermark = snapshot.watermark(machine)
    return watermark is None or end > watermark


def _add_edge(sums: list[RollupSum], edge: Edge, bounds: Sequence[float]) -> None:
    """Adds the open edge [max(start, watermark), end) to the buckets; keeps the edge's
    stops as of ``end`` (the same pass gives both)."""
    start, end = bounds[0], bounds[-1]
    acc = edge.acc
    if acc.cursor < start:
        acc.close_until(start)
    for rollup in acc.close_until(end):
        if start <= rollup.minute_start < end:
            sums[_bucket(bounds, rollup.minute_start)].add(RollupSum.from_totals(rollup.totals))
    partial, edge.stops = acc.edge(end)
    if end > acc.cursor >= start:
        sums[_bucket(bounds, acc.cursor)].add(RollupSum.from_totals(partial))


def _add_no_data(sums: dict[str, list[RollupSum]], bounds: Sequence[float], plant: Plant) -> None:
    """Adds to every bucket the time its rollups and open edge do not cover, as unknown.

    Relies on the rollup worker's invariant: from a machine's first minute on, every
    minute is closed and stored (also without events: a silence in the middle is
    already stored as UNKNOWN minutes), and the open edge runs from the watermark to
    the window's end. So only a leading gap matters: a machine's uncovered time is
    [window start, first minute) (the whole window if it has no data at all), and in
    each bucket the missing seconds lie at the bucket's start. The amounts come from
    the calendar time actually summed, so every bucket's calendar time adds up to its
    length and nothing counts twice; were the invariant broken (minute rollups past
    their retention, a worker restarted without its bookkeeping), only where in its
    bucket the missing time lies, so how much of it was planned, would be approximated.
    Cost: a subtraction per machine and bucket; the shift calendar is walked once, over
    the span of all gaps, and only when there is one."""
    gaps: list[tuple[RollupSum, float, float]] = []
    for parts in sums.values():
        for part, (a, b) in zip(parts, itertools.pairwise(bounds), strict=True):
            missing = (b - a) - part.calendar_s
            if missing > NO_DATA_TOLERANCE_S:
                gaps.append((part, a, a + missing))
    if not gaps:
        return
    planned = downtime.PlannedIndex(plant, min(a for _, a, _ in gaps), max(b for _, _, b in gaps))
    for part, a, b in gaps:
        part.add(RollupSum.no_data(b - a, planned.seconds(a, b)))


def _bucket(bounds: Sequence[float], t: float) -> int:
    return min(max(bisect_right(bounds, t) - 1, 0), len(bounds) - 2)


def _bounds(window: Window, step_s: float, tz: ZoneInfo) -> list[float]:
    """Bucket boundaries on the plant's local clock grid (whole hours, quarter hours,
    local days, ...); the first and last bucket may be partial."""
    step = _step(step_s)
    if math.ceil((window.end - window.start) / step) + 1 > MAX_BUCKETS:
        raise WindowError(f"step: {step:g} s makes more than {MAX_BUCKETS} buckets")
    grid = _local_days(window, tz, int(step // DAY_S)) if step % DAY_S == 0 else _local_grid(window, tz, step)
    return [window.start, *(t for t in grid if window.start < t < window.end), window.end]


def _local_grid(window: Window, tz: ZoneInfo, step: float) -> list[float]:
    midnight = datetime.fromtimestamp(window.start, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    origin = midnight.timestamp()
    first = origin + math.ceil((window.start - origin) / step) * step
    return [first + i * step for i in range(math.ceil((window.end - first) / step) + 1)]


def _local_days(window: Window, tz: ZoneInfo, days: int) -> list[float]:
    """Local midnights every ``days`` days (as long as the local days really are)."""
    day = datetime.fromtimestamp(window.start, tz).date()
    out = []
    while True:
        day += timedelta(days=days)
        at = datetime.combine(day, datetime.min.time(), tzinfo=tz).timestamp()
        out.append(at)
        if at >= window.end:
            return out


def _step(step_s: float) -> float:
    """Buckets are whole minutes."""
    if not math.isfinite(step_s) or step_s < MINUTE_S:
        raise WindowError("step: at least 60 seconds")
    return float(round(step_s / MINUTE_S) * MINUTE_S)


def _stops_by_bucket(stops: Iterable[Stop], bounds: Sequence[float], now: float) -> list[list[Stop]]:
    """The stops overlapping each bucket (a long stop is in every bucket it spans)."""
    out: list[list[Stop]] = [[] for _ in range(len(bounds) - 1)]
    for stop in stops:
        stop_end = stop.end if stop.end is not None else max(now, stop.start)
        first = max(bisect_right(bounds, stop.start) - 1, 0)
        for i in range(first, len(out)):
            if bounds[i] >= stop_end:
                break
            if _overlaps(stop, bounds[i], bounds[i + 1], now):
                out[i].append(stop)
    return out


def _annotate(events: list[answers.StopEvent], stops: Iterable[Stop], plant: Plant) -> None:
    """Each event gets its stop's stable id, the PLC's code and who classified it."""
    info = {(s.machine, s.start): s for s in stops if isinstance(s, human.ClassifiedStop)}
    for event in events:
        stop = info.get((event["machine"], event["start"]))
        if stop is None:
            continue
        event.update({"id": stop.stop_id, "plc_reason": stop.plc_reason,
                      "plc_reason_text": downtime.reason_text(plant, stop.plc_reason) if stop.plc_reason else None,
                      "classified": bool(stop.classified_by), "classified_by": stop.classified_by or None,
                      "comment": stop.comment, "piece": stop.piece})


def _overlaps(stop: Stop, start: float, end: float, now: float) -> bool:
    stop_end = stop.end if stop.end is not None else max(now, stop.start)
    return stop.start < end and stop_end > start


class _StopsByMachine:
    """Stops-set members by machine, in stored order. Each machine's ``Stop`` records are
    made when first asked for: a line's KPIs need only its output machine's."""

    __slots__ = ("_line", "_decoded", "_stops")

    def __init__(self, line: str, members: Iterable[bytes | str]) -> None:
        self._line = line
        self._decoded: dict[str, list[tuple[str, float, float | None, str, int]]] = {}
        self._stops: dict[str, list[Stop]] = {}
        for raw in members:
            try:
                parts = contract.decode_stop_member(raw)
            except ValueError:
                continue
            self._decoded.setdefault(parts[0], []).append(parts)

    def of(self, machine: str) -> list[Stop]:
        stops = self._stops.get(machine)
        if stops is None:  # (two threads may both build it: the same list either way)
            decoded = self._decoded.get(machine, ())
            stops = [stop for parts in decoded if (stop := _stop(self._line, parts)) is not None]
            self._stops[machine] = stops
        return stops


def _stop(line: str, parts: tuple[str, float, float | None, str, int]) -> Stop | None:
    machine, start, end, state, reason = parts
    try:
        return Stop(line, machine, start, end, State(state), reason)
    except ValueError:
        return None


def _segments(changes: list[tuple[float, str]], start: float, end: float, stops: Iterable[Stop],
              now: float) -> list[answers.Segment]:
    """[start, end, state, reason] segments from state changes; a segment inside a stop
    takes the stop's reason. Before the first change the state is unknown."""
    out: list[list[Any]] = []
    points = sorted(changes)
    current = (start, State.UNKNOWN.value)
    for t, state in points:
        if t <= start:
            current = (start, state)
            continue
        if t >= end:
            break
        if state != current[1]:
            out.append([current[0], t, current[1], 0])
            current = (t, state)
    if end > current[0]:
        out.append([current[0], end, current[1], 0])
    stop_list = sorted(stops, key=lambda s: s.start)
    for seg in out:
        seg[3] = _reason_at(stop_list, seg[0], seg[1], now) if seg[2] not in (State.RUNNING, State.UNKNOWN) else 0
    # JSON arrays: lists at run time, typed as their fixed shape
    return cast(list[answers.Segment], [seg for seg in out if seg[1] > seg[0]])


def _reason_at(stops: Sequence[Stop], a: float, b: float, now: float) -> int:
    for stop in stops:
        stop_end = stop.end if stop.end is not None else max(now, stop.start)
        if stop.start < b and stop_end > a:
            return stop.reason
    return 0


def _kw(kwh: float, span_s: float) -> float | None:
    return kwh * 3600.0 / span_s if span_s > 0 else None


def _window_dict(window: Window | tuple[float, float], now: float, tz: ZoneInfo) -> answers.Window:
    start, end = window[0], window[1]
    return {"start": start, "end": end, "now": now, "live": end >= now,
            "start_iso": _iso(start, tz), "end_iso": _iso(end, tz)}


def _iso(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


def _flag_dict(flag: Flag, at: float, tz: ZoneInfo) -> answers.Flag:
    value = flag.value if not isinstance(flag.value, float) or math.isfinite(flag.value) else None
    return {"machine": flag.machine, "signal": flag.signal, "time": _iso(at, tz), "ts": at, "kind": flag.kind,
            "value": value}


def _report_dict(report: kpi.KpiReport) -> answers.Kpis:
    data = report.to_dict()
    data.pop("window", None)
    cleaned: answers.Kpis = _clean(data)
    return cleaned


def _clean_energy(report: kpi.KpiReport) -> answers.EnergyKpis:
    cleaned: answers.EnergyKpis = _clean(report.energy())
    return cleaned


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value
