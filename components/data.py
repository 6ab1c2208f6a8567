"""The dashboard's one door to data: the PlantReader on the app's server.

Every callback reads through here, so the dashboard shows exactly what the HTTP API serves
(the same ``store.reader.PlantReader``, its answers typed by ``domain.answers``).
``create_app`` puts the reader, the plant and the clock on the server's ``config``
(``api.context.config_of``), never in module globals: each uvicorn worker has its own.
Reader errors (Redis down, a restart) become ``DataUnavailable``: "no data since ...".
A big plant's line views are read in a pool of processes (``reader_pool``).

Live figures are computed once per change, not once per screen: while the process's
``store.live_feed.LiveFeed`` follows the streams (``api.live`` starts it with the first
screen that subscribes), a line's live view and the live-range reads of the line and
machine pages are kept per line version (``store.memo.Memo``, single-flight: screens
asking at once wait for one computation). Without the feed nothing is kept.

And computed before the screens ask: the app's ``components.warm.Warmer`` (``WARM_KEY``)
is told of each live read a screen made and, when the feed hands out a line's next
version, makes them again for it before the feed tells the screens (``LiveFeed(warm=...)``).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from redis.exceptions import RedisError

from api import context
from components.i18n import N_, _, date_time
from domain import andon, answers
from domain.plant import Line, Plant
from store.live_feed import ALERTS as ALERTS  # the live feed's channel of the alerts, beside the lines'
from store.live_feed import WARM_KEY as WARM_KEY  # the app's Warmer, which the feed calls

log = logging.getLogger(__name__)

READER_KEY = "PLANT_READER"
MEMO_KEY = "LIVE_MEMO"
PLANT_KEY = "PLANT"
CLOCK_KEY = "DASHBOARD_CLOCK"
POOL_KEY = "READER_POOL"

NAMED_RANGES = {  # English msgids: ``_`` where shown
    "shift": N_("This shift"),
    "last_shift": N_("Last shift"),
    "today": N_("Today"),
    "yesterday": N_("Yesterday"),
    "7d": N_("7 days"),
    "30d": N_("30 days"),
}
DEFAULT_RANGE = "shift"


class DataUnavailable(Exception):
    """The reader could not answer (Redis unreachable, timed out, restarting)."""


def reader_for(settings: Any) -> Any:
    """The process's ``PlantReader`` for ``settings``, with the screens' short Redis timeouts."""
    from store.clients import client_for
    from store.reader import PlantReader

    return PlantReader(client_for(settings, "screen"), settings.plant)


def reader_pool(settings: Any) -> Any:
    """The plant's pool of processes for its line views (``store.reader_pool``), None for a small plant."""
    from store.reader_pool import pool_for

    return pool_for(settings)


def reader() -> Any:
    return context.config()[READER_KEY]


def plant() -> Plant:
    """The plant, with the reason lists engineers manage (``store.reasons``) when the
    reader keeps them: the pickers offer, and the screens name, what the figures use."""
    lists = getattr(context.config().get(READER_KEY), "reason_lists", None)
    return lists.effective() if lists is not None else context.config()[PLANT_KEY]  # type: ignore[no-any-return]


def now() -> float:
    clock: Callable[[], float] = context.config()[CLOCK_KEY]
    return float(clock())


def live_versions() -> dict[str, int] | None:
    """Each line's version from the process's live feed; None when nothing may be kept
    (no feed, or it does not follow the streams right now). With push on, the first live
    read starts the feed (``store.live_feed.START_KEY``)."""
    from store.live_feed import FEED_KEY, START_KEY

    config = context.config()
    feed = config.get(FEED_KEY)
    if feed is None and (start := config.get(START_KEY)) is not None:
        feed = start()
    return None if feed is None else feed.versions()


def _one_per_app(key: str, make: Callable[[], Any]) -> Any:
    """The serving app's object under ``key`` in its config, made on first use."""
    config = context.config()
    got = config.get(key)
    return got if got is not None else config.setdefault(key, make())


