"""Reloading the configuration, in-process: what is applied, retried, kept, and refused.

(SIGHUP itself, with a subscribed client and systemd's messages, is in tests/app/test_systemd.py.)
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from simpleaided.app.daemon import Daemon
from simpleaided.transports.unix_socket import SocketClaim, SocketTaken, _lock
from tests.support.daemon import ConfigSource
from tests.support.rpc import RpcClient


@pytest.fixture
async def reloadable(isolated_env: Path, socket_path: Path) -> AsyncIterator[tuple[Daemon, Any]]:
    source = ConfigSource(socket_path, isolated_env / "state")
    daemon = Daemon(source.load(), handle_signals=False, load_config=source.load)
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        await daemon.watching.wait()
        yield daemon, source
        daemon.request_stop()


def not_served_warnings(daemon: Daemon) -> list[str]:
    return [w for w in daemon.warnings if " is not served: " in w]


async def test_a_workspace_that_could_not_be_served_is_retried_and_its_warning_goes(
    reloadable: tuple[Daemon, ConfigSource], short_tmp: Path
) -> None:
    daemon, source = reloadable
    later = short_tmp / "later"
    source.workspaces = [str(later)]
    assert await daemon.reload()
    assert not_served_warnings(daemon) == [
        f"workspace {later} is not served: workspace {later} does not exist "
        f"(create the folder first: mkdir -p {later})"
    ]

    later.mkdir()
    assert await daemon.reload()  # the same configuration: the workspace is tried again
    assert [path for path, _ in daemon.runs.registry.items()] == [str(later)]
    assert not_served_warnings(daemon) == []

    source.workspaces = [str(short_tmp / "gone")]
    assert await daemon.reload()
    source.workspaces = []
    assert await daemon.reload()  # no longer listed: no longer warned about
    assert not_served_warnings(daemon) == [] and len(daemon.runs.registry) == 0


async def test_a_workspace_added_by_a_client_stays_when_the_config_lists_then_drops_it(
    reloadable: tuple[Daemon, ConfigSource], socket_path: Path, workspace: Path, isolated_env: Path
) -> None:
    daemon, source = reloadable
    async with await RpcClient.connect(socket_path) as client:
        await client.call("workspaces.add", path=str(workspace))
        source.workspaces = [str(workspace)]
        assert await daemon.reload()
        assert (await client.call("workspaces.list"))[0]["source"] == "config"
        source.workspaces = []
        assert await daemon.reload()
        assert await client.call("workspaces.list") == [
            {"path": str(workspace), "runs": 0, "source": "added"}
        ]
    remembered = json.loads((isolated_env / "state" / "workspaces.json").read_text())
    assert remembered == {"workspaces": [str(workspace)], "configured": [], "removed": []}


async def test_a_reload_that_fails_part_way_is_completed_by_the_next(
    reloadable: tuple[Daemon, ConfigSource], monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, source = reloadable
    reconfigure = daemon.llm.reconfigure
    failures = [RuntimeError("a bug")]

    async def failing_once(*args: Any, **kwargs: Any) -> None:
        if failures:
            raise failures.pop()
        await reconfigure(*args, **kwargs)

    monkeypatch.setattr(daemon.llm, "reconfigure", failing_once)
    source.settings = {
        "env": "PROD",
        "llm.backends": [{"name": "local", "kind": "ollama", "url": "http://127.0.0.1:9"}],
    }
    assert not await daemon.reload()
    info = daemon.info()
    assert info["reloadError"] == "applying it failed part-way (RuntimeError; see the log)"
    doc = daemon.status.document()
    # The database went first: the profile never says PROD over a read-write database.
    assert doc["env"] == "PROD" and doc["db"]["env"] == "PROD" and doc["db"]["readOnly"]
    assert doc["llm"]["total"] == 0

    assert await daemon.reload()  # the same file: what was not applied is applied now
    doc = daemon.status.document()
    assert doc["llm"]["total"] == 1 and daemon.info()["reloadError"] is None
    assert doc["warnings"] == []


async def test_a_configuration_that_cannot_be_read_is_refused(
    reloadable: tuple[Daemon, ConfigSource],
) -> None:
    daemon, source = reloadable
    source.error = FileNotFoundError(2, "No such file or directory")  # e.g. a deleted cwd
    assert not await daemon.reload()
    assert daemon.info()["reloadError"] == "cannot read it: no such file or directory"
    assert daemon.status.document()["warnings"][0].startswith("configuration not reloaded")
    source.error = None
    assert await daemon.reload()
    assert daemon.status.document()["warnings"] == []


def test_an_adopted_socket_waits_for_a_stopping_daemons_lock(short_tmp: Path) -> None:
    import socket

    path = short_tmp / "d.sock"
    held = _lock(path)  # a daemon still finishing its requests
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
        with pytest.raises(SocketTaken, match="another simpleaided is already serving"):
            SocketClaim.adopt(sock, path)

        def stop_later() -> None:
            time.sleep(0.3)
            os.close(held)

        threading.Thread(target=stop_later).start()
        started = time.monotonic()
        claim = SocketClaim.adopt(sock, path, wait_seconds=10)
        assert 0.2 < time.monotonic() - started < 10
        claim.release()
        assert path.exists()  # systemd's file: never removed by the daemon


async def test_a_reload_leaves_the_terminals_alone_and_limits_new_ones(
    reloadable: tuple[Daemon, ConfigSource], socket_path: Path
) -> None:
    daemon, source = reloadable
    async with await RpcClient.connect(socket_path) as rpc:
        first = await rpc.call("terminals.create", argv=["cat"])
        source.settings = {"terminals.max_terminals": 1, "terminals.scrollback_bytes": 524288}
        assert await daemon.reload()
        listed = await rpc.call("terminals.list")
        assert [(t["id"], t["exited"]) for t in listed] == [(first["id"], None)]
        assert daemon.terminals.get(first["id"]).scrollback.capacity == 2 * 1024 * 1024
        refused = await rpc.error("terminals.create", argv=["cat"])
        assert refused.code == -32040  # the new limit, for what comes next
        await rpc.call("terminals.input", id=first["id"], text="still here\n")
