"""Who may do what, on which line (README "Users, roles and the audit trail").

Pure: a principal (a logged-in user or an API token) is a name, a role and the lines it
is assigned; ``allowed`` answers one question and ``refusal`` says in words why not, so
the API's 403 and the screens' messages are the same sentence. Least privilege (IEC
62443-3-3 SR 2.1): a role gets only the actions its work needs; the admin manages
users and tokens but does not classify stops or sign handovers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

ALL_LINES = "*"


class Role(StrEnum):
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    ENGINEER = "engineer"
    ADMIN = "admin"


class Action(StrEnum):
    CLASSIFY = "classify"  # set the reason of a stop nobody (or oneself) classified, comment, split
    EDIT_OTHERS = "edit_others"  # change a classification someone else made
    HANDOVER_WRITE = "handover_write"  # write the shift's handover note
    HANDOVER_SIGN = "handover_sign"  # sign off (outgoing) or acknowledge (incoming)
    READ_AUDIT = "read_audit"
    EXPORT = "export"
    MANAGE_REASONS = "manage_reasons"
    MANAGE_USERS = "manage_users"  # users and API tokens
    ACKNOWLEDGE = "acknowledge"  # acknowledge an alert of a line (api.alerts)


# Actions whose scope is a line: the principal must be assigned to it (or to all lines).
# A reason list of a line: the line; the plant-wide one: ``ALL_LINES`` (assigned to every line).
LINE_SCOPED = frozenset({Action.CLASSIFY, Action.EDIT_OTHERS, Action.HANDOVER_WRITE, Action.HANDOVER_SIGN,
                         Action.READ_AUDIT, Action.ACKNOWLEDGE, Action.MANAGE_REASONS})

PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.OPERATOR: frozenset({Action.CLASSIFY, Action.ACKNOWLEDGE}),
    Role.SUPERVISOR: frozenset({Action.CLASSIFY, Action.EDIT_OTHERS, Action.HANDOVER_WRITE, Action.HANDOVER_SIGN,
                                Action.READ_AUDIT, Action.EXPORT, Action.ACKNOWLEDGE}),
    Role.ENGINEER: frozenset({Action.EXPORT, Action.MANAGE_REASONS, Action.ACKNOWLEDGE}),
    Role.ADMIN: frozenset({Action.MANAGE_USERS, Action.READ_AUDIT, Action.EXPORT, Action.MANAGE_REASONS}),
}
# The admin's audit trail and reason lists cover every line (supervisors see their own lines' trail).
UNSCOPED: dict[Role, frozenset[Action]] = {Role.ADMIN: frozenset({Action.READ_AUDIT, Action.MANAGE_REASONS})}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user (``kind`` "user") or an API token (``kind`` "token", ``name``
    is the token's label)."""

    name: str
    role: Role
    lines: tuple[str, ...] = ()
    kind: str = "user"

    def covers(self, line: str) -> bool:
        return ALL_LINES in self.lines or line in self.lines

    def visible_lines(self, all_lines: list[str]) -> list[str]:
        return [line for line in all_lines if self.covers(line)]


def allowed(who: Principal, action: Action, line: str | None = None) -> bool:
    if action not in PERMISSIONS.get(who.role, frozenset()):
        return False
    if action in UNSCOPED.get(who.role, frozenset()):
        return True
    if action in LINE_SCOPED and line is not None:
        return who.covers(line)
    return True


WHAT = {
    Action.CLASSIFY: "classify stops",
    Action.EDIT_OTHERS: "change a classification someone else made",
    Action.HANDOVER_WRITE: "write handover notes",
    Action.HANDOVER_SIGN: "sign or acknowledge handovers",
    Action.READ_AUDIT: "read the audit trail",
    Action.EXPORT: "export",
    Action.MANAGE_REASONS: "manage reason lists",
    Action.MANAGE_USERS: "manage users and tokens",
    Action.ACKNOWLEDGE: "acknowledge alerts",
}


def refusal(who: Principal, action: Action, line: str | None = None) -> str | None:
    """None when allowed, else the reason in one sentence (the 403's message)."""
    if action not in PERMISSIONS.get(who.role, frozenset()):
        return f"the role {who.role} may not {WHAT[action]}"
    if not allowed(who, action, line):
        if line == ALL_LINES:
            return f"{who.name} is not assigned to all lines (*)"
        return f"{who.name} is not assigned to line {line}"
    return None


def parse_lines(text: str) -> tuple[str, ...]:
    """'BW1,CM1' or '*' -> the assigned lines (spaces ignored, no empties)."""
    return tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
