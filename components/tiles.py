"""The figure tiles of the line and machine pages (name, big value, small print); the
OEE, downtime and energy panels build their rows of tiles with ``kpi_tile``."""

from __future__ import annotations

from typing import Any

from dash import html


def kpi_tile(name: str, value: Any, sub: Any, extra_class: str = "") -> html.Div:
    """One figure tile of the line and machine pages (name, big value, small print)."""
    return html.Div(className=f"kpi-tile {extra_class}".strip(), children=[
        html.Div(name, className="kpi-name"),
        html.Div(value, className="kpi-value"),
        html.Div(sub, className="kpi-sub"),
    ])
