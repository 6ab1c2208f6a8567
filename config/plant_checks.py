"""The rules of a plant file that span keys: references, uniqueness, time zone, node ids,
calendar overlaps and the endpoints' security. Checked when the file is loaded rather than
failing later in a collector at run time.
"""

from __future__ import annotations

import os
from itertools import combinations
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from asyncua import ua

from domain.calendar import minutes_of_day
from domain.plant import BUILTIN_STATE_MAPS, Plant

MAX_TIMEZONE_CHARS = 64  # the longest IANA name is 32 characters
DAY_MIN = 1440
WEEK_MIN = 7 * DAY_MIN
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def cross_check(plant: Plant, base_dir: Path | None = None) -> list[tuple[str, str]]:
    """Checks that span keys: references, uniqueness, time zone, node ids, calendar
    overlaps and the endpoints' security. ``base_dir``: where relative certificate paths
    are looked up (the collector opens them from its working directory)."""
    problems: list[tuple[str, str]] = []
    problems += _timezone_problems(plant.timezone)
    problems += _line_problems(plant)
    problems += _shift_problems(plant)
    problems += _tariff_problems(plant)
    problems += _security_problems(plant, base_dir or Path.cwd())
    return problems


def _timezone_problems(name: str) -> list[tuple[str, str]]:
    """By name first: ZoneInfo turns an odd name into a file path (a 300-character name
    raised ``OSError: File name too long``)."""
    shown = name if len(name) <= 40 else name[:37] + "..."
    if (
        len(name) > MAX_TIMEZONE_CHARS
        or not name
        or not all(c.isascii() and (c.isalnum() or c in "_+-/") for c in name)
    ):
        return [("timezone", f"unknown time zone {shown!r} (an IANA name such as 'Asia/Shanghai' or 'UTC')")]
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return [("timezone", f"unknown time zone {shown!r}")]
    return []


def node_id_problem(text: str) -> str | None:
    """Why ``text`` is not an OPC UA node id (``ns=2;s=Line1.Press.State``), or None.
    Parsed here so that one typo does not keep a whole endpoint from subscribing."""
    try:
        node_id = ua.NodeId.from_string(text)
    except Exception as exc:  # asyncua raises UaStringParsingError, ValueError, ...  # noqa: BLE001
        cause = exc.args[1] if len(exc.args) > 1 else exc
        return f"not an OPC UA node id like 'ns=2;s=Line1.Press.State' ({cause})"
    if not 0 <= node_id.NamespaceIndex <= 0xFFFF:
        return f"namespace index {node_id.NamespaceIndex} is out of range (0-65535)"
    ident = node_id.Identifier
    if isinstance(ident, int) and not 0 <= ident <= 0xFFFFFFFF:
        return f"numeric identifier {ident} is out of range (0-4294967295)"
    if ident in ("", b"", None):
        return "the node id has an empty identifier"
    return None


def _line_problems(plant: Plant) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    seen_lines: set[str] = set()
    seen_nodes: dict[tuple[str, str], str] = {}
    for li, line in enumerate(plant.lines):
        where = f"lines[{li}]"
        if line.id in seen_lines:
            problems.append((f"{where}.id", f"duplicate line id {line.id!r}"))
        seen_lines.add(line.id)
        ids = [m.id for m in line.machines]
        if line.output_machine not in ids:
            problems.append(
                (f"{where}.output_machine", f"{line.output_machine!r} is not a machine of this line ({', '.join(ids)})")
            )
        seen_machines: set[str] = set()
        for mi, machine in enumerate(line.machines):
            mwhere = f"{where}.machines[{mi}]"
            if machine.id in seen_machines:
                problems.append((f"{mwhere}.id", f"duplicate machine id {machine.id!r} in line {line.id!r}"))
            seen_machines.add(machine.id)
            if machine.endpoint not in plant.endpoints:
                problems.append(
                    (
                        f"{mwhere}.endpoint",
                        f"no endpoint {machine.endpoint!r} under 'endpoints' ({', '.join(plant.endpoints)})",
                    )
                )
            if machine.state_map not in plant.state_maps and machine.state_map not in BUILTIN_STATE_MAPS:
                known = sorted([*BUILTIN_STATE_MAPS, *plant.state_maps])
                problems.append(
                    (f"{mwhere}.state_map", f"unknown state map {machine.state_map!r} (known: {', '.join(known)})")
                )
            for signal, node in machine.nodes.items():
                bad = node_id_problem(node)
                if bad:
                    problems.append((f"{mwhere}.nodes.{signal}", bad))
                    continue
                key = (machine.endpoint, node)
                if key in seen_nodes:
                    problems.append((f"{mwhere}.nodes.{signal}", f"node {node!r} is already used by {seen_nodes[key]}"))
                seen_nodes[key] = f"{line.id}/{machine.id}.{signal}"
    return problems


def _span(start_min: int, end_min: int) -> int:
    """Length in minutes of a local-time span; end <= start crosses midnight, equal: 24 h."""
    return (end_min - start_min) % DAY_MIN or DAY_MIN


def _overlaps(a: tuple[int, int], b: tuple[int, int], period: int) -> bool:
    """Do half-open spans ``(start, length)`` on a circle of ``period`` minutes overlap?"""
    (a0, alen), (b0, blen) = a, b
    return (b0 - a0) % period < alen or (a0 - b0) % period < blen


