"""Run the installed ``simpleaide`` command in a sandbox: its own socket, home and XDG dirs.

Every run asserts that stderr holds no Python traceback. ``stop`` ends the daemon the CLI
started, with ``simpleaide daemon stop`` and, should that fail, by its pid. ``Watcher`` reads
a following command (``watch``, ``status --follow``) line by line.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simpleaide.client import Client, ClientError

RUN_ID = re.compile(r"^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{8}$")
RUN_TIMEOUT = 60
WATCH_BOUND = 15.0  # seconds: generous, only a failing test waits this long


def simpleaide_command() -> str:
    """The ``simpleaide`` console script installed next to this interpreter."""
    beside = Path(sys.executable).parent / "simpleaide"
    if beside.exists():
        return str(beside)
    found = shutil.which("simpleaide")
    assert found, "the simpleaide console script is not installed"
    return found


# Sets SIGINT back to its default, then becomes the command: see ``interruptible``.
_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def interruptible(command: list[str]) -> list[str]:
    """``command``, started with SIGINT at its default, for a test that sends it SIGINT as
    Ctrl-C at a terminal would.

    A process inherits an ignored SIGINT through ``exec``, and the suite may run with it
    ignored (a background job of a script, ``nohup``-style launchers): its children would
    then ignore the test's SIGINT, as a program started in the background rightly does
    (the CLI keeps what it inherited, as Python and the shell do). ``preexec_fn`` is unsafe
    in this threaded process, so a small exec shim resets it instead."""
    return [sys.executable, "-c", _DEFAULT_SIGINT, *command]


@dataclass
class Result:
    """A finished ``simpleaide`` run."""

    args: tuple[str, ...]
    code: int
    out: bytes
    err: str

    @property
    def stdout(self) -> str:
        return self.out.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.out)

    def __str__(self) -> str:
        return (
            f"simpleaide {' '.join(self.args)} -> {self.code}\n"
            f"stdout: {self.out[:2000]!r}\nstderr: {self.err}"
        )


@dataclass
class Sandbox:
    """A temporary home for one test: short paths (AF_UNIX limit), no real user dirs."""

    root: Path
    env: dict[str, str]
    cwd: Path
    pids: set[int] = field(default_factory=set)
    extra_sockets: list[Path] = field(default_factory=list)

    @classmethod
    def create(cls) -> Sandbox:
        root = Path(tempfile.mkdtemp(prefix="sa-", dir="/tmp"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLEAIDE_")}
        env.pop("COLUMNS", None)
        for name, sub in [
            ("HOME", "home"),
            ("XDG_RUNTIME_DIR", "run"),
            ("XDG_STATE_HOME", "state"),
            ("XDG_CONFIG_HOME", "config"),
            ("XDG_DATA_HOME", "data"),
        ]:
            (root / sub).mkdir(mode=0o700)
            env[name] = str(root / sub)
        cwd = root / "work"
        cwd.mkdir()
        return cls(root, env, cwd)

    def configure(self, toml: str) -> None:
        """Write the config file a daemon started here reads."""
        folder = Path(self.env["XDG_CONFIG_HOME"]) / "simpleaide"
        folder.mkdir(exist_ok=True)
        (folder / "config.toml").write_text(toml)

    @property
    def socket(self) -> Path:
        """The socket the CLI picks by default here."""
        return Path(self.env["XDG_RUNTIME_DIR"]) / "simpleaide" / "daemon.sock"

    @property
    def log(self) -> Path:
        """The log of a daemon the CLI started."""
        return Path(self.env["XDG_STATE_HOME"]) / "simpleaide" / "daemon.log"

    def workspace(self, name: str = "ws") -> Path:
        """A new workspace folder (holding ``.simpleaide/``)."""
        path = self.root / name
        (path / ".simpleaide").mkdir(parents=True)
        return path

    def run(
        self,
        *args: str,
        input: bytes | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> Result:
        """Run ``simpleaide ARGS``; fails the test if stderr shows a traceback."""
        proc = subprocess.run(
            [simpleaide_command(), *args],
            input=input if input is not None else b"",
            capture_output=True,
            cwd=cwd or self.cwd,
            env={**self.env, **(env or {})},
            timeout=RUN_TIMEOUT,
            check=False,
        )
        result = Result(args, proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))
        assert "Traceback" not in result.err, str(result)
        self._note_daemon()
        return result

    def ok(self, *args: str, **kwargs: Any) -> Result:
        """Run and require exit status 0."""
        result = self.run(*args, **kwargs)
        assert result.code == 0, str(result)
        return result

    def new_run(self, workspace: Path, *extra: str) -> str:
        """The id of a run made with ``runs create --workspace WORKSPACE EXTRA``."""
        run_id = self.ok("runs", "create", "--workspace", str(workspace), *extra).stdout.strip()
        assert RUN_ID.match(run_id), run_id
        return run_id

    @property
    def sockets(self) -> list[Path]:
        """Every socket a daemon may have been started on here."""
        return [self.socket, *self.extra_sockets]

    def _note_daemon(self) -> None:
        """Remember the pids of the daemons answering here, to kill them if stopping fails."""
        for path in self.sockets:
            if not path.exists():
                continue
            with Client(str(path), timeout=5) as client:
                try:
                    client.call("daemon.ping")
                except ClientError:
                    continue
                pid = client.peer_pid()
            if pid:
                self.pids.add(pid)

    def stop(self) -> None:
        """Stop any daemon started here and remove the sandbox."""
        try:
            for path in self.sockets:
                if not path.exists():
                    continue
                subprocess.run(
                    [simpleaide_command(), "--socket", str(path), "daemon", "stop"],
                    capture_output=True,
                    env=self.env,
                    timeout=RUN_TIMEOUT,
                    check=False,
                )
            for pid in self.pids:
                if process_alive(pid):
                    os.kill(pid, signal.SIGKILL)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z"


class Watcher:
    """``simpleaide watch`` (or ``command``, e.g. ``status --follow``) as a background process,
    its stdout read line by line."""

    def __init__(self, sandbox: Sandbox, *args: str, command: str = "watch") -> None:
        self.proc = subprocess.Popen(
            interruptible([simpleaide_command(), command, *args]),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=sandbox.env,
            cwd=sandbox.cwd,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._finished: tuple[int, str] | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8"))
        self.lines.put(None)

    def next_line(self) -> str:
        line = self.lines.get(timeout=WATCH_BOUND)
        assert line is not None, f"watch ended: {self.finish()}"
        return line

    def wait_for(self, text: str) -> str:
        """The first line holding ``text`` (each line is a whole, new status)."""
        deadline = time.monotonic() + WATCH_BOUND
        while True:
            line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            assert line is not None, f"watch ended before showing {text!r}: {self.finish()}"
            assert line.endswith("\n") and line.count("\n") == 1
            if text in line:
                return line

    def finish(self) -> tuple[int, str]:
        """Its exit status and stderr (after it exits)."""
        if self._finished is not None:
            return self._finished
        code = self.proc.wait(WATCH_BOUND)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read().decode("utf-8", "replace")
        self._reader.join(WATCH_BOUND)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.proc.stderr.close()
        assert "Traceback" not in err, err
        self._finished = (code, err)
        return code, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish()


def status_path_imports(sandbox: Sandbox) -> set[str]:
    """The modules a plain ``simpleaide status`` imports (with no daemon: exit 3), as
    ``python -X importtime`` lists them: status lines run it every few seconds."""
    code = "import sys; from simpleaide.cli import main; sys.exit(main(['status', '--no-spawn']))"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        env=sandbox.env,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "simpleaide.cli" in imported
    return imported


def run_to_full_disk(sandbox: Sandbox, *args: str) -> tuple[int, str]:
    """``simpleaide ARGS >/dev/full``: its exit status and stderr."""
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [simpleaide_command(), *args],
            stdin=subprocess.DEVNULL,
            stdout=full,
            stderr=subprocess.PIPE,
            env=sandbox.env,
            cwd=sandbox.cwd,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    return done.returncode, done.stderr.decode("utf-8", "replace")
