"""Shift handover of a line, ``/line/<line>/handover``: the outgoing supervisor writes what
happened and what is still open, signs (the shift's figures are frozen then), the
incoming one acknowledges; the history below, downloadable as CSV. The writes go
through ``api.writes`` (the API's rules, authorization and audit)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate
from flask import current_app

from components import data, export, theme
from components.callbacks import Callbacks
from components.i18n import N_, _
from components.overview import nav
from domain import answers, calendar
from domain.plant import Plant

callbacks = Callbacks()  # this module's callbacks; register(app) puts them on an app
register = callbacks.register

LINE = "ho-line"
SHIFT = "ho-shift"
NOTE = "ho-note"
ISSUES = "ho-issues"
SAVE = "ho-save"
SIGN = "ho-sign"
ACK = "ho-ack"
MESSAGE = "ho-message"
HISTORY = "ho-history"
CSV = "ho-csv"
DOWNLOAD = "ho-download"
DONE = "ho-done"
HISTORY_DAYS = 14


def layout(plant: Plant, line: str, query: dict[str, str]) -> html.Div:
    cfg = plant.line(line)
    if cfg is None:
        return html.Div([nav(plant), dbc.Container(html.P(_("No line {line} in this plant.").format(line=repr(line))))])
    at = data.now()
    tz = ZoneInfo(plant.timezone)
    current = calendar.current_or_last_shift(plant.shifts, tz, at)
    previous = calendar.previous_shift(plant.shifts, tz, at)
    options = [{"label": _("{shift} (current or last)").format(shift=s.label) if s is current else s.label,
                "value": str(round(s.start))}
               for s in (current, previous)]
    big = {"minHeight": "44px"}
    return html.Div(className="handover-page", children=[
        dcc.Store(id=LINE, data=line), dcc.Store(id=DONE, data=0), dcc.Download(id=DOWNLOAD),
        nav(plant, f"/line/{line}", here=f"/line/{line}/handover"),
        dbc.Container(fluid=True, children=[
            html.H1(f"{cfg.id} \u00b7 " + _("Shift handover"), className="h4"),
            dbc.Select(id=SHIFT, options=options, value=options[0]["value"], size="lg", className="mb-2"),
            dbc.Textarea(id=NOTE, placeholder=_("What happened"), maxLength=4000, rows=5, className="mb-2"),
            dbc.Textarea(id=ISSUES, placeholder=_("Open issues for the next shift"), maxLength=4000, rows=3,
                         className="mb-2"),
            html.Div(className="d-flex flex-wrap gap-2", children=[
                dbc.Button(_("Save note"), id=SAVE, color="primary", size="lg", style=big),
                dbc.Button(_("Sign off (outgoing)"), id=SIGN, color="success", size="lg", style=big),
                dbc.Button(_("Acknowledge (incoming)"), id=ACK, color="secondary", size="lg", style=big),
            ]),
            html.Div(id=MESSAGE, className="my-2", role="status"),
            html.Div(className="d-flex align-items-baseline gap-3 mt-3", children=[
                html.H2(_("History"), className="h6 mb-0"),
                dbc.Button("CSV", id=CSV, color="link", size="sm")]),
            html.Div(id=HISTORY),
        ]),
    ])


def _records(line: str, at: float) -> list[answers.Handover]:
    return data.handovers(line, at - HISTORY_DAYS * 86400, at + 1)


HANDOVER_HEADS = (N_("Shift"), N_("Note"), N_("Open issues"), N_("OEE"), N_("Down"), N_("Signed"), N_("Acknowledged"))


def history_table(records: Sequence[Mapping[str, Any]], tz: str) -> Any:
    if not records:
        return html.P(_("No handovers yet."), className="text-body-secondary")
    zone = ZoneInfo(tz)

    def when(ts: float | None) -> str:
        return datetime.fromtimestamp(ts, zone).strftime("%m-%d %H:%M") if ts else ""

    head = html.Thead(html.Tr([html.Th(_(h)) for h in HANDOVER_HEADS]))
    rows = [html.Tr([html.Td(r["shift"]), html.Td(r["note"]), html.Td(r["open_issues"]),
                     html.Td(theme.pct((r.get("figures") or {}).get("oee"))),
                     html.Td(theme.duration((r.get("figures") or {}).get("down_s"))),
                     html.Td(f"{r['signed_by'] or ''} {when(r['signed_at'])}"),
                     html.Td(f"{r['acknowledged_by'] or ''} {when(r['acknowledged_at'])}")])
            for r in reversed(records)]
    return dbc.Table([head, html.Tbody(rows)], size="sm", striped=True, className="handover-table")


def handovers_csv(records: Sequence[Mapping[str, Any]]) -> str:
    rows = [{"shift": r["shift"], "note": r["note"], "open_issues": r["open_issues"],
             "oee": (r.get("figures") or {}).get("oee"), "down_s": (r.get("figures") or {}).get("down_s"),
             "signed_by": r["signed_by"], "signed_at": r["signed_at"], "acknowledged_by": r["acknowledged_by"],
             "acknowledged_at": r["acknowledged_at"]} for r in records]
    columns = ["shift", "note", "open_issues", "oee", "down_s", "signed_by", "signed_at", "acknowledged_by",
               "acknowledged_at"]
    return export.csv_text(pd.DataFrame(rows, columns=columns))


def _loop() -> Any:
    from api import auth, writes

    return (auth, writes) if current_app.config.get(auth.AUTH_KEY) is not None else None


@callbacks.callback(Output(HISTORY, "children"), Output(NOTE, "value"), Output(ISSUES, "value"),
                    Input(SHIFT, "value"), Input(DONE, "data"), State(LINE, "data"))
def show(shift_start: str | None, _done: Any, line: str) -> tuple[Any, Any, Any]:
    if _loop() is None:
        return html.P(_("Handovers need the plant's database.")), "", ""
    records = _records(line, data.now())
    mine = next((r for r in records if str(round(r["shift_start"])) == shift_start), None)
    return (history_table(records, data.plant().timezone), mine["note"] if mine else "",
            mine["open_issues"] if mine else "")


@callbacks.callback(Output(MESSAGE, "children"), Output(DONE, "data"), Input(SAVE, "n_clicks"), Input(SIGN, "n_clicks"),
                    Input(ACK, "n_clicks"), State(SHIFT, "value"), State(NOTE, "value"), State(ISSUES, "value"),
                    State(LINE, "data"), State(DONE, "data"), prevent_initial_call=True)
def act(_save: Any, _sign: Any, _ack: Any, shift_start: str, note: str | None, issues: str | None, line: str,
        done: int | None) -> tuple[Any, Any]:
    loop = _loop()
    who = loop[0].current_principal() if loop else None
    if loop is None or who is None:
        return dbc.Alert(html.Span([_("Log in as a supervisor:") + " ", html.A(_("log in"), href="/login")]),
                         color="warning"), done
    writes, at, reader = loop[1], data.now(), data.reader()
    try:
        if ctx.triggered_id == SAVE:
            writes.handover_note(reader, who, line, shift_start, note or "", issues or "", at)
            text = _("Note saved.")
        elif ctx.triggered_id == SIGN:
            writes.handover_note(reader, who, line, shift_start, note or "", issues or "", at)
            writes.handover_sign(reader, who, line, shift_start, at)
            text = _("Signed: the shift's figures are frozen.")
        else:
            writes.handover_acknowledge(reader, who, line, shift_start, at)
            text = _("Acknowledged.")
    except writes.OpError as exc:
        return dbc.Alert(exc.message, color="danger"), done
    return dbc.Alert(text, color="success"), (done or 0) + 1


@callbacks.callback(Output(DOWNLOAD, "data"), Input(CSV, "n_clicks"), State(LINE, "data"), prevent_initial_call=True)
def download(_clicks: Any, line: str) -> Any:
    if _loop() is None:
        raise PreventUpdate
    return dcc.send_string(handovers_csv(_records(line, data.now())), f"{line}-handovers.csv")
