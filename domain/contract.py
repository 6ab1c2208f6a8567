"""The stream contract: Redis key names, field names and value encoding.

This is the one place that knows them. Collectors write through ``encode_event``,
readers decode with ``decode_event``; the README documents the same format for
third-party collectors. Pure: no Redis import, only names and bytes.

Keys carry the line in a hash tag (``{line}``) so a Redis Cluster keeps everything
of one line on one shard.

* ``plant:{<line>}:events`` - stream, one entry per event, fields:
  ``m`` machine id, ``s`` signal (see ``domain.model.Signal``), ``v`` value as text,
  ``q`` OPC UA status name ("Good", "BadSensorFailure", ...), ``t`` event time in
  epoch milliseconds UTC (the OPC UA source timestamp by default).
* ``plant:{<line>}:live`` - hash, the latest event per signal:
  field ``<machine>|<signal>``, value ``<v>|<q>|<t>``.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping
from time import gmtime, strftime

from domain.model import Event, Signal
from domain.plausibility import Flag

PREFIX = "plant"
FIELDS = ("m", "s", "v", "q", "t")
DEFAULT_RETENTION_S = 8 * 24 * 3600

_INT_SIGNALS = {Signal.GOOD, Signal.REJECT, Signal.REASON}
_FLOAT_SIGNALS = {Signal.ENERGY, Signal.POWER}


# Statuses the collector writes on an event whose timestamp it cannot trust (further
# ahead of its clock than its tolerance, or older than the stream's retention): the value
# is recorded, its time never moves heartbeats, link events, watermarks or "since".
TIMESTAMP_FUTURE = "BadTimestampFuture"
TIMESTAMP_TOO_OLD = "BadTimestampTooOld"
BAD_TIMESTAMP_STATUSES = frozenset({TIMESTAMP_FUTURE, TIMESTAMP_TOO_OLD})


def line_tag(line: str) -> str:
    return f"{PREFIX}:{{{line}}}"


def events_key(line: str) -> str:
    return f"{line_tag(line)}:events"


def line_of_events_key(key: bytes | str) -> str:
    """The line of an ``events_key`` (as a stream name in an XREAD reply)."""
    text = _text(key)
    head, tail = f"{PREFIX}:{{", "}:events"
    if not (text.startswith(head) and text.endswith(tail)):
        raise ValueError(f"not a line stream: {text!r}")
    return text[len(head):-len(tail)]


# Stream entry ids: ``<ms>-<seq>`` (ms: when the entry reached Redis, or for the demo
# history the event's time; seq: its place among entries of that ms).
NO_STREAM_ID = "0-0"


def stream_id(ms: int, seq: int = 0) -> str:
    return f"{ms}-{seq}"


def stream_id_tuple(entry_id: bytes | str) -> tuple[int, int]:
    """A stream id as a comparable (ms, seq) pair (``<ms>`` alone: seq 0)."""
    ms, _, seq = _text(entry_id).partition("-")
    return int(ms), int(seq or 0)


def after_stream_id(entry_id: bytes | str) -> str:
    """The exclusive lower bound of an XRANGE that starts after ``entry_id``."""
    return f"({_text(entry_id)}"


def live_key(line: str) -> str:
    return f"{line_tag(line)}:live"


def nodes_key(line: str) -> str:
    """Hash written by the collector: what the OPC UA side refuses for this line. Field
    ``<machine>|<signal>`` (``live_field``) for a node the server rejected, ``@<endpoint>``
    for an endpoint refused as a whole (an untrusted server certificate); value JSON
    (``node_id``/``status`` or ``status``/``thumbprint``/``hint``, and ``since``). A field
    goes when the node or endpoint works again."""
    return f"{line_tag(line)}:nodes"


def live_field(machine: str, signal: Signal | str) -> str:
    return f"{machine}|{signal}"


def split_live_field(field: bytes | str) -> tuple[str, str]:
    """(machine, signal) of a ``live_field``. Raises ValueError for anything else."""
    machine, bar, signal = _text(field).rpartition("|")
    if not bar:
        raise ValueError(f"not a <machine>|<signal> field: {_text(field)!r}")
    return machine, signal


def endpoint_field(endpoint: str) -> str:
    """The ``nodes_key`` field of an endpoint refused as a whole."""
    return f"@{endpoint}"


def endpoint_of_field(field: bytes | str) -> str | None:
    """The endpoint of an ``endpoint_field``; None for a node's field (``live_field``)."""
    text = _text(field)
    return text[1:] if text.startswith("@") else None


