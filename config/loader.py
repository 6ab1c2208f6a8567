"""Load and validate the plant file. A wrong file stops with one message naming the
file, the key path and the problem; nothing starts half-configured.

The file is read defensively, because it is the one input an operator types by hand and
tools generate: size, encoding and nesting are checked before YAML parses it (PyYAML's
pure-Python parser recurses per level and slows down quadratically on deep flow
collections), duplicate keys are refused instead of the last one silently winning, and
every rule that spans keys (references, overlaps, security) is checked here rather than
failing later in a collector at run time.
"""

from __future__ import annotations

import os
from itertools import combinations
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from asyncua import ua
from pydantic import ValidationError

from domain.calendar import minutes_of_day
from domain.plant import BUILTIN_STATE_MAPS, Plant

DEMO_PLANT = Path(__file__).with_name("demo_plant.yaml")

MAX_PLANT_BYTES = 2 * 1024 * 1024  # the demo plant is 15 KB; 2 MB is some 1,000 machines
MAX_DEPTH = 24  # nesting levels (mappings and lists); the demo plant uses 6
MAX_VALUES = 200_000  # scalars and collections after aliases are expanded ("billion laughs")
MAX_NUMBER_CHARS = 40  # longer numbers are typos or attacks (Python refuses ints over 4,300 digits)
MAX_TIMEZONE_CHARS = 64  # the longest IANA name is 32 characters
DAY_MIN = 1440
WEEK_MIN = 7 * DAY_MIN
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class PlantConfigError(Exception):
    """A plant file that cannot be used. ``str()`` is the message for the user."""

    def __init__(self, path: Path | str, problems: list[tuple[str, str]]):
        self.path = _one_line(str(path))
        self.problems = [(_one_line(key), _one_line(problem)) for key, problem in problems]
        lines = [f"{self.path}: {key}: {problem}" for key, problem in self.problems]
        super().__init__("\n".join(lines))


