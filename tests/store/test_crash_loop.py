"""A crash loop: random transitions against a real ``simpleaided`` process, ``kill -9`` at
random moments, restart, and check what the store holds each time.

Checked after every restart: no torn file (every ``metadata.json`` and ``step.json`` parses),
no lost acknowledgement (what the daemon acknowledged is on disk), no leftover (temp files,
half-deleted folders, half-built runs), no finished run with an open step, and totals in
``status.get`` equal to what is on disk. The seed is printed on failure; set
``SIMPLEAIDE_CRASH_SEED`` to replay one.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.daemon import daemon_env
from tests.support.waiting import eventually_blocking

ROUNDS = 12
BUDGET_SECONDS = 45.0  # the whole test; each round is well under a second or two
RUN_ID = re.compile(r"\d{8}T\d{9}Z-[0-9a-f]{8}")
STEP_DIR = re.compile(r"(\d{2})_([a-z0-9][a-z0-9_-]{0,63})")
LEFTOVER = re.compile(r"\.(tmp|deleting|creating)-[0-9a-f]{16}")
FINISHED = {"completed", "failed", "cancelled"}
OPEN = {"pending", "running"}
CLOSED = "closed"  # a step the run's end closed: failed or skipped, either is right


class Gone(Exception):
    """The daemon went away mid-request (it was killed)."""


class Client:
    """Newline-delimited JSON-RPC over the socket, blocking; one request at a time."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        try:
            self.sock.connect(str(path))
        except OSError:
            self.sock.close()
            raise
        self.buffer = b""
        self.ids = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """The whole reply (``result`` or ``error``); ``Gone`` if the daemon died."""
        self.ids += 1
        message = {"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params}
        try:
            self.sock.sendall(json.dumps(message).encode() + b"\n")
            while b"\n" not in self.buffer:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    raise Gone()
                self.buffer += chunk
        except OSError as exc:
            raise Gone() from exc
        line, _, self.buffer = self.buffer.partition(b"\n")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def result(self, method: str, **params: Any) -> Any:
        reply = self.call(method, **params)
        assert "error" not in reply, (method, params, reply)
        return reply["result"]

    def close(self) -> None:
        self.sock.close()


@dataclass
class Expected:
    """What the daemon acknowledged about one run."""

    status: str
    steps: dict[int, str] = field(default_factory=dict)
    artifacts: dict[tuple[int, str], bytes] = field(default_factory=dict)


@dataclass
class World:
    """The acknowledged state of every run, and the one request that may be half done."""

    workspace: Path
    runs: dict[str, Expected] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    in_flight: str | None = None  # the run of the request sent but not answered
    created_in_flight: bool = False  # a runs.create was in flight (its id is unknown)
    acknowledged: int = 0

    def finish(self, run_id: str, status: str) -> None:
        expected = self.runs[run_id]
        expected.status = status
        for number, step in expected.steps.items():
            if step in OPEN:
                expected.steps[number] = CLOSED


def start_daemon(home: Path, sock: Path, workspace: Path, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "simpleaided", "--socket", str(sock)]
    argv += ["--workspace", str(workspace), "--log-level", "warning"]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, env=daemon_env(home), stdout=out, stderr=out)

    def checked() -> bool:
        assert proc.poll() is None, log.read_text()[-4000:]
        try:
            client = Client(sock)
            try:
                # After a crash the stores are checked once the daemon answers: what
                # this test then checks is what that walk leaves.
                return bool(client.call("daemon.info").get("result", {}).get("storesChecked"))
            finally:
                client.close()
        except (OSError, Gone):
            return False

    # A process we do not control: polling is the only signal.
    eventually_blocking(checked, 20, interval=0.02)
    return proc


def read_json(path: Path) -> dict[str, Any]:
    """A record that must parse (a torn file fails here)."""
    try:
        record: dict[str, Any] = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise AssertionError(f"{path} does not parse: {exc}") from None
    return record


def on_disk(workspace: Path) -> dict[str, tuple[dict[str, Any], dict[int, dict[str, Any]]]]:
    """Every run on disk with its steps; fails on any torn record or leftover."""
    runs_dir = workspace / ".simpleaide" / "runs"
    found = {}
    for entry in runs_dir.iterdir():
        assert not LEFTOVER.fullmatch(entry.name), f"leftover {entry}"
        assert RUN_ID.fullmatch(entry.name), f"unexpected {entry}"
        assert (entry / "metadata.json").is_file(), f"half-built run {entry}"
        run = read_json(entry / "metadata.json")
        steps = {}
        for sub in entry.iterdir():
            assert not LEFTOVER.fullmatch(sub.name), f"leftover {sub}"
            if not STEP_DIR.fullmatch(sub.name):
                assert sub.name == "metadata.json", f"unexpected {sub}"
                continue
            step = read_json(sub / "step.json")
            for item in [*sub.iterdir(), *(sub / "artifacts").iterdir()]:
                assert not LEFTOVER.fullmatch(item.name), f"leftover {item}"
            if step["number"] <= run["stepCount"]:
                steps[step["number"]] = step
        if run["status"] in FINISHED:
            still_open = [s["number"] for s in steps.values() if s["status"] in OPEN]
            assert not still_open, f"run {entry.name} is {run['status']}, steps open: {still_open}"
        found[entry.name] = (run, steps)
    return found


