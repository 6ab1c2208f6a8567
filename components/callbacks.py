"""``Callbacks``: the callbacks one page or panel declares, registered on each app it is given.

A module declares its callbacks at import with ``@callbacks.callback(...)`` and
``callbacks.clientside_callback(...)``, exactly as it would with ``dash.callback``, but
nothing reaches Dash until ``register(app)`` hands them to that app's own
``app.callback`` / ``app.clientside_callback`` (Dash's supported API). A process can
therefore build several apps (gunicorn workers, tests) and each gets every callback, with
no process-wide registry to empty or copy. The decorated functions stay plain functions,
so tests call them directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dash import Dash

Func = Callable[..., Any]


class Callbacks:
    def __init__(self) -> None:
        self._server: list[tuple[tuple[Any, ...], dict[str, Any], Func]] = []
        self._client: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []

    def callback(self, *args: Any, **kwargs: Any) -> Callable[[Func], Func]:
        """As ``dash.callback``; returns the function unchanged."""
        def declare(func: Func) -> Func:
            self._server.append((args, kwargs, func))
            return func
        return declare

    def clientside_callback(self, clientside_function: Any, *args: Any, **kwargs: Any) -> None:
        """As ``dash.clientside_callback``."""
        self._client.append((clientside_function, args, kwargs))

    def declared(self, func: Func) -> tuple[Any, ...]:
        """The dependencies (``Output``, ``Input``, ``State``) ``func`` was declared with, in
        order: what the renderer's request for it names (tests build that request)."""
        for args, _kwargs, declared in self._server:
            if declared is func:
                return args
        raise LookupError(f"{func.__qualname__} is not a callback of this collection")

    def register(self, app: Dash) -> None:
        for args, kwargs, func in self._server:
            app.callback(*args, **kwargs)(func)
        for function, args, kwargs in self._client:
            app.clientside_callback(function, *args, **kwargs)

    def __len__(self) -> int:
        return len(self._server) + len(self._client)
