"""What a Python source imports, read from its syntax tree: for the tests that hold the
package's layering and the test tree's layout."""

from __future__ import annotations

import ast


def imports_in(source: str, package: list[str]) -> set[str]:
    """Absolute names of every module ``source`` (a module of ``package``) imports, wherever
    the import stands (inside a function, under ``TYPE_CHECKING``), relative ones resolved,
    and of every name it imports from one: ``from pkg import x`` may import module ``pkg.x``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found