def check(world: World, client: Client) -> None:
    """Everything acknowledged is on disk, and the daemon's totals match the disk."""
    disk = on_disk(world.workspace)
    for run_id, expected in world.runs.items():
        if run_id == world.in_flight:
            continue  # that request may or may not have been applied
        assert run_id in disk, f"acknowledged run {run_id} is lost"
        run, steps = disk[run_id]
        assert run["status"] == expected.status, (run_id, run, expected)
        assert run["stepCount"] == len(expected.steps), (run_id, run, expected)
        for number, status in expected.steps.items():
            actual = steps[number]["status"]
            if status == CLOSED:
                assert actual in ("failed", "skipped"), (run_id, number, actual)
            else:
                assert actual == status, (run_id, number, actual, expected)
        for (number, name), data in expected.artifacts.items():
            folder = world.workspace / ".simpleaide/runs" / run_id / steps[number]["name"]
            folder = folder.with_name(f"{number:02d}_{steps[number]['name']}")
            assert (folder / "artifacts" / name).read_bytes() == data, (run_id, number, name)
    for run_id in world.deleted:
        if run_id != world.in_flight:
            assert run_id not in disk, f"deleted run {run_id} is back"
    # A run created by the request in flight may exist; anything else unknown may not.
    unknown = set(disk) - set(world.runs)
    assert len(unknown) <= (1 if world.created_in_flight else 0), unknown

    status = client.result("status.get", workspace=str(world.workspace))
    assert status["runs"]["total"] == len(disk), (status["runs"], len(disk))
    listed = client.result("runs.list", workspace=str(world.workspace), limit=1000)["runs"]
    assert {r["id"]: r["status"] for r in listed} == {k: v[0]["status"] for k, v in disk.items()}

    # Take the disk as the truth from here on (for the in-flight run, and a created one).
    for run_id, (run, steps) in disk.items():
        expected = world.runs.setdefault(run_id, Expected(run["status"]))
        expected.status = run["status"]
        expected.steps = {n: s["status"] for n, s in steps.items()}
        expected.artifacts = {k: v for k, v in expected.artifacts.items() if k[0] in steps}
        if run_id == world.in_flight:
            # Its last request (an artifact put, say) may have been applied: learn the files.
            folder = world.workspace / ".simpleaide" / "runs" / run_id
            for number, name in list(expected.artifacts):
                path = folder / f"{number:02d}_{steps[number]['name']}" / "artifacts" / name
                if path.exists():
                    expected.artifacts[(number, name)] = path.read_bytes()
                else:
                    del expected.artifacts[(number, name)]
    for run_id in set(world.runs) - set(disk):
        del world.runs[run_id]
    world.in_flight = None
    world.created_in_flight = False


def workload(world: World, client: Client, rng: random.Random) -> None:
    """Random transitions until the daemon dies; the model follows each acknowledgement."""
    try:
        while True:
            step(world, client, rng)
    except Gone:
        return


