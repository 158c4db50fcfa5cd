"""The processes under measurement: the daemon and the floor server, started as a user would,
and what ``/proc`` says about them (RSS, inotify watches).

Every process started here is stopped by its pid (SIGTERM, then SIGKILL after a grace period)
and waited for; nothing is ever killed by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from tests.bench.client import STATUS_REQUEST, connect, roundtrip

REPO = Path(__file__).resolve().parents[2]
STOP_GRACE_SECONDS = 30.0


def child_env(home: Path) -> dict[str, str]:
    """The environment of a started process: an isolated HOME and XDG folders, no
    ``SIMPLEAIDE_*`` settings, and bytecode writing allowed (so nothing is compiled twice)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SIMPLEAIDE_", "XDG_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["HOME"] = str(home)
    env["XDG_STATE_HOME"] = str(home / "state")
    env["XDG_CONFIG_HOME"] = str(home / "config")
    env["XDG_RUNTIME_DIR"] = str(home / "runtime")
    for name in ("state", "config", "runtime"):
        (home / name).mkdir(mode=0o700, parents=True, exist_ok=True)
    return env


@dataclass
class Server:
    """A started server process and the socket it serves."""

    name: str
    proc: subprocess.Popen[bytes]
    socket: str
    log_path: Path
    log_file: IO[bytes]
    launched: float  # time.perf_counter() just before the process was started
    first_answer_s: float | None = None
    first_answer: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def check_alive(self) -> None:
        """Raise with the tail of the log if the process has exited."""
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")

    def stop(self) -> int:
        """SIGTERM by pid, wait; SIGKILL if it does not stop within the grace period."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            return self.proc.returncode
        finally:
            self.log_file.close()


def _launch(name: str, argv: list[str], env: dict[str, str], sock: str, log: Path) -> Server:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock)
    log_file = log.open("ab")
    launched = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file
    )
    return Server(name, proc, sock, log, log_file, launched)


def wait_first_answer(server: Server, timeout: float = 300.0, poll: float = 0.002) -> float:
    """Block until ``status.get`` answers; returns seconds since launch. A connection that is
    accepted while the daemon still loads simply waits for its answer."""
    deadline = time.monotonic() + timeout
    while True:
        server.check_alive()
        try:
            with connect(server.socket, timeout=timeout) as sock:
                reply = roundtrip(sock, STATUS_REQUEST)
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{server.name} did not answer within {timeout} s") from None
            time.sleep(poll)
            continue
        server.first_answer_s = time.perf_counter() - server.launched
        server.first_answer = orjson.loads(reply)
        return server.first_answer_s


def wait_stores_checked(server: Server, timeout: float = 300.0) -> None:
    """Block until ``daemon.info`` says the stores were checked (the walk after a crash, or
    after the first start on a store, has ended)."""
    request = b'{"jsonrpc":"2.0","method":"daemon.info","id":1}\n'
    deadline = time.monotonic() + timeout
    with connect(server.socket) as sock:
        while not orjson.loads(roundtrip(sock, request))["result"]["storesChecked"]:
            server.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{server.name} did not check its stores within {timeout} s")
            time.sleep(0.05)


def start_daemon(
    home: Path, workspace: Path | None, name: str = "daemon", extra_args: Sequence[str] = ()
) -> Server:
    """``python -m simpleaided --socket ... [--workspace ...] [extra_args...]`` with an
    isolated HOME; returns once ``status.get`` answers (``first_answer_s`` says how long
    that took)."""
    sock = str(home / "d.sock")
    argv = [sys.executable, "-m", "simpleaided", "--socket", sock, "--log-level", "warning"]
    if workspace is not None:
        argv += ["--workspace", str(workspace)]
    argv += extra_args
    server = _launch(name, argv, child_env(home), sock, home / "daemon.log")
    try:
        wait_first_answer(server)
    except BaseException:
        server.stop()
        raise
    return server


def start_floor(home: Path) -> Server:
    """The floor server (``tests.bench.floor``), answering once started."""
    sock = str(home / "floor.sock")
    argv = [sys.executable, "-m", "tests.bench.floor", "--socket", sock]
    server = _launch("floor", argv, child_env(home), sock, home / "floor.log")
    try:
        wait_first_answer(server, timeout=30)
    except BaseException:
        server.stop()
        raise
    return server


def start_grid_floor(home: Path, engine: str, target: str) -> Server:
    """The grid's floor over a socket (``tests.bench.grid_floor``), once it listens."""
    sock = str(home / "grid-floor.sock")
    argv = [sys.executable, "-m", "tests.bench.grid_floor", "--socket", sock]
    argv += ["--engine", engine, "--target", target]
    server = _launch("grid-floor", argv, child_env(home), sock, home / "grid-floor.log")
    deadline = time.monotonic() + 30
    while not os.path.exists(sock):
        server.check_alive()
        if time.monotonic() > deadline:
            server.stop()
            raise TimeoutError("the grid's socket floor did not start within 30 s")
        time.sleep(0.01)
    return server


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    """Stop ``server`` when the block ends, whatever happens."""
    try:
        yield server
    finally:
        server.stop()


