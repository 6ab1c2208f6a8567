"""The push hook a live page places beside its 2 s ``dcc.Interval`` (``assets/push.js``).

``hook(tick, lines)`` is a small note, hidden while pushed: ``push.js`` finds the page's
hooks, opens one ``EventSource`` on ``/api/live/events`` for all their lines (and the
alerts, for a hook with ``alerts=True``; ``api.live``) and, on every change of a hook's
lines, advances that hook's Interval ``tick`` (``dash_clientside.set_props``), so
the page's existing refresh callbacks and panel gates run at once, as on a timer tick.
While the stream is up the Interval is disabled; while it is down (server restart,
network drop, push turned off, Redis unreadable) the Interval runs every 2 s again and
the note says so.

``only_changed`` keeps a pushed answer to what changed: a page's refresh callback sends
back, with its fields, the line versions they show (``shown_versions``), and the next
answer leaves out the fields of lines still at that version.

The line and machine pages' panels do the same per output: ``digests`` fingerprints what
each output shows (a component, a figure, or the lists a ``Patch`` carries), the panel's
``ranges.Live.drawn`` record keeps them in the browser (``SHOWN``), and a live tick sends
only the outputs whose fingerprint ``changed`` (the server keeps nothing between ticks).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from dash import html, no_update

from components.i18n import _

CLASS = "live-push"
NOTE_CLASS = "live-push-note"
SHOWN = "shown"  # in a panel's drawn record: {output name: digest of what the browser holds}


def hook(tick: str, lines: list[str], refresh_ms: int = 2000, *, alerts: bool = False, note: bool = True
         ) -> html.Div:
    """The note and the data ``push.js`` needs: the Interval's id, the lines, the fallback;
    ``alerts``: the Interval ticks when an alert changes too; ``note``: False for a hook
    beside another on the page that already says when push is paused."""
    attrs: dict[str, Any] = {"data-tick": tick, "data-lines": ",".join(lines), "data-refresh-ms": str(refresh_ms),
                             "data-state": "connecting", "data-alerts": "1" if alerts else "0",
                             "data-note": "1" if note else "0"}
    return html.Div(
        _("live updates paused \u2013 refreshing every 2 s") if note else "",
        className=f"{CLASS} {NOTE_CLASS} d-none" if note else f"{CLASS} d-none",
        role="status",
        **attrs,
    )


def shown_versions(views: list[dict[str, Any]], token: str | None) -> dict[str, Any] | None:
    """What a page holds after this answer: the feed's token and the version of each line's
    view (``components.data.line_views`` marks memoised views with theirs); None without a
    feed (the next answer sends everything)."""
    if token is None or any(view.get("version") is None for view in views):
        return None
    return {"token": token, "lines": {view["line"]: view["version"] for view in views}}


def only_changed(values: list[Any], value_lines: list[str], shown: dict[str, Any] | None,
                 now_shown: dict[str, Any] | None) -> list[Any]:
    """``values`` (one per output, of the line in ``value_lines``) with ``no_update`` for
    the lines whose version the page already holds: per change a screen receives only the
    changed lines' fields. Everything is sent when the page holds nothing, or versions of
    another process (``token``: each server process numbers its own)."""
    if not shown or not now_shown or shown.get("token") != now_shown.get("token"):
        return values
    held, now = shown.get("lines") or {}, now_shown.get("lines") or {}
    return [no_update if line in held and held.get(line) == now.get(line) else value
            for value, line in zip(values, value_lines, strict=True)]


def digest(value: Any) -> str:
    """A short fingerprint of an output's content: equal contents, equal digests (key order
    does not count; components and figures by their JSON, as Dash sends them)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _plain(value: Any) -> Any:
    for method in ("to_plotly_json", "tolist"):  # Dash components and plotly figures; numpy arrays
        if callable(getattr(value, method, None)):
            return getattr(value, method)()
    return str(value)


def digests(contents: Mapping[str, Any]) -> dict[str, str]:
    """``{output name: digest}`` of an answer's contents (what goes into ``SHOWN``)."""
    return {name: digest(value) for name, value in contents.items()}


def changed(held: Mapping[str, Any] | None, shown: Mapping[str, str]) -> set[str]:
    """The outputs of ``shown`` (this answer's digests) that differ from what the browser
    holds (``held``: the panel's drawn record; an output it has no digest of has changed)."""
    before = (held or {}).get(SHOWN) or {}
    return {name for name, value in shown.items() if before.get(name) != value}


def unless_held(values: Mapping[str, Any], fresh: set[str]) -> list[Any]:
    """``values`` in their order, ``no_update`` for each output not in ``fresh`` (``changed``)."""
    return [value if name in fresh else no_update for name, value in values.items()]
