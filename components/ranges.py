"""The time-range bar of the line and machine pages, kept in the URL query string.

``?start=shift`` (named: shift, last_shift, today, yesterday, 7d, 30d) or
``?start=2025-11-24T07:00&end=2025-11-24T15:00`` (ISO 8601, plant local time when no
offset is given): the same parameters as the HTTP API, so a view can be bookmarked
and its numbers compared with ``/api``. The URL is the one source of truth; the
``WINDOW`` store carries the parameters to the panels, which resolve them at each
refresh (a live window's end moves with the clock). A range the API would refuse is
shown with the API's own message, never silently replaced by another.

Every panel draws whole figures when the view changes (range, filter) or a draw went
missing, and patches what the browser already holds on a live tick (``Live``), sending
only the outputs whose content changed since the browser's last answer (the drawn record
carries a digest per output, ``push.digests``). The
browser decides when to ask (``assets/screens.js``, ``oee.panelTick``): a live update
only once the panel holds a draw of the view on screen, and only while the range
reaches now (past ranges never poll); a redraw when a draw has not arrived for
``REDRAW_AFTER_MS``. The 2 s timer used to trigger the panels directly: dash-renderer
drops the older of two requests of one callback, so on a slow tablet the first draw lost
against the timer, and the tick's ``Patch`` met a figure that did not exist. Now a tick
can only follow a draw, and a request that replaces a pending one draws in its place
(the server draws whenever the browser's ``drawn`` record is not the view asked for).
With live push (``components.push``) the server advances that timer's tick when the
page's line changed, and the timer itself runs only while the push stream is down.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

import dash_bootstrap_components as dbc
from dash import ClientsideFunction, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from components import data, i18n, push, shared, theme
from components.callbacks import Callbacks
from components.i18n import _

callbacks = Callbacks()  # this module's callbacks; register(app) puts them on an app
register = callbacks.register

RANGE = "range-choice"
CUSTOM_START = "range-custom-start"
CUSTOM_END = "range-custom-end"
CUSTOM_BOX = "range-custom-box"
APPLY = "range-apply"
WINDOW = "range-window"  # store: {"start": param, "end": param | None}
LABEL = "range-label"
TICK = "range-tick"  # refresh of live windows
STATUS = "range-status"  # what /api/health says about the figures (catching up, data lost)
URL = "range-url"  # the page's own view of the address bar (the root's is only for routing)

CUSTOM = "custom"
LIVE_REFRESH_MS = 2000
REDRAW_AFTER_MS = 12000  # a draw not arrived by then was lost (dropped request, server error): ask again


@dataclass(frozen=True, slots=True)
class Live:
    """The stores of one panel's draw / live-update pair (see the module docstring).

    ``drawn``: what the browser shows, written by the draw (``{"params", "live", ...}``);
    ``pulse``: the live update's trigger; ``redraw``: the draw's second trigger;
    ``wait``: since when the browser has waited for a draw (browser clock)."""

    prefix: str

    @property
    def drawn(self) -> str:
        return f"{self.prefix}-drawn"

    @property
    def pulse(self) -> str:
        return f"{self.prefix}-pulse"

    @property
    def redraw(self) -> str:
        return f"{self.prefix}-redraw"

    @property
    def wait(self) -> str:
        return f"{self.prefix}-wait"

    def stores(self) -> list[dcc.Store]:
        return [dcc.Store(id=i) for i in (self.drawn, self.pulse, self.redraw, self.wait)]

    def declare(self, owner: Callbacks, view_filter: str | None = None) -> None:
        """The browser-side gate between the 2 s timer and this panel's callback, declared
        with the panel module's own callbacks (``owner``); ``view_filter``: a store whose
        value is part of the view (the drawn ``filter``)."""
        owner.clientside_callback(
            ClientsideFunction("oee", "panelTick"),
            Output(self.pulse, "data"),
            Output(self.redraw, "data"),
            Output(self.wait, "data"),
            Input(TICK, "n_intervals"),
            State(self.drawn, "data"),
            State(WINDOW, "data"),
            State(self.wait, "data"),
            *([State(view_filter, "data")] if view_filter else []),
            prevent_initial_call=True,
        )

    def redraw_on(self, owner: Callbacks, store: str) -> None:
        """A draw whenever ``store``'s data changes (a stop classified on the page: its
        figures follow at once, past ranges included, which never tick)."""
        owner.callback(Output(self.redraw, "data", allow_duplicate=True), Input(store, "data"),
                       prevent_initial_call=True)(redraw_request)


def redraw_request(changed: Any) -> dict[str, Any]:
    """A new value of a panel's ``redraw`` store (any new value asks for a draw)."""
    return {"after": changed}


def drawn(params: dict[str, Any] | None, window: data.Window | None, view_filter: Any = None,
          shown: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """The ``Live.drawn`` record of a draw, or of a live tick that changed something: a
    closed window (or a refused one) never pulses; ``shown``: the digests of what the
    browser holds after this answer, per output (``push.digests``)."""
    record = {"params": params, "filter": view_filter, "live": bool(window and window.live),
              "redraw_after_ms": REDRAW_AFTER_MS, **extra}
    return {**record, push.SHOWN: shown} if shown is not None else record


def is_drawn(held: dict[str, Any] | None, params: dict[str, Any] | None, view_filter: Any = None) -> bool:
    """The browser holds a draw of this view (a live update may patch it)."""
    return bool(held) and held.get("params") == params and held.get("filter") == view_filter  # type: ignore[union-attr]


def is_live_tick(live: Live, held: dict[str, Any] | None, params: dict[str, Any] | None,
                 view_filter: Any = None) -> bool:
    """This request is a live tick over a draw of the same view: patch. Anything else
    (first request, new range or filter, a redraw, a tick that replaced a pending draw): draw."""
    return ctx.triggered_id == live.pulse and is_drawn(held, params, view_filter)


def local_or_iso(text: str | None, tz: str | None) -> str | None:
    """A time without an offset is plant local time (as in the custom-range inputs): give
    it the plant's offset. Anything else stays as it is, for the API's checks to judge."""
    if not text or not tz or text in data.NAMED_RANGES:
        return text
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return text
    return local_input_to_iso(text.strip(), tz) if parsed.tzinfo is None else text


def params_from_query(query: dict[str, str], tz: str | None = None) -> dict[str, str | None]:
    start = query.get("start") or data.DEFAULT_RANGE
    end = query.get("end") or None
    return {"start": local_or_iso(start, tz), "end": local_or_iso(end, tz) if start not in data.NAMED_RANGES else None}


def params_from_search(search: str | None, tz: str | None = None) -> dict[str, str | None]:
    query = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}
    return params_from_query(query, tz)


def search_for(params: dict[str, str | None], keep: dict[str, str] | None = None) -> str:
    """Query string for a window (other parameters in ``keep`` stay)."""
    query = {k: v for k, v in (keep or {}).items() if k not in ("start", "end")}
    query["start"] = params["start"] or data.DEFAULT_RANGE
    if params.get("end"):
        query["end"] = params["end"]  # type: ignore[assignment]
    return "?" + urlencode(query)


def choice_for(params: dict[str, str | None]) -> str:
    return params["start"] if params["start"] in data.NAMED_RANGES else CUSTOM


RANGE_LIVE = Live("range")


def layout(query: dict[str, str], tz: str, line: str | None = None) -> html.Div:
    """The range bar; ``line``: the page's line, whose changes are pushed (``components.push``)."""
    params = params_from_query(query, tz)
    choice = choice_for(params)
    options = [{"label": _(label), "value": value} for value, label in data.NAMED_RANGES.items()]
    options.append({"label": _("Custom"), "value": CUSTOM})
    status_attrs: dict[str, Any] = {"data-tz": tz, "data-texts": json.dumps(i18n.client_texts(), ensure_ascii=False)}
    return html.Div(className="range-bar", children=[
        dcc.Location(id=URL, refresh=False),
        dcc.Store(id=WINDOW, data=params),
        dcc.Interval(id=TICK, interval=LIVE_REFRESH_MS),
        *([push.hook(TICK, [line], LIVE_REFRESH_MS)] if line else []),
        *RANGE_LIVE.stores(),
        dbc.RadioItems(
            id=RANGE, options=options, value=choice, inline=True,
            className="btn-group flex-wrap", inputClassName="btn-check",
            labelClassName="btn btn-outline-primary", labelCheckedClassName="active",
        ),
        html.Div(id=CUSTOM_BOX, className=_box_class(choice), children=[
            html.Label([_("From"), dcc.Input(id=CUSTOM_START, type="datetime-local", step=60,  # type: ignore[arg-type]
                                          value=iso_to_local_input(params["start"], tz),
                                          className="form-control form-control-sm")], className="range-input"),
            html.Label([_("to"), dcc.Input(id=CUSTOM_END, type="datetime-local", step=60,  # type: ignore[arg-type]
                                        value=iso_to_local_input(params.get("end"), tz),
                                        className="form-control form-control-sm")], className="range-input"),
            dbc.Button(_("Apply"), id=APPLY, color="primary"),
        ]),
        html.Span(id=LABEL, className="range-label text-body-secondary"),
        html.Div(id=STATUS, className="wall-banner d-none", **status_attrs),
    ])


# "catching up history (n %)" and "Redis lost data" from /api/health, as on the wall
callbacks.clientside_callback(
    ClientsideFunction("oee", "pageStatus"),
    Output(STATUS, "children"),
    Output(STATUS, "className"),
    Input(TICK, "n_intervals"),
    State(WINDOW, "data"),
)


