"""The VS Code extension (``clients/vscode``): installed from its vendored tarballs with no
network and an empty npm cache, as on a fresh clone, then its own tests (Node's test runner,
against a real daemon: this venv's ``simpleaided``) must all pass."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

EXTENSION = REPO / "clients" / "vscode"
NODE_MAJOR = 20


def _tool(name: str) -> str:
    """The path of ``name``; the test fails (never skips) without it: CI must install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: the VS Code extension's tests need Node.js >= "
            f"{NODE_MAJOR} and npm (.ci/run installs them)"
        )
    return path


def _written_tests() -> int:
    """How many ``test(...)`` the extension's test files declare."""
    files = sorted((EXTENSION / "test").glob("*.test.ts"))
    return sum(len(re.findall(r"^test\(", f.read_text(), re.MULTILINE)) for f in files)


def _count(label: str, output: str) -> int | None:
    # TAP ("# pass 21") when stdout is not a terminal; newer Node's spec reporter: "ℹ pass 21".
    found = re.search(rf"^(?:#|ℹ) {label} (\d+)$", output, re.MULTILINE)
    return int(found.group(1)) if found else None


def test_the_vscode_extension_installs_offline_and_passes_its_tests(tmp_path: Path) -> None:
    node, npm = _tool("node"), _tool("npm")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    assert major >= NODE_MAJOR, f"Node.js {version.stdout.strip()} is too old: need {NODE_MAJOR}+"

    # A copy without node_modules/ and out/: what a fresh clone holds.
    folder = tmp_path / "vscode"
    shutil.copytree(EXTENSION, folder, ignore=shutil.ignore_patterns("node_modules", "out"))
    cache = tmp_path / "empty-npm-cache"
    cache.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLEAIDE_")}
    env["SIMPLEAIDED"] = str(Path(sys.executable).parent / "simpleaided")

    install = subprocess.run(
        [npm, "ci", "--offline", "--no-audit", "--no-fund", "--cache", str(cache)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, f"npm ci failed:\n{install.stdout}\n{install.stderr}"

    run = subprocess.run(
        [npm, "test"], cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )
    output = f"{run.stdout}\n{run.stderr}"
    assert run.returncode == 0, f"npm test failed:\n{output}"
    written = _written_tests()
    assert written > 0
    assert _count("fail", output) == 0, output
    passed = _count("pass", output)
    assert passed is not None and passed >= written, f"{passed} of {written} passed:\n{output}"