def memo() -> Any:
    """The process's memo of live figures (``store.memo.Memo``), sized for the plant's lines."""
    from store.memo import Memo

    return _one_per_app(MEMO_KEY, lambda: Memo(max(256, 16 * len(context.config()[PLANT_KEY].lines))))


_consulted: contextvars.ContextVar[dict[str, int | None] | None] = contextvars.ContextVar("consulted", default=None)


@contextlib.contextmanager
def versions_consulted() -> Iterator[dict[str, int | None]]:
    """Within: the version of each line whose figures were read (``components.shared``
    keeps an answer while they stay); None for a line read at two versions, or none."""
    seen: dict[str, int | None] = {}
    token = _consulted.set(seen)  # a callback thread runs in a copy of this context: the same dict
    try:
        yield seen
    finally:
        _consulted.reset(token)


def stop_consulting() -> None:
    """Reads from here on in this context are no answer's (a warm-up run in a copy of a request's context)."""
    _consulted.set(None)


def _consult(line: str, version: int | None) -> None:
    seen = _consulted.get()
    if seen is not None and seen.setdefault(line, version) != version:
        seen[line] = None


def _live(line: str, end: float, at: float, key: tuple[Any, ...], read: Callable[[float, float], Any]) -> Any:
    """``read(end, at)`` of a window of ``line`` ending at ``end``: a window reaching now is
    read once per line version (``key`` names the read apart from the version), shared by
    every screen, and read again for the next version before the screens ask (``Warmer``)."""
    if end < at - 1:  # a past window: read each time (late data gives the line a new version)
        if _consulted.get() is not None:
            _consult(line, (live_versions() or {}).get(line))
        return read(end, at)
    versions = live_versions()
    _consult(line, None if versions is None else versions.get(line))
    if versions is None or line not in versions:
        return read(end, at)
    if end >= at:  # up to now (not a window that ended within the last second): warm it next time
        warmer = context.config().get(WARM_KEY)
        if warmer is not None:
            warmer.note(line, key, lambda: _live_now(line, key, read))
    return memo().get((*key, versions[line]), lambda: read(end, at))


def _live_now(line: str, key: tuple[Any, ...], read: Callable[[float, float], Any]) -> None:
    """The read of ``key`` up to now, for the line's current version (a warm-up; none while the feed is down)."""
    if live_versions() is not None:
        at = now()
        _live(line, at, at, key, read)


def _call(method: str, *args: Any, pooled: bool = False, **kwargs: Any) -> Any:
    try:
        pool = context.config().get(POOL_KEY) if pooled else None
        if pool is not None:  # a live version's line view: in the reader pool's processes (store.reader_pool)
            return pool.line_now_or(reader(), *args, **kwargs)
        return getattr(reader(), method)(*args, **kwargs)
    except (RedisError, OSError) as exc:
        log.warning("reader.%s failed: %s", method, exc)
        raise DataUnavailable(str(exc)) from exc


# --- live state ---------------------------------------------------------------------

def live_lines(at: float) -> list[answers.LineLive]:
    """The lines of ``reader.lines(now)``, each with its ``machines``."""
    lines: answers.Lines = _call("lines", at)
    return lines["lines"]


# --- windows and KPIs ---------------------------------------------------------------

def line_kpis(line: str, start: float, end: float, at: float) -> answers.LineKpis:
    out: answers.LineKpis = _live(line, end, at, ("line_kpis", line, start),
                                  lambda e, a: _call("line_kpis", line, start, e, a))
    return out


def shift_kpis(line: str, start: float, end: float, at: float) -> answers.LineKpis:
    """``/api/lines``' KPIs of a line: while the live feed runs, its live view's (the
    ``line_now`` of its version, shared with the screens, in any language), else ``line_kpis``."""
    if live_versions() is None:
        return line_kpis(line, start, end, at)
    return _live(line, end, at, ("line_now", line, start),  # type: ignore[no-any-return]
                 lambda e, a: _call("line_now", line, start, e, a, pooled=True))[1]


