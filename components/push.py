"""The push hook a live page places beside its 2 s ``dcc.Interval`` (``assets/push.js``).

``hook(tick, lines)`` is a small note, hidden while pushed: ``push.js`` finds it, opens
one ``EventSource`` on ``/api/live/events`` for ``lines`` (``api.live``) and, on every
change, advances the page's own Interval ``tick`` (``dash_clientside.set_props``), so
the page's existing refresh callbacks and panel gates run at once, as on a timer tick.
While the stream is up the Interval is disabled; while it is down (server restart,
network drop, push turned off, Redis unreadable) the Interval runs every 2 s again and
the note says so.
"""

from __future__ import annotations

from dash import html

from components.i18n import _

CLASS = "live-push"
NOTE_CLASS = "live-push-note"


def hook(tick: str, lines: list[str], refresh_ms: int = 2000) -> html.Div:
    """The note and the data ``push.js`` needs: the Interval's id, the lines, the fallback."""
    return html.Div(
        _("live updates paused \u2013 refreshing every 2 s"),
        className=f"{CLASS} {NOTE_CLASS} d-none",
        role="status",
        **{"data-tick": tick, "data-lines": ",".join(lines), "data-refresh-ms": str(refresh_ms),
           "data-state": "connecting"},
    )
