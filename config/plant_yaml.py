"""Reading the plant file, and its errors. A wrong file stops with one message naming
the file, the key path and the problem (``PlantConfigError``).

The file is read defensively, because it is the one input an operator types by hand and
tools generate: size, encoding and nesting are checked before YAML parses it (PyYAML's
pure-Python parser recurses per level and slows down quadratically on deep flow
collections), and duplicate keys are refused instead of the last one silently winning.
The rules that span keys are ``config.plant_checks``; ``config.loader`` puts the two together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_PLANT_BYTES = 2 * 1024 * 1024  # the demo plant is 15 KB; 2 MB is some 1,000 machines
MAX_DEPTH = 24  # nesting levels (mappings and lists); the demo plant uses 6
MAX_VALUES = 200_000  # scalars and collections after aliases are expanded ("billion laughs")
MAX_NUMBER_CHARS = 40  # longer numbers are typos or attacks (Python refuses ints over 4,300 digits)


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


def read_yaml(text: str, path: Path | str = "<plant>") -> dict[Any, Any]:
    """The plant file's mapping, read defensively (size, nesting, duplicate keys, long
    numbers, aliases that expand too far). Raises PlantConfigError naming the place."""
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
    return data


def key_path(loc: tuple[int | str, ...], data: object) -> str:
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
