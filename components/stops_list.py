"""The stops list of the downtime panel and the machine page: ongoing stops first, then
newest; each stop's duration, reason (a button to classify it, for those who may) and
loss category; the same stops as CSV. Pure builders: no callbacks, no data access.

A live window's ongoing stops show their durations in cells of their own (``ONGOING``),
which the panel's tick updates without sending the table again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html

from components import export, line_view, theme, untagged
from components.i18n import N_, _, reason_text
from domain.downtime import NO_REASON_GROUP, SMALL_STOP_GROUP

ONGOING = "dt-ongoing"  # {"type": ONGOING, "row": i}: the duration cell of an ongoing stop (row i)
MAX_ROWS = 200


def local_time(ts: float, zone: ZoneInfo) -> str:
    # datetime, not pandas: a quarter of the cost, and a 12 h timeline has ~300 segments each refresh
    return datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M:%S")


def event_group(event: Mapping[str, Any]) -> str:
    """The Pareto group of a stop, as ``domain.downtime`` groups them."""
    if event.get("reason"):
        return str(event["reason"])
    return SMALL_STOP_GROUP if event.get("micro") else NO_REASON_GROUP


def ordered_stops(events: Sequence[Mapping[str, Any]], group: str | None = None) -> Sequence[Mapping[str, Any]]:
    """Ongoing stops first, then newest first; optionally only one Pareto group."""
    if group is not None:
        events = [e for e in events if event_group(e) == group]
    return sorted(events, key=lambda e: (e.get("end") is not None, -(e.get("start") or 0)))


def stops_table(events: Sequence[Mapping[str, Any]], now: float, tz: str, machine_href: str | None = None,
                live_cells: bool = False, search: str = "", classify: str = "", here: str = "") -> Any:
    """Ongoing stops first (``ordered_stops``); ``live_cells``: their durations in ``ONGOING`` cells.
    ``classify`` (``untagged.access``): each stop's reason is a button that opens the
    reason picker, or a "log in to classify" link (back to ``here``) above the list."""
    if not events:
        return html.P(_("No stops in this range."), className="text-body-secondary")
    login = [untagged.login_link(here)] if classify == untagged.MAY_LOG_IN else []
    zone = ZoneInfo(tz)
    head = html.Thead(html.Tr([html.Th(h) for h in (_("Machine"), _("Start"), _("End"), _("Duration"), _("Reason"),
                                                     _("Category"))]))
    body = []
    for i, e in enumerate(events[:MAX_ROWS]):
        ongoing = e.get("end") is None
        machine = str(e.get("machine", ""))
        cell = dcc.Link(machine, href=f"{machine_href}/{machine}{search}") if machine_href else machine
        andon = stop_andon(e)
        body.append(html.Tr(className=(f"stop-ongoing stop-{andon}" if ongoing else
                                       ("stop-planned" if e.get("planned") else "")),
                            children=[
            html.Td(cell),
            html.Td(local_time(e["start"], zone)[5:16] if theme.is_number(e.get("start")) else theme.DASH),
            html.Td(html.Span(_("ongoing"), className=f"badge andon-badge andon-{andon}") if ongoing
                    else local_time(e["end"], zone)[5:16]),
            html.Td(stop_duration(e, now), id={"type": ONGOING, "row": i}) if ongoing and live_cells else
            html.Td(stop_duration(e, now)),
            html.Td(reason_cell(e, classify)),
            html.Td(category_text(e)),
        ]))
    more = [html.P(_("{n} more in the CSV download.").format(n=len(events) - MAX_ROWS),
                   className="text-body-secondary")] \
        if len(events) > MAX_ROWS else []
    return html.Div([*login, dbc.Table([head, html.Tbody(body)], size="sm", hover=True, className="stops-table"),
                     *more])


def reason_cell(event: Mapping[str, Any], classify: str) -> Any:
    label = line_view.group_name(event_group(event), event["reason"], event["reason_text"])
    return untagged.stop_button(event, label) if classify == untagged.CAN_CLASSIFY and untagged.classifiable(event) \
        else label


def category_text(event: Mapping[str, Any]) -> str:
    category = str(event.get("category"))
    if event.get("micro"):
        text = _("Small stop")
    else:
        text = theme.label(theme.LOSS_LABELS, category) if category in theme.LOSS_LABELS else \
            event.get("category") or theme.DASH
    return str(text) + (" " + _("(planned)") if event.get("planned") else "")


def stop_andon(event: Mapping[str, Any]) -> str:
    """The andon colour of a stop, as the wall shows its machine: setup is a changeover (blue)."""
    if event.get("planned"):
        return theme.PLANNED
    return theme.CHANGEOVER if event.get("category") == "setup_adjustment" else theme.DOWN


def stop_duration(event: Mapping[str, Any], now: float) -> str:
    """Its duration; an ongoing stop's runs up to ``now``."""
    if event.get("end") is None and theme.is_number(event.get("start")):
        return theme.duration(now - float(event["start"]))
    return theme.duration(event.get("duration_s"))


def ongoing_durations(events: list[dict[str, Any]], cell_ids: list[dict[str, Any]], now: float) -> list[str]:
    """The texts of the ``ONGOING`` cells ``stops_table(events, ...)`` made, in the order of ``cell_ids``."""
    return [stop_duration(events[i["row"]], now) if i["row"] < min(len(events), MAX_ROWS) else theme.DASH
            for i in cell_ids]


STOP_COLUMNS = {"machine": N_("Machine"), "start_local": N_("Start (local)"), "end_local": N_("End (local)"),
                "start_utc_epoch_s": N_("Start (UTC epoch s)"), "end_utc_epoch_s": N_("End (UTC epoch s)"),
                "duration_s": N_("Duration (s)"), "lost_s": N_("Lost (s)"), "reason": N_("Reason code"),
                "reason_text": N_("Reason"), "category": N_("Category"), "planned": N_("Planned"),
                "micro": N_("Small stop")}


def stops_csv(events: Sequence[Mapping[str, Any]], tz: str) -> str:
    """The stops as CSV; headers and reason texts in the page's language (codes and
    categories stay as the API gives them)."""
    zone = ZoneInfo(tz)
    rows = [{
        "machine": e.get("machine"),
        "start_local": local_time(e["start"], zone) if theme.is_number(e.get("start")) else "",
        "end_local": local_time(e["end"], zone) if theme.is_number(e.get("end")) else "",
        "start_utc_epoch_s": e.get("start"), "end_utc_epoch_s": e.get("end"),
        "duration_s": e.get("duration_s"), "lost_s": e.get("lost_s"), "reason": e.get("reason"),
        "reason_text": reason_text(e["reason"], e.get("reason_text")) if e.get("reason") else e.get("reason_text"),
        "category": e.get("category"), "planned": e.get("planned"),
        "micro": e.get("micro"),
    } for e in events]
    frame = pd.DataFrame(rows, columns=list(STOP_COLUMNS))
    return export.csv_text(frame.rename(columns=export.headers(STOP_COLUMNS)))
