"""The tests' own layout: what they share lives in ``tests/support/``, never in a test module
(nor in ``conftest.py``, which only registers fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.imports import imports_in

TESTS = Path(__file__).parent


def imported_test_modules(source: str, package: list[str]) -> list[str]:
    """The test modules (and ``conftest``) among what ``source`` imports."""
    return sorted(
        module
        for module in imports_in(source, package)
        if module.split(".")[0] == "tests"
        and any(part.startswith("test_") or part == "conftest" for part in module.split("."))
    )


def test_no_test_module_imports_another() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        package = list(path.relative_to(TESTS.parent).with_suffix("").parts)
        if path.name != "__init__.py":
            package = package[:-1]
        for module in imported_test_modules(path.read_text(), package):
            offenders.append(f"{path.relative_to(TESTS.parent)} imports {module}")
    assert offenders == [], "shared helpers belong in tests/support/:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    "line",
    [
        "from tests.test_cli import new_run",
        "import tests.test_cli",
        "from tests import test_cli",
        "from .test_cli import new_run",
        "from . import conftest",
        "from tests.conftest import running_daemon",
    ],
)
def test_every_spelling_of_such_an_import_is_seen(line: str) -> None:
    assert imported_test_modules(line, ["tests", "domain"]) != []


def test_support_is_not_a_test_module() -> None:
    assert imported_test_modules("from tests.support.runs import new_run", ["tests"]) == []
    assert imported_test_modules("from ..support import runs", ["tests", "domain"]) == []
