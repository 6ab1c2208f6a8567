"""The "untagged stops" queue of a line, ``/line/<line>/untagged``: tablet first.

The stops nobody explained (unplanned down time without a reason, longest first) as
big buttons; tap one, optionally type a comment, tap a reason from the line's list
(grouped by loss category): it is saved for the logged-in user (``api.operations.classify``:
the same rules, authorization and audit as the API) and the queue, the coverage and
the Pareto below redraw from ``PlantReader`` at once. A stop can also be split at a
local time into two reasons. Without a login the page shows the queue and says to log
in (the session cookie of ``/login``; Dash's JSON callback requests need no CSRF field:
a cross-site form cannot send them and the SameSite=Lax cookie does not go with one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from api import context
from components import data, theme
from components.callbacks import Callbacks
from components.i18n import N_, _, local
from components.overview import nav
from domain.classification import grouped_choices
from domain.model import parse_state
from domain.plant import Plant
from domain.roles import Action, refusal

callbacks = Callbacks()  # this module's callbacks; register(app) puts them on an app
register = callbacks.register

LINE = "ut-line"
SELECTED = "ut-selected"
SAVED = "ut-saved"
RANGE = "ut-range"
SHOW = "ut-show"
MACHINE = "ut-machine"
WHO = "ut-who"
COVERAGE = "ut-coverage"
QUEUE = "ut-queue"
DETAIL = "ut-detail"
COMMENT = "ut-comment"
MESSAGE = "ut-message"
PARETO = "ut-pareto"
SPLIT_AT = "ut-split-at"
SPLIT_BEFORE = "ut-split-before"
SPLIT_AFTER = "ut-split-after"
SPLIT = "ut-split"
STOP_BTN = "ut-stop"
REASON_BTN = "ut-reason"
DIALOG = "ut-dialog"  # the picker as a dialog on the line and machine pages
CLOSE = "ut-close"
CAN_CLASSIFY = "classify"
MAY_LOG_IN = "login"
RANGES = [("shift", N_("This shift")), ("last_shift", N_("Last shift")), ("today", N_("Today")),
          ("yesterday", N_("Yesterday"))]  # labels: English msgids, translated where shown
CATEGORY_LABELS = {"equipment_failure": N_("Equipment failure"), "setup_adjustment": N_("Setup and adjustment"),
                   "small_stop": N_("Small stops"), "reduced_speed": N_("Reduced speed"), "planned": N_("Planned"),
                   "starved_blocked": N_("Starved / blocked"), "unexplained": N_("Other")}
MAX_QUEUE = 60
PARETO_ROWS = 8


def layout(plant: Plant, line: str, query: dict[str, str]) -> html.Div:
    cfg = plant.line(line)
    if cfg is None:
        missing = _("No line {line} in this plant.").format(line=repr(line))
        return html.Div([nav(plant), dbc.Container(html.P(missing))])
    start = query.get("start") if query.get("start") in dict(RANGES) else "shift"
    machine = query.get("machine") if cfg.machine(query.get("machine") or "") is not None else None
    here = f"/line/{line}/untagged"
    return html.Div(className="untagged-page", children=[
        dcc.Store(id=LINE, data=line), dcc.Store(id=SELECTED), dcc.Store(id=SAVED, data=0),
        dcc.Store(id=MACHINE, data=machine),
        nav(plant, f"/line/{line}", here=here),
        dbc.Container(fluid=True, children=[
            html.Div(className="page-head d-flex flex-wrap align-items-baseline gap-3", children=[
                html.H1(f"{cfg.id}{' ' + machine if machine else ''} \u00b7 " + _("Untagged stops"),
                        className="h4 mb-0"),
                dcc.Link(_("Line page"), href=f"/line/{line}"),
                html.Div(id=WHO, className="ms-auto"),
            ]),
            dbc.RadioItems(id=RANGE, options=[{"label": _(t), "value": v} for v, t in RANGES], value=start, inline=True,
                           className="my-2 ut-ranges", inputClassName="btn-check",
                           labelClassName="btn btn-outline-secondary btn-lg me-2",
                           labelCheckedClassName="active"),
            dbc.RadioItems(id=SHOW, options=[{"label": _("Untagged"), "value": "untagged"},
                                             {"label": _("All stops"), "value": "all"}],
                           value="untagged", inline=True, className="mb-2", inputClassName="btn-check",
                           labelClassName="btn btn-outline-secondary btn-lg me-2", labelCheckedClassName="active"),
            html.Div(id=COVERAGE, className="mb-2"),
            dbc.Row([
                dbc.Col(html.Div(id=QUEUE, className="ut-queue"), md=5),
                dbc.Col(picker(plant, cfg), md=7),
            ]),
            html.Section(className="panel mt-3", children=[
                html.H2(_("Stop reasons by duration"), className="h6"), html.Div(id=PARETO, className="ut-pareto")]),
        ]),
    ])


def picker(plant: Plant, cfg: Any) -> list[Any]:
    """What to do with the selected stop: the comment, the reasons grouped by loss category
    and the split. The queue shows it beside the stops; the line and machine pages in
    ``classify_dialog``. The same ids on every page, so ``select`` and ``act`` serve all."""
    return [
        html.Div(id=DETAIL, className="mb-2"),
        dbc.Textarea(id=COMMENT, placeholder=_("Comment (optional)"), maxLength=500, className="mb-2",
                     style={"minHeight": "44px"}),
        html.Div(id=MESSAGE, className="mb-2", role="status"),
        html.Div(_reason_buttons(plant, cfg)),
        html.Details(className="mt-3 ut-split-box", children=[
            html.Summary(_("Split the stop into two reasons"), className="py-2"),
            dbc.Row(className="g-2 mt-1", children=[
                dbc.Col(dbc.Input(id=SPLIT_AT, placeholder=_("at HH:MM[:SS]"), size="lg"), xs=12, md=4),
                dbc.Col(dbc.Select(id=SPLIT_BEFORE, options=_options(plant, cfg), size="lg"), xs=6, md=4),
                dbc.Col(dbc.Select(id=SPLIT_AFTER, options=_options(plant, cfg), size="lg"), xs=6, md=4),
            ]),
            dbc.Button(_("Split"), id=SPLIT, color="secondary", size="lg", className="mt-2"),
        ]),
    ]


def classify_dialog(plant: Plant, line: str) -> html.Div:
    """The queue's picker in a dialog, for the line and machine pages' stop lists: a tap on
    a stop (``stop_button``) opens it; a saved reason or split closes it, and the page's
    panels redraw (``SAVED``, see ``ranges.Live.redraw_on``)."""
    cfg = plant.line(line)
    return html.Div(className="classify-dialog", children=[
        dcc.Store(id=LINE, data=line), dcc.Store(id=SELECTED), dcc.Store(id=SAVED, data=0),
        dbc.Modal(id=DIALOG, is_open=False, size="lg", scrollable=True, children=[
            dbc.ModalHeader(dbc.ModalTitle(_("Stop reason"))),
            dbc.ModalBody(picker(plant, cfg)),
            dbc.ModalFooter(dbc.Button(_("Close"), id=CLOSE, color="secondary", size="lg")),
        ]),
    ])


def access(line: str) -> str:
    """What the current caller may do with a line's stops on screen: ``CAN_CLASSIFY``,
    ``MAY_LOG_IN`` (nobody logged in) or ``""`` (logged in, not allowed; or no user store)."""
    loop = _operator_loop()
    if loop is None:
        return ""
    who = loop[0].current_principal()
    if who is None:
        return MAY_LOG_IN
    return CAN_CLASSIFY if refusal(who, Action.CLASSIFY, line) is None else ""


def classifiable(event: Mapping[str, Any]) -> bool:
    """A stop a person can give a reason: it has an id, is not a small stop, and is the
    first piece (a split's later part belongs to the same stop)."""
    return bool(event.get("id")) and not event.get("micro") and (event.get("piece") or 0) <= 1


def stop_button(event: Mapping[str, Any], label: str) -> html.Button:
    """A stop of a list as a button that opens ``classify_dialog`` (its reason as the label)."""
    return html.Button([label, html.Span(" \u270e", className="ut-pen")],
                       id={"type": STOP_BTN, "id": event["id"]}, title=_("Set the reason"),
                       className="btn btn-outline-primary btn-sm text-start stop-classify",
                       style={"minHeight": "44px", "minWidth": "44px"}, **{"data-stop": event["id"]})


def login_link(next_path: str) -> html.A:
    return html.A(_("Log in to classify"), href=f"/login?next={quote(next_path)}", id="stop-login",
                  className="btn btn-outline-primary btn-sm stop-login",
                  style={"minHeight": "44px", "display": "inline-flex", "alignItems": "center"})


def _reason_buttons(plant: Plant, cfg: Any) -> list[Any]:
    out: list[Any] = []
    for category, reasons in grouped_choices(plant, cfg).items():
        out.append(html.H3(_(CATEGORY_LABELS.get(category, category)), className="h6 mt-2 mb-1"))
        out.append(html.Div(className="d-flex flex-wrap gap-2", children=[
            dbc.Button(local(text), id={"type": REASON_BTN, "code": code}, color="primary", outline=True, size="lg",
                       className="ut-reason-btn", style={"minHeight": "44px"})
            for code, text in reasons]))
    return out


def _options(plant: Plant, cfg: Any) -> list[dict[str, Any]]:
    return [{"label": f"{code} {local(text)}", "value": str(code)}
            for reasons in grouped_choices(plant, cfg).values() for code, text in reasons]


def _clock(ts: float, tz: str) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(tz)).strftime("%H:%M:%S")