def _one_line(text: str) -> str:
    """One message line per problem, whatever characters the file put into a key or value."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _PlantYamlError(Exception):
    """Raised inside the YAML loader: a key path and a problem, with the line it is on."""

    def __init__(self, key: str, problem: str, mark: Any = None):
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        super().__init__(key, problem + where)
        self.key, self.problem = key, problem + where


def _shown_key(text: str) -> str:
    """A key as it can appear in a one-line message: control characters escaped, long keys cut."""
    text = text if text.isprintable() else repr(text)
    return text if len(text) <= 40 else text[:37] + "..."


def _render_path(parts: list[Any]) -> str:
    out = ""
    for part in parts:
        if part is None:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part)
            text = _shown_key(text)
            out += f".{text}" if out else text
    return out or "(top level)"


class _PlantLoader(yaml.SafeLoader):
    """SafeLoader that knows the key path it is composing, so that it can refuse duplicate
    keys, absurdly long numbers and deep nesting with a message that says where."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._parts: list[Any] = []

    def _where(self) -> str:
        return _render_path(self._parts)

    def compose_node(self, parent: Any, index: Any) -> Any:
        part = index.value if isinstance(index, yaml.ScalarNode) else index
        self._parts.append(part if isinstance(part, (int, str)) else None)
        try:
            if len(self._parts) > MAX_DEPTH + 1:  # +1: the document itself
                event = self.peek_event()
                raise _PlantYamlError(self._where(), f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._parts.pop()

    def compose_scalar_node(self, anchor: Any) -> Any:
        node = super().compose_scalar_node(anchor)
        if node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") and len(node.value) > MAX_NUMBER_CHARS:
            raise _PlantYamlError(
                self._where(),
                f"a number with {len(node.value)} characters (at most {MAX_NUMBER_CHARS})",
                node.start_mark,
            )
        return node

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], int] = {}
        for key_node, _value in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise _PlantYamlError(
                    _render_path([*self._parts, key_node.value]),
                    f"duplicate key {key_node.value!r} (first on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return node


def load_plant(path: Path | str) -> Plant:
    path = Path(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_PLANT_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PlantConfigError(path, [("(file)", f"cannot read: {reason}")]) from exc
    return parse_plant(decode_plant(raw, path), path)


def decode_plant(raw: bytes, path: Path | str = "<plant>") -> str:
    """The file's text. Plant files are UTF-8 (a UTF-8 byte order mark is allowed);
    editors on Windows sometimes save UTF-16, which must not reach YAML as mojibake."""
    if len(raw) > MAX_PLANT_BYTES:
        raise PlantConfigError(path, [("(file)", f"larger than {MAX_PLANT_BYTES:,} bytes: not a plant file")])
    for bom, name in (
        (b"\xff\xfe\x00\x00", "UTF-32"),
        (b"\x00\x00\xfe\xff", "UTF-32"),
        (b"\xff\xfe", "UTF-16"),
        (b"\xfe\xff", "UTF-16"),
    ):
        if raw.startswith(bom):
            raise PlantConfigError(path, [("(file)", f"encoded as {name}: save it as UTF-8")])
    if b"\x00" in raw[:4096]:
        raise PlantConfigError(
            path,
            [("(file)", "contains NUL bytes: UTF-16 without a byte order mark, or not a text file; save it as UTF-8")],
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise PlantConfigError(
            path,
            [(f"line {line}, column {column}", f"not UTF-8 (byte 0x{raw[exc.start]:02x}): save the file as UTF-8")],
        ) from None


def _flow_depth_problem(text: str) -> tuple[str, str] | None:
    """The first place where ``[``/``{`` nest deeper than MAX_DEPTH, found by a cheap scan
    that skips quoted strings and comments (the YAML scanner takes seconds on such input)."""
    depth = 0
    line = 1
    quote = ""
    comment = False
    prev = "\n"
    for ch in text:
        if ch == "\n":
            line += 1
            comment = False
        elif comment:
            pass
        elif quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'" and (prev in " \t\n[{,:-?" or depth):
            quote = ch
        elif ch == "#" and prev in " \t\n":
            comment = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return f"{_top_key_before(text, line)} (line {line})", f"nested deeper than {MAX_DEPTH} levels"
        elif ch in "]}":
            depth = max(0, depth - 1)
        prev = ch
    return None


def _top_key_before(text: str, line: int) -> str:
    """The top-level key whose block holds ``line`` (1-based), for messages about text
    that is not parsed yet; "(top level)" when there is none."""
    for row in reversed(text.split("\n", line)[:line]):
        if row[:1].isalnum() or row[:1] in "_\"'":
            key = row.split(":", 1)[0].strip("\"' ")
            if key and len(key) <= 40:
                return key
    return "(top level)"


def _tree_problem(data: Any) -> tuple[str, str] | None:
    """Bounds the loaded tree (aliases can multiply it or make it recursive): without
    this, validation would walk a billion values or forever."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    count = 0
    while stack:
        node, parts = stack.pop()
        count += 1
        if count > MAX_VALUES:
            return _render_path(list(parts[:3])), (
                f"more than {MAX_VALUES:,} values in the file (aliases expand too far or refer to themselves)"
            )
        if len(parts) > MAX_DEPTH:
            return _render_path(list(parts[:6])) + "...", f"nested deeper than {MAX_DEPTH} levels (through aliases)"
        if isinstance(node, dict):
            stack.extend((v, (*parts, k if isinstance(k, (str, int)) else None)) for k, v in node.items())
        elif isinstance(node, (list, tuple, set)):
            stack.extend((v, (*parts, i)) for i, v in enumerate(node))
    return None


def parse_plant(text: str, path: Path | str = "<plant>") -> Plant:
    if len(text) > MAX_PLANT_BYTES:
        raise PlantConfigError(path, [("(file)", f"larger than {MAX_PLANT_BYTES:,} characters: not a plant file")])
    deep = _flow_depth_problem(text)
    if deep:
        raise PlantConfigError(path, [deep])
    try:
        data = yaml.load(text, Loader=_PlantLoader)  # noqa: S506 - _PlantLoader is a SafeLoader
    except _PlantYamlError as exc:
        raise PlantConfigError(path, [(exc.key, exc.problem)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or exc
        raise PlantConfigError(path, [(where, f"not valid YAML: {problem}")]) from None
    except (ValueError, OverflowError, RecursionError, MemoryError) as exc:  # a constructor's own error
        raise PlantConfigError(
            path, [("(file)", f"not a valid plant file: {type(exc).__name__}: {str(exc)[:200]}")]
        ) from None
    if not isinstance(data, dict):
        raise PlantConfigError(path, [("(top level)", "expected a mapping of keys")])
    too_big = _tree_problem(data)
    if too_big:
        raise PlantConfigError(path, [too_big])
    try:
        plant = Plant.model_validate(data)
    except ValidationError as exc:
        problems = [(_key_path(err["loc"], data), err["msg"].removeprefix("Value error, ")) for err in exc.errors()]
        raise PlantConfigError(path, problems) from None
    problems = cross_check(plant)
    if problems:
        raise PlantConfigError(path, problems)
    return plant


def _key_path(loc: tuple[int | str, ...], data: object) -> str:
    """``lines[0].machines[2].nodes.state``: list positions in brackets, mapping keys dotted."""
    out = ""
    node = data
    for part in loc:
        if part == "[key]":  # pydantic's marker: the key itself is what is wrong
            continue
        if isinstance(node, list) and isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if 0 <= part < len(node) else None
        else:
            text = _shown_key(str(part))
            out += f".{text}" if out else text
            node = node.get(part, node.get(str(part))) if isinstance(node, dict) else None
    return out or "(top level)"


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
