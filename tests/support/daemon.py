"""The daemon for the tests: in this process on a real socket, or as a process of its own."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio

from simpleaided.app.config import Config, load_config
from simpleaided.app.daemon import Daemon
from tests.support.rpc import RpcClient
from tests.support.waiting import eventually

DAEMON = [sys.executable, "-m", "simpleaided"]


def make_daemon(socket_path: Path, state_dir: Path, **settings: object) -> Daemon:
    """A daemon (not started) serving ``socket_path``, with dotted ``settings``."""
    overrides: dict[str, object] = {
        "daemon.socket": str(socket_path),
        "daemon.state_dir": str(state_dir),
        **settings,
    }
    return Daemon(load_config(overrides=overrides), handle_signals=False)


@contextlib.asynccontextmanager
async def running_daemon(
    socket_path: Path, state_dir: Path, **settings: object
) -> AsyncIterator[Daemon]:
    """A real daemon serving ``socket_path`` in this process, with dotted ``settings``."""
    async with anyio.create_task_group() as tg:
        started: Daemon = await tg.start(make_daemon(socket_path, state_dir, **settings).run)
        yield started
        started.request_stop()


class ConfigSource:
    """What the daemon reads on a reload: dotted settings a test changes, or an error."""

    def __init__(self, socket_path: Path, state_dir: Path) -> None:
        self.fixed = {"daemon.socket": str(socket_path), "daemon.state_dir": str(state_dir)}
        self.settings: dict[str, Any] = {}
        self.workspaces: list[str] = []
        self.error: Exception | None = None

    def load(self) -> Config:
        if self.error is not None:
            raise self.error
        config = load_config(overrides={**self.fixed, **self.settings})
        return config.model_copy(update={"workspaces": self.workspaces})


def daemon_env(home: Path) -> dict[str, str]:
    """The environment of a daemon process whose home and XDG folders are below ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMPLEAIDE_", "XDG_"))}
    env["HOME"] = str(home)
    env["XDG_STATE_HOME"] = str(home / "state")
    env["XDG_CONFIG_HOME"] = str(home / "config")
    return env


async def until_answering(path: Path, proc: subprocess.Popen[bytes]) -> None:
    """Wait until the daemon process accepts connections on ``path`` (or fail if it exited)."""

    async def answers() -> bool:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            async with await RpcClient.connect(path) as c:
                await c.call("daemon.ping")
        except OSError:
            return False
        return True

    # Polling a process we do not control: there is no other signal.
    await eventually(answers, 10, interval=0.02)


def wait_until_answering(path: Path, proc: subprocess.Popen[bytes]) -> None:
    """``until_answering`` for a synchronous test."""
    anyio.run(until_answering, path, proc)
