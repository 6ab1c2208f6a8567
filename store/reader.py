"""The one query API: the HTTP API and the dashboard both read through ``PlantReader``,
so they always agree. Every method takes ``now`` explicitly and returns a JSON-ready
answer typed in ``domain.answers`` (plain dicts at run time).

How a window [start, end) of a machine is computed (``store.window_reads``; the stops
in ``store.stop_reads``, the answers' JSON-safe parts in ``store.answer_parts``):

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
  time, without counts or energy: no data is neither run nor down.
* **Stops** overlapping the window from the stops set (closed ones) and, for the open
  edge, from the restored accumulator; then ``domain.kpi`` / ``domain.downtime`` / ``domain.stop_report``
  classify and compute. Only the machines whose stops a query classifies are turned
  into ``Stop`` records (a line's KPIs: its output machine's).

Resolution: windows are whole minutes at the start (``start`` is floored to its minute);
the end is exact when it lies in the open edge (a window ending now), else floored to
its minute too. ``end`` is capped at ``now``.

No module-level state: caches of parsed closed rollups and stops live on the instance
(one per process under uvicorn).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, Literal, cast, overload
from zoneinfo import ZoneInfo

import redis

from domain import andon, answers, contract, kpi, stop_report, stop_sums
from domain import classification as human
from domain.accounting import Stop
from domain.plant import Line, Plant
from domain.stop_groups import machine_stops
from domain.totals import Totals
from store import live
from store.answer_parts import clean_energy, flag_dict, kw, report_dict, window_dict
from store.classifications import Classifications
from store.closed_rollups import RollupReads
from store.reasons import ReasonLists
from store.stop_reads import StopReads, annotate, state_segments, stops_by_bucket
from store.window_cache import DEFAULT_TTL_S
from store.window_reads import WindowReads, query_window
from store.windows import Window, WindowError, bucket_bounds, bucket_step, parse_time, resolve_window

__all__ = ["PlantReader", "UnknownLine", "UnknownMachine", "Window", "WindowError", "parse_time", "resolve_window"]

MAX_FLAGS = 100  # implausible readings listed per answer
KpisOf = Callable[[str, float, float, float], answers.LineKpis]  # as ``PlantReader.line_kpis(line, start, end, now)``


class UnknownLine(LookupError):
    pass


class UnknownMachine(LookupError):
    pass


class PlantReader:
    """Read-only queries over what the collectors and the rollup worker wrote."""

    def __init__(self, redis_client: redis.Redis, plant: Plant, *, cache_days: int = 4096, cache_hours: int = 512,
                 cache_stop_days: int = 2048, max_edge_events: int = 200_000,
                 window_cache_ttl_s: int = DEFAULT_TTL_S) -> None:
        self.redis = redis_client
        self.reason_lists = ReasonLists(redis_client, plant)  # the plant file's reason lists, managed ones over them
        self.tz = ZoneInfo(plant.timezone)
        self.rollups = RollupReads(redis_client, cache_days=cache_days, cache_hours=cache_hours)
        self.classifications = Classifications(redis_client)  # people's reasons override the PLC's
        self.stop_reads = StopReads(redis_client, self.classifications, cache_days=cache_stop_days)
        self._answered: live.Answered = {}  # each machine's last live state (``live.machine_now``)
        self.window_reads = WindowReads(redis_client, self.reason_lists.effective, self.rollups, self.stop_reads,
                                        max_edge_events=max_edge_events, window_cache_ttl_s=window_cache_ttl_s)

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
              with_andon: Literal[False] = False, kpis: KpisOf | None = None) -> answers.Lines: ...

    @overload
    def lines(self, now: float, only: Sequence[str] | None = None, *,
              with_andon: Literal[True], kpis: KpisOf | None = None) -> answers.LinesWithAndon: ...

    def lines(self, now: float, only: Sequence[str] | None = None, *,
              with_andon: bool = False, kpis: KpisOf | None = None) -> answers.Lines | answers.LinesWithAndon:
        """Every line (or those in ``only``) with its machines' live state: state (unknown
        when no data for ``gap_timeout_s``, link down or a bad reading), since when, reason,
        counters, power. ``with_andon``: each line also carries its andon status and pace
        this shift (``LineAndon.to_dict``: one line-KPI query per line) and the answer the
        shift they are for (``shift``), as ``/api/lines`` serves them; ``kpis``: reads those
        KPIs instead of ``line_kpis`` (the dashboard's: once per line version, shared with
        the screens)."""
        answer: Any = live.lines_now(self.redis, self.plant, now, only=only,  # Lines, then with the andon
                                     answered=self._answered)
        if with_andon:
            shift, by_line = self.andon_now(now, answer, kpis=kpis)
            answer["shift"] = shift.to_dict()
            for line in answer["lines"]:
                line.update(by_line[line["id"]].to_dict())
        return answer  # type: ignore[no-any-return]

    def andon_now(self, now: float, lines_now: dict[str, Any] | None = None, *, kpis: KpisOf | None = None
                  ) -> tuple[andon.ShiftContext, dict[str, andon.LineAndon]]:
        """Each line's andon status and pace (``domain.andon.line_andon``) from its live state
        (``lines_now``: an answer of ``lines``, else read now) and its KPIs over the current
        shift up to now: what the wall, the overview and ``/api/lines`` show."""
        shift = andon.shift_context(self.plant, now)
        answer = self.lines(now) if lines_now is None else lines_now
        end = min(now, shift.end)
        read = self.line_kpis if kpis is None else kpis
        out = {}
        for line_now in answer["lines"]:
            cfg = self.line(line_now["id"])
            figures = read(cfg.id, shift.start, end, now) if end > shift.start else None
            out[cfg.id] = andon.line_andon(cfg, line_now, figures, shift)
        return shift, out

    def health(self, now: float) -> answers.Health:
        """Redis reachable; per line the collectors' last data and the rollup worker's lag."""
        return live.health(self.redis, self.plant, now)


    # --- KPIs ---------------------------------------------------------------------------

    def machine_kpis(self, line: str, machine: str, start: float, end: float, now: float) -> answers.MachineKpis:
        cfg = self.line(line)
        ids = self._machine_ids(cfg, machine)
        window, totals, stops = self.window_reads.totals(cfg, ids, start, end, now, stops_of=ids)
        report = kpi.kpis(totals[machine], stops, self.plant, window[0], window[1], now)
        figures = report_dict(report)
        flags: answers.MachineKpiFlags = {**figures["flags"],
                                          "implausible": self.flags(line, machine, window[0], window[1], now)}
        return {**figures, "line": line, "machine": machine, "window": window_dict(window, now, self.tz),
                "flags": flags, **self._coverage(stops, window, now)}

    def line_kpis(self, line: str, start: float, end: float, now: float, *,
                  machines: bool = False) -> answers.LineKpis:
        """The line's KPIs: the output machine's time and counts, all machines' energy.
        ``machines=True`` adds each machine's own KPIs (classifying every machine's stops
        costs about as much again per machine)."""
        cfg = self.line(line)
        ids = self._machine_ids(cfg, None)
        # the line's time comes from its output machine: only its stops are classified
        stops_of = ids if machines else [cfg.output_machine]
        window, totals, stops = self.window_reads.totals(cfg, ids, start, end, now, stops_of=stops_of)
        return self._line_kpis(cfg, window, totals, stops, now, machines=machines)

    def _line_kpis(self, cfg: Line, window: Window, totals: dict[str, Totals], stops: list[Stop], now: float, *,
                   machines: bool) -> answers.LineKpis:
        line, ids, output = cfg.id, self._machine_ids(cfg, None), cfg.output_machine
        # the output machine's stops summed as the downtime report sums them (its settled ones kept)
        kept = self.stop_reads.report
        sums = stop_sums.machine_of(machine_stops(stops, line, output), self.plant, window[0], window[1], now,
                                    kept.sums, kept.planned.covering(self.plant, window[0], min(window[1], now)))
        report = kpi.report(kpi.line_totals_of(totals, cfg, sums.buckets, sums.counted), self.plant, window[0],
                            window[1], now)
        coverage = human.Coverage.of(sums).to_dict()
        out: answers.LineKpis = {
            "line": line,
            "output_machine": cfg.output_machine,
            "target_oee": cfg.target_oee,
            "window": window_dict(window, now, self.tz),
            **report_dict(report),
            **coverage,  # type: ignore[typeddict-item]  # mypy wants ``machines`` (not required: added below)
        }
        if machines:
            by_machine: dict[str, list[Stop]] = {m: [] for m in ids}
            for stop in stops:
                by_machine[stop.machine].append(stop)
            out["machines"] = [
                {"id": m.id, "name": m.name or m.id,
                 **report_dict(kpi.kpis(totals[m.id], by_machine[m.id], self.plant, window[0], window[1], now)),
                 **self._coverage(by_machine[m.id], window, now)}
                for m in cfg.machines
            ]
        return out

    def _coverage(self, stops: list[Stop], window: Window, now: float) -> answers.Coverage:
        """The stops' untagged figures (the downtime report's, from its settled sums)."""
        return human.coverage(stops, self.plant, window[0], window[1], now, self.stop_reads.report.sums).to_dict()

    def kpi_series(self, line: str, start: float, end: float, step_s: float, now: float,
                   machine: str | None = None) -> answers.KpiSeries:
        """KPIs per bucket (e.g. OEE per hour) for the line (or one machine)."""
        cfg = self.line(line)
        ids = self._machine_ids(cfg, machine)
        window = query_window(start, end, now, ids, None)
        bounds = bucket_bounds(window, step_s, self.tz)
        own = machine or cfg.output_machine  # a line's time comes from its output machine
        sums, stops, window = self.window_reads.buckets(cfg, ids, bounds, now, stops_of=[own])
        bounds = [*bounds[:-1], window.end]
        by_bucket = stops_by_bucket(stops, bounds, now)
        buckets: list[answers.KpiBucket] = []
        for i, (a, b) in enumerate(itertools.pairwise(bounds)):
            if b <= a:
                continue  # the end was floored onto the last bucket's start
            totals = {m: sums[m][i].to_totals() for m in ids}
            if machine is None:
                report = kpi.line_kpis(totals, by_bucket[i], self.plant, cfg, a, b, now)
            else:
                report = kpi.kpis(totals[machine], by_bucket[i], self.plant, a, b, now)
            buckets.append({"start": a, "end": b, **report_dict(report)})
        return {"line": line, "machine": machine, "step_s": bucket_step(step_s),
                "window": window_dict(window, now, self.tz), "buckets": buckets}

    # --- downtime and energy -----------------------------------------------------------------

    def downtime(self, line: str, start: float, end: float, now: float) -> answers.Downtime:
        """Stops of the line's machines: list, Pareto by duration and count, per machine,
        MTBF/MTTR (run time from the same window's totals)."""
        cfg = self.line(line)
        ids = self._machine_ids(cfg, None)
        window, totals, stops = self.window_reads.totals(cfg, ids, start, end, now, stops_of=ids)
        return self._downtime(cfg, window, totals, stops, now)

    def line_now(self, line: str, start: float, end: float, now: float, *, with_live: bool = True
                 ) -> tuple[answers.Downtime, answers.LineKpis, answers.LineLive | None]:
        """``downtime`` (without its list of stops: ``events`` is empty) and ``line_kpis`` of
        one window from one read of it (its stops classified once), and (``with_live``) the
        line's live state as ``lines`` gives it, read in the same round trip as the window's
        bookkeeping: what a line's live view shows."""
        cfg, ids, also = self.line_now_reads(line, with_live)
        window, totals, stops, replies = self.window_reads.totals_and(cfg, ids, start, end, now, ids, also)
        return (self._downtime(cfg, window, totals, stops, now, events=False),
                self._line_kpis(cfg, window, totals, stops, now, machines=False),  # (it takes the output's)
                live.line_live(self.plant, cfg, replies[0], replies[1], now, self._answered) if with_live else None)

    def line_now_reads(self, line: str, with_live: bool) -> tuple[Line, list[str], list[tuple[str, tuple[Any, ...]]]]:
        """What ``line_now`` asks of its window: the line, its machines (their stops too), the live reads."""
        cfg = self.line(line)
        return cfg, self._machine_ids(cfg, None), live.live_reads(cfg.id) if with_live else []

    def _downtime(self, cfg: Line, window: Window, totals: dict[str, Totals], stops: list[Stop],
                  now: float, *, events: bool = True) -> answers.Downtime:
        """``events=False``: without the list of stops (empty), what a live view shows: the
        summary, Pareto, per machine, MTBF and MTTR (the list grows with the shift's stops,
        about 170 bytes each)."""
        line = cfg.id
        run_s = sum(t.run_s for t in totals.values())
        report = stop_report.downtime_report(stops, self.plant, window[0], window[1], now, run_s=run_s,
                                             kept=self.stop_reads.report, listed=events)
        if events:
            annotate(report["events"], stops, self.plant)
        return {"line": line, "window": window_dict(window, now, self.tz),
                "micro_stop_threshold_s": report["micro_stop_threshold_s"], "events": report["events"],
                "pareto": report["pareto"], "by_machine": report["by_machine"],
                "summary": report["summary"], "failures": report["failures"],
                "failure_down_s": report["failure_down_s"], "run_s": report["run_s"], "mtbf_s": report["mtbf_s"],
                "mttr_s": report["mttr_s"]}

    def energy(self, line: str, start: float, end: float, now: float) -> answers.Energy:
        """Energy of the line and per machine: kWh, per (good) unit, not-running share,
        peak 15-min demand, cost and CO2."""
        cfg = self.line(line)
        window, totals, _ = self.window_reads.totals(cfg, self._machine_ids(cfg, None), start, end, now)
        # energy and counts do not depend on how stops are classified
        line_totals = kpi.with_energy_of(totals[cfg.output_machine], list(totals.values()))
        line_report = kpi.report(line_totals, self.plant, window[0], window[1], now)
        machines: list[answers.MachineEnergy] = []
        for m in cfg.machines:
            report = kpi.report(totals[m.id], self.plant, window[0], window[1], now)
            machines.append({"id": m.id, "name": m.name or m.id, **clean_energy(report)})
        quarters = line_report.totals.quarter_kwh
        return {
            "line": line,
            "window": window_dict(window, now, self.tz),
            "co2_kg_per_kwh": self.plant.co2_kg_per_kwh,
            **clean_energy(line_report),
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
        window = query_window(start, end, now, ids, None)
        bounds = bucket_bounds(window, step_s, self.tz)
        sums, _, window = self.window_reads.buckets(cfg, ids, bounds, now)
        spans = [min(b, window[1]) - a for a, b in itertools.pairwise(bounds)]
        energy = contract.ROLLUP_FIELDS.index("energy_kwh")
        machines = {m: [kw(s.scalars[energy], span) for s, span in zip(sums[m], spans, strict=True)] for m in ids}
        return {"line": line, "step_s": bucket_step(step_s), "window": window_dict(window, now, self.tz),
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
        snapshot = self.window_reads.snapshot(line)
        stops = self.stop_reads.overlapping(cfg, ids, snapshot, {}, start, end, now)
        segments = {m: state_segments(changes[m], start, end, [s for s in stops if s.machine == m], now) for m in ids}
        return {"line": line, "window": window_dict(Window(start, end, ""), now, self.tz),
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
                    out.append(flag_dict(flag, float(score), self.tz))
                    if len(out) >= limit:
                        return out
            if len(members) < page:
                break
        return out
