"""Runs a dashboard callback the way the browser does: a POST to the app's
``/_dash-update-component`` with the body Dash's renderer sends (``output``, ``outputs``,
``inputs``, ``state``, ``changedPropIds``), answered by the real dispatch (callback context,
request guard, JSON encoding). No private Dash module is touched: the request is the
renderer's wire protocol, the callback's dependencies are what its module declared
(``components.callbacks.Callbacks.declared``), and its output key is what the app serves at
``/_dash-dependencies``.

The outputs come back as JSON, one per declared output: a figure as its dict, a component as
``{"type", "namespace", "props"}``, a ``Patch`` as its operations (``is_patch``), an output
left unchanged as ``dash.no_update``, a pattern-matching output as a list (one value per
matched id); an answer with nothing to update raises ``PreventUpdate``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from dash import Input, Output, State, no_update
from dash.exceptions import PreventUpdate

from tests.support import http_client, response_text

UPDATE = "/_dash-update-component"
PATCH_MARK = "__dash_patch_update"


def _flat(declared: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for item in declared:
        out.extend(_flat(item) if isinstance(item, list | tuple) else [item])
    return out


def _id_key(component_id: Any) -> str:
    """A concrete id as the renderer and the response write it."""
    if isinstance(component_id, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{json.dumps(component_id[k])}" for k in sorted(component_id)) + "}"
    return str(component_id)


def _is_pattern(dep: Any) -> bool:
    return isinstance(dep.component_id, dict)


def _output_key(client: Any, outputs: list[Output], inputs: list[Input]) -> str:
    """The callback's key among the app's dependencies (its outputs' ``id.property`` list,
    ``@hash`` of duplicate outputs included)."""
    deps = json.loads(response_text(client.get("/_dash-dependencies")))
    wanted = [str(o) for o in outputs]
    wanted_inputs = [str(i) for i in inputs]
    found = []
    for dep in deps:
        if dep.get("clientside_function"):
            continue
        key = dep["output"]
        parts = key[2:-2].split("...") if key.startswith("..") else [key]
        names = [f"{p.rsplit('.', 1)[0]}.{p.rsplit('.', 1)[1].split('@', 1)[0]}" for p in parts]
        got_inputs = [f"{_id_key(i['id']) if isinstance(i['id'], dict) else i['id']}.{i['property']}"
                      for i in dep["inputs"]]
        if names == wanted and got_inputs == wanted_inputs:
            found.append(key)
    assert len(found) == 1, f"callback with outputs {wanted} and inputs {wanted_inputs}: found {found}"
    return found[0]


def _props(deps: list[Any], values: Sequence[Any], matching: dict[str, list[Any]]) -> list[Any]:
    out: list[Any] = []
    for dep, value in zip(deps, values, strict=True):
        if _is_pattern(dep):
            ids = matching.get(dep.component_id["type"], [])
            vals = value if isinstance(value, list) else [value] * len(ids)
            out.append([{"id": i, "property": dep.component_property, "value": v}
                        for i, v in zip(ids, vals, strict=True)])
        else:
            out.append({"id": dep.component_id, "property": dep.component_property, "value": value})
    return out


def _targets(deps: list[Output], matching: dict[str, list[Any]], key: str) -> Any:
    parts = key[2:-2].split("...") if key.startswith("..") else [key]
    targets: list[Any] = []
    for dep, part in zip(deps, parts, strict=True):
        prop = part.rsplit(".", 1)[1]  # with the @hash of a duplicate output
        if _is_pattern(dep):
            targets.append([{"id": i, "property": prop} for i in matching.get(dep.component_id["type"], [])])
        else:
            targets.append({"id": dep.component_id, "property": prop})
    return targets if key.startswith("..") else targets[0]


def call(app: Any, func: Callable[..., Any], *args: Any, triggered: Any = None,
         matching: dict[str, list[Any]] | None = None) -> Any:
    """``func``'s answer to a request with ``args`` (its inputs then its states, as declared),
    sent as the renderer would: ``triggered`` is the id of the input that changed (none: the
    page's first call); ``matching``: for pattern-matching ids, the concrete ids on the page,
    by the pattern's ``type``. A tuple for a callback of several outputs."""
    matching = matching or {}
    declared = _flat(importlib.import_module(func.__module__).callbacks.declared(func))
    outputs = [d for d in declared if isinstance(d, Output)]
    inputs = [d for d in declared if isinstance(d, Input)]
    states = [d for d in declared if isinstance(d, State)]
    assert len(args) == len(inputs) + len(states), f"{func.__name__} takes {len(inputs)} inputs, {len(states)} states"
    client = http_client(app)
    key = _output_key(client, outputs, inputs)
    changed = [f"{_id_key(i.component_id)}.{i.component_property}" for i in inputs if i.component_id == triggered]
    assert triggered is None or changed, f"{triggered!r} is not an input of {func.__name__}"
    body = {"output": key, "outputs": _targets(outputs, matching, key),
            "inputs": _props(inputs, args[:len(inputs)], matching),
            "state": _props(states, args[len(inputs):], matching), "changedPropIds": changed}
    resp = client.post(UPDATE, json=body)
    if resp.status_code == 204:
        raise PreventUpdate
    text = response_text(resp)
    assert resp.status_code == 200, f"{resp.status_code}: {text[:500]}"
    answer = json.loads(text)["response"]
    values = []
    for dep in outputs:
        prop = dep.component_property
        if _is_pattern(dep):
            values.append([answer.get(_id_key(i), {}).get(prop, no_update)
                           for i in matching.get(dep.component_id["type"], [])])
        else:
            values.append(answer.get(_id_key(dep.component_id), {}).get(prop, no_update))
    return tuple(values) if key.startswith("..") else values[0]


def is_patch(value: Any) -> bool:
    """A ``dash.Patch`` as the response carries it."""
    return isinstance(value, dict) and value.get(PATCH_MARK) == PATCH_MARK


def is_figure(value: Any) -> bool:
    """A whole figure (not a patch) as the response carries it."""
    return isinstance(value, dict) and "data" in value and "layout" in value and not is_patch(value)
