"""One machine's events -> a timeline of states, stops, part counts and energy.

``Timeline`` interprets events in time order and reports what happened to a sink:
time segments with one effective state, count deltas and meter deltas. The engine's
sink cuts them into minutes; ``domain.engine.totals_from_events`` adds them over a
window in one go. Both share these rules (README "Definitions"):

* **Effective state** at time t is UNKNOWN when the collector's link is down (LINK
  "down" until the next good STATE event or LINK "up"), when the machine has been
  silent (no event of any signal, HEARTBEAT included) for ``plant.gap_timeout_s`` or
  longer, before its first state event, or when its last STATE event had a Bad status
  (a Bad reading means we do not know, so it is not ignored). Otherwise it is the last
  STATE value. Unknown time is neither running nor down.
* **Silence starts at last_heard + gap_timeout_s**, not at last_heard: until the
  timeout passes the machine is presumed to carry on, and minutes that close during
  those seconds are never rewritten. The first event after the silence ends it; the
  machine is back in its last known state (the collector re-reads every node on
  reconnect and a changed state arrives as an event).
* **Stops**: a stop is a maximal period of known not-running states (any state but
  RUNNING and UNKNOWN). A change between not-running states continues the stop,
  except into or out of PLANNED_STOP, which starts a new stop (planned and unplanned
  time must not share a record). ``Stop.state`` is the first state of the stop other
  than IDLE, or IDLE if there was none: IDLE means "stopped, cause unknown", so the
  first specific state (FAULT, CHANGEOVER, STARVED, ...) tells the cause. Unknown time
  ends a stop; a stop after it is a new one. Zero-length stops are dropped.
* **Reasons**: a non-zero REASON during a stop sets the stop's reason (the last one
  wins). A non-zero REASON while not stopped is held for a stop starting within
  ``REASON_LEAD_S`` (PLCs write the fault code and the state in different scans); a 0
  clears it. Reasons arriving after a stop ended do not change it.
* **Counts and meter energy** are attributed at the reading's time (see
  ``domain.counters`` for resets and rollover). Meter energy counts as "not running"
  when the effective state up to the reading was not RUNNING. A machine whose plant
  entry has no energy-meter node but a power node gets its energy by integrating
  ``power_kw`` (held until the next reading, not while the machine is unheard).
* **Implausible readings** (``domain.plausibility``): a counter or meter delta larger
  than the machine can make over the event time since the previous reading, and a kW
  reading above its maximum power, are not counted (a kW reading is not held for
  integration: the previous one stays) and are reported to the sink as a ``Flag``.
  Such a reading still counts as hearing the machine.
* **Late events** (older than the time already processed) are applied at the
  processed time; readings and states older than the last one of their signal are
  ignored (already included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from domain.accounting import MachineContext, Stop, is_stopped
from domain.counters import CumulativeCounter, reading
from domain.model import Event, Signal, State, parse_state
from domain.plausibility import IMPLAUSIBLE_DELTA, IMPLAUSIBLE_POWER, Flag
from domain.slots import shallow_copier

REASON_LEAD_S = 2.0
# --- The interpreter -----------------------------------------------------------------


_copy_counter = shallow_copier(CumulativeCounter)


class TimelineSink(Protocol):
    def segment(self, start: float, end: float, state: State, power_kw: float | None,
                stop_start: float | None) -> None: ...

    def count(self, at: float, good: int, reject: int) -> None: ...

    def meter(self, at: float, kwh: float, running: bool) -> None: ...

    def flag(self, flag: Flag) -> None:
        """An implausible reading that was not counted (a sink summing totals ignores it)."""


@dataclass(slots=True)
class _OpenStop:
    start: float
    state: State
    reason: int


def _reason_code(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


class Timeline:
    """Interprets one machine's events in time order (rules: module docstring).

    ``t`` is the time processed so far. The caller advances to an event's time, then
    applies it: ``advance(max(event.ts, t))`` and ``apply(event)``.
    """

    def __init__(self, ctx: MachineContext, t0: float) -> None:
        self.ctx = ctx
        self.t = t0
        self.state = State.UNKNOWN  # last STATE reading (UNKNOWN after a Bad one)
        self.state_ts: float | None = None
        self.link_down = False
        self.last_heard: float | None = None
        self.power_kw: float | None = None
        self.effective = State.UNKNOWN
        self.stop: _OpenStop | None = None
        self.pending_reason: tuple[int, float] | None = None
        self.finished: list[Stop] = []
        modulus = ctx.counter_modulus
        self.good = CumulativeCounter(modulus)
        self.reject = CumulativeCounter(modulus)
        self.meter = CumulativeCounter(ctx.machine.meter_rollover_kwh)

    # time

    def heard_until(self) -> float | None:
        return None if self.last_heard is None else self.last_heard + self.ctx.plant.gap_timeout_s

    def effective_at(self, at: float) -> State:
        heard_until = self.heard_until()
        if self.link_down or heard_until is None or at >= heard_until:
            return State.UNKNOWN
        return self.state

    def advance(self, until: float, sink: TimelineSink) -> None:
        """Reports [t, until) to the sink, cut where silence turns the state unknown."""
        while self.t < until:
            self._refresh(self.t)
            end = until
            heard_until = self.heard_until()
            if heard_until is not None and self.t < heard_until < until:
                end = heard_until
            heard = not self.link_down and heard_until is not None and self.t < heard_until
            power = self.power_kw if heard and not self.ctx.uses_meter else None
            sink.segment(self.t, end, self.effective, power, self.stop.start if self.stop else None)
            self.t = end
        self._refresh(self.t)

    # events

    def apply(self, event: Event, sink: TimelineSink) -> None:
        """Applies an event at the processed time ``t`` (the caller advanced to it)."""
        at = self.t
        self.last_heard = at
        signal = event.signal
        if signal == Signal.STATE:
            self._apply_state(event)
        elif signal == Signal.LINK:
            if event.is_good and str(event.value).lower() in ("up", "down"):
                self.link_down = str(event.value).lower() == "down"
        elif signal == Signal.REASON:
            self._apply_reason(event, at)
        elif signal in (Signal.GOOD, Signal.REJECT):
            counter = self.good if signal == Signal.GOOD else self.reject
            counted, rejected = counter.apply(event.value, event.ts, event.is_good, self.ctx.limits.max_parts)
            delta = int(round(counted))
            if delta:
                sink.count(at, delta if signal == Signal.GOOD else 0, delta if signal == Signal.REJECT else 0)
            if rejected:
                sink.flag(self._flag(event, IMPLAUSIBLE_DELTA, rejected))
        elif signal == Signal.ENERGY:
            counted, rejected = self.meter.apply(event.value, event.ts, event.is_good, self.ctx.limits.max_kwh)
            kwh = float(counted)
            if kwh and self.ctx.uses_meter:
                sink.meter(at, kwh, self.effective == State.RUNNING)
            if rejected:
                sink.flag(self._flag(event, IMPLAUSIBLE_DELTA, rejected))
        elif signal == Signal.POWER:
            self._apply_power(event, sink)
        self._refresh(at)

    def _apply_power(self, event: Event, sink: TimelineSink) -> None:
        kw = reading(event.value) if event.is_good else None
        if kw is not None and not self.ctx.limits.power_ok(kw):
            sink.flag(self._flag(event, IMPLAUSIBLE_POWER, kw))  # the previous reading stays
            return
        self.power_kw = kw

    def _flag(self, event: Event, kind: str, value: int | float) -> Flag:
        return Flag(self.ctx.line.id, self.ctx.machine.id, str(event.signal), event.ts, kind, value)

    def _apply_state(self, event: Event) -> None:
        if self.state_ts is not None and event.ts < self.state_ts:
            return  # older than the state we have
        self.state_ts = event.ts
        if event.is_good:
            self.state = parse_state(event.value)
            self.link_down = False
        else:
            self.state = State.UNKNOWN

    def _apply_reason(self, event: Event, at: float) -> None:
        code = _reason_code(event.value) if event.is_good else None
        if code is None:
            return
        if self.stop is not None:
            if code:
                self.stop.reason = code
        else:
            self.pending_reason = (code, at) if code else None

    # stops

    def _refresh(self, at: float) -> None:
        new = self.effective_at(at)
        if new == self.effective:
            return
        self.effective = new
        stop = self.stop
        planned_changed = stop is not None and (new == State.PLANNED_STOP) != (stop.state == State.PLANNED_STOP)
        if stop is not None and (not is_stopped(new) or planned_changed):
            if at > stop.start:
                self.finished.append(self._record(stop, at))
            self.stop = None
        if is_stopped(new):
            if self.stop is None:
                self.stop = _OpenStop(at, new, self._take_pending_reason(at))
            elif self.stop.state == State.IDLE:
                self.stop.state = new

    def _take_pending_reason(self, at: float) -> int:
        pending, self.pending_reason = self.pending_reason, None
        if pending is not None and at - pending[1] <= REASON_LEAD_S:
            return pending[0]
        return 0

    def _record(self, stop: _OpenStop, end: float | None) -> Stop:
        return Stop(self.ctx.line.id, self.ctx.machine.id, stop.start, end, stop.state, stop.reason)

    def current_stop(self) -> Stop | None:
        """The ongoing stop as of ``t`` (end None)."""
        return None if self.stop is None else self._record(self.stop, None)

    # carry

    def to_dict(self) -> dict[str, Any]:
        stop = self.stop
        return {
            "t": self.t,
            "state": str(self.state),
            "state_ts": self.state_ts,
            "link_down": self.link_down,
            "heard": self.last_heard,
            "power": self.power_kw,
            "eff": str(self.effective),
            "stop": None if stop is None else [stop.start, str(stop.state), stop.reason],
            "pending": None if self.pending_reason is None else list(self.pending_reason),
            "finished": [s.to_dict() for s in self.finished],
            "good": self.good.to_dict(),
            "reject": self.reject.to_dict(),
            "meter": self.meter.to_dict(),
        }

    def copy(self, *, counters: bool = True) -> Timeline:
        """An independent copy: the same as ``restore(to_dict())`` on a new Timeline, without
        the dicts. A new attribute must be added here as well as to the carry.
        ``counters=False``: the counters are shared, for a copy that is only advanced in time
        (``advance`` never touches them; ``apply`` does)."""
        out = Timeline.__new__(Timeline)
        out.ctx = self.ctx
        out.t = self.t
        out.state = self.state
        out.state_ts = self.state_ts
        out.link_down = self.link_down
        out.last_heard = self.last_heard
        out.power_kw = self.power_kw
        out.effective = self.effective
        stop = self.stop
        out.stop = None if stop is None else _OpenStop(stop.start, stop.state, stop.reason)
        out.pending_reason = self.pending_reason
        out.finished = list(self.finished)  # Stop records are frozen
        if counters:
            out.good = _copy_counter(self.good)
            out.reject = _copy_counter(self.reject)
            out.meter = _copy_counter(self.meter)
        else:
            out.good, out.reject, out.meter = self.good, self.reject, self.meter
        return out

    def restore(self, data: dict[str, Any]) -> None:
        self.t = float(data["t"])
        self.state = State(data["state"])
        self.state_ts = data["state_ts"]
        self.link_down = bool(data["link_down"])
        self.last_heard = data["heard"]
        self.power_kw = data["power"]
        self.effective = State(data["eff"])
        stop = data["stop"]
        self.stop = None if stop is None else _OpenStop(float(stop[0]), State(stop[1]), int(stop[2]))
        pending = data["pending"]
        self.pending_reason = None if pending is None else (int(pending[0]), float(pending[1]))
        self.finished = [Stop.from_dict(s) for s in data["finished"]]
        self.good.restore(data["good"])
        self.reject.restore(data["reject"])
        self.meter.restore(data["meter"])
