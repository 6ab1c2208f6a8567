"""Who owns what, checked by parsing the sources (like ``test_core_purity``):

* the demo plant (``collectors.sim``) is imported only by ``app.py``, ``bench/`` and
  ``tests/``, and the modules of each package import one another without a circle;
* ``store/`` owns every Redis byte: no Redis client is made and no Redis script is
  written anywhere else (the tests aside);
* every module of ``domain/``, ``config/``, ``store/``, ``collectors/`` and ``components/``
  stays under 400 lines (``SMALL_PACKAGES``);
* the packages depend on one another in one direction (``LAYERS``): the pure ``domain``
  at the bottom, then ``config`` and ``store``, then ``collectors`` and ``api``, then the
  screens in ``components``; nothing imports a package above its own;
* among the screens, only ``components.data`` (their one door to data) imports ``store``.

Imports inside functions count as imports: a lazy import still ties two modules together.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import call_name

ROOT = Path(__file__).resolve().parent.parent
SKIPPED_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".ruff_cache", ".hypothesis", "var"}
WING = "collectors.sim"
CLIENT_CLASSES = {"Redis", "StrictRedis", "RedisCluster"}
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    """Every Python module of the project by dotted name (scenario scripts included)."""
    found: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if SKIPPED_DIRS & set(parts) or any(p.startswith(".") for p in parts):
            continue
        dotted = ".".join(parts)[: -len(".py")]
        found[dotted.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _imported(name: str, tree: ast.AST) -> Iterator[str]:
    """The dotted names a module imports (``from a import b``: ``a.b`` if that is a module,
    else ``a``), anywhere in it."""
    package = name if _is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield full if full in MODULES else base


def _tree(name: str) -> ast.AST:
    return ast.parse(MODULES[name].read_text(encoding="utf-8"), filename=str(MODULES[name]))


def _project_imports(name: str) -> set[str]:
    return {target for target in _imported(name, _tree(name)) if target in MODULES}


def test_the_demo_wing_is_where_the_layout_says() -> None:
    wing = {n for n in MODULES if n == WING or n.startswith(f"{WING}.")}
    assert {f"{WING}.simulator", f"{WING}.scenario", f"{WING}.history", f"{WING}.machine_model"} <= wing
    assert (ROOT / "collectors" / "sim" / "scenarios" / "e2e_bw1_shift.csv").is_file()
    assert not {"collectors.simulator", "collectors.scenario", "collectors.backfill"} & set(MODULES)


def test_only_the_entry_point_benchmarks_and_tests_import_the_demo_wing() -> None:
    offenders = {
        name: sorted(t for t in _imported(name, _tree(name)) if t == WING or t.startswith(f"{WING}."))
        for name in MODULES
        if not (name in ("app", WING) or name.startswith(("bench.", "tests.", f"{WING}.")))
    }
    assert {name: targets for name, targets in offenders.items() if targets} == {}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A circle of the graph (its modules in order), or None."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("package", ["domain", "config", "store", "collectors", "api", "components"])
def test_no_package_has_an_import_circle(package: str) -> None:
    """The collectors and the demo wing included; between packages the layers (below) rule circles out."""
    names = [n for n in MODULES if n == package or n.startswith(f"{package}.")]
    graph = {n: {t for t in _project_imports(n) if t in names and t != n} for n in names}
    assert _cycle(graph) is None


def _outside_store_and_tests() -> list[str]:
    return [n for n in MODULES if not n.startswith(("store.", "tests."))]


@pytest.mark.parametrize("name", _outside_store_and_tests())
def test_no_redis_client_is_made_outside_store(name: str) -> None:
    made = []
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.Call):
            parts = call_name(node).split(".")
            if parts and (parts[-1] in CLIENT_CLASSES or (parts[-1] == "from_url" and len(parts) > 1
                                                           and parts[-2] in CLIENT_CLASSES)):
                made.append(f"{'.'.join(parts)} (line {node.lineno})")
    assert made == [], "make clients with store.clients (client_for, async_client_for, node)"


@pytest.mark.parametrize("name", _outside_store_and_tests())
def test_no_redis_script_is_written_outside_store(name: str) -> None:
    scripts = [node.lineno for node in ast.walk(_tree(name))
               if isinstance(node, ast.Constant) and isinstance(node.value, str) and "redis.call(" in node.value]
    assert scripts == [], "stream writes go through store.streams"



# The packages whose modules stay under MAX_LINES. api/ and app.py are left out for now: they
# are being split while the server moves to FastAPI (remove this note and add them then).
SMALL_PACKAGES = ("domain", "config", "store", "collectors", "components")


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.split(".")[0] in SMALL_PACKAGES))
def test_modules_stay_small(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines < MAX_LINES, f"{MODULES[name].relative_to(ROOT)} has {lines} lines: split it by what it does"


# Who may import whom (a package always may import itself and the standard library).
LAYERS: dict[str, set[str]] = {
    "domain": set(),
    "config": {"domain"},
    "store": {"domain", "config"},
    "collectors": {"domain", "config", "store"},
    "api": {"domain", "config", "store"},
    "components": {"domain", "config", "store", "api"},
}


def _package_of(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _package_of(n) in LAYERS and not n.startswith(WING)))
def test_packages_import_only_the_layers_below(name: str) -> None:
    own = _package_of(name)
    above = {_package_of(t) for t in _project_imports(name)} - {own} - LAYERS[own]
    assert not above & set(LAYERS) | {"app", "bench", "tests"} & above, f"{name} imports {sorted(above)}"


# The screens' one door to data: only it reads or writes through ``store`` (README "Development").
DATA_DOOR = "components.data"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _package_of(n) == "components" and n != DATA_DOOR))
def test_screens_reach_the_store_only_through_components_data(name: str) -> None:
    reached = sorted(t for t in _project_imports(name) if _package_of(t) == "store")
    assert reached == [], f"{name} imports {reached}: read and write through {DATA_DOOR}"


def test_the_data_door_rule_finds_a_store_import() -> None:
    tree = ast.parse("def f():\n    from store.alerts import AlertStore\n")
    assert [t for t in _imported("components.alerts_panel", tree) if _package_of(t) == "store"] == ["store.alerts"]


def test_the_layer_rule_finds_an_upward_import(tmp_path: Path) -> None:
    tree = ast.parse("from components import theme\nimport api.auth\n")
    targets = {_package_of(t) for t in _imported("store.x", tree)}
    assert targets - {"store"} - LAYERS["store"] == {"components", "api"}
