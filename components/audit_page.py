"""The audit trail on screen, ``/audit``: supervisors see their lines' entries, admins all
of them and whether the hash chain verifies (``store.audit``). Newest first, the last
``DAYS`` days (the API and ``python app.py audit export`` give any range). Headings, roles
and actions are worded in the request's language; what the entries hold (names, targets,
before and after) is shown as recorded. English shows the actions' own names (``user_add``),
as the API and the export write them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import dash_bootstrap_components as dbc
from dash import Input, Output, dcc, html

from api import context
from components import data
from components.admin_users import forbidden, role_label
from components.callbacks import Callbacks
from components.i18n import _, pgettext
from components.overview import nav
from domain.plant import Plant
from domain.roles import Action, Role

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
            html.H1(_("Audit trail"), className="h4"),
            html.Div(id=CHAIN, className="mb-2"),
            html.Div(id=TABLE),
        ]),
    ])


def _short(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 160 else text[:157] + "..."


def action_labels() -> dict[str, str]:
    """The actions ``api`` records, in this request's language (English: their own names)."""
    return {
        "login": pgettext("audit action", "login"),
        "login_failed": pgettext("audit action", "login_failed"),
        "login_throttled": pgettext("audit action", "login_throttled"),
        "logout": pgettext("audit action", "logout"),
        "denied": pgettext("audit action", "denied"),
        "classify": pgettext("audit action", "classify"),
        "split": pgettext("audit action", "split"),
        "handover_note": pgettext("audit action", "handover_note"),
        "handover_sign": pgettext("audit action", "handover_sign"),
        "handover_acknowledge": pgettext("audit action", "handover_acknowledge"),
        "user_add": pgettext("audit action", "user_add"),
        "user_change": pgettext("audit action", "user_change"),
        "user_disable": pgettext("audit action", "user_disable"),  # these three: the command line's
        "user_enable": pgettext("audit action", "user_enable"),
        "user_passwd": pgettext("audit action", "user_passwd"),
        "token_create": pgettext("audit action", "token_create"),
        "token_revoke": pgettext("audit action", "token_revoke"),
        "reasons": pgettext("audit action", "reasons"),
        "alert_ack": pgettext("audit action", "alert_ack"),
    }


def action_cell(action: str, labels: Mapping[str, str]) -> Any:
    """An action worded; where the words are not its name, the name is the cell's tooltip."""
    label = labels.get(action, action)
    attributes: dict[str, Any] = {"data-action": action, **({"title": action} if label != action else {})}
    return html.Td(label, **attributes)


def entries_table(entries: Sequence[Mapping[str, Any]], tz: str) -> Any:
    if not entries:
        return html.P(_("No entries in this range."), className="text-body-secondary")
    zone, labels = ZoneInfo(tz), action_labels()
    head = html.Thead(html.Tr([html.Th(h) for h in ("#", _("When"), _("Who"), pgettext("audit", "From"), _("Action"),
                                                    _("Line"), _("What"), _("Before"), _("After"))]))
    rows = [html.Tr(className="" if e.get("ok", True) else "table-warning", children=[
        html.Td(e["seq"]), html.Td(datetime.fromtimestamp(e["ts"], zone).strftime("%Y-%m-%d %H:%M:%S")),
        html.Td(f"{e['actor']} ({role_label(e['role'])})"), html.Td(e.get("addr") or ""),
        action_cell(str(e["action"]), labels),
        html.Td(e.get("line") or ""), html.Td(e.get("target") or ""), html.Td(_short(e.get("before"))),
        html.Td(_short(e.get("after")))]) for e in entries[:MAX_ROWS]]
    return dbc.Table([head, html.Tbody(rows)], size="sm", striped=True, responsive=True, className="audit-table")


@callbacks.callback(Output(TABLE, "children"), Output(CHAIN, "children"), Input(TRIGGER, "data"))
def show(_trigger: Any) -> tuple[Any, Any]:
    from api import auth

    if context.config().get(auth.AUTH_KEY) is None:
        return html.P(_("The audit trail needs the plant's database.")), ""
    who = auth.current_principal()
    if who is None:
        return html.A(_("Log in"), href="/login?next=/audit", className="btn btn-primary btn-lg"), ""
    why = forbidden(who, Action.READ_AUDIT, None)
    if why is not None:
        return dbc.Alert(why, color="warning"), ""
    plant, at, trail = data.plant(), data.now(), auth.auth().audit
    lines = None if who.role == Role.ADMIN else set(who.visible_lines([ln.id for ln in plant.lines]))
    entries = trail.query(at - DAYS * 86400, at + 1, lines)
    chain: Any = ""
    if who.role == Role.ADMIN:
        verdict = trail.verify()
        chain = (dbc.Alert(_("Hash chain intact: {n} entries.").format(n=verdict.entries), color="success",
                           id="audit-ok") if verdict.ok else
                 dbc.Alert(_("Hash chain BROKEN: {problem}").format(problem=verdict.problem), color="danger",
                           id="audit-bad"))
    return entries_table(entries, plant.timezone), chain
