"""Alerts on the screens (README "Alerts").

* The wall (``wall_alerts``): every open alert of the wall's lines as a line of text; an
  unacknowledged urgent one flashes (CSS ``alert-flash``: one flash per second, below
  the 3 per second of WCAG 2.3.1 and the 2 the issue allows). ``?sound=1`` on the wall's
  URL beeps while one flashes (``assets/alerts.js``; a kiosk browser must allow autoplay:
  Chromium ``--autoplay-policy=no-user-gesture-required``).
* The overview and line pages (``alert_list``): open and recent alerts with an
  Acknowledge button; who may acknowledge is ``api.alerts.may_acknowledge``.

Both are pushed (``push.hook(..., alerts=True)``): the alert loop bumps a counter with
every change and every acknowledgement, the live feed tells the page, and its Interval
(2 s on the wall, 5 s for the list) only runs while push is down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from redis.exceptions import RedisError

from api.alerts import Refused
from components import data, push
from components.callbacks import Callbacks
from components.i18n import N_, _, local, reason_text
from domain import answers

callbacks = Callbacks()  # this module's callbacks; register(app) puts them on an app
register = callbacks.register

log = logging.getLogger(__name__)

WALL = "alerts-wall"
WALL_TICK = "alerts-wall-tick"
WALL_LINES = "alerts-wall-lines"
LIST = "alerts-list"
LIST_TICK = "alerts-list-tick"
LIST_LINE = "alerts-list-line"
COMMENT = "alerts-comment"
MESSAGE = "alerts-message"
ACK = "alert-ack"  # {"type": ACK, "id": alert id}

WALL_REFRESH_MS = 2000
LIST_REFRESH_MS = 5000
RECENT_S = 12 * 3600.0  # the list shows alerts of the last 12 h besides the open ones
LIST_MAX = 30


def _alerts(lines: list[str] | None, *, open_only: bool, now: float) -> list[answers.Alert]:
    items = data.alerts(now - RECENT_S, now, open_only=open_only)
    return [a for a in items if lines is None or a["line"] in lines]


# --- the wall -------------------------------------------------------------------------------

def wall_alerts(lines: list[str], sound: bool = False) -> html.Div:
    sound_attr: dict[str, Any] = {"data-sound": "1" if sound else "0"}  # data-* attributes: keyword-only in Dash
    return html.Div([
        dcc.Interval(id=WALL_TICK, interval=WALL_REFRESH_MS),
        push.hook(WALL_TICK, [], WALL_REFRESH_MS, alerts=True, note=False),  # pushed when an alert changes
        dcc.Store(id=WALL_LINES, data=lines),
        html.Div(id=WALL, className="wall-alerts d-none", **sound_attr),
    ])


# The alert texts of ``domain.alerts`` (its ``message`` keys), worded on the screens
MESSAGES = {
    "stopped": N_("{line} {machine}: stopped {minutes} min"),
    "stopped_reason": N_("{line} {machine}: stopped {minutes} min ({reason})"),
    "stopped_late": N_("{line} {machine}: stopped {minutes} min (late data)"),
    "behind_pace": N_("{line}: {behind} parts behind pace ({share} %)"),
    "oee_low": N_("{line}: OEE last hour {oee} % (below {below} %)"),
    "no_data": N_("{line} {machine}: no data"),
    "no_data_for": N_("{line} {machine}: no data for {minutes} min"),
    "implausible": N_("{line} {machine}: implausible {signal} ({kind})"),
    "worker_behind": N_("{line}: rollup worker {minutes} min behind"),
    "worker_silent": N_("{line}: rollup worker not running"),
}


def alert_text(alert: Mapping[str, Any]) -> str:
    """An alert's text in the screen's language (its English ``text`` for one stored
    before alerts carried their message as data, or with an unknown key)."""
    message = alert.get("message") or {}
    template = MESSAGES.get(str(message.get("k")))
    if template is None:
        return str(alert.get("text", ""))
    values = dict(message.get("p") or {})
    if values.get("machine"):
        machine = data.plant().line(str(values.get("line"))) if alert.get("line") else None
        cfg = machine.machine(str(values["machine"])) if machine is not None else None
        values["machine"] = local(cfg.name) if cfg is not None and cfg.name else values["machine"]
    if values.get("code") is not None:
        values["reason"] = reason_text(values["code"], values.get("reason"))
    try:
        text = _(template).format(**values)
    except (KeyError, IndexError, ValueError):
        return str(alert.get("text", ""))
    prefix = local(message.get("prefix")) if message.get("prefix") else ""
    return f"{prefix}: {text}" if prefix else text


def wall_items(alerts: Sequence[Mapping[str, Any]]) -> tuple[list[Any], str]:
    """The wall's alert lines and its class (pure): flashing while an urgent alert waits
    for an acknowledgement."""
    shown = [a for a in alerts if a["cleared_at"] is None and a["severity"] != "info"]
    if not shown:
        return [], "wall-alerts d-none"
    items = [html.Div([html.Span(a["line"], className="wall-alert-line"), html.Span(alert_text(a))],
                      className=f"wall-alert wall-alert-{a['severity']}" + (" alert-flash" if a["flashing"] else ""))
             for a in shown]
    flashing = any(a["flashing"] for a in shown)
    return items, "wall-alerts" + (" wall-alerts-flashing" if flashing else "")


@callbacks.callback(Output(WALL, "children"), Output(WALL, "className"), Input(WALL_TICK, "n_intervals"),
                    State(WALL_LINES, "data"))
def wall_refresh(_n: int | None, lines: list[str] | None) -> tuple[Any, str]:
    try:
        return wall_items(_alerts(lines, open_only=True, now=data.now()))
    except (RedisError, OSError) as exc:
        log.warning("wall alerts: %s", exc)
        return [], "wall-alerts d-none"


# --- the list with acknowledge buttons ------------------------------------------------------

def alert_list(line: str | None) -> html.Section:
    return html.Section(className="alerts-panel mb-3", children=[
        dcc.Interval(id=LIST_TICK, interval=LIST_REFRESH_MS),
        push.hook(LIST_TICK, [], LIST_REFRESH_MS, alerts=True, note=False),  # pushed when an alert changes
        dcc.Store(id=LIST_LINE, data=line),
        html.H2(_("Alerts"), className="h5 mb-2"),
        html.Div(id=LIST, className="alerts-list"),
        dcc.Input(id=COMMENT, type="text", placeholder=_("Comment (optional)"), maxLength=500,
                  className=comment_class([])),
        html.Div(id=MESSAGE, className="alerts-message", role="status"),
    ])


SEVERITIES = {"info": N_("info"), "warning": N_("warning"), "urgent": N_("urgent")}  # shown translated (i18n)


def _when(ts: float | None) -> str:
    return "" if ts is None else time.strftime("%H:%M", time.localtime(ts))


def may_be_acknowledged(alert: Mapping[str, Any]) -> bool:
    """Open, not yet acknowledged, not late: the row has an Acknowledge button."""
    return alert["cleared_at"] is None and not alert.get("ack") and not alert["late"]


_SEVERITY_RANK = {"urgent": 0, "warning": 1, "info": 2}


def _rank(alert: Mapping[str, Any]) -> tuple[int, int, float]:
    """``ordered``'s key: the group, the severity within open unacknowledged ones, newest first."""
    if alert["late"]:
        group = 3  # found in late data: recorded, never sent, nothing to do
    elif alert["cleared_at"] is not None:
        group = 2
    else:
        group = 1 if alert.get("ack") else 0
    return group, _SEVERITY_RANK.get(alert["severity"], 3) if group == 0 else 0, -float(alert["raised_at"])


