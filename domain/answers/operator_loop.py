"""The operator loop's answers (stops to classify, reasons, classifications, handovers,
audit, sessions and users) and the alerts'.
"""

# no ``from __future__ import annotations``: TypedDict reads NotRequired[...] at class creation
# (``__required_keys__``), which string annotations would hide
from typing import Annotated, Any, Literal, NotRequired

from typing_extensions import TypedDict

from domain.answers.common import Doc, Epoch, Window
from domain.answers.downtime_energy import StopEvent

# --- the operator loop ---------------------------------------------------------------------

class Stops(TypedDict):
    """Stops of a window with stable ids, the PLC's and a person's reason."""

    line: str
    window: Window
    stops: list[StopEvent]
    untagged_coverage: Annotated[float | None, Doc("share of unplanned down time with a reason")]
    untagged_stops: int
    untagged_down_s: float
    tagged_down_s: float


ReasonSource = Annotated[Literal["managed", "plant file"], Doc("managed in the data store, else the plant file's")]


class Reasons(TypedDict):
    """The reasons a person may pick on a line (retired ones left out)."""

    line: str
    by_category: Annotated[dict[str, list[tuple[int, str]]], Doc("loss category -> [[code, text], ...]")]
    codes: Annotated[list[int] | None, Doc("the line's own list; null: the plant-wide list")]
    source: ReasonSource


class ReasonEntry(TypedDict):
    """One reason of the plant-wide list."""

    code: int
    text: Annotated[str | dict[str, str], Doc("a text, or one per language {en, zh-CN}")]
    category: str
    planned: bool
    retired: Annotated[bool, Doc("kept for the stops that carry it (figures), no longer offered to pick")]


class LineReasonList(TypedDict):
    codes: Annotated[list[int] | None, Doc("the line's own list; null: the plant-wide list")]
    source: ReasonSource


class ReasonLists(TypedDict):
    """The plant-wide reason list and each line's."""

    reasons: list[ReasonEntry]
    source: ReasonSource
    lines: dict[str, LineReasonList]


class Classification(TypedDict):
    """A person's classification of a stop."""

    id: str
    plc_reason: int
    reason: int
    comment: str
    by: str
    at: Epoch
    splits: Annotated[list[tuple[float, int]], Doc("[time, reason] from which a later part of the stop has "
                                                   "that reason")]
    end: Annotated[float | None, Doc("the stop's end when classified (null: it was ongoing); a stop that late "
                                     "data moves keeps the classification covering most of it")]


class HandoverFigures(TypedDict):
    """The shift's line KPIs frozen at sign-off."""

    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    good_count: int
    reject_count: int
    down_s: float
    planned_busy_s: float
    untagged_coverage: float | None
    window: Window


class Handover(TypedDict):
    line: str
    shift: str
    shift_start: Epoch
    shift_end: Epoch
    note: str
    open_issues: str
    note_by: NotRequired[str]
    note_at: NotRequired[float]
    signed_by: str | None
    signed_at: float | None
    figures: HandoverFigures | None
    acknowledged_by: str | None
    acknowledged_at: float | None


class Handovers(TypedDict):
    line: str
    handovers: list[Handover]


class AuditEntry(TypedDict):
    seq: int
    ts: Epoch
    actor: str
    kind: str
    role: str
    addr: str | None
    action: str
    line: str | None
    target: str | None
    before: Any
    after: Any
    ok: bool
    prev: str
    hash: str


class Audit(TypedDict):
    entries: list[AuditEntry]


class Login(TypedDict):
    user: str
    role: str
    lines: list[str]
    csrf: Annotated[str, Doc("send it as X-CSRF-Token with every write")]


class Logout(TypedDict):
    user: None


class Session(TypedDict):
    """Who is logged in (``user`` null: nobody), with the CSRF token for writes."""

    user: str | None
    require_login: NotRequired[bool]
    role: NotRequired[str]
    lines: NotRequired[list[str]]
    kind: NotRequired[str]
    csrf: NotRequired[str]


class User(TypedDict):
    name: str
    role: str
    lines: list[str]
    disabled: bool


class Users(TypedDict):
    users: list[User]


# --- alerts --------------------------------------------------------------------------------

class AlertAck(TypedDict):
    by: str
    role: str
    at: Epoch
    comment: str


class Alert(TypedDict):
    id: Annotated[str, Doc("<rule>|<line>|<machine>|<condition start, epoch ms>")]
    key: str
    rule: str
    line: str
    machine: str | None
    severity: Literal["info", "warning", "urgent"]
    text: str
    since: Annotated[float, Doc("data time the condition began")]
    raised_at: Epoch
    level: Annotated[int, Doc("index of the last channel told (-1: none)")]
    notified_at: float | None
    cleared_at: float | None
    late: Annotated[bool, Doc("found only in late data, its condition had ended: sent nowhere")]
    message: Annotated[dict[str, Any] | None, Doc("the text as a message key and its values (for translation)")]
    ack: AlertAck | None
    flashing: bool


class Alerts(TypedDict):
    now: Epoch
    alerts: list[Alert]


class AlertAcknowledged(TypedDict):
    id: str
    ack: AlertAck
