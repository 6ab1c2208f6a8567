"""Users page for admins, ``/admin/users``: the plant's users, adding one, disabling and
enabling. The operations are ``api.operations.add_user`` / ``change_user_of`` (the API's
rules and audit); anyone but an admin sees why not. Roles keep their names in the API
and the data; on screen they are worded per language (``role_label``, also used by the
reason lists and the audit trail, as is ``forbidden``)."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from api import context
from components.callbacks import Callbacks
from components.i18n import N_, _
from components.overview import nav
from domain.plant import Plant
from domain.roles import PERMISSIONS, Action, Principal, Role, refusal

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

# A role as the screens word it (the API and the data keep ``Role``'s values); English
# keeps the role's own name, so the refusals read as the API's 403 does.
ROLE_LABELS = {Role.OPERATOR: N_("operator"), Role.SUPERVISOR: N_("supervisor"), Role.ENGINEER: N_("engineer"),
               Role.ADMIN: N_("admin")}
# ``domain.roles.refusal``'s "the role X may not ..." for the actions these pages check, per language.
FORBIDDEN = {Action.MANAGE_USERS: N_("Forbidden: the role {role} may not manage users and tokens."),
             Action.MANAGE_REASONS: N_("Forbidden: the role {role} may not manage reason lists."),
             Action.READ_AUDIT: N_("Forbidden: the role {role} may not read the audit trail.")}


def role_label(role: object) -> str:
    """A role in this request's language (anything else, e.g. the audit trail's "-", as it is)."""
    try:
        return _(ROLE_LABELS[Role(str(role))])
    except ValueError:
        return str(role)


def forbidden(who: Principal, action: Action, line: str | None = None) -> str | None:
    """Why ``who`` may not, in this request's language (None: allowed). A role without the
    permission is worded here; other refusals (lines) keep ``refusal``'s English sentence."""
    why = refusal(who, action, line)
    if why is None:
        return None
    if action in FORBIDDEN and action not in PERMISSIONS.get(who.role, frozenset()):
        return _(FORBIDDEN[action]).format(role=role_label(who.role))
    return _("Forbidden: {why}.").format(why=why)


def layout(plant: Plant) -> html.Div:
    big = {"minHeight": "44px"}
    return html.Div(className="admin-users-page", children=[
        dcc.Store(id=DONE, data=0),
        nav(plant, "/admin/users", here="/admin/users"),
        dbc.Container(fluid=True, children=[
            html.H1(_("Users"), className="h4"),
            html.Div(id=MESSAGE, role="status"),
            html.Div(id=TABLE),
            html.H2(_("Add a user"), className="h6 mt-3"),
            dbc.Row(className="g-2", children=[
                dbc.Col(dbc.Input(id=NAME, placeholder=_("user name"), maxLength=64, style=big), md=3),
                dbc.Col(dbc.Select(id=ROLE, options=[{"label": role_label(r), "value": r.value} for r in Role],
                                   value=Role.OPERATOR.value, style=big), md=2),
                dbc.Col(dbc.Input(id=LINES, style=big,
                                  placeholder=_("lines: {example} or *").format(example=_lines_example(plant))), md=3),
                dbc.Col(dbc.Input(id=PASSWORD, type="password", placeholder=_("password (10+ characters)"),
                                  autoComplete="new-password", style=big), md=3),
                dbc.Col(dbc.Button(_("Add"), id=ADD, color="primary", style=big), md=1),
            ]),
        ]),
    ])


def _lines_example(plant: Plant) -> str:
    return ",".join(line.id for line in plant.lines[:2]) or "BW1,CM1"


def _loop() -> Any:
    from api import auth
    from api import operations as writes

    return (auth, writes) if context.config().get(auth.AUTH_KEY) is not None else None


def users_table(users: list[dict[str, Any]]) -> Any:
    head = html.Thead(html.Tr([html.Th(h) for h in (_("User"), _("Role"), _("Lines"), "")]))
    rows = [html.Tr([html.Td(u["name"]), html.Td(role_label(u["role"])), html.Td(", ".join(u["lines"])),
                     html.Td(dbc.Button(_("Enable") if u["disabled"] else _("Disable"), size="sm",
                                        color="success" if u["disabled"] else "outline-danger",
                                        id={"type": TOGGLE, "name": u["name"], "to": not u["disabled"]}))])
            for u in users]
    return dbc.Table([head, html.Tbody(rows)], size="sm", striped=True)


@callbacks.callback(Output(TABLE, "children"), Input(DONE, "data"))
def show(_done: Any) -> Any:
    loop = _loop()
    who = loop[0].current_principal() if loop else None
    if loop is None or who is None:
        return html.A(_("Log in as an admin"), href="/login?next=/admin/users", className="btn btn-primary")
    why = forbidden(who, Action.MANAGE_USERS)
    if why is not None:
        return dbc.Alert(why, color="warning")
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
        return dbc.Alert(_("Log in as an admin."), color="warning"), no_update, ""
    writes = loop[1]
    try:
        if trigger == ADD:
            user = writes.add_user(who, name, role, lines, password)
            text = _("User {name} added.").format(name=user["name"])
        else:
            user = writes.change_user_of(who, str(trigger["name"]), disabled=bool(trigger["to"]))
            text = (_("User {name} disabled.") if user["disabled"] else _("User {name} enabled.")).format(
                name=user["name"])
    except writes.OpError as exc:  # the API's message, in English as the API words it (README "Languages")
        return dbc.Alert(exc.message, color="danger"), no_update, ""
    return dbc.Alert(text, color="success"), (done or 0) + 1, ""