def machine_kpis(line: str, machine: str, start: float, end: float, at: float) -> answers.MachineKpis:
    out: answers.MachineKpis = _live(line, end, at, ("machine_kpis", line, machine, start),
                                     lambda e, a: _call("machine_kpis", line, machine, start, e, a))
    return out


def downtime(line: str, start: float, end: float, at: float) -> answers.Downtime:
    out: answers.Downtime = _live(line, end, at, ("downtime", line, start),
                                  lambda e, a: _call("downtime", line, start, e, a))
    return out


def energy(line: str, start: float, end: float, at: float) -> answers.Energy:
    out: answers.Energy = _live(line, end, at, ("energy", line, start), lambda e, a: _call("energy", line, start, e, a))
    return out


def kpi_series(line: str, start: float, end: float, step_s: float, at: float,
               machine: str | None = None) -> answers.KpiSeries:
    out: answers.KpiSeries = _live(line, end, at, ("kpi_series", line, machine, start, step_s),
                                   lambda e, a: _call("kpi_series", line, start, e, step_s, a, machine=machine))
    return out


def timeline(line: str, start: float, end: float, at: float) -> answers.Timeline:
    out: answers.Timeline = _live(line, end, at, ("timeline", line, start),
                                  lambda e, a: _call("timeline", line, start, e, a))
    return out


def power_series(line: str, start: float, end: float, step_s: float, at: float) -> answers.PowerSeries:
    out: answers.PowerSeries = _live(line, end, at, ("power_series", line, start, step_s),
                                     lambda e, a: _call("power_series", line, start, e, step_s, a))
    return out


# --- time ranges ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Window:
    start: float
    end: float
    label: str
    live: bool  # the window reaches now: refresh it


def resolve_window(p: Plant, start_param: str | None, end_param: str | None, at: float) -> Window:
    """A named range or ISO 8601 times -> a window, exactly as the HTTP API resolves
    them (``store.windows``). Raises ValueError (``WindowError``) on bad input."""
    from store.windows import resolve_window as shared

    got = shared(p, start_param or DEFAULT_RANGE, end_param, at)
    name = NAMED_RANGES.get(start_param or DEFAULT_RANGE)
    name = _(name) if name else name
    if name:
        label = f"{name} ({got.label})" if got.label and got.label not in NAMED_RANGES else name
    else:
        label = f"{_short(got.start, p.timezone)} \u2192 {_short(got.end, p.timezone)}"
    return Window(got.start, got.end, label, live=got.end >= at - 1)


def _short(ts: float, tz: str) -> str:
    return date_time(datetime.fromtimestamp(ts, ZoneInfo(tz)), _("dd MMM HH:mm"))


# --- the current shift and the live view models ------------------------------------------

ShiftContext = andon.ShiftContext  # the shift the andon's pace is for (domain.andon)
shift_context = andon.shift_context


def line_views(line_ids: list[str] | None = None, at: float | None = None) -> tuple[list[dict[str, Any]], float]:
    """Live view models (``components.line_view.line_view``) of the given lines (all by default)
    for the current shift, and the time they are for. While the live feed runs, each line's
    view is computed once per line version (and language) and shared by every screen."""
    from components.i18n import current

    p = plant()
    at = now() if at is None else at
    shift = shift_context(p, at)
    wanted = [cfg for cfg in p.lines if line_ids is None or cfg.id in line_ids]
    versions = live_versions()
    if versions is None:
        live_by_id = {line["id"]: line for line in live_lines(at)}
        return [_line_view(cfg, live_by_id.get(cfg.id), shift, at) for cfg in wanted], at
    language = current()
    warmer = context.config().get(WARM_KEY)
    views = []
    for cfg in wanted:
        if warmer is not None:
            warmer.note(cfg.id, ("line_view", language), lambda line=cfg.id: line_views([line]),
                        first=True)  # keeps the line's KPIs, which /api/lines then finds
        version = versions.get(cfg.id)
        _consult(cfg.id, version)
        key = ("line_view", cfg.id, shift.start, language, version)
        views.append(memo().get(key, lambda cfg=cfg, v=version: {**_line_view(cfg, None, shift, at, v), "version": v}))
    return views, at


