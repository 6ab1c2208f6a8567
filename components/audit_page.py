"""The audit trail on screen, ``/audit``: supervisors see their lines' entries, admins all
of them and whether the hash chain verifies (``store.audit``). Newest first, the last
``DAYS`` days (the API and ``python app.py audit export`` give any range)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import dash_bootstrap_components as dbc
from dash import Input, Output, dcc, html
from flask import current_app

from components import data
from components.callbacks import Callbacks
from components.overview import nav
from domain.plant import Plant
from domain.roles import Action, Role, refusal

callbacks = Callbacks()  # this module's callbacks; register(app) puts them on an app
register = callbacks.register

TABLE = "audit-table"
CHAIN = "audit-chain"
TRIGGER = "audit-trigger"
DAYS = 7
MAX_ROWS = 500


def layout(plant: Plant) -> html.Div:
    return html.Div(className="audit-page", children=[
        dcc.Store(id=TRIGGER, data=0),
        nav(plant, "/audit", here="/audit"),
        dbc.Container(fluid=True, children=[
            html.H1("Audit trail", className="h4"),
            html.Div(id=CHAIN, className="mb-2"),
            html.Div(id=TABLE),
        ]),
    ])


def _short(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 160 else text[:157] + "..."


def entries_table(entries: Sequence[Mapping[str, Any]], tz: str) -> Any:
    if not entries:
        return html.P("No entries in this range.", className="text-body-secondary")
    zone = ZoneInfo(tz)
    head = html.Thead(html.Tr([html.Th(h) for h in ("#", "When", "Who", "From", "Action", "Line", "What",
                                                    "Before", "After")]))
    rows = [html.Tr(className="" if e.get("ok", True) else "table-warning", children=[
        html.Td(e["seq"]), html.Td(datetime.fromtimestamp(e["ts"], zone).strftime("%Y-%m-%d %H:%M:%S")),
        html.Td(f"{e['actor']} ({e['role']})"), html.Td(e.get("addr") or ""), html.Td(e["action"]),
        html.Td(e.get("line") or ""), html.Td(e.get("target") or ""), html.Td(_short(e.get("before"))),
        html.Td(_short(e.get("after")))]) for e in entries[:MAX_ROWS]]
    return dbc.Table([head, html.Tbody(rows)], size="sm", striped=True, responsive=True, className="audit-table")


@callbacks.callback(Output(TABLE, "children"), Output(CHAIN, "children"), Input(TRIGGER, "data"))
def show(_trigger: Any) -> tuple[Any, Any]:
    from api import auth

    if current_app.config.get(auth.AUTH_KEY) is None:
        return html.P("The audit trail needs the plant's database."), ""
    who = auth.current_principal()
    if who is None:
        return html.A("Log in", href="/login?next=/audit", className="btn btn-primary btn-lg"), ""
    why = refusal(who, Action.READ_AUDIT, None)
    if why is not None:
        return dbc.Alert(f"Forbidden: {why}.", color="warning"), ""
    plant, at, trail = data.plant(), data.now(), auth.auth().audit
    lines = None if who.role == Role.ADMIN else set(who.visible_lines([ln.id for ln in plant.lines]))
    entries = trail.query(at - DAYS * 86400, at + 1, lines)
    chain: Any = ""
    if who.role == Role.ADMIN:
        verdict = trail.verify()
        chain = (dbc.Alert(f"Hash chain intact: {verdict.entries} entries.", color="success", id="audit-ok")
                 if verdict.ok else dbc.Alert(f"Hash chain BROKEN: {verdict.problem}", color="danger", id="audit-bad"))
    return entries_table(entries, plant.timezone), chain