def encode_value(value: str | float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return repr(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def encode_event(event: Event) -> dict[str, str]:
    """Stream entry fields for an event (always the same field order: compact listpacks)."""
    return {
        "m": event.machine,
        "s": str(event.signal),
        "v": encode_value(event.value),
        "q": event.status,
        "t": str(round(event.ts * 1000)),
    }


def encode_live(event: Event) -> tuple[str, str]:
    """Field and value of the live-snapshot hash for an event."""
    return (
        live_field(event.machine, event.signal),
        f"{encode_value(event.value)}|{event.status}|{round(event.ts * 1000)}",
    )


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def decode_value(signal: Signal, text: str, status: str) -> tuple[str | float | int | None, str]:
    """Typed value for a signal; text that does not parse keeps its text and a Bad status."""
    if signal == Signal.HEARTBEAT:
        return None, status
    try:
        if signal in _INT_SIGNALS:
            return int(float(text)), status
        if signal in _FLOAT_SIGNALS:
            number = float(text)
            if math.isnan(number) or math.isinf(number):
                return number, status if status != "Good" else "BadValue"
            return number, status
    except ValueError:
        return text, "BadValue" if status == "Good" else status
    return text, status


def decode_event(line: str, fields: Mapping[bytes | str, bytes | str]) -> Event:
    """Event from a stream entry's fields. Raises ValueError on an entry without m/s/t."""
    f = {_text(k): _text(v) for k, v in fields.items()}
    try:
        signal = Signal(f["s"])
        ts = int(f["t"]) / 1000.0
        machine = f["m"]
    except (KeyError, ValueError) as exc:
        raise ValueError(f"not a plant event: {f!r}") from exc
    status = f.get("q", "Good") or "Good"
    value, status = decode_value(signal, f.get("v", ""), status)
    return Event(line=line, machine=machine, signal=signal, value=value, status=status, ts=ts)


def decode_live(line: str, field: bytes | str, raw: bytes | str) -> Event:
    machine, signal_text = split_live_field(field)
    value_text, status, ts_ms = _text(raw).rsplit("|", 2)
    signal = Signal(signal_text)
    value, status = decode_value(signal, value_text, status)
    return Event(line, machine, signal, value, status, int(ts_ms) / 1000.0)


# --- Rollups (written by ``store.rollup``, read by ``store.reader``) ------------------
#
# All keys carry the line's hash tag, so one MULTI/EXEC covers a line's writes.
#
# * ``plant:{<line>}:min:<machine>:<YYYYMMDDHH>`` - hash, the closed minutes of one
#   machine in the UTC hour still filling: field = minute of the hour ("0".."59"), value
#   = rollup text. When the hour's last minute closes, the same transaction replaces it by
# * ``plant:{<line>}:min60:<machine>:<YYYYMMDDHH>`` - string, the hour's minute rollups
#   as 60 lines (line i = minute i, empty when there is none): compact whatever the
#   length of the texts. Both expire ``retention.minute_rollup_days`` after the hour.
# * ``plant:{<line>}:hour:<machine>:<YYYYMMDD>`` - hash, the closed hours of one machine
#   in one UTC day: field = hour of the day ("0".."23"), value = rollup text.
#   Expires ``retention.hour_rollup_days`` after the day.
# * ``plant:{<line>}:stops`` - sorted set of stops, score = start (epoch s), member =
#   ``<machine>|<start ms>|<end ms or empty while ongoing>|<state>|<reason code>``.
# * ``plant:{<line>}:states`` - sorted set of effective-state changes (the timeline, same
#   rules as the KPIs: ``domain.timeline``), score = time (epoch s), member =
#   ``<machine>|<t ms>|<state>``. Reasons come from the stops.
# * ``plant:{<line>}:rollup`` - hash, the rollup worker's bookkeeping: field
#   ``c:<machine>`` = JSON carry (``id`` last stream id applied, ``w`` watermark = start
#   of the open minute, ``acc`` engine carry, ``since`` [state, time of the change], ...);
#   ``ver`` (write counter), ``beat``
#   (worker's last pass, epoch s), ``max_stop_s`` (longest closed stop, for range reads).
# * ``plant:{<line>}:rollup:lease`` - string, the id of the rollup worker that owns the
#   line (one at a time), with a TTL it renews every pass.
#
# Rollup text: ``<scalars>;<states>;<quarters>``, empty trailing sections omitted.
# Scalars are the ``ROLLUP_FIELDS`` of ``domain.totals.Totals`` in that order, comma
# separated, zero written as empty, 7 significant digits. States: ``<code><seconds>``
# comma separated (``STATE_CODES``; longer names stand for themselves; the seconds are
# left out when the state lasted the whole ``calendar_s``). Quarters:
# ``<offset s from the rollup start>:<kWh>``; omitted when all energy falls in the
# quarter containing the start, ``-`` when there is energy but no quarter breakdown.

ROLLUP_FIELDS = (  # append only once data is stored: rollups are positional
    "calendar_s", "planned_operation_s", "run_s", "stopped_s", "unknown_s", "unplanned_run_s",
    "total_count", "good_count", "reject_count", "ideal_time_s", "reject_ideal_time_s",
    "energy_kwh", "energy_not_running_kwh", "energy_cost", "co2_kg",
    "unplanned_good_count", "unplanned_reject_count",
    # classified from whole stops for a window (domain.totals.CLASSIFIED_FIELDS): 0 in
    # raw rollups, so last, where trailing empty values are left out
    "planned_down_s", "planned_busy_s", "micro_stop_s", "down_s", "failure_s", "setup_s",
    "starved_blocked_s", "unexplained_s", "stops",
)
ROLLUP_INT_FIELDS = frozenset(
    {"total_count", "good_count", "reject_count", "stops", "unplanned_good_count", "unplanned_reject_count"}
)
STATE_CODES = {
    "running": "r", "idle": "i", "starved": "s", "blocked": "b", "fault": "f",
    "changeover": "c", "planned_stop": "p", "unknown": "u",
}
_STATE_NAMES = {code: name for name, code in STATE_CODES.items()}
QUARTER_S = 900
_ENERGY_INDEX = ROLLUP_FIELDS.index("energy_kwh")


def _utc_stamp(ts: float, fmt: str) -> str:
    return strftime(fmt, gmtime(ts))


def minute_rollup_key(line: str, machine: str, hour_start: float) -> str:
    return f"{line_tag(line)}:min:{machine}:{_utc_stamp(hour_start, '%Y%m%d%H')}"


def closed_minutes_key(line: str, machine: str, hour_start: float) -> str:
    return f"{line_tag(line)}:min60:{machine}:{_utc_stamp(hour_start, '%Y%m%d%H')}"


def join_minutes(texts: Mapping[int, str]) -> bytes:
    """The minute rollups of an hour as one text (line i = minute i), zlib-compressed
    (a closed hour is written once and read whole: a quarter of the bytes)."""
    return pack("\n".join(texts.get(i, "") for i in range(60)).rstrip("\n"))


def split_minutes(raw: bytes | str | None) -> dict[int, str]:
    """The minute texts of a closed hour (compressed, or plain text as first stored)."""
    return {i: text for i, text in enumerate(unpack(raw).split("\n")) if text} if raw else {}


def pack(text: str) -> bytes:
    """zlib-compressed UTF-8: for values written once and read whole (closed hours, the
    worker's checkpoints)."""
    return zlib.compress(text.encode(), 6)


def unpack(raw: bytes | str | None) -> str:
    """The text of ``pack``; plain text (no zlib header, which starts with ``x``) as is."""
    if not raw:
        return ""
    if isinstance(raw, bytes) and raw[:1] == b"x":
        return zlib.decompress(raw).decode()
    return _text(raw)


def hour_rollup_key(line: str, machine: str, day_start: float) -> str:
    return f"{line_tag(line)}:hour:{machine}:{_utc_stamp(day_start, '%Y%m%d')}"


def stops_key(line: str) -> str:
    return f"{line_tag(line)}:stops"


def states_key(line: str) -> str:
    return f"{line_tag(line)}:states"


def rollup_state_key(line: str) -> str:
    return f"{line_tag(line)}:rollup"


def window_sums_key(line: str, start: float, end: float, amend: int) -> str:
    """The readers' shared cache of closed whole hours [start, end) of a line's machines
    (hash: machine -> sums), as of the line's ``amend`` counter (a rewind makes a new key)."""
    return f"{line_tag(line)}:wsums:{int(start)}:{int(end)}:{amend}"


def rollup_lease_key(line: str) -> str:
    return f"{line_tag(line)}:rollup:lease"


def rollup_workers_key() -> str:
    """Hash: the running rollup workers (field: a worker's token, value: when it last
    renewed its leases, epoch ms); the lines are shared out among them."""
    return f"{PREFIX}:rollup:lease"


def carry_field(machine: str) -> str:
    return f"c:{machine}"


def checkpoints_key(line: str, machine: str) -> str:
    """Hash: the worker's state of one machine at whole hours (field = hour start, epoch
    s; value = JSON carry), kept for the stream's retention: late data rewinds to one."""
    return f"{line_tag(line)}:ckpt:{machine}"


def flags_key(line: str) -> str:
    """Sorted set of implausible readings (score = event time, epoch s; member = JSON
    ``{"m": machine, "s": signal, "t": time, "k": kind, "v": rejected value or delta}``)."""
    return f"{line_tag(line)}:flags"


def encode_flag_member(flag: Flag) -> str:
    """Member of the flags set for a flag (score: ``flag.ts``). Compact JSON with sorted
    keys and the time in whole milliseconds: a flag produced again (a rewind, a replay)
    is the same member, so the set holds it once."""
    value = flag.value
    if isinstance(value, float) and not math.isfinite(value):
        value = None  # JSON has no inf/NaN
    return json.dumps({"m": flag.machine, "s": flag.signal, "t": round(flag.ts, 3), "k": flag.kind, "v": value},
                      sort_keys=True, separators=(",", ":"), allow_nan=False)


def decode_flag_member(line: str, raw: bytes | str) -> Flag:
    """The flag of a flags-set member. Raises ValueError on a member that is not one."""
    try:
        data = json.loads(_text(raw))
        value = data["v"]
        if isinstance(value, bool) or not isinstance(value, int | float | str | None):
            raise ValueError("v: not a number, text or null")
        return Flag(line, str(data["m"]), str(data["s"]), float(data["t"]), str(data["k"]), value)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a flag: {raw!r}") from exc


def data_loss_key(line: str) -> str:
    """Hash written when the rollup worker finds its bookkeeping gone although it had
    data (Redis lost its data): ``from``, ``to`` (epoch s, the affected range) and
    ``detected`` (epoch s)."""
    return f"{line_tag(line)}:lost"


def classifications_key(line: str) -> str:
    """Hash: human classifications of the line's stops (field = stop id
    ``<line>~<machine>~<start ms>``; value = JSON ``{"reason", "comment", "by", "at", "splits"}``)."""
    return f"{line_tag(line)}:class"


def classification_starts_key(line: str) -> str:
    """Sorted set: the ids of ``classifications_key`` scored by their stop's start (epoch s),
    to find a classification whose stop late data rewrote with another start."""
    return f"{line_tag(line)}:class:starts"


def handovers_key(line: str) -> str:
    """Hash: shift handovers of the line (field = shift start, epoch s; value = JSON)."""
    return f"{line_tag(line)}:handover"


def reasons_key() -> str:
    """Hash: reason lists managed outside the plant file (engineers, admins), layered over
    it. Field ``plant``: JSON ``{"<code>": {"text", "category", "planned", "retired"}}``
    (the plant-wide catalogue; absent: the plant file's); field ``line:<id>``: JSON list
    of codes, or ``null`` for the plant-wide list (absent: the plant file's)."""
    return f"{PREFIX}:reasons"


def users_key() -> str:
    """Set of user names (each user's hash: ``user_key``)."""
    return f"{PREFIX}:users"


def user_key(name: str) -> str:
    """Hash: ``role``, ``lines`` (comma separated, ``*`` = all), ``pw`` (scrypt), ``disabled``,
    ``sv`` (session version: a password change or disable ends the user's sessions)."""
    return f"{PREFIX}:user:{name}"


def tokens_key() -> str:
    """Hash: API tokens by id (the SHA-256 of the token; the token itself is never stored),
    value = JSON ``{"name", "role", "lines", "created", "disabled"}``."""
    return f"{PREFIX}:tokens"


def session_key(session_hash: str) -> str:
    """String (the user name), expiring with the session: one login session, named by the
    SHA-256 of the random id its signed cookie carries. Logging out deletes it, so a copy
    of the cookie stops working at once."""
    return f"{PREFIX}:session:{session_hash}"


def login_failures_key(kind: str, value: str) -> str:
    """Hash ``n``, ``last`` (epoch s): failed logins per user (``value``: the first 32 hex
    digits of the SHA-256 of the name tried) or per address (expires)."""
    return f"{PREFIX}:login:fail:{kind}:{value}"


def audit_key() -> str:
    """List: the hash-chained audit trail, one JSON entry per write (append only)."""
    return f"{PREFIX}:audit"


def audit_head_key() -> str:
    """Hash ``seq``, ``hash``: the last audit entry (so a removed tail is detected)."""
    return f"{PREFIX}:audit:head"


# --- Alerts (``store.alerts``; README "Alerts") --------------------------------------------
#
# Plant-wide, under one hash tag so one MULTI/EXEC covers an evaluation's writes.
#
# * ``plant:{alerts}:all`` - hash, every alert by id (``domain.alerts.alert_id``), value =
#   JSON of ``domain.alerts.Alert`` (written by the evaluator only).
# * ``plant:{alerts}:open`` - hash, alert key (rule|line|machine) -> id of its open alert.
# * ``plant:{alerts}:log`` - sorted set of alert ids, score = raised (epoch s): the history.
# * ``plant:{alerts}:ack`` - hash, alert id -> JSON ``{"by", "role", "at", "comment"}``
#   (written by acknowledgements only, so an evaluation never overwrites one).
# * ``plant:{alerts}:outbox`` - sorted set of message ids, score = when due (epoch s);
#   ``plant:{alerts}:outbox:msg`` - hash, message id -> JSON ``{"channel", "notice",
#   "tries", "first"}``; ``plant:{alerts}:dead`` - list of messages given up (JSON).
# * ``plant:{alerts}:chan`` - hash, ``<channel>:next`` (epoch s before which nothing is
#   sent: rate limit and backoff) and ``<channel>:fails`` (failures in a row).


def alerts_key(part: str) -> str:
    """``part``: all, open, log, ack, outbox, outbox:msg, dead or chan (see above)."""
    if part not in ALERT_PARTS:
        raise ValueError(f"not an alerts key: {part!r}")
    return f"{PREFIX}:{{alerts}}:{part}"


ALERT_PARTS = frozenset({"all", "open", "log", "ack", "outbox", "outbox:msg", "dead", "chan"})


def format_number(value: float) -> str:
    """Shortest text for a rollup number: '' for zero, integers without a point, else 7
    significant digits (a 1e-7 relative error, far below any meter's)."""
    if value == 0 or math.isnan(value):
        return ""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.7g}"
    if "e" in text:
        text = f"{value:.7f}".rstrip("0").rstrip(".")
    if text in ("", "0", "-0"):
        return ""
    if text.startswith("0."):
        return text[1:]
    if text.startswith("-0."):
        return "-" + text[2:]
    return text


def encode_rollup(scalars: list[float], states: Mapping[str, float], quarters: Mapping[float, float],
                  start: float) -> str:
    """Rollup text of one minute or hour starting at ``start`` (see the format above)."""
    values = [format_number(v) for v in scalars]
    while values and not values[-1]:
        values.pop()
    whole = values[0] if values else ""
    state_text = ",".join(
        STATE_CODES.get(name, name) + ("" if text == whole else text)
        for name, seconds in sorted(states.items())
        if (text := format_number(seconds))
    )
    sections = [",".join(values), state_text, _encode_quarters(quarters, scalars[_ENERGY_INDEX], start)]
    while len(sections) > 1 and not sections[-1]:
        sections.pop()
    return ";".join(sections)


def _encode_quarters(quarters: Mapping[float, float], energy_kwh: float, start: float) -> str:
    kept = {q: kwh for q, kwh in quarters.items() if format_number(kwh)}
    energy_text = format_number(energy_kwh)
    if not kept:
        return "-" if energy_text else ""
    home = start - start % QUARTER_S
    if len(kept) == 1 and home in kept and format_number(kept[home]) == energy_text:
        return ""
    return ",".join(f"{round(q - start)}:{format_number(kwh)}" for q, kwh in sorted(kept.items()))


def decode_rollup(text: str, start: float) -> tuple[list[float], dict[str, float], dict[float, float]]:
    """Scalars (in ``ROLLUP_FIELDS`` order), seconds per state and kWh per quarter start."""
    sections = text.split(";")
    scalars = [float(v) if v else 0.0 for v in sections[0].split(",")] if sections[0] else []
    scalars.extend([0.0] * (len(ROLLUP_FIELDS) - len(scalars)))
    states: dict[str, float] = {}
    if len(sections) > 1 and sections[1]:
        for item in sections[1].split(","):
            cut = next((i for i, ch in enumerate(item) if _is_number_start(ch)), len(item))
            name = _STATE_NAMES.get(item[:cut], item[:cut])
            states[name] = float(item[cut:]) if cut < len(item) else scalars[0]
    quarters: dict[float, float] = {}
    quarter_text = sections[2] if len(sections) > 2 else ""
    if quarter_text and quarter_text != "-":
        for item in quarter_text.split(","):
            offset, kwh = item.split(":")
            quarters[float(start + int(offset))] = float(kwh)
    elif not quarter_text and scalars[_ENERGY_INDEX]:
        quarters[float(start - start % QUARTER_S)] = scalars[_ENERGY_INDEX]
    return scalars[: len(ROLLUP_FIELDS)], states, quarters


def _is_number_start(ch: str) -> bool:
    return ch.isdigit() or ch in ".-"


def encode_stop_member(machine: str, start: float, end: float | None, state: str, reason: int) -> str:
    end_text = "" if end is None else str(round(end * 1000))
    return f"{machine}|{round(start * 1000)}|{end_text}|{state}|{reason}"


def decode_stop_member(raw: bytes | str) -> tuple[str, float, float | None, str, int]:
    """machine, start, end (None while ongoing), state, reason of a stops-set member."""
    machine, start_ms, end_ms, state, reason = _text(raw).split("|")
    return machine, int(start_ms) / 1000.0, (int(end_ms) / 1000.0 if end_ms else None), state, int(reason)


def encode_state_member(machine: str, t: float, state: str) -> str:
    return f"{machine}|{round(t * 1000)}|{state}"


def decode_state_member(raw: bytes | str) -> tuple[str, float, str]:
    """machine, time, state of a state-change member."""
    machine, t_ms, state = _text(raw).split("|")
    return machine, int(t_ms) / 1000.0, state