def step(world: World, client: Client, rng: random.Random) -> None:
    active = [r for r, e in world.runs.items() if e.status not in FINISHED]
    if not active or rng.random() < 0.12:
        world.created_in_flight = True
        run = client.result("runs.create", workspace=str(world.workspace))
        world.runs[run["id"]] = Expected("pending")
        world.created_in_flight = False
        world.acknowledged += 1
        return
    pick = rng.random()
    run_id = rng.choice(active if pick < 0.95 else list(world.runs))
    expected = world.runs[run_id]
    world.in_flight = run_id
    open_steps = [n for n, s in expected.steps.items() if s in OPEN]
    running = [n for n, s in expected.steps.items() if s == "running"]
    pending = [n for n, s in expected.steps.items() if s == "pending"]
    choice = rng.random()
    if choice < 0.25 and len(expected.steps) < 20:
        start = rng.random() < 0.6
        name = rng.choice(["plan", "code", "test", "review"])
        reply = client.call("steps.create", runId=run_id, name=name, start=start)
        if "result" in reply:
            expected.steps[reply["result"]["step"]["number"]] = "running" if start else "pending"
            expected.status = reply["result"]["run"]["status"]
    elif choice < 0.35 and pending:
        number = rng.choice(pending)
        reply = client.call("steps.start", runId=run_id, step=number)
        if "result" in reply:
            expected.steps[number] = "running"
            expected.status = reply["result"]["run"]["status"]
    elif choice < 0.55 and running:
        number = rng.choice(running)
        method = rng.choice(["steps.complete", "steps.skip", "steps.fail"])
        params: dict[str, Any] = {}
        if method == "steps.fail":
            params = {"errorMessage": "red", "failRun": rng.random() < 0.5}
        reply = client.call(method, runId=run_id, step=number, **params)
        if "result" in reply:
            expected.steps[number] = reply["result"]["step"]["status"]
            if reply["result"]["run"]["status"] in FINISHED:
                world.finish(run_id, reply["result"]["run"]["status"])
    elif choice < 0.65 and expected.steps:
        # Large enough that a kill often lands inside its write.
        size = rng.choice([100, 30_000, 2_000_000])
        data = rng.randbytes(size // 2).hex().encode()
        number = rng.choice(list(expected.steps))
        name = rng.choice(["log.txt", "diff.patch"])
        reply = client.call(
            "artifacts.put", runId=run_id, step=number, name=name, text=data.decode()
        )
        if "result" in reply:
            expected.artifacts[(number, name)] = data
    elif choice < 0.72 and expected.steps:
        number = rng.choice(list(expected.steps))
        reply = client.call("steps.deleteFrom", runId=run_id, fromStep=number)
        if "result" in reply:
            expected.status = "pending"
            expected.steps = {n: s for n, s in expected.steps.items() if n < number}
            expected.artifacts = {k: v for k, v in expected.artifacts.items() if k[0] < number}
    elif choice < 0.80:
        force = bool(open_steps) and rng.random() < 0.7
        reply = client.call("runs.complete", runId=run_id, force=force)
        if "result" in reply:
            world.finish(run_id, "completed")
        else:
            assert not (force and expected.status == "running"), reply
    elif choice < 0.86:
        reply = client.call("runs.fail", runId=run_id, errorMessage="broken")
        if "result" in reply:
            world.finish(run_id, "failed")
    elif choice < 0.93:
        reply = client.call("runs.cancel", runId=run_id)
        if "result" in reply:
            world.finish(run_id, "cancelled")
    else:
        reply = client.call("runs.delete", runId=run_id, force=True)
        if "result" in reply:
            del world.runs[run_id]
            world.deleted.add(run_id)
    world.acknowledged += 1
    world.in_flight = None


def test_kill_9_at_random_moments_loses_nothing_and_leaves_nothing(short_tmp: Path) -> None:
    seed = int(os.environ.get("SIMPLEAIDE_CRASH_SEED") or time.time_ns() % 1_000_000)
    print(f"crash loop seed {seed} (SIMPLEAIDE_CRASH_SEED={seed} replays it)")
    rng = random.Random(seed)
    home = short_tmp / "home"
    home.mkdir()
    workspace = short_tmp / "ws"
    workspace.mkdir()
    sock = short_tmp / "d.sock"
    log = short_tmp / "daemon.log"
    world = World(workspace)
    began = time.monotonic()
    kills = 0
    proc = start_daemon(home, sock, workspace, log)
    try:
        for _ in range(ROUNDS):
            assert time.monotonic() - began < BUDGET_SECONDS, f"over budget (seed {seed})"
            client = Client(sock)
            try:
                check(world, client)
            finally:
                client.close()
            worker_client = Client(sock)
            worker = threading.Thread(target=workload, args=(world, worker_client, rng))
            worker.start()
            time.sleep(rng.uniform(0.01, 0.4))  # the random moment of the kill
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kills += 1
            worker.join(10)
            assert not worker.is_alive()
            worker_client.close()
            proc = start_daemon(home, sock, workspace, log)
        client = Client(sock)
        try:
            check(world, client)
        finally:
            client.close()
        # Finally a clean stop: it must leave the store just as whole.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0, log.read_text()[-4000:]
        on_disk(workspace)
    except BaseException:
        print(f"seed {seed}; the daemons' log ends with:\n{log.read_text()[-6000:]}")
        raise
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    repairs = [line for line in log.read_text().splitlines() if "WARNING" in line]
    print(f"{world.acknowledged} acknowledged, {kills} kills, {len(repairs)} repair(s) logged")
    print("\n".join(repairs[:40]))
    assert kills == ROUNDS
    assert world.acknowledged > ROUNDS, "the workload hardly ran: the kills prove little"