def queue_items(stops: Sequence[Mapping[str, Any]], tz: str, now: float) -> list[Any]:
    if not stops:
        return [html.P(_("No untagged stops in this range."), className="text-body-secondary ut-empty")]
    items = []
    for stop in stops[:MAX_QUEUE]:
        minutes = (stop["end"] if stop["end"] is not None else now) - stop["start"]
        text = f"{stop['machine']} \u00b7 {_clock(stop['start'], tz)} \u00b7 {theme.duration(minutes)}"
        now_reason = f"{local(stop['reason_text'])} ({stop.get('classified_by')}) \u00b7 " if stop["reason"] else ""
        colour = "btn-outline-secondary" if stop["reason"] else "btn-outline-danger"
        items.append(html.Button(
            [html.Span(text, className="fw-semibold"), html.Br(),
             html.Small(f"{now_reason}{theme.label(theme.STATE_LABELS, parse_state(stop['state']))} \u00b7 "
                        + _("PLC: {reason}").format(reason=local(stop.get("plc_reason_text")) or _("no reason")))],
            id={"type": STOP_BTN, "id": stop["id"]}, className=f"btn {colour} btn-lg w-100 text-start mb-2",
            style={"minHeight": "44px"}, **{"data-stop": stop["id"]}))
    return items