def live_token() -> str | None:
    """The process's live feed token (versions are numbered per process), None without one."""
    from store.live_feed import FEED_KEY

    return getattr(context.config().get(FEED_KEY), "token", None)


def _line_view(cfg: Line, live: answers.LineLive | None, shift: ShiftContext, at: float,
               version: int | None = None) -> dict[str, Any]:
    """One line's live view; ``live``: its live state when already read (else read here);
    ``version``: the line's, its ``line_now`` then kept (``shift_kpis``) and its KPIs (``line_kpis``)."""
    from components.line_view import line_view

    start, end = shift.start, min(at, shift.end)
    begun = end > start  # the shift's first instant has no window yet (as PlantReader.andon_now)
    stops = kpis = None
    if begun:  # the downtime, the line's KPIs (its output machine's counts) and its live state from one read
        def read() -> Any:
            return _call("line_now", cfg.id, start, end, at, with_live=live is None, pooled=version is not None)

        stops, kpis, read_live = read() if version is None else memo().get(("line_now", cfg.id, start, version), read)
        live = live or read_live
        if version is not None:
            memo().put(("line_kpis", cfg.id, start, version), kpis)  # as ``line_kpis`` keeps them
    elif live is None:
        live = next(iter(_call("lines", at, only=[cfg.id])["lines"]), None)
    live = live or answers.LineLive(id=cfg.id, name=cfg.name or cfg.id, machines=[], output_machine=cfg.output_machine,
                                    target_oee=cfg.target_oee, last_data=None)
    return line_view(cfg, live, kpis, stops, shift, at, plant().timezone)


# --- alerts and handovers: the operator loop's records beside the figures -----------------

def _redis() -> Any:
    """The reader's Redis client (None: a reader without one, as the tests' samples)."""
    return getattr(reader(), "redis", None)


def alerts(since: float, until: float, *, open_only: bool = False) -> list[answers.Alert]:
    """Alerts raised in [since, until] and every open one, newest first (none without a
    store). Redis errors reach the caller, which shows that alerts cannot be read."""
    from store.alerts import AlertStore

    client = _redis()
    return [] if client is None else AlertStore(client).history(since, until, open_only=open_only)


def alert_count(line: str, start: float, end: float) -> int | None:
    """Alerts of a line whose condition began in [start, end) (a shift's, for its table);
    None: not known (no store, or Redis not answering)."""
    from store.alerts import AlertStore

    client = _redis()
    if client is None:
        return None
    try:
        return AlertStore(client).count(line, start, end)
    except (RedisError, OSError):
        return None


def acknowledge_alert(alert_id: str, comment: str, at: float) -> answers.AlertAck:
    """The logged-in caller acknowledges an alert, by the API's rules (``api.alerts``: who
    may, the audit trail); raises ``api.alerts.Refused`` with the sentence to show."""
    from api.alerts import Refused, acknowledge
    from store.alerts import AlertStore

    client = _redis()
    if client is None:
        raise Refused(503, "alerts are not available")
    return acknowledge(AlertStore(client), alert_id, comment, at, from_page=True)


def handovers(line: str, start: float, end: float) -> list[answers.Handover]:
    """A line's shift handovers of shifts that began in [start, end), oldest first."""
    from store.handovers import Handovers

    return Handovers(reader().redis).history(line, start, end)
