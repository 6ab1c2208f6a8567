"""Redis key names and hash fields: the one place that knows them (collectors, the rollup
worker, the reader, users, audit and alerts all build their keys here). Pure: no Redis
import, only names.

Keys carry the line in a hash tag (``{line}``) so a Redis Cluster keeps everything
of one line on one shard.

* ``plant:{<line>}:events`` - stream, one entry per event (``domain.contract.entries``).
* ``plant:{<line>}:live`` - hash, the latest event per signal:
  field ``<machine>|<signal>``, value ``<v>|<q>|<t>``.
"""

from __future__ import annotations

from time import gmtime, strftime

from domain.model import Signal

PREFIX = "plant"


def as_text(raw: bytes | str) -> str:
    """A key, field or value as Redis returns it (bytes, or text with decode_responses)."""
    return raw.decode() if isinstance(raw, bytes) else raw


def line_tag(line: str) -> str:
    return f"{PREFIX}:{{{line}}}"


def events_key(line: str) -> str:
    return f"{line_tag(line)}:events"


def line_of_events_key(key: bytes | str) -> str:
    """The line of an ``events_key`` (as a stream name in an XREAD reply)."""
    text = as_text(key)
    head, tail = f"{PREFIX}:{{", "}:events"
    if not (text.startswith(head) and text.endswith(tail)):
        raise ValueError(f"not a line stream: {text!r}")
    return text[len(head):-len(tail)]


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
    machine, bar, signal = as_text(field).rpartition("|")
    if not bar:
        raise ValueError(f"not a <machine>|<signal> field: {as_text(field)!r}")
    return machine, signal


def endpoint_field(endpoint: str) -> str:
    """The ``nodes_key`` field of an endpoint refused as a whole."""
    return f"@{endpoint}"


def endpoint_of_field(field: bytes | str) -> str | None:
    """The endpoint of an ``endpoint_field``; None for a node's field (``live_field``)."""
    text = as_text(field)
    return text[1:] if text.startswith("@") else None


# --- Rollups (written by ``store.rollup``, read by ``store.reader``; their values: ``records``)
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


def _utc_stamp(ts: float, fmt: str) -> str:
    return strftime(fmt, gmtime(ts))


def minute_rollup_key(line: str, machine: str, hour_start: float) -> str:
    return f"{line_tag(line)}:min:{machine}:{_utc_stamp(hour_start, '%Y%m%d%H')}"


def closed_minutes_key(line: str, machine: str, hour_start: float) -> str:
    return f"{line_tag(line)}:min60:{machine}:{_utc_stamp(hour_start, '%Y%m%d%H')}"


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


def head_field(machine: str) -> str:
    """Beside a machine's carry: what readers need of it at every commit (``store.bookkeeping.Head``)."""
    return f"h:{machine}"


def checkpoints_key(line: str, machine: str) -> str:
    """Hash: the worker's state of one machine at whole hours (field = hour start, epoch
    s; value = JSON carry), kept for the stream's retention: late data rewinds to one."""
    return f"{line_tag(line)}:ckpt:{machine}"


def flags_key(line: str) -> str:
    """Sorted set of implausible readings (score = event time, epoch s; member = JSON
    ``{"m": machine, "s": signal, "t": time, "k": kind, "v": rejected value or delta}``)."""
    return f"{line_tag(line)}:flags"


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


def classifications_version_key(line: str) -> str:
    """Counter: bumped by every write of ``classifications_key`` (each process's live feed
    reads it beside the worker's counters: the line's views are made again)."""
    return f"{line_tag(line)}:class:ver"


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
# * ``plant:{alerts}:ver`` - integer, bumped by every evaluation that changed an alert and
#   by every acknowledgement: the live feed (``store.live_feed``) tells the screens.


def alerts_key(part: str) -> str:
    """``part``: all, open, log, ack, outbox, outbox:msg, dead, chan or ver (see above)."""
    if part not in ALERT_PARTS:
        raise ValueError(f"not an alerts key: {part!r}")
    return f"{PREFIX}:{{alerts}}:{part}"


ALERT_PARTS = frozenset({"all", "open", "log", "ack", "outbox", "outbox:msg", "dead", "chan", "ver"})
