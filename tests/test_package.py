"""The package's own documents: a licence file that matches the metadata, install lines that
work from the source folder, and no pointer to a file the repository does not hold."""

from __future__ import annotations

import re
import subprocess
import tomllib

from tests.support.paths import REPO


def tracked_text_files() -> dict[str, str]:
    """Every file git tracks but the vendored browser libraries, as text."""
    names = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    out = {}
    for name in names:
        if name.startswith("clients/web/vendor/") or name.endswith((".png", ".ico")):
            continue
        path = REPO / name
        if path.is_file():  # a file deleted in the work tree is still listed
            out[name] = path.read_text(errors="replace")
    return out


def test_the_licence_file_is_there_and_matches_the_metadata() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert project["project"]["license-files"] == ["LICENSE"]
    assert "LICENSE" in project["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) ")
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text


def test_install_lines_name_the_source_folder_not_an_index() -> None:
    # The package is not on PyPI: `pip install 'simpleaided[http]'` would find nothing.
    offenders = [
        f"{name}: {match.group(0)}"
        for name, text in tracked_text_files().items()
        if name != "tests/test_package.py"
        for match in re.finditer(r"pip install [-\w ]*'?simpleaided\b[^\n]*", text)
    ]
    assert offenders == []


def test_no_file_points_at_a_file_the_repository_does_not_hold() -> None:
    # The design notes and the style guide the project started from live outside it: what a
    # reader needs of them is in the README.
    names = tracked_text_files()
    offenders = [
        f"{name}:{number}: {line.strip()}"
        for name, text in names.items()
        if name != "tests/test_package.py"
        for number, line in enumerate(text.splitlines(), 1)
        for missing in ("DESIGN.md", "STYLE.md")
        if missing in line and missing not in names
    ]
    assert offenders == []
