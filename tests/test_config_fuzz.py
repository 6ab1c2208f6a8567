"""Property: whatever is done to the demo plant file, ``check`` ends quickly with either
success or messages that each name the file, a key path (or line) and the problem; never
a traceback, never a hang (issue 14: 500 mutated files found tracebacks and a 35 s hang).

The mutations are the ones a hand-edited or generated file suffers: text cut, pasted or
re-indented; one value replaced by a value of another kind (huge, infinite, negative,
nested, aliased); the file saved in another encoding.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.loader import DEMO_PLANT, PlantConfigError, load_plant
from domain.plant import Plant

ROOT = Path(__file__).resolve().parent.parent
DEMO_TEXT = DEMO_PLANT.read_text(encoding="utf-8")
DEMO_LINES = DEMO_TEXT.splitlines(keepends=True)
DEMO_DATA = yaml.safe_load(DEMO_TEXT)

# A check must end within this; a parse of the demo plant takes some 30 ms, so the margin
# absorbs a loaded machine while still catching the 35 s hang and quadratic blow-ups.
CHECK_DEADLINE = timedelta(seconds=5)

YAML_BITS = st.sampled_from(
    [
        ":",
        " ",
        "\n",
        "  ",
        "-",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ",",
        "#",
        "&a ",
        "*a",
        "!!",
        "'",
        '"',
        "\t",
        "\x00",
        "? ",
        "|",
        ">",
        "%",
        "@",
        "`",
        ".inf",
        "-.nan",
        "1e309",
        "9" * 60,
        "\ufeff",
        "\u2028",
        "<<: ",
        "~",
    ]
)


def _leaf_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into the demo data (mappings and lists), parents before children."""
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _leaf_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _leaf_paths(value, (*prefix, i))
    return out


PATHS = _leaf_paths(DEMO_DATA)[1:]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            0,
            -1,
            1e-9,
            1e300,
            2**63,
            "",
            "None",
            "Sign",
            "SignAndEncrypt",
            "Basic256Sha256",
            "23:59",
            "24:00",
            "00:00",
            "not a node id",
            "ns=2;s=",
            "UTC",
            "Europe/Nowhere",
            "A" * 300,
            "../../etc",
        ]
    ),
    st.text(max_size=30),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def value_mutation(draw: st.DrawFn) -> str:
    """One value anywhere in the file replaced (or deleted), dumped back as YAML."""
    data = yaml.safe_load(DEMO_TEXT)
    path = draw(st.sampled_from(PATHS))
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.integers(0, 9)) == 0:
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(values)
    return yaml.safe_dump(data, allow_unicode=True)


@st.composite
def text_mutation(draw: st.DrawFn) -> str:
    """Characters or lines cut, pasted or repeated in the text."""
    lines = list(DEMO_LINES)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.integers(0, 4))
        if kind == 0:
            col = draw(st.integers(0, len(lines[i])))
            bit = draw(st.one_of(YAML_BITS, st.text(max_size=6)))
            lines[i] = lines[i][:col] + bit * draw(st.integers(1, 3)) + lines[i][col:]
        elif kind == 1:
            del lines[i]
        elif kind == 2:
            lines.insert(i, lines[draw(st.integers(0, len(lines) - 1))])
        elif kind == 3:
            lines[i] = " " * draw(st.integers(0, 6)) + lines[i].lstrip(" ")
        else:
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))] + "\n"
    return "".join(lines)


@st.composite
def nesting_mutation(draw: st.DrawFn) -> str:
    """A deep or wide structure appended under a new top-level key."""
    depth = draw(st.integers(1, 6000))
    style = draw(st.sampled_from(["list", "map", "block", "alias"]))
    if style == "list":
        body = "[" * depth + "]" * depth
    elif style == "map":
        body = "{a: " * depth + "1" + "}" * depth
    elif style == "block":
        body = "\n" + "".join("  " * i + "- \n" for i in range(1, min(depth, 400)))
    else:
        width = draw(st.integers(1, 12))
        rows = ["&a0 [x]"] + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, 12)]
        body = rows[0] + "\n" + "\n".join(rows[1:])
    return DEMO_TEXT + "extra: " + body + "\n"


plant_texts = st.one_of(value_mutation(), text_mutation(), nesting_mutation())
encodings = st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-16-be", "latin-1", "gb18030"])


def assert_clear(message: str, file: Path) -> None:
    """Each line: ``<file>: <key path or line>: <problem>``; no traceback text."""
    assert message, "an error without a message"
    assert "Traceback" not in message
    for line in message.splitlines():
        match = re.fullmatch(rf"{re.escape(str(file))}: (.+?): (.+)", line)
        assert match, f"not '<file>: <key path>: <problem>': {line!r}"
        assert match.group(1).strip() and match.group(2).strip()


@settings(
    max_examples=150,
    deadline=CHECK_DEADLINE,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=plant_texts, encoding=encodings)
def test_mutated_plant_file_gives_success_or_a_clear_message(tmp_path: Path, text: str, encoding: str) -> None:
    file = tmp_path / "plant.yaml"
    try:
        file.write_bytes(text.encode(encoding))
    except UnicodeEncodeError:
        file.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        plant = load_plant(file)
    except PlantConfigError as exc:
        assert_clear(str(exc), file)
    else:
        assert isinstance(plant, Plant)


def test_check_command_in_a_subprocess(tmp_path: Path) -> None:
    """The real command line: a bad file exits 2 with the message on stderr, no traceback;
    the demo plant exits 0."""
    bad = tmp_path / "plant.yaml"
    bad.write_text(DEMO_TEXT + "deep: " + "[" * 5000 + "]" * 5000 + "\n")  # hung for 35 s
    result = subprocess.run(
        [sys.executable, "app.py", "--plant", str(bad), "check"], cwd=ROOT, capture_output=True, text=True, timeout=100
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("plant file error:\n")
    assert_clear(result.stderr.removeprefix("plant file error:\n").rstrip("\n"), bad)
    deep_line = DEMO_TEXT.count("\n") + 1  # the line appended above
    assert f"{bad}: deep (line {deep_line}): nested deeper than 24 levels" in result.stderr

    good = subprocess.run(
        [sys.executable, "app.py", "--plant", str(DEMO_PLANT), "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert good.returncode == 0, good.stderr
    assert f"{DEMO_PLANT}: OK - Liuzhou demo plant: 3 lines, 19 machines" in good.stdout
