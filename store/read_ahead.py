"""``ReadAhead``: the round trips of several lines' live views made as one.

A live view reads its line's bookkeeping stamp, new stream entries, live state and
classifications in one round trip (``WindowReads._snap_and``), then computes. A reader pool
child (``store.reader_pool``) that finds a round of lines queued reads all their round trips
in one pipeline first (``prefetch``: the very commands each view will send, planned with the
state it will send them with), then computes them one after the other; each view takes its
replies (``run``) when its commands are the ones read ahead, and reads for itself otherwise
(the same line twice in a round, a state that moved between). Waiting for Redis and for a
core once per round, not once per line, on a host whose cores the views already keep busy.
The replies are as of the round's start, as a view's own read would be a moment later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# a command as a pipeline method's name, its arguments and keyword arguments
Command = tuple[str, tuple[Any, ...], tuple[tuple[str, Any], ...]]


def execute(redis_client: Any, commands: Sequence[Command]) -> list[Any]:
    """``commands`` in one round trip (a pipeline, not a transaction); their replies."""
    with redis_client.pipeline(transaction=False) as pipe:
        for name, args, kwargs in commands:
            getattr(pipe, name)(*args, **dict(kwargs))
        return list(pipe.execute())


class ReadAhead:
    """Replies read ahead per line, taken once by the view that sends the same commands."""

    def __init__(self) -> None:
        self._ahead: dict[str, tuple[list[Command], list[Any]]] = {}
        self.taken = 0  # views that found their replies read ahead (tests, benchmarks)

    def run(self, redis_client: Any, line_id: str, commands: list[Command]) -> list[Any]:
        """The replies to ``commands`` of ``line_id``'s view: read ahead, else read now."""
        got = self._ahead.pop(line_id, None)
        if got is not None and got[0] == commands:
            self.taken += 1
            return got[1]
        return execute(redis_client, commands)

    def prefetch(self, redis_client: Any, planned: Sequence[tuple[str, list[Command]]]) -> None:
        """Reads the planned commands of each line (at most one plan a line: the first)."""
        lines: dict[str, list[Command]] = {}
        for line_id, commands in planned:
            lines.setdefault(line_id, commands)
        replies = execute(redis_client, [command for commands in lines.values() for command in commands])
        at = 0
        for line_id, commands in lines.items():
            self._ahead[line_id] = (commands, replies[at:at + len(commands)])
            at += len(commands)

    def clear(self) -> None:
        self._ahead.clear()
