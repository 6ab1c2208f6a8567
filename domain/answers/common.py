"""What every answer shares: ``Doc`` (a field's description in the OpenAPI document),
epoch times, the error answer, the window an answer is for and the reason coverage.
"""

# no ``from __future__ import annotations``: TypedDict reads NotRequired[...] at class creation
# (``__required_keys__``), which string annotations would hide
from dataclasses import dataclass
from typing import Annotated, NotRequired

from typing_extensions import TypedDict


@dataclass(frozen=True, slots=True)
class Doc:
    """A field's description in the OpenAPI document (``Annotated[float, Doc("...")]``)."""

    text: str


Epoch = Annotated[float, Doc("epoch seconds, UTC")]


class Error(TypedDict):
    """Every error answer (4xx, 5xx): the message names the bad parameter or what is missing."""

    error: str


class Window(TypedDict):
    """The window the numbers are for: start floored to the minute; end capped at now (exact when the
    window reaches into the last open minute, else floored to the minute)."""

    start: Epoch
    end: Epoch
    now: Epoch
    live: Annotated[bool, Doc("the window reaches now")]
    start_iso: Annotated[str, Doc("ISO 8601 in the plant's time zone")]
    end_iso: str
    label: NotRequired[Annotated[str, Doc("the named range's label, e.g. '2026-11-25 A' for a shift "
                                          "(HTTP API only)")]]


class Coverage(TypedDict):
    """How much of the unplanned down time has a reason (a person's or the PLC's)."""

    untagged_coverage: Annotated[float | None, Doc("share of unplanned down time with a reason")]
    tagged_down_s: float
    untagged_down_s: float
    untagged_stops: int
