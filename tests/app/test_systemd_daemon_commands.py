"""``simpleaide daemon`` before a daemon that systemd started (``systemd-socket-activate``,
its stderr standing for the journal): ``status`` names the journal, ``logs`` runs
``journalctl``, ``restart`` asks ``systemctl``. Both are stand-ins on ``PATH`` that say how
they were called: there is no running systemd here."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.daemon import DAEMON, daemon_env
from tests.support.sandbox import interruptible, simpleaide_command
from tests.support.waiting import eventually_blocking

ACTIVATE = shutil.which("systemd-socket-activate")

JOURNALCTL = """\
#!/bin/sh
echo "journalctl $*"
case " $* " in *" -f "*) exec sleep 60;; esac
"""
SYSTEMCTL = """\
#!/bin/sh
echo "systemctl $*" >> "$FAKE_CALLS"
if [ -n "$FAKE_FAIL" ]; then echo "Failed to connect to bus: No medium found" >&2; exit 1; fi
"""


@dataclass
class Activated:
    """The daemon under socket activation, and the environment the CLI runs in."""

    socket: Path
    env: dict[str, str]
    calls: Path
    proc: subprocess.Popen[bytes]

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        command = [simpleaide_command(), "--socket", str(self.socket), "--no-spawn", *args]
        return subprocess.run(
            command,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def activated(short_tmp: Path) -> Iterator[Activated]:
    assert ACTIVATE, "systemd-socket-activate is part of systemd; install systemd"
    sock = short_tmp / "run" / "daemon.sock"
    sock.parent.mkdir(mode=0o700)
    fake_bin = short_tmp / "bin"
    fake_bin.mkdir()
    for name, script in (("journalctl", JOURNALCTL), ("systemctl", SYSTEMCTL)):
        (fake_bin / name).write_text(script)
        (fake_bin / name).chmod(stat.S_IRWXU)
    # The daemon's stderr stands for the journal: JOURNAL_STREAM names it, as systemd does.
    journal = (short_tmp / "journal").open("ab")
    st = os.fstat(journal.fileno())
    env = {**daemon_env(short_tmp), "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    argv = [ACTIVATE, "-l", str(sock), "--fdname=rpc", "-E", "JOURNAL_STREAM", *DAEMON]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=journal)
    journal.close()
    try:
        eventually_blocking(lambda: proc.poll() is None and sock.exists(), 10)
        calls = short_tmp / "calls"
        cli_env = {
            **daemon_env(short_tmp),
            "PATH": f"{fake_bin}:{os.environ['PATH']}",
            "FAKE_CALLS": str(calls),
        }
        yield Activated(sock, cli_env, calls, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_status_names_the_journal_and_logs_reads_it(activated: Activated) -> None:
    status = activated.cli("daemon", "status")
    assert status.returncode == 0, status
    assert "started by:  systemd, on the first connection (socket activation)\n" in status.stdout
    assert "log:         the journal: journalctl --user -u simpleaided\n" in status.stdout
    info = activated.cli("daemon", "status", "--json")
    assert '"to": "journal"' in info.stdout

    logs = activated.cli("daemon", "logs", "-n", "7")
    assert (logs.returncode, logs.stderr) == (0, ""), logs
    assert logs.stdout == "journalctl --user -u simpleaided --no-pager -n 7\n"

    # -f follows until Ctrl-C, which the terminal sends to journalctl and the CLI alike.
    command = interruptible([simpleaide_command(), "--socket", str(activated.socket)])
    follow = subprocess.Popen(
        [*command, "daemon", "logs", "-f"],
        env=activated.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        process_group=0,
    )
    try:
        assert follow.stdout is not None and follow.stderr is not None
        line = follow.stdout.readline()
        assert line == b"journalctl --user -u simpleaided --no-pager -n 50 -f\n"
        os.killpg(follow.pid, signal.SIGINT)
        assert follow.wait(15) == 0
        assert follow.stderr.read() == b""
    finally:
        if follow.poll() is None:
            os.killpg(follow.pid, signal.SIGKILL)
        follow.wait()
        for stream in (follow.stdout, follow.stderr):
            if stream is not None:
                stream.close()


def test_restart_goes_through_systemctl(activated: Activated) -> None:
    pid = activated.proc.pid  # systemd-socket-activate exec'd the daemon at the first call
    assert activated.cli("daemon", "status").returncode == 0
    restarted = activated.cli("daemon", "restart")
    assert restarted.returncode == 0, restarted
    assert restarted.stdout == (
        "simpleaided restarted by systemd (systemctl --user restart simpleaided): "
        f"pid {pid}, was {pid}\n"  # the stand-in restarts nothing
    )
    assert activated.calls.read_text() == "systemctl --user restart simpleaided\n"

    failed = activated.cli("daemon", "restart", FAKE_FAIL="1")
    assert failed.returncode == 1, failed
    assert failed.stderr == (
        "simpleaide: systemctl --user restart simpleaided failed (exit 1): "
        "Failed to connect to bus: No medium found\n"
    )

    without = activated.cli("daemon", "restart", PATH="/nonexistent")
    assert without.returncode == 1, without
    assert without.stderr == (
        f"simpleaide: simpleaided (pid {pid}) was started by systemd, and systemctl is not "
        "found here: run systemctl --user restart simpleaided\n"
    )
    # Reloading needs no systemctl: the daemon is asked, and says how it went.
    reloaded = activated.cli("daemon", "reload")
    assert (reloaded.returncode, reloaded.stdout) == (
        0,
        "configuration reloaded (no file: the defaults, environment and flags)\n",
    ), reloaded
