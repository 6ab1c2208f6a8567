"""Reason lists page for engineers and admins, ``/admin/reasons`` (linked from the nav for
them): the plant-wide list (add or change a reason, remove one nobody uses, retire one in
use) and each line's own list. The operations are ``api.operations.set_reason_catalogue`` /
``set_line_reasons`` (the API's rules and audit); anyone else sees why not. Worded in the
request's language (the API's own refusals, ``OpError``, stay English as the API words them)."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from api import context
from components import data, i18n, theme
from components.admin_users import forbidden
from components.callbacks import Callbacks
from components.i18n import N_, _, pgettext
from components.overview import nav
from domain import answers
from domain.plant import LossCategory, Plant
from domain.roles import Action, refusal

callbacks = Callbacks()  # this module's callbacks; register(app) puts them on an app
register = callbacks.register

PATH = "/admin/reasons"
DONE = "ar-done"
BODY = "ar-body"
MESSAGE = "ar-message"
CODE = "ar-code"
TEXT = "ar-text"
TEXT_ZH = "ar-text-zh"
CATEGORY = "ar-category"
FLAGS = "ar-flags"  # checklist: planned, retired
SAVE = "ar-save"
REMOVE = "ar-remove"  # {"type": REMOVE, "code": n}
LINE_CODES = "ar-line-codes"  # {"type": LINE_CODES, "line": id}: checklist of codes
LINE_SAVE = "ar-line-save"  # {"type": LINE_SAVE, "line": id}
LINE_DEFAULT = "ar-line-default"  # {"type": LINE_DEFAULT, "line": id}: back to the plant-wide list
BIG = {"minHeight": "44px"}
SOURCE_LABELS = {"managed": N_("managed"), "plant file": N_("plant file")}  # answers.ReasonSource, worded


def layout(plant: Plant) -> html.Div:
    return html.Div(className="admin-reasons-page", children=[
        dcc.Store(id=DONE, data=0),
        nav(plant, PATH, here=PATH),
        dbc.Container(fluid=True, children=[
            html.H1(_("Reason lists"), className="h4"),
            html.P(_("Stored in the data store over the plant file's lists (the plant file is the seed). "
                     "A reason still used by a classification cannot be removed: retire it (it stays in past "
                     "figures and is no longer offered)."), className="text-body-secondary"),
            html.Div(id=MESSAGE, role="status"),
            html.H2(_("Add or change a reason"), className="h6 mt-3"),
            dbc.Row(className="g-2 align-items-center", children=[
                dbc.Col(dbc.Input(id=CODE, type="number", min=1, placeholder=_("code"), style=BIG), md=1),
                dbc.Col(dbc.Input(id=TEXT, placeholder=_("text (English)"), maxLength=200, style=BIG), md=3),
                dbc.Col(dbc.Input(id=TEXT_ZH, placeholder=_("text (Chinese, optional)"), maxLength=200, style=BIG),
                        md=2),
                dbc.Col(dbc.Select(id=CATEGORY, options=[{"label": category_label(c.value), "value": c.value}
                                                         for c in LossCategory],
                                   value=LossCategory.EQUIPMENT_FAILURE.value, style=BIG), md=2),
                dbc.Col(dbc.Checklist(id=FLAGS, options=[{"label": _("planned"), "value": "planned"},
                                                         {"label": _("retired"), "value": "retired"}],
                                      value=[], inline=True), md=2),
                dbc.Col(dbc.Button(_("Save reason"), id=SAVE, color="primary", style=BIG), md=2),
            ]),
            html.Div(id=BODY, className="mt-3"),
        ]),
    ])


def _loop() -> Any:
    from api import auth
    from api import operations as writes

    return (auth, writes) if context.config().get(auth.AUTH_KEY) is not None else None


def category_label(category: object) -> str:
    """A loss category as the other pages word it (``theme.LOSS_LABELS``); an unknown one as it is."""
    return theme.label(theme.LOSS_LABELS, category) if category in theme.LOSS_LABELS else str(category)


def source_label(source: object) -> str:
    return _(SOURCE_LABELS[str(source)]) if str(source) in SOURCE_LABELS else str(source)


def catalogue_table(catalogue: answers.ReasonLists) -> Any:
    head = html.Thead(html.Tr([html.Th(h) for h in (_("Code"), pgettext("reason list", "Text"),
                                                     pgettext("reason list", "Chinese"), _("Category"), _("Planned"),
                                                     _("Retired"), "")]))
    rows = []
    for r in catalogue["reasons"]:
        text = r["text"] if isinstance(r["text"], dict) else {"en": r["text"]}
        rows.append(html.Tr(className="text-body-secondary" if r.get("retired") else "", children=[
            html.Td(str(r["code"])), html.Td(text.get("en") or next(iter(text.values()), "")),
            html.Td(text.get("zh-CN", "")), html.Td(category_label(r["category"])),
            html.Td(_("yes") if r.get("planned") else ""), html.Td(_("retired") if r.get("retired") else ""),
            html.Td(dbc.Button(_("Remove"), id={"type": REMOVE, "code": r["code"]}, size="sm",
                               color="outline-danger", style=BIG))]))
    return html.Div([
        html.H2(_("Plant-wide list ({source})").format(source=source_label(catalogue["source"])), className="h6"),
        dbc.Table([head, html.Tbody(rows)], size="sm", striped=True, id="ar-catalogue"),
    ])


def line_lists(catalogue: answers.ReasonLists, lines: list[str]) -> Any:
    offered = [r for r in catalogue["reasons"] if not r.get("retired")]
    every = [r["code"] for r in offered]
    out: list[Any] = [html.H2(_("Each line's list"), className="h6 mt-3")]
    for line in lines:
        mine = catalogue["lines"][line]
        own = mine["codes"]
        out.append(html.Div(className="border rounded p-2 mb-2", id=f"ar-line-{line}", children=[
            html.Strong(line), " ", html.Span(
                (_("its own list ({source})") if own is not None else _("the plant-wide list ({source})")).format(
                    source=source_label(mine["source"])), className="text-body-secondary"),
            dbc.Checklist(id={"type": LINE_CODES, "line": line}, inline=True, className="my-2",
                          options=[{"label": f"{r['code']} {theme.DASH if not r['text'] else _text(r['text'])}",
                                    "value": r["code"]} for r in offered],
                          value=[c for c in own if c in every] if own is not None else every),
            dbc.Button(_("Save {line}'s list").format(line=line), id={"type": LINE_SAVE, "line": line}, size="sm",
                       color="primary", className="me-2", style=BIG),
            dbc.Button(_("Use the plant-wide list"), id={"type": LINE_DEFAULT, "line": line}, size="sm",
                       color="outline-secondary", style=BIG),
        ]))
    return html.Div(out)


def _text(text: Any) -> str:
    """A reason's text in this request's language (English, else the first given, where it has none)."""
    if not isinstance(text, dict):
        return str(text)
    return str(text.get(i18n.current()) or text.get("en") or next(iter(text.values()), ""))


def _who_may() -> tuple[Any, Any]:
    """(the caller, what to show instead of the page: None when allowed)."""
    loop = _loop()
    who = loop[0].current_principal() if loop else None
    if loop is None or who is None:
        return None, html.A(_("Log in as an engineer or admin"), href=f"/login?next={PATH}",
                            className="btn btn-primary", id="ar-login")
    why = forbidden(who, Action.MANAGE_REASONS)
    if why is not None:
        return who, dbc.Alert(why, color="warning")
    return who, None


@callbacks.callback(Output(BODY, "children"), Input(DONE, "data"))
def show(_done: Any) -> Any:
    who, instead = _who_may()
    if instead is not None:
        return instead
    from api.operations import reason_catalogue

    catalogue = reason_catalogue(data.reader())
    mine = [line for line in catalogue["lines"] if refusal(who, Action.MANAGE_REASONS, line) is None]
    return [catalogue_table(catalogue), line_lists(catalogue, mine)]


def edited(catalogue: answers.ReasonLists, code: Any, text: str | None, text_zh: str | None, category: str | None,
           flags: list[str] | None) -> list[dict[str, Any]]:
    """The plant-wide list with one reason added or replaced (pure)."""
    try:
        number = int(code)
    except (TypeError, ValueError):
        number = 0
    label: Any = (text or "").strip()
    chinese = (text_zh or "").strip()
    if chinese:
        label = {"en": label, "zh-CN": chinese} if label else {"zh-CN": chinese}
    new: dict[str, Any] = {"code": number, "text": label, "category": category,
                           "planned": "planned" in (flags or []), "retired": "retired" in (flags or [])}
    rest: list[dict[str, Any]] = [dict(r) for r in catalogue["reasons"] if r["code"] != number]
    return sorted([*rest, new], key=lambda r: r["code"])


@callbacks.callback(Output(MESSAGE, "children"), Output(DONE, "data"),
                    Input(SAVE, "n_clicks"), Input({"type": REMOVE, "code": ALL}, "n_clicks"),
                    Input({"type": LINE_SAVE, "line": ALL}, "n_clicks"),
                    Input({"type": LINE_DEFAULT, "line": ALL}, "n_clicks"),
                    State(CODE, "value"), State(TEXT, "value"), State(TEXT_ZH, "value"), State(CATEGORY, "value"),
                    State(FLAGS, "value"), State({"type": LINE_CODES, "line": ALL}, "value"),
                    State({"type": LINE_CODES, "line": ALL}, "id"), State(DONE, "data"), prevent_initial_call=True)
def act(save: int | None, removes: list[int | None], line_saves: list[int | None], defaults: list[int | None],
        code: Any, text: str | None, text_zh: str | None, category: str | None, flags: list[str] | None,
        line_values: list[list[int] | None], line_ids: list[dict[str, str]], done: int | None) -> tuple[Any, Any]:
    trigger = ctx.triggered_id
    clicked = {SAVE: save}.get(trigger) if isinstance(trigger, str) else (ctx.triggered[0]["value"] if ctx.triggered
                                                                          else None)
    if trigger is None or not clicked:
        raise PreventUpdate  # buttons drawn anew, nobody clicked
    who, instead = _who_may()
    if instead is not None:
        return instead, no_update
    from api import operations as writes

    reader = data.reader()
    try:
        if trigger == SAVE:
            writes.set_reason_catalogue(reader, who, edited(writes.reason_catalogue(reader), code, text, text_zh,
                                                             category, flags))
            said = _("Reason {code} saved.").format(code=code)
        elif trigger["type"] == REMOVE:
            gone = int(trigger["code"])
            keep = [r for r in writes.reason_catalogue(reader)["reasons"] if r["code"] != gone]
            writes.set_reason_catalogue(reader, who, keep)
            said = _("Reason {code} removed.").format(code=gone)
        else:
            line = str(trigger["line"])
            codes = None if trigger["type"] == LINE_DEFAULT else next(
                (sorted(v or []) for v, i in zip(line_values, line_ids, strict=True) if i["line"] == line), [])
            writes.set_line_reasons(reader, who, line, codes)
            said = (_("Line {line} now uses the plant-wide list.") if codes is None else
                    _("Line {line} now uses its own list {codes}.")).format(line=line, codes=codes)
    except writes.OpError as exc:  # the API's message, in English as the API words it (README "Languages")
        return dbc.Alert(exc.message, color="danger", id="ar-error"), no_update
    return dbc.Alert(said, color="success", id="ar-ok"), (done or 0) + 1

