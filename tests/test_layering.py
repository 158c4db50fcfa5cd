"""Each layer imports only the layers above it; the client never imports the daemon."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.imports import imports_in

ROOT = Path(__file__).parents[1]
LAYERS = ["domain", "store", "services", "transports", "app"]
ASYNC_FRAMEWORKS = {"anyio", "asyncio", "jsonrpcserver", "watchdog"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[0] == "clients":
        parts = parts[2:]  # clients/python/simpleaide/... is the package simpleaide
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    return imports_in(path.read_text(), package)


def package_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("layer", LAYERS)
def test_layers_import_only_downward(layer: str) -> None:
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    offenders = []
    for path in package_files(f"simpleaided/{layer}"):
        for module in imported_modules(path):
            parts = module.split(".")
            if parts[0] == "simpleaided" and len(parts) > 1 and parts[1] in LAYERS:
                if parts[1] not in allowed:
                    offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


def test_the_domain_core_is_pure() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in package_files("simpleaided/domain")
        for module in imported_modules(path)
        if module.split(".")[0] in ASYNC_FRAMEWORKS
    ]
    assert offenders == []


def test_jsonrpcserver_stays_behind_one_module() -> None:
    users = {
        str(path.relative_to(ROOT))
        for path in package_files("simpleaided")
        if any(m.split(".")[0] == "jsonrpcserver" for m in imported_modules(path))
    }
    assert users == {"simpleaided/transports/rpc.py"}


def test_relative_imports_are_seen() -> None:
    domain = ["simpleaided", "domain"]
    assert "simpleaided.app.daemon" in imports_in("from ..app import daemon\n", domain)
    assert "simpleaided.domain.clock" in imports_in("from . import clock\n", domain)
    assert "simpleaided.store.safefs" in imports_in("from ..store.safefs import x\n", domain)


def test_the_client_never_imports_the_daemon() -> None:
    files = package_files("clients/python/simpleaide")
    assert files, "the client package is missing"
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in files
        for module in imported_modules(path)
        if module.split(".")[0] in {"simpleaided", "pydantic", "anyio"}
    ]
    assert offenders == []


def test_optional_heavy_libraries_load_only_when_used() -> None:
    # httpx (~15 MB), cryptography (~9 MB) and psycopg (~25 MB) are loaded by the
    # first LLM probe, the first vault operation and a PostgreSQL target: a daemon that uses
    # none of them should not carry them.
    heavy = ("httpx", "httpcore", "cryptography", "psycopg")
    code = (
        "import sys, simpleaided.app.daemon, simpleaided.app.main\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or not (Tarjan's strongly
    connected components of more than one module, or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.get(module, ())):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1 or module in graph.get(module, ()):
                cycles.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


@pytest.mark.parametrize("package", ["simpleaided", "clients/python/simpleaide"])
def test_no_modules_import_each_other(package: str) -> None:
    # Within a layer too, and counting imports made for type checking only (or made late,
    # inside a function): a cycle means two modules are one concept in two files (or one
    # belongs lower).
    modules = {module_name(path): path for path in package_files(package)}
    graph = {
        name: {m for m in imported_modules(path) if m in modules and m != name}
        for name, path in modules.items()
    }
    assert import_cycles(graph) == []


def test_import_cycles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert import_cycles(graph) == [["a", "b", "c"], ["e"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []
