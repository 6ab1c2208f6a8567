"""Live answers shared by the screens that ask the same thing at the same moment.

A change of a line is pushed to every screen showing it at once (``assets/push.js``), so
ten walls, five overviews and every line page of that line ask the server within a few
milliseconds, most of them with the same request. A callback marked ``@answer(*ticks)``
is then computed once: the first request computes, the requests arriving while it runs
wait for its answer (single flight), and nothing is kept afterwards, so an answer is never
older than the computation it came from.

Two requests share an answer only when everything the answer depends on is the same: the
callback, its inputs and states (except the values of ``ticks``: an Interval's
``n_intervals`` or a panel's pulse only count ticks, and differ from screen to screen),
its outputs (pattern-matching outputs name the lines on the page), what triggered it, the
language, the caller (as the server checked it: user or API token, role and lines) and the
version of every line in the process's live feed (a request after a newer change never
joins an older computation). Without a live feed (no push), nothing is shared.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Hashable, Iterable
from typing import Any, TypeVar

from dash import ctx

from api import auth
from components import data
from components.i18n import current as current_language

F = TypeVar("F", bound=Callable[..., Any])
TICKS_ATTR = "_shared_ticks"


def answer(*ticks: str) -> Callable[[F], F]:
    """Marks a live callback as shared (module docstring); ``ticks``: the ids of its inputs
    whose values only count ticks. The function itself is returned unchanged (tests call
    it directly); ``components.delivery.LightDash.callback`` wraps it with ``sharing``."""
    def mark(func: F) -> F:
        setattr(func, TICKS_ATTR, frozenset(ticks))
        return func
    return mark


def ticks_of(func: Callable[..., Any]) -> frozenset[str] | None:
    """The ticks ``func`` was marked with, None when it is not shared."""
    return getattr(func, TICKS_ATTR, None)


def _without_ticks(items: Any, ticks: frozenset[str]) -> Any:
    """``ctx.inputs_list`` or ``states_list`` with the values of ``ticks`` left out."""
    if isinstance(items, list):
        return [_without_ticks(item, ticks) for item in items]
    if isinstance(items, dict) and isinstance(items.get("id"), str) and items["id"] in ticks:
        return {**items, "value": None}
    return items


def _caller() -> Hashable:
    """Who asks, as the server has checked it (``api.auth.current_principal``: a revoked
    session or a wrong token is anonymous): kind, name, role and lines; None: anonymous
    (or no users at all)."""
    if not auth.installed():
        return None
    who = auth.current_principal()
    return None if who is None else (who.kind, who.name, str(who.role), tuple(who.lines))


def answer_key(func: Callable[..., Any], ticks: frozenset[str], inputs: Any, states: Any, outputs: Any,
               triggered: Iterable[str]) -> Hashable | None:
    """What a request's answer depends on (module docstring), given the request's
    ``ctx.inputs_list``, ``states_list``, ``outputs_list`` and ``triggered_prop_ids``;
    None: nothing is shared now (no live feed)."""
    versions = data.live_versions()
    if not versions:
        return None
    request = json.dumps([_without_ticks(inputs, ticks), _without_ticks(states, ticks), outputs, sorted(triggered)],
                         sort_keys=True, default=repr)
    return (func.__module__, func.__qualname__, request, current_language(), _caller(),
            data.live_token(), tuple(sorted(versions.items())))


def sharing(func: F, ticks: frozenset[str]) -> F:
    """``func`` answering every concurrent identical request once (module docstring)."""
    @functools.wraps(func)
    def shared(*args: Any, **kwargs: Any) -> Any:
        key = answer_key(func, ticks, ctx.inputs_list, ctx.states_list, ctx.outputs_list, ctx.triggered_prop_ids)
        if key is None:
            return func(*args, **kwargs)
        return data.flights().run(key, lambda: func(*args, **kwargs))
    return shared  # type: ignore[return-value]
