"""The simulator's OPC UA values: the variant type of each node, model values cast to it,
status codes, source timestamps, and the username check of a simulated server."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from asyncua import ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager

from domain.model import Signal
from domain.plant import Machine


@dataclass(frozen=True, slots=True)
class MachineTotals:
    """A machine's values as its nodes currently show them (None: no such node)."""

    good: int | None
    reject: int | None
    energy_kwh: float | None
    power_kw: float | None
    state: int | str | None
    reason: int | None


@dataclass(frozen=True, slots=True)
class OpcNode:
    node_id: ua.NodeId
    variant_type: ua.VariantType


class PasswordUsers(UserManager):
    """Username/password check for the simulator's server (no anonymous access)."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = dict(users)

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


def variant_type_of(machine: Machine, signal: Signal, state_raw: int | str) -> ua.VariantType:
    if signal == Signal.STATE:
        return ua.VariantType.Int32 if isinstance(state_raw, int) else ua.VariantType.String
    if signal in (Signal.GOOD, Signal.REJECT):
        return ua.VariantType.UInt64 if (machine.counter_bits or 32) > 32 else ua.VariantType.UInt32
    if signal in (Signal.ENERGY, Signal.POWER):
        return ua.VariantType.Double
    return ua.VariantType.Int32


def cast_value(value: object, vtype: ua.VariantType) -> object:
    """A model value in the node's type (a test may have given the node another type)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return value
    if vtype == ua.VariantType.String:
        return str(value)
    if vtype in (ua.VariantType.Double, ua.VariantType.Float):
        return float(value)  # type: ignore[arg-type]
    if vtype == ua.VariantType.Boolean:
        return bool(value)
    if isinstance(value, int | float):
        return int(value)
    raise TypeError(f"{value!r} does not fit a {vtype.name} node (give variant_type to write it anyway)")


def status_code(status: str | int | ua.StatusCode) -> ua.StatusCode:
    if isinstance(status, ua.StatusCode):
        return status
    if isinstance(status, str):
        return ua.StatusCode(getattr(ua.StatusCodes, status))
    return ua.StatusCode(ua.UInt32(status))


def utc(ts: float) -> ua.DateTime:
    """An OPC UA timestamp (asyncua types timestamps as its own DateTime, a datetime)."""
    return cast(ua.DateTime, datetime.fromtimestamp(ts, UTC))
