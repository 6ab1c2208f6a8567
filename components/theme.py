"""Andon colours, number formats and Plotly templates shared by every page.

Only colours and formatting: no HTML (the tiles are ``components.tiles``), no Dash
callbacks, no data access. Colours live in the CSS too
(``assets/10-dashboard.css``); keep the two in step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeGuard
from zoneinfo import ZoneInfo

import plotly.graph_objects as go

from components.i18n import N_, _, current, date_time, decimal
from domain import andon
from domain.model import State

# Bootstrap's colour mode of a page (data-* attributes are keyword-only in Dash: ``**theme.DARK_PAGE``)
DARK_PAGE: dict[str, Any] = {"data-bs-theme": "dark"}
LIGHT_PAGE: dict[str, Any] = {"data-bs-theme": "light"}

# Andon statuses a line or machine can show: the rules are domain.andon's (served by /api/lines).
RUNNING = andon.RUNNING
POOR = andon.POOR  # running, but performance low
DOWN = andon.DOWN
CHANGEOVER = andon.CHANGEOVER
PLANNED = andon.PLANNED
NO_DATA = andon.NO_DATA

# Text on these: white on running, down, changeover and no data; near-black on poor and
# planned; every pair at least 4.5:1 (WCAG AA), so a state reads from across the hall.
ANDON_COLOURS = {
    RUNNING: "#157f43",
    POOR: "#f2c12e",
    DOWN: "#c53030",
    CHANGEOVER: "#2f6fd6",
    PLANNED: "#8a9099",
    NO_DATA: "#3b4048",
}
# Labels are English msgids (N_): translate with ``_`` where shown (``label``).
ANDON_LABELS = {
    RUNNING: N_("Running"),
    POOR: N_("Running slow"),
    DOWN: N_("Down"),
    CHANGEOVER: N_("Changeover"),
    PLANNED: N_("Planned stop"),
    NO_DATA: N_("No data"),
}

STATE_LABELS = {
    State.RUNNING: N_("Running"),
    State.IDLE: N_("Idle"),
    State.STARVED: N_("Starved"),
    State.BLOCKED: N_("Blocked"),
    State.FAULT: N_("Fault"),
    State.CHANGEOVER: N_("Changeover"),
    State.PLANNED_STOP: N_("Planned stop"),
    State.UNKNOWN: N_("No data"),
}
# Timeline colours per canonical state: andon colour, with idle/starved/blocked in
# shades of red/orange so a timeline still tells them apart.
STATE_COLOURS = {
    State.RUNNING: ANDON_COLOURS[RUNNING],
    State.IDLE: "#e8833a",
    State.STARVED: "#c9a227",
    State.BLOCKED: "#b07cc6",
    State.FAULT: ANDON_COLOURS[DOWN],
    State.CHANGEOVER: ANDON_COLOURS[CHANGEOVER],
    State.PLANNED_STOP: ANDON_COLOURS[PLANNED],
    State.UNKNOWN: "#5b616b",
}

LOSS_LABELS = {
    "equipment_failure": N_("Equipment failure"),
    "setup_adjustment": N_("Setup & adjustment"),
    "small_stop": N_("Small stops"),
    "reduced_speed": N_("Reduced speed"),
    "planned": N_("Planned"),
    "starved_blocked": N_("Starved / blocked"),
    "unexplained": N_("Unexplained"),
    "production_rejects": N_("Production rejects"),
    "startup_rejects": N_("Startup rejects"),
    "quality": N_("Quality loss"),
    "unknown": N_("No data"),
}

DASH = "\u2014"  # shown where a value is unknown: never a made-up zero
MINUS = "\u2212"
THIN_SPACE = "\u2009"

# Inter first, so digits and Latin keep the product's face; Chinese falls through to the
# system's CJK font (Debian's fonts-noto-cjk, Windows' YaHei, macOS' PingFang), offline.
FONT_STACK = ('"Inter Variable", "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC", '
              'system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Liberation Sans", sans-serif')


def is_number(value: object) -> TypeGuard[int | float]:
    """A finite number (not a bool): what the formatters show as a figure."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def pct(value: object, digits: int = 1) -> str:
    """0..1 ratio as a percentage; values over 100 % are shown as they are, not clamped."""
    if not is_number(value):
        return DASH
    return f"{float(value) * 100:.{digits}f}{THIN_SPACE}%"


def pct_number(value: object) -> str:
    """Whole percent without the sign, for the huge wall digits."""
    if not is_number(value):
        return DASH
    return f"{float(value) * 100:.0f}"


def label(labels: Mapping[Any, str], key: object) -> str:
    """A label of ``ANDON_LABELS``/``STATE_LABELS``/``LOSS_LABELS`` in this request's language."""
    return _(labels[key])


def count(value: object) -> str:
    if not is_number(value):
        return DASH
    return decimal(round(float(value)), 0)


def signed_count(value: object) -> str:
    if not is_number(value):
        return DASH
    n = round(float(value))
    return f"+{count(n)}" if n > 0 else (f"{MINUS}{count(-n)}" if n < 0 else "\u00b10")


def number(value: object, digits: int = 1, unit: str = "") -> str:
    if not is_number(value):
        return DASH
    text = decimal(float(value), digits)
    return f"{text}{THIN_SPACE}{unit}" if unit else text


def significant(value: object, unit: str = "") -> str:
    """Three significant digits or so: 0.842, 3.84, 14.6, 293 (a wall column stays narrow)."""
    if not is_number(value):
        return DASH
    v = abs(float(value))
    return number(value, 2 if v < 10 else 1 if v < 100 else 0, unit)


