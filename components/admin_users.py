"""Users page for admins, ``/admin/users``: the plant's users, adding one, disabling and
enabling. The operations are ``api.writes.add_user`` / ``change_user_of`` (the API's
rules and audit); anyone but an admin sees why not."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate
from flask import current_app

from components.callbacks import Callbacks
from components.overview import nav
from domain.plant import Plant
from domain.roles import Action, Role, refusal

callbacks = Callbacks()  # this module's callbacks; register(app) puts them on an app
register = callbacks.register

DONE = "au-done"
TABLE = "au-table"
MESSAGE = "au-message"
NAME = "au-name"
ROLE = "au-role"
LINES = "au-lines"
PASSWORD = "au-password"
ADD = "au-add"
TOGGLE = "au-toggle"


def layout(plant: Plant) -> html.Div:
    big = {"minHeight": "44px"}
    return html.Div(className="admin-users-page", children=[
        dcc.Store(id=DONE, data=0),
        nav(plant, "/admin/users", here="/admin/users"),
        dbc.Container(fluid=True, children=[
            html.H1("Users", className="h4"),
            html.Div(id=MESSAGE, role="status"),
            html.Div(id=TABLE),
            html.H2("Add a user", className="h6 mt-3"),
            dbc.Row(className="g-2", children=[
                dbc.Col(dbc.Input(id=NAME, placeholder="user name", maxLength=64, style=big), md=3),
                dbc.Col(dbc.Select(id=ROLE, options=[{"label": r.value, "value": r.value} for r in Role],
                                   value=Role.OPERATOR.value, style=big), md=2),
                dbc.Col(dbc.Input(id=LINES, placeholder="lines: BW1,CM1 or *", style=big), md=3),
                dbc.Col(dbc.Input(id=PASSWORD, type="password", placeholder="password (10+ characters)",
                                  autoComplete="new-password", style=big), md=3),
                dbc.Col(dbc.Button("Add", id=ADD, color="primary", style=big), md=1),
            ]),
        ]),
    ])


def _loop() -> Any:
    from api import auth, writes

    return (auth, writes) if current_app.config.get(auth.AUTH_KEY) is not None else None


def users_table(users: list[dict[str, Any]]) -> Any:
    head = html.Thead(html.Tr([html.Th(h) for h in ("User", "Role", "Lines", "")]))
    rows = [html.Tr([html.Td(u["name"]), html.Td(u["role"]), html.Td(", ".join(u["lines"])),
                     html.Td(dbc.Button("Enable" if u["disabled"] else "Disable", size="sm",
                                        color="success" if u["disabled"] else "outline-danger",
                                        id={"type": TOGGLE, "name": u["name"], "to": not u["disabled"]}))])
            for u in users]
    return dbc.Table([head, html.Tbody(rows)], size="sm", striped=True)


@callbacks.callback(Output(TABLE, "children"), Input(DONE, "data"))
def show(_done: Any) -> Any:
    loop = _loop()
    who = loop[0].current_principal() if loop else None
    if loop is None or who is None:
        return html.A("Log in as an admin", href="/login?next=/admin/users", className="btn btn-primary")
    why = refusal(who, Action.MANAGE_USERS)
    if why is not None:
        return dbc.Alert(f"Forbidden: {why}.", color="warning")
    return users_table([u.public() for u in loop[0].auth().users.all()])


@callbacks.callback(Output(MESSAGE, "children"), Output(DONE, "data"), Output(PASSWORD, "value"),
                    Input(ADD, "n_clicks"), Input({"type": TOGGLE, "name": ALL, "to": ALL}, "n_clicks"),
                    State(NAME, "value"), State(ROLE, "value"), State(LINES, "value"), State(PASSWORD, "value"),
                    State(DONE, "data"), prevent_initial_call=True)
def act(add: int | None, toggles: list[int | None], name: str | None, role: str | None, lines: str | None,
        password: str | None, done: int | None) -> tuple[Any, Any, Any]:
    trigger = ctx.triggered_id
    if trigger is None or (trigger == ADD and not add) or (trigger != ADD and not any(toggles)):
        raise PreventUpdate
    loop = _loop()
    who = loop[0].current_principal() if loop else None
    if loop is None or who is None:
        return dbc.Alert("Log in as an admin.", color="warning"), no_update, ""
    writes = loop[1]
    try:
        if trigger == ADD:
            user = writes.add_user(who, name, role, lines, password)
            text = f"User {user['name']} added."
        else:
            user = writes.change_user_of(who, str(trigger["name"]), disabled=bool(trigger["to"]))
            text = f"User {user['name']} {'disabled' if user['disabled'] else 'enabled'}."
    except writes.OpError as exc:
        return dbc.Alert(exc.message, color="danger"), no_update, ""
    return dbc.Alert(text, color="success"), (done or 0) + 1, ""
