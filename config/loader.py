"""Load and validate the plant file. A wrong file stops with one message naming the
file, the key path and the problem; nothing starts half-configured."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import ValidationError

from domain.calendar import minutes_of_day
from domain.plant import BUILTIN_STATE_MAPS, Plant

DEMO_PLANT = Path(__file__).with_name("demo_plant.yaml")


class PlantConfigError(Exception):
    """A plant file that cannot be used. ``str()`` is the message for the user."""

    def __init__(self, path: Path | str, problems: list[tuple[str, str]]):
        self.path = str(path)
        self.problems = problems
        lines = [f"{self.path}: {key}: {problem}" for key, problem in problems]
        super().__init__("\n".join(lines))


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
            out += f".{part}" if out else str(part)
            node = node.get(part, node.get(str(part))) if isinstance(node, dict) else None
    return out or "(top level)"


def load_plant(path: Path | str) -> Plant:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlantConfigError(path, [("(file)", f"cannot read: {exc.strerror or exc}")]) from exc
    return parse_plant(text, path)


def parse_plant(text: str, path: Path | str = "<plant>") -> Plant:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise PlantConfigError(path, [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from exc
    if not isinstance(data, dict):
        raise PlantConfigError(path, [("(top level)", "expected a mapping of keys")])
    try:
        plant = Plant.model_validate(data)
    except ValidationError as exc:
        problems = [(_key_path(err["loc"], data), err["msg"].removeprefix("Value error, ")) for err in exc.errors()]
        raise PlantConfigError(path, problems) from exc
    problems = cross_check(plant)
    if problems:
        raise PlantConfigError(path, problems)
    return plant


def cross_check(plant: Plant) -> list[tuple[str, str]]:
    """Checks that span keys: references, uniqueness, time zone, breaks inside shifts."""
    problems: list[tuple[str, str]] = []
    try:
        ZoneInfo(plant.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(("timezone", f"unknown time zone {plant.timezone!r}"))
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
                    (f"{mwhere}.endpoint", f"no endpoint {machine.endpoint!r} under 'endpoints' ({', '.join(plant.endpoints)})")
                )
            if machine.state_map not in plant.state_maps and machine.state_map not in BUILTIN_STATE_MAPS:
                known = sorted([*BUILTIN_STATE_MAPS, *plant.state_maps])
                problems.append((f"{mwhere}.state_map", f"unknown state map {machine.state_map!r} (known: {', '.join(known)})"))
            for signal, node in machine.nodes.items():
                key = (machine.endpoint, node)
                if key in seen_nodes:
                    problems.append(
                        (f"{mwhere}.nodes.{signal}", f"node {node!r} is already used by {seen_nodes[key]}")
                    )
                seen_nodes[key] = f"{line.id}/{machine.id}.{signal}"
    for si, shift in enumerate(plant.shifts):
        start = minutes_of_day(shift.start)
        length = (minutes_of_day(shift.end) - start) % 1440 or 1440
        for bi, brk in enumerate(shift.breaks):
            b_start = (minutes_of_day(brk.start) - start) % 1440
            b_len = (minutes_of_day(brk.end) - minutes_of_day(brk.start)) % 1440
            if b_len == 0 or b_start + b_len > length:
                problems.append(
                    (f"shifts[{si}].breaks[{bi}]", f"break {brk.start:%H:%M}-{brk.end:%H:%M} is not inside shift {shift.name!r}")
                )
    for ei, (name, endpoint) in enumerate(plant.endpoints.items()):
        sec = endpoint.security
        if sec.policy != "None" and (sec.mode == "None" or not sec.certificate or not sec.private_key):
            problems.append(
                (f"endpoints.{name}.security", "a security policy needs mode Sign or SignAndEncrypt, a certificate and a private_key")
            )
        if sec.username and not sec.password_env:
            problems.append((f"endpoints.{name}.security.password_env", "a username needs the name of the environment variable with its password"))
    return problems