@callbacks.callback(
    Output(URL, "search"),
    Output(WINDOW, "data"),
    Output(RANGE, "value"),
    Output(CUSTOM_BOX, "className"),
    Input(RANGE, "value"),
    Input(APPLY, "n_clicks"),
    Input(URL, "search"),
    State(CUSTOM_START, "value"),
    State(CUSTOM_END, "value"),
    State(WINDOW, "data"),
    prevent_initial_call=True,
)
def sync(choice: str, _apply: int | None, search: str | None, custom_start: str | None, custom_end: str | None,
         current: dict[str, Any]) -> tuple[Any, ...]:
    """Range bar -> URL, and URL (back/forward) -> range bar: the URL holds the view."""
    keep = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}
    trigger = ctx.triggered_id
    if trigger == URL:
        params = params_from_search(search, data.plant().timezone)
        if params == current:
            return no_update, no_update, no_update, no_update
        choice = choice_for(params)
        return no_update, params, choice, _box_class(choice)
    if choice == CUSTOM and trigger == RANGE:
        return no_update, no_update, no_update, _box_class(CUSTOM)
    if choice == CUSTOM:
        if not custom_start:
            return no_update, no_update, no_update, _box_class(CUSTOM)
        tz = data.plant().timezone
        try:
            params = {"start": local_input_to_iso(custom_start, tz),
                      "end": local_input_to_iso(custom_end, tz) if custom_end else None}
        except ValueError:
            return no_update, no_update, no_update, _box_class(CUSTOM)
    else:
        params = {"start": choice, "end": None}
    return search_for(params, keep), params, no_update, _box_class(choice)


def _box_class(choice: str) -> str:
    return "range-custom" + ("" if choice == CUSTOM else " d-none")


def resolve(params: dict[str, Any] | None, at: float) -> data.Window:
    """The window for the stored parameters; raises ``ValueError`` (the API's
    ``WindowError``, same message) for a range the API would refuse."""
    params = params or {"start": data.DEFAULT_RANGE, "end": None}
    return data.resolve_window(data.plant(), params.get("start"), params.get("end"), at)


def resolve_or_error(params: dict[str, Any] | None, at: float) -> tuple[data.Window | None, str | None]:
    try:
        return resolve(params, at), None
    except ValueError as exc:
        return None, str(exc)


def refused(message: str) -> html.Div:
    """What a panel shows instead of figures for a range the API refuses."""
    return html.Div(_("Bad range: {message}").format(message=message), className="alert alert-warning mb-0 range-error")


def panel_context(params: dict[str, Any] | None, line: str) -> tuple[Any, Any, data.Window | None, float, str | None]:
    """What every line-panel callback starts from: plant, line config, window (None for a
    refused range), now, and the API's message for a refused range. Stops the update
    for an unknown line."""
    p = data.plant()
    cfg = p.line(line)
    if cfg is None:
        raise PreventUpdate
    at = data.now()
    window, error = resolve_or_error(params, at)
    return p, cfg, window, at, error


def live_context(params: dict[str, Any] | None, held: dict[str, Any] | None, line: str, view_filter: Any = None
                 ) -> tuple[Any, Any, data.Window, float]:
    """A live update's preamble: nothing to do unless the browser holds a draw of this
    live view (the browser's gate checks too; this is the server's own word)."""
    if not is_drawn(held, params, view_filter) or not (held or {}).get("live"):
        raise PreventUpdate
    p, cfg, window, at, error = panel_context(params, line)
    if window is None or not window.live:
        raise PreventUpdate
    return p, cfg, window, at


def step_for(window: data.Window) -> int:
    """Bucket size for series: hours up to two days, then days."""
    return 3600 if window.end - window.start <= 2 * 86400 else 86400


def window_text(window: data.Window, tz: str) -> str:
    """The range in words: a named range's name and its span (a custom range is its span)."""
    span = f"{theme.local_datetime(window.start, tz)} \u2192 {theme.local_datetime(window.end, tz)}"
    named = "\u2192" not in window.label
    return (f"{window.label}: {span}" if named else span) + (" " + _("(live)") if window.live else "")


@callbacks.callback(
    Output(LABEL, "children"),
    Output(LABEL, "className"),
    Output(RANGE_LIVE.drawn, "data"),
    Input(WINDOW, "data"),
    Input(RANGE_LIVE.pulse, "data"),
    Input(RANGE_LIVE.redraw, "data"),
)
@shared.answer(RANGE_LIVE.pulse)
def show_window(params: dict[str, Any], _pulse: Any, _redraw: Any) -> tuple[Any, ...]:
    at = data.now()
    window, error = resolve_or_error(params, at)
    if window is None:
        return (_("Bad range: {message}").format(message=error), "range-label range-error alert alert-warning",
                drawn(params, None))
    # a live window's label changes with the minute of its end (or when it ends): until
    # then the browser does not ask again (one request a minute, not one per live tick)
    quiet_s = min((math.floor(at / 60) + 1) * 60, window.end if window.end > at else math.inf) - at
    return (window_text(window, data.plant().timezone), "range-label text-body-secondary",
            drawn(params, window, quiet_ms=int(quiet_s * 1000), at=at) if window.live else drawn(params, window))


RANGE_LIVE.declare(callbacks)


def local_input_to_iso(text: str, tz: str) -> str:
    """A ``datetime-local`` input value (plant local time, no offset) -> ISO 8601 with
    the plant's offset, as the API wants it."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(tz))
    return parsed.isoformat(timespec="minutes")


def iso_to_local_input(text: str | None, tz: str) -> str | None:
    if not text or text in data.NAMED_RANGES:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(ZoneInfo(tz))
    return parsed.strftime("%Y-%m-%dT%H:%M")