def _shift_problems(plant: Plant) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    names: dict[str, int] = {}
    for si, shift in enumerate(plant.shifts):
        if shift.name in names:
            problems.append(
                (f"shifts[{si}].name", f"duplicate shift name {shift.name!r} (also shifts[{names[shift.name]}])")
            )
        names.setdefault(shift.name, si)
        if not shift.weekdays:
            problems.append(
                (f"shifts[{si}].weekdays", "empty: a shift needs at least one weekday (0 Monday to 6 Sunday)")
            )
        elif len(set(shift.weekdays)) != len(shift.weekdays):
            problems.append((f"shifts[{si}].weekdays", "a weekday is listed twice"))
        start = minutes_of_day(shift.start)
        length = _span(start, minutes_of_day(shift.end))
        breaks: list[tuple[int, int]] = []
        for bi, brk in enumerate(shift.breaks):
            b_start = (minutes_of_day(brk.start) - start) % DAY_MIN
            b_len = (minutes_of_day(brk.end) - minutes_of_day(brk.start)) % DAY_MIN
            label = f"break {brk.start:%H:%M}-{brk.end:%H:%M}"
            if b_len == 0 or b_start + b_len > length:
                problems.append((f"shifts[{si}].breaks[{bi}]", f"{label} is not inside shift {shift.name!r}"))
            elif b_len >= length:
                problems.append(
                    (
                        f"shifts[{si}].breaks[{bi}]",
                        f"{label} is as long as shift {shift.name!r}: no time would be planned",
                    )
                )
            elif any(b_start < o_start + o_len and o_start < b_start + b_len for o_start, o_len in breaks):
                problems.append(
                    (f"shifts[{si}].breaks[{bi}]", f"{label} overlaps another break of shift {shift.name!r}")
                )
            breaks.append((b_start, b_len))
    # A shift belongs to the weekday it starts on (domain.calendar); compare in minutes of the week.
    spans = [
        (si, day, (day * DAY_MIN + minutes_of_day(s.start), _span(minutes_of_day(s.start), minutes_of_day(s.end))))
        for si, s in enumerate(plant.shifts)
        for day in sorted(set(s.weekdays))
    ]
    reported: set[tuple[int, int]] = set()
    for (ai, aday, a), (bi, _bday, b) in combinations(spans, 2):
        if ai != bi and (ai, bi) not in reported and _overlaps(a, b, WEEK_MIN):
            reported.add((ai, bi))
            first, second = plant.shifts[ai], plant.shifts[bi]
            problems.append(
                (
                    f"shifts[{bi}]",
                    f"shift {second.name!r} overlaps shift {first.name!r} (shifts[{ai}]) on {WEEKDAY_NAMES[aday]}",
                )
            )
    return problems


def _tariff_problems(plant: Plant) -> list[tuple[str, str]]:
    """Overlapping periods would make the price depend on their order in the file."""
    problems: list[tuple[str, str]] = []
    spans = [
        (minutes_of_day(p.start), _span(minutes_of_day(p.start), minutes_of_day(p.end))) for p in plant.tariff.periods
    ]
    for (ai, a), (bi, b) in combinations(enumerate(spans), 2):
        if _overlaps(a, b, DAY_MIN):
            pa, pb = plant.tariff.periods[ai], plant.tariff.periods[bi]
            problems.append(
                (
                    f"tariff.periods[{bi}]",
                    f"{pb.start:%H:%M}-{pb.end:%H:%M} overlaps tariff.periods[{ai}] ({pa.start:%H:%M}-{pa.end:%H:%M})",
                )
            )
    return problems


def _file_problem(base_dir: Path, name: str) -> str | None:
    path = Path(name) if os.path.isabs(name) else base_dir / name
    try:
        with path.open("rb") as file:
            file.read(1)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return f"cannot read {name!r}: {reason}"
    return None


def _security_problems(plant: Plant, base_dir: Path) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for name, endpoint in plant.endpoints.items():
        sec = endpoint.security
        where = f"endpoints.{name}.security"
        if sec.policy != "None" and (sec.mode == "None" or not sec.certificate or not sec.private_key):
            problems.append(
                (where, "a security policy needs mode Sign or SignAndEncrypt, a certificate and a private_key")
            )
        if sec.policy != "None" and not sec.trust_dir and not sec.server_certificate:
            problems.append(
                (
                    f"{where}.trust_dir",
                    "a secured connection needs the server's certificate checked: set trust_dir (a trust list, "
                    "see 'python app.py trust') or server_certificate (pin one); without either, any server at "
                    "the address would be believed",
                )
            )
        if sec.policy == "None" and sec.mode != "None":
            problems.append(
                (
                    f"{where}.mode",
                    f"mode {sec.mode} needs a security policy (policy None would connect "
                    "without any security): set policy, e.g. Basic256Sha256",
                )
            )
        for key in ("certificate", "private_key", "server_certificate"):
            file_name = getattr(sec, key)
            if file_name:
                bad = _file_problem(base_dir, file_name)
                if bad:
                    problems.append((f"{where}.{key}", bad))
        if sec.username and not sec.password_env:
            problems.append(
                (f"{where}.password_env", "a username needs the name of the environment variable with its password")
            )
        if sec.username and sec.mode != "SignAndEncrypt" and not sec.allow_unencrypted_password:
            problems.append(
                (
                    f"{where}.username",
                    "a password is sent only over mode SignAndEncrypt (otherwise "
                    "it crosses the network readable); allow_unencrypted_password: true "
                    "overrides this for test servers",
                )
            )
    return problems
