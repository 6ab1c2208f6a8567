"""``by_id``: a plant's lines, a line's machines, by id, without scanning the list.

The readers look machines up per stream entry and per machine and read (``Line.machine``,
``Plant.line``); the index is built once per list. A plant's lists are never changed in
place: a changed plant (the managed reason lists copy it every second) is a new model,
with new lists, so it gets its own index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_INDEXES: dict[int, tuple[Sequence[Any], dict[str, Any]]] = {}
_MAX_INDEXES = 512


def by_id(items: Sequence[Any]) -> dict[str, Any]:
    """``items`` (objects with an ``id``) by id, the first of an id winning."""
    got = _INDEXES.get(id(items))
    if got is None or got[0] is not items:
        if len(_INDEXES) >= _MAX_INDEXES:
            _INDEXES.clear()
        index: dict[str, Any] = {}
        for item in items:
            index.setdefault(item.id, item)
        got = _INDEXES[id(items)] = (items, index)
    return got[1]