def kw(value: object) -> str:
    """The one unit rule for power, on every screen: below 1 000 kW in kW (whole kW from
    100), from 1 000 kW in MW with two decimals: 85.2 kW, 812 kW, 6.90 MW, 10.54 MW."""
    if not is_number(value):
        return DASH
    v = float(value)
    if round(abs(v)) >= 1000:
        return number(v / 1000, 2, "MW")
    return number(v, 0 if abs(v) >= 100 else 1, "kW")


andon_of = andon.andon_of  # a machine's andon status: a stop booked as setup is blue


def duration(seconds: object) -> str:
    """Human duration: 45 s, 12 min, 3 h 05 min, 2 d 4 h (45 秒, 12 分钟, 3 小时 05 分, 2 天 4 小时):
    short forms of our own, a wall column has no room for Babel's long ones."""
    if not is_number(seconds):
        return DASH
    s = max(0, int(float(seconds)))
    if s < 60:
        return _("{s} s").format(s=s)
    if s < 3600:
        return _("{m} min").format(m=s // 60)
    if s < 86400:
        return _("{h} h {m:02d} min").format(h=s // 3600, m=s % 3600 // 60)
    return _("{d} d {h} h").format(d=s // 86400, h=s % 86400 // 3600)


def clock(ts: object, tz: str) -> str:
    """HH:MM in plant local time."""
    if not is_number(ts):
        return DASH
    return datetime.fromtimestamp(float(ts), ZoneInfo(tz)).strftime("%H:%M")


def local_datetime(ts: object, tz: str, seconds: bool = False) -> str:
    if not is_number(ts):
        return DASH
    fmt = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return datetime.fromtimestamp(float(ts), ZoneInfo(tz)).strftime(fmt)


def since_text(last_ts: object, now: float, tz: str) -> str:
    """'no data since 14:32' (with the date when it is not today in plant time)."""
    if not is_number(last_ts):
        return _("no data")
    zone = ZoneInfo(tz)
    then = datetime.fromtimestamp(float(last_ts), zone)
    if then.date() != datetime.fromtimestamp(now, zone).date():
        return _("no data since {time}").format(time=date_time(then, _("d MMM HH:mm")))
    return _("no data since {time}").format(time=f"{then:%H:%M}")


def bucket_span(starts: list[float], tz: str, step_s: float) -> list[str]:
    """The extent of bars drawn per bucket (``xperiod``), first start to last start +
    ``step_s``, in plant time: ``span_trace`` over it gives the axis its range. With a single
    bucket (a shift's first hour) Plotly's autorange ignores the bar's width and spans a
    millisecond (ticks at 07:29:59.9996)."""
    return [local_datetime(t, tz) for t in (starts[0], starts[-1] + step_s)] if starts else []


def bar_width_ms(step_s: float) -> float:
    """A bucket's bar width on a date axis: 80 % of the bucket, as Plotly gives several bars
    (a single bar, without it, is a millisecond wide)."""
    return 0.8 * step_s * 1000


def span_trace(span: list[str]) -> go.Scatter:
    """An invisible trace over ``bucket_span``: the figure's second trace (``span_patch``)."""
    return go.Scatter(x=span, y=[0] * len(span), mode="markers", marker={"opacity": 0}, hoverinfo="skip",
                      showlegend=False)


def span_patch(patch: Any, span: list[str]) -> Any:
    """``patch`` (a ``dash.Patch`` of such a figure) moving its ``span_trace`` to ``span``."""
    patch["data"][1]["x"] = span
    patch["data"][1]["y"] = [0] * len(span)
    return patch


def date_axis(**extra: object) -> dict[str, object]:
    """A Plotly date x-axis whose tick labels speak the page's language (Plotly's own month
    names are English: Chinese pages get 11月24日 and 14:00 instead)."""
    axis: dict[str, object] = {"type": "date", **extra}
    if current() != "en":
        axis["tickformatstops"] = [
            {"dtickrange": [None, 86_400_000], "value": "%H:%M<br>%-m月%-d日"},
            {"dtickrange": [86_400_000, None], "value": "%-m月%-d日"},
        ]
    return axis


def figure_template(dark: bool) -> go.layout.Template:
    """One Plotly look for the app: dark on walls, light on tablets and desks."""
    fg = "#e6e8eb" if dark else "#212529"
    grid = "#343a40" if dark else "#e9ecef"
    return go.layout.Template(
        layout=go.Layout(
            font={"family": FONT_STACK, "color": fg, "size": 13},
            paper_bgcolor="rgba(0,0,0,0)",
            plot_bgcolor="rgba(0,0,0,0)",
            xaxis={"gridcolor": grid, "zerolinecolor": grid, "linecolor": grid},
            yaxis={"gridcolor": grid, "zerolinecolor": grid, "linecolor": grid},
            colorway=["#2f6fd6", "#1f9d55", "#e8833a", "#b07cc6", "#c9a227", "#17a2b8", "#d64545", "#6c757d"],
            margin={"l": 56, "r": 16, "t": 36, "b": 40},
            legend={"orientation": "h", "y": -0.18},
            hoverlabel={"font": {"family": FONT_STACK}},
        )
    )


LIGHT = figure_template(dark=False)
DARK = figure_template(dark=True)


def empty_figure(dark: bool = False) -> go.Figure:
    """A blank chart of the page's look (instead of Plotly's default axes -1..6)."""
    fig = go.Figure()
    fig.update_layout(template=DARK if dark else LIGHT, height=300, xaxis={"visible": False},
                      yaxis={"visible": False})
    return fig
