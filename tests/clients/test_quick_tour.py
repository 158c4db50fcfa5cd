"""The README's Quick tour, run as written (but for the install, which the test's own
environment already made) in a sandbox whose home is empty."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO
from tests.support.sandbox import Sandbox

INSTALL = re.compile(r"^python3 -m venv \.venv && \.venv/bin/pip install -q \.\s")


def quick_tour() -> list[str]:
    """The lines of the Quick tour's shell block."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Quick tour\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return block.splitlines()


def test_the_quick_tour_works_as_written(sandbox: Sandbox, tmp_path: Path) -> None:
    lines = quick_tour()
    assert INSTALL.match(lines[0]), lines[0]
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / ".venv").symlink_to(sys.prefix)  # the venv the first line would have made
    script = "\n".join(["set -eu", *lines[1:]])
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=clone,
        env={k: v for k, v in sandbox.env.items() if k not in ("VIRTUAL_ENV",)}
        | {"PATH": "/usr/bin:/bin"},  # only the tour's activation finds simpleaide
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    project = Path(sandbox.env["HOME"]) / "code" / "my-project"
    assert (project / ".simpleaide" / "runs").is_dir(), done.stdout
    (run_dir,) = (project / ".simpleaide" / "runs").iterdir()
    out = done.stdout
    assert "Run ⏳ 1" in out  # the status line, while the step ran
    assert run_dir.name[:8] in out and "completed" in out  # runs ls
    assert not sandbox.socket.exists()  # daemon stop