def pareto_rows(rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    if not rows:
        return [html.P(_("No down time in this range."), className="text-body-secondary")]
    return [html.Div(className="d-flex justify-content-between border-bottom py-1 ut-pareto-row",
                     **{"data-group": row["group"]},
                     children=[html.Span(local(row["label"])), html.Span(theme.duration(row["duration_s"]))])
            for row in rows[:PARETO_ROWS]]


def _operator_loop() -> Any:
    """(auth, writes) or None when the app has no user store (a reader without Redis)."""
    from api import auth
    from api import operations as writes

    if context.config().get(auth.AUTH_KEY) is None:
        return None
    return auth, writes


def _who() -> Any:
    loop = _operator_loop()
    return loop[0].current_principal() if loop else None


@callbacks.callback(Output(QUEUE, "children"), Output(PARETO, "children"), Output(COVERAGE, "children"),
                    Output(WHO, "children"), Input(RANGE, "value"), Input(SHOW, "value"), Input(SAVED, "data"),
                    State(LINE, "data"), State(MACHINE, "data"))
def refresh(range_value: str, show: str | None, _saved: Any, line: str, machine: str | None) -> tuple[Any, ...]:
    plant, at = data.plant(), data.now()
    window = data.resolve_window(plant, range_value or "shift", None, at)
    loop = _operator_loop()
    try:
        if loop is None:
            raw = data.downtime(line, window.start, window.end, at)
            stops: dict[str, Any] = {"stops": [], "untagged_coverage": raw["summary"].get("untagged_coverage")}
        else:
            stops = loop[1].untagged_stops(data.reader(), line, window.start, window.end, at, untagged=True)
            raw = data.downtime(line, window.start, window.end, at)
    except data.DataUnavailable:
        raise PreventUpdate from None
    untagged = [s for s in stops["stops"] if machine is None or s["machine"] == machine]
    shown = untagged if show != "all" else [
        e for e in raw["events"] if e.get("id") and not e["planned"] and not e["micro"] and e["lost_s"] > 0
        and e.get("piece", 0) <= 1 and (machine is None or e["machine"] == machine)]
    coverage = stops.get("untagged_coverage")
    cover = html.Span([_("{n} untagged \u00b7 coverage").format(n=len(untagged)) + " ",
                       html.Strong(theme.pct(coverage) if coverage is not None else "\u2013", id="ut-coverage-value")])
    who = _who()
    here = quote(f"/line/{line}/untagged")
    badge = (html.Form(action="/logout", method="POST", className="d-inline", children=[
        html.Span(f"{who.name} ({who.role}) "),
        html.Button(_("Log out"), type="submit", className="btn btn-outline-secondary btn-lg ms-1", id="ut-logout")])
             if who is not None else html.A(_("Log in to classify"), href=f"/login?next={here}",
                                            className="btn btn-primary btn-lg", id="ut-login"))
    return (queue_items(shown, plant.timezone, at), pareto_rows(raw["pareto"]["by_duration"]), cover, badge)


@callbacks.callback(Output(SELECTED, "data"), Output(DETAIL, "children"),
                    Input({"type": STOP_BTN, "id": ALL}, "n_clicks"), prevent_initial_call=True)
def select(clicks: list[int | None]) -> tuple[Any, Any]:
    if not any(clicks) or not isinstance(ctx.triggered_id, dict):
        raise PreventUpdate
    sid = str(ctx.triggered_id["id"])
    machine, start_ms = sid.split("~")[1:]
    when = _clock(int(start_ms) / 1000.0, data.plant().timezone)
    return sid, html.Div([html.Span(_("Selected:") + " "),
                          html.Strong(_("{machine} at {time}").format(machine=machine, time=when),
                                      id="ut-selected-label"),
                          html.Span(" \u2013 " + _("tap a reason"), className="text-body-secondary")])


@callbacks.callback(Output(DIALOG, "is_open"), Input({"type": STOP_BTN, "id": ALL}, "n_clicks"),
                    Input(SAVED, "data"), Input(CLOSE, "n_clicks"), prevent_initial_call=True)
def dialog(clicks: list[int | None], _saved: Any, _close: Any) -> bool:
    """A stop tapped opens the dialog; a saved reason or Close shuts it."""
    if isinstance(ctx.triggered_id, dict):
        if not any(clicks):
            raise PreventUpdate  # a list redrawn: its buttons are new, nobody tapped
        return True
    return False


@callbacks.callback(Output(MESSAGE, "children"), Output(SAVED, "data"),
                    Input({"type": REASON_BTN, "code": ALL}, "n_clicks"), Input(SPLIT, "n_clicks"),
                    State(SELECTED, "data"), State(COMMENT, "value"), State(SPLIT_AT, "value"),
                    State(SPLIT_BEFORE, "value"), State(SPLIT_AFTER, "value"), State(LINE, "data"),
                    State(SAVED, "data"), prevent_initial_call=True)
def act(reason_clicks: list[int | None], split_clicks: int | None, selected: str | None, comment: str | None,
        split_at: str | None, before: str | None, after: str | None, line: str, saved: int | None) -> tuple[Any, Any]:
    trigger = ctx.triggered_id
    if trigger is None or (trigger != SPLIT and not any(reason_clicks)) or (trigger == SPLIT and not split_clicks):
        raise PreventUpdate
    loop = _operator_loop()
    who = _who()
    if loop is None or who is None:
        return dbc.Alert(_("Log in to classify stops."), color="warning", className="py-2"), no_update
    if not selected:
        return dbc.Alert(_("Tap a stop first."), color="info", className="py-2"), no_update
    writes = loop[1]
    at = data.now()
    try:
        if trigger == SPLIT:
            when = _split_time(selected, split_at, data.plant().timezone)
            writes.split(data.reader(), who, line, selected, when, _int(before), _int(after), comment, at)
            text = _("Split saved.")
        else:
            code = int(trigger["code"])
            writes.classify(data.reader(), who, line, selected, code, comment, at)
            text = _("Saved: {reason}.").format(reason=local(data.plant().reasons[code].text))
    except writes.OpError as exc:
        return dbc.Alert(exc.message, color="danger", className="py-2", id="ut-error"), no_update
    return dbc.Alert(text, color="success", className="py-2", id="ut-ok"), (saved or 0) + 1


def _int(value: str | None) -> Any:
    try:
        return int(value) if value else None
    except ValueError:
        return value


def _split_time(sid: str, text: str | None, tz: str) -> float:
    """A local clock time on the stop's day (the next day if earlier than the stop's start)."""
    from api.operations import OpError

    start = int(sid.split("~")[2]) / 1000.0
    try:
        parts = [int(p) for p in (text or "").strip().split(":")]
        if not 2 <= len(parts) <= 3:
            raise ValueError
        clock = datetime.fromtimestamp(start, ZoneInfo(tz)).replace(hour=parts[0], minute=parts[1],
                                                                     second=parts[2] if len(parts) == 3 else 0,
                                                                     microsecond=0)
    except ValueError:
        raise OpError(400, "at: a local time like 10:42 or 10:42:30") from None
    if clock.timestamp() < start:
        clock += timedelta(days=1)
    return clock.timestamp()