def ordered(alerts: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The list's order (pure): what needs someone first, open and not acknowledged (urgent
    before warning before info), then open acknowledged, then cleared, then those found in
    late data; newest first within each. So a burst of late-data records (a gateway's
    buffer sent after an outage) never pushes an open alert off the list."""
    return sorted(alerts, key=_rank)


def comment_class(alerts: Sequence[Mapping[str, Any]]) -> str:
    """The acknowledgement's comment box: shown only while a listed alert can be acknowledged (pure)."""
    shown = any(may_be_acknowledged(a) for a in ordered(alerts)[:LIST_MAX])
    return "form-control form-control-sm alerts-comment" + ("" if shown else " d-none")


def list_items(alerts: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Rows (``ordered``, at most ``LIST_MAX``, then how many more): severity, text, raised,
    state; an Acknowledge button on open unacknowledged ones (pure)."""
    if not alerts:
        return [html.P(_("No alerts in the last 12 hours."), className="text-body-secondary mb-2")]
    rows: list[Any] = []
    listed = ordered(alerts)
    for a in listed[:LIST_MAX]:
        ack = a.get("ack")
        if a["late"]:
            state = _("late data, not sent")
        elif a["cleared_at"] is not None:
            state = _("cleared {time}").format(time=_when(a["cleared_at"]))
        else:
            state = _("open")
        if ack:
            state += " · " + _("acknowledged by {who} {time}").format(who=ack["by"], time=_when(ack["at"])) + (
                f": {ack['comment']}" if ack.get("comment") else "")
        button = (html.Button(_("Acknowledge"), id={"type": ACK, "id": a["id"]}, n_clicks=0,
                              className="btn btn-outline-dark btn-sm alerts-ack")
                  if may_be_acknowledged(a) else None)
        rows.append(html.Div(className=f"alerts-row alerts-{a['severity']}" + (" alert-flash" if a["flashing"] else ""),
                             children=[html.Span(_(SEVERITIES.get(a["severity"], a["severity"])),
                                                 className="alerts-severity"),
                                       html.Span(alert_text(a), className="alerts-text"),
                                       html.Span(f"{_when(a['raised_at'])} · {state}", className="alerts-state"),
                                       button]))
    if len(listed) > LIST_MAX:
        rows.append(html.P(_("{count} more, not shown").format(count=len(listed) - LIST_MAX),
                           className="alerts-more text-body-secondary mb-0"))
    return rows


@callbacks.callback(Output(LIST, "children"), Output(MESSAGE, "children"), Output(COMMENT, "className"),
                    Input(LIST_TICK, "n_intervals"), Input({"type": ACK, "id": ALL}, "n_clicks"),
                    State(LIST_LINE, "data"), State(COMMENT, "value"))
def list_refresh(_n: int | None, _clicks: list[int | None], line: str | None, comment: str | None
                 ) -> tuple[Any, Any, str]:
    # a refresh keeps what the message says: the acknowledgement changes the alert, and the
    # refresh its push starts at once used to blank "Acknowledged by ..." as it appeared
    message: Any = no_update
    now = data.now()
    trigger = ctx.triggered_id
    clicked = isinstance(trigger, dict) and trigger.get("type") == ACK and any(
        t.get("value") for t in ctx.triggered)
    try:
        if clicked:
            assert isinstance(trigger, dict)
            try:
                ack = data.acknowledge_alert(str(trigger["id"]), comment or "", now)
                message = _("Acknowledged by {who}.").format(who=ack["by"])
            except Refused as exc:
                message = exc.message
        shown = _alerts([line] if line else None, open_only=False, now=now)
        return list_items(shown), message, comment_class(shown)
    except (RedisError, OSError) as exc:
        log.warning("alert list: %s", exc)
        return [html.P(_("Alerts cannot be read right now."), className="text-body-secondary")], message, \
            comment_class([])
