"""The event stream's ids across a restart of a real daemon process, read by a real SSE
client (httpx, streaming): every id above those sent before, by this daemon or the one it
replaced, and a reconnecting client (``Last-Event-ID``, whatever it holds) gets the current
document at once, with an id above the one it saw."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from simpleaide.client import Client

# Well under the stream's heartbeat (5 s): "at once", not the next periodic send.
AT_ONCE_SECONDS = 3.0


@dataclass
class Event:
    name: str
    id: str | None
    data: Any


def events(response: httpx.Response) -> Iterator[Event]:
    """The events of a Server-Sent Events answer, as an ``EventSource`` reads them."""
    name: str = "message"
    event_id: str | None = None
    data: list[str] = []
    for line in response.iter_lines():
        if not line:
            if data:
                yield Event(name, event_id, orjson.loads("\n".join(data)))
            name, data = "message", []
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "id":
            event_id = value  # kept for the events after, as EventSource does
        elif field == "data":
            data.append(value)


def first_status(response: httpx.Response, deadline: float) -> Event:
    """The stream's first ``status`` event, which must come before ``deadline``."""
    for event in events(response):
        assert time.monotonic() < deadline, "the document was not sent at once"
        if event.name == "status":
            return event
    raise AssertionError("the stream ended without a document")


@dataclass
class DaemonProcess:
    """A ``simpleaided`` process serving the shim on a fixed port, started again at will."""

    home: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def socket(self) -> Path:
        return self.home / "d.sock"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMPLEAIDE_", "XDG_"))}
        env.update(HOME=str(self.home), XDG_STATE_HOME=str(self.home / "state"))
        argv = [sys.executable, "-m", "simpleaided", "--socket", str(self.socket)]
        argv += ["--http", f"127.0.0.1:{self.port}"]
        self.proc = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not self.socket.exists() or not self.ping():
            assert self.proc.poll() is None, "the daemon exited"
            assert time.monotonic() < deadline, "the daemon did not answer"
            time.sleep(0.05)
        self.token = self.call("http.open")["token"]

    def ping(self) -> bool:
        try:
            with Client(str(self.socket), timeout=5) as client:
                return client.ping()
        except OSError:
            return False

    def call(self, method: str, **params: Any) -> Any:
        with Client(str(self.socket), timeout=10) as client:
            return client.call(method, **params)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)

    def stream(self, http: httpx.Client, last_event_id: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        return http.stream("GET", f"{self.url}/api/status/stream", headers=headers)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def daemon_process() -> Iterator[DaemonProcess]:
    home = Path(tempfile.mkdtemp(prefix="sa-", dir="/tmp"))
    process = DaemonProcess(home, free_port())
    try:
        yield process
    finally:
        process.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_event_ids_keep_increasing_across_a_restart(daemon_process: DaemonProcess) -> None:
    daemon = daemon_process
    workspace = daemon.home / "ws"
    workspace.mkdir()
    daemon.start()
    with httpx.Client(timeout=10) as http:
        with daemon.stream(http) as response:
            assert response.status_code == 200
            stream = events(response)
            first = next(e for e in stream if e.name == "status")
            daemon.call("runs.create", workspace=str(workspace))
            changed = next(e for e in stream if e.name == "status" and e.data["runs"]["total"])
        assert first.id is not None and changed.id is not None
        assert first.data["runs"]["total"] == 0
        assert int(changed.id) > int(first.id)
        seen = int(changed.id)

        daemon.stop()
        daemon.start()

        # A new client, which keeps the ids it saw but does not say so: still above them.
        with daemon.stream(http) as response:
            after = first_status(response, time.monotonic() + AT_ONCE_SECONDS)
        assert after.id is not None and int(after.id) > seen
        assert after.data["runs"]["total"] == 1  # the run, read back from the disk

        # A reconnecting client (EventSource sends the last id it saw): the document at once,
        # with an id above that one, whatever it was.
        for last in (str(seen), str(2**50), "0", "", "not-a-number", "-3", "9" * 40):
            with daemon.stream(http, last_event_id=last) as response:
                assert response.status_code == 200
                event = first_status(response, time.monotonic() + AT_ONCE_SECONDS)
            assert event.data["runs"]["total"] == 1, last
            assert event.id is not None and int(event.id) > seen, (last, event.id)
            if last == str(2**50):
                assert int(event.id) > 2**50
            assert int(event.id) < 2**53  # a JavaScript client reads it exactly


def test_ids_on_one_stream_increase_after_a_last_event_id_from_before(
    daemon_process: DaemonProcess,
) -> None:
    """A client whose last id came from a run with a higher clock (before a reboot): the
    stream's ids go on above it, one update after another."""
    daemon = daemon_process
    workspace = daemon.home / "ws"
    workspace.mkdir()
    daemon.start()
    before_reboot = 2**50
    with httpx.Client(timeout=10) as http, daemon.stream(http, str(before_reboot)) as response:
        stream = events(response)
        ids = []
        for total in (0, 1, 2):
            if total:
                daemon.call("runs.create", workspace=str(workspace))
            for event in stream:
                if event.name == "status":
                    ids.append(event.id)
                    if event.data["runs"]["total"] == total:
                        break
    numbers = [int(i) for i in ids if i is not None]
    assert len(numbers) == len(ids) >= 3 and numbers == sorted(set(numbers)), ids
    assert numbers[0] > before_reboot