def cpu_seconds(pid: int) -> float:
    """CPU time ``pid`` has used so far (user + system, all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak) of ``pid``, in bytes."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def inotify_watches(pid: int) -> int:
    """Inotify watches held by ``pid``: ``inotify wd:`` lines over all its fds' fdinfo."""
    total = 0
    fdinfo = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(fdinfo):
        try:
            with open(f"{fdinfo}/{fd}") as f:
                total += sum(1 for line in f if line.startswith("inotify wd:"))
        except OSError:
            continue  # closed meanwhile
    return total


def wait_watches_settled(
    server: Server,
    runs: int,
    *,
    quiet: float = 0.3,
    idle_limit: float = 2.0,
    timeout: float = 120.0,
) -> tuple[float, int]:
    """Wait until the daemon's inotify watch count stops changing: for ``quiet`` seconds once
    it covers every run (``runs`` + 1), else for ``idle_limit`` seconds. Returns the seconds
    from launch to when the count reached its final value, and that count."""
    deadline = time.monotonic() + timeout
    count = inotify_watches(server.pid)
    changed_at = time.perf_counter()
    while time.monotonic() < deadline:
        time.sleep(0.02)
        server.check_alive()
        now_count = inotify_watches(server.pid)
        if now_count != count:
            count, changed_at = now_count, time.perf_counter()
            continue
        still = time.perf_counter() - changed_at
        if still >= (quiet if count > runs else idle_limit):
            break
    return changed_at - server.launched, count


def thread_count(pid: int) -> int:
    """How many threads ``pid`` runs."""
    return len(os.listdir(f"/proc/{pid}/task"))


def compile_bytecode() -> dict[str, Any]:
    """Compile the bytecode of the project and the venv's packages (``compileall``), so the
    wall-time figures never include compiling, even where ``PYTHONDONTWRITEBYTECODE`` is set."""
    import sysconfig

    targets = [
        str(REPO / "simpleaided"),
        str(REPO / "clients" / "python" / "simpleaide"),
        sysconfig.get_paths()["purelib"],
    ]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", *targets],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    return {
        "targets": targets,
        "returncode": done.returncode,
        "seconds": time.perf_counter() - began,
        "callerHadPythonDontWriteBytecode": "PYTHONDONTWRITEBYTECODE" in os.environ,
        "childrenRunWithPythonDontWriteBytecode": False,
    }


def wall_times(argv_a: list[str], argv_b: list[str], env: dict[str, str], pairs: int) -> Any:
    """Alternate ``argv_a`` and ``argv_b`` ``pairs`` times (after two warm-up pairs); returns
    both lists of wall times in seconds and ``argv_a``'s first output."""
    times_a: list[float] = []
    times_b: list[float] = []
    first: subprocess.CompletedProcess[bytes] | None = None
    for k in range(pairs + 2):
        for argv, times in ((argv_a, times_a), (argv_b, times_b)):
            began = time.perf_counter()
            done = subprocess.run(argv, env=env, capture_output=True, check=False, cwd=REPO)
            elapsed = time.perf_counter() - began
            if done.returncode != 0:
                raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr[-500:]!r}")
            if first is None:
                first = done
            if k >= 2:
                times.append(elapsed)
    assert first is not None
    return times_a, times_b, first.stdout.decode(errors="replace").strip()
