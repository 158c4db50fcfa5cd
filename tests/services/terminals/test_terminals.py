"""Terminals on real PTYs with a real shell, driven over the daemon's real socket."""

from __future__ import annotations

import base64
import errno
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from simpleaided.app.daemon import Daemon
from tests.support.daemon import running_daemon
from tests.support.rpc import RpcClient
from tests.support.terminals import SHELL, TerminalClient
from tests.support.waiting import eventually

PROMPT = "PROMPT> "
QUIET_SHELL = {"PS1": PROMPT, "PS2": "", "HISTFILE": "/dev/null"}


@pytest.fixture
async def rpc(daemon: Daemon, socket_path: Path) -> AsyncIterator[RpcClient]:
    async with await RpcClient.connect(socket_path) as c:
        yield c


async def new_terminal(rpc: RpcClient, argv: list[str] | None = None, **params: object) -> str:
    created = await rpc.call("terminals.create", argv=argv or SHELL, env=QUIET_SHELL, **params)
    return str(created["id"])


async def attached_shell(socket_path: Path, rpc: RpcClient, **attach: object) -> TerminalClient:
    terminal_id = await new_terminal(rpc)
    client = await TerminalClient.connect(socket_path, terminal_id)
    await client.attach(**attach)
    await client.until_output(PROMPT.encode())
    return client


def children() -> set[int]:
    """The pids of this process's children (the in-process daemon's programs)."""
    found = set()
    me = os.getpid()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat[stat.rfind(b")") + 2 :].split()[1]) == me:
                found.add(int(name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"


async def test_a_shell_on_a_real_pty_with_job_control(
    daemon: Daemon, rpc: RpcClient, socket_path: Path
) -> None:
    term = await attached_shell(socket_path, rpc, cols=97, rows=31)
    terminal = daemon.terminals.get(term.id)

    def in_foreground() -> bool:  # a job holds the terminal, not the shell
        assert terminal._master is not None
        return os.tcgetpgrp(terminal._master) != terminal.pid

    await term.type("tty; stty size\n")
    await term.until(lambda c: re.search(rb"/dev/pts/\d+\r\n31 97\r\n", c.output))
    # A background job, then jobs lists it.
    await term.type("sleep 100 &\njobs\n")
    await term.until(lambda c: re.search(rb"\[1\]\+  Running +sleep 100 &", c.output))
    # Ctrl-C interrupts a foreground sleep: the prompt comes back and $? says SIGINT.
    await term.type("sleep 100\n")
    await eventually(in_foreground, 5)
    await term.type("\x03")
    await term.type("echo status=$?\n")
    await term.until_output(b"status=130")
    # Ctrl-Z suspends one, fg resumes it (in the foreground again: Ctrl-C reaches it).
    await term.type("sleep 50\n")
    await eventually(in_foreground, 5)
    await term.type("\x1a")
    await term.until(lambda c: re.search(rb"Stopped +sleep 50", c.output))
    await term.type("fg\n")
    await term.until_output(b"sleep 50\r\n")
    await eventually(in_foreground, 5)
    await term.type("\x03")
    await term.type("echo resumed=$?\n")
    await term.until_output(b"resumed=130")
    await term.aclose()


async def test_the_environment_names_the_terminal(rpc: RpcClient, socket_path: Path) -> None:
    term = await attached_shell(socket_path, rpc)
    await term.type('echo "$TERM $SIMPLEAIDE_TERMINAL $PWD"\n')
    await term.until_output(f"xterm-256color {term.id} {os.path.expanduser('~')}".encode())
    listed = await rpc.call("terminals.list")
    assert [t["id"] for t in listed] == [term.id]
    assert listed[0]["attached"] == 1 and listed[0]["exited"] is None
    assert listed[0]["argv"] == SHELL and listed[0]["name"] == "bash"
    await term.aclose()


async def test_output_goes_on_while_detached_and_is_replayed(
    rpc: RpcClient, socket_path: Path
) -> None:
    terminal_id = await new_terminal(
        rpc, ["bash", "-c", "for i in $(seq 1 300); do echo $i; sleep 0.005; done; sleep 30"]
    )
    first = await TerminalClient.connect(socket_path, terminal_id)
    await first.attach()
    await first.until_output(b"\n5\r\n")
    await first.aclose()  # gone: the connection closed
    await anyio.sleep(3)  # the loop runs on with nobody attached...
    second = await TerminalClient.connect(socket_path, terminal_id)
    reply = await second.attach()
    numbers = [int(n) for n in bytes(second.output).split()]
    assert numbers == list(range(1, 301))  # ...and nothing was lost: every number, in order
    assert reply["start"] == 0
    await second.aclose()


async def test_a_replay_of_a_cut_ring_is_every_number_it_holds_in_order(
    isolated_env: Path, socket_path: Path
) -> None:
    async with running_daemon(
        socket_path, isolated_env / "state", **{"terminals.scrollback_bytes": 512 * 1024}
    ):
        async with await RpcClient.connect(socket_path) as rpc:
            terminal_id = await new_terminal(rpc, ["bash", "-c", "seq 1 200000; sleep 30"])
            term = await TerminalClient.connect(socket_path, terminal_id)
            for _ in range(100):
                reply = await term.attach()
                if b"\n200000\r\n" in term.output:
                    break
                await anyio.sleep(0.05)
            assert reply["start"] > 0  # the ring overflowed
            numbers = [int(n) for n in bytes(term.output).split()]
            assert numbers[-1] == 200000
            assert numbers == list(range(numbers[0], 200001))
            assert len(term.output) <= 512 * 1024
            await term.aclose()


async def test_a_reattached_full_screen_program_is_redrawn(
    rpc: RpcClient, socket_path: Path, short_tmp: Path
) -> None:
    text = short_tmp / "poem.txt"
    text.write_text("".join(f"line {i} of the poem\n" for i in range(1, 200)))
    terminal_id = await new_terminal(rpc, ["less", str(text)], cols=60, rows=20)
    first = await TerminalClient.connect(socket_path, terminal_id, cols=60, rows=20)
    await first.attach(cols=60, rows=20)
    await first.until(lambda c: "line 19 of the poem" in c.text())
    await first.type(" ")  # the next page
    await first.until(lambda c: "line 38 of the poem" in c.text())
    await first.aclose()
    # A new client, with a screen of its own, sees what less shows now: not the first page.
    second = await TerminalClient.connect(socket_path, terminal_id, cols=60, rows=20)
    await second.attach(cols=60, rows=20)
    assert (1049 << 5) in second.screen.mode  # pyte keeps private modes shifted by 5
    await second.until(lambda c: c.screen.display[0].startswith("line 20 of the poem"))
    assert "line 38 of the poem" in second.text()
    await second.type("q")
    await second.until_exited()
    await second.aclose()


async def test_utf8_written_byte_by_byte_arrives_whole(rpc: RpcClient, socket_path: Path) -> None:
    text = "héllo €uro 😀 東京"
    octal = "".join(f"\\{b:03o}" for b in text.encode())
    script = (
        f"for b in $(printf '%s' '{octal}' | sed 's/\\\\/ /g'); "
        'do printf "\\\\$b"; sleep 0.02; done; echo; sleep 5'
    )
    terminal_id = await new_terminal(rpc, ["bash", "-c", script])
    term = await TerminalClient.connect(socket_path, terminal_id)
    await term.attach()
    pieces: list[bytes] = []
    original = term._take

    async def take(message: dict[str, object]) -> None:
        params = message["params"]
        assert isinstance(params, dict)
        if message["method"] == "terminal.output":
            pieces.append(base64.b64decode(params["data"]))
        await original(message)

    term._take = take  # type: ignore[method-assign]
    await term.until_output(b"\r\n")
    assert bytes(term.output).decode() == text + "\r\n"
    assert len(pieces) > 5  # it came in many notifications...
    for piece in pieces:
        piece.decode()  # ...each of whole characters
    await term.aclose()


async def test_a_program_that_prints_a_lot_and_exits_loses_nothing(
    rpc: RpcClient, socket_path: Path
) -> None:
    terminal_id = await new_terminal(
        rpc, ["bash", "-c", "head -c 1000000 /dev/zero | tr '\\0' x; exit 7"]
    )
    term = await TerminalClient.connect(socket_path, terminal_id)
    await term.attach()
    exited = await term.until_exited()
    assert exited == {"id": terminal_id, "code": 7, "signal": None}
    assert term.start == 0
    assert bytes(term.output) == b"x" * 1_000_000  # every byte, before the exit
    assert term.exited_at_offset == 1_000_000
    listed = await rpc.call("terminals.list")
    assert listed[0]["exited"] == {"code": 7, "signal": None}
    # Exited, it is still listed and attachable: its scrollback replays.
    again = await TerminalClient.connect(socket_path, terminal_id)
    reply = await again.attach()
    assert reply["exited"] == {"code": 7, "signal": None}
    assert len(again.output) > 0
    assert (await again.until_exited())["code"] == 7
    await again.aclose()
    await term.aclose()


async def test_a_program_killed_by_a_signal_reports_it(rpc: RpcClient, socket_path: Path) -> None:
    terminal_id = await new_terminal(rpc, ["sleep", "100"])
    term = await TerminalClient.connect(socket_path, terminal_id)
    await term.attach()
    await rpc.call("terminals.kill", id=terminal_id, signal="KILL")
    assert await term.until_exited() == {"id": terminal_id, "code": None, "signal": "SIGKILL"}
    await rpc.call("terminals.kill", id=terminal_id)  # exited: this removes it
    assert await rpc.call("terminals.list") == []
    await term.aclose()


async def test_kill_hangs_up_then_terminates_and_removes(rpc: RpcClient, socket_path: Path) -> None:
    # A program that ignores the hang-up ends with TERM, after the grace.
    terminal_id = await new_terminal(
        rpc, ["bash", "-c", "trap '' HUP; echo ready; sleep 100 & wait"]
    )
    term = await TerminalClient.connect(socket_path, terminal_id)
    await term.attach()
    await term.until_output(b"ready")
    await term.aclose()
    started = time.monotonic()
    await rpc.call("terminals.kill", id=terminal_id, remove=True)
    await eventually(lambda: _no_terminals(rpc), 5)
    assert time.monotonic() - started >= 1.9  # HUP was ignored; TERM came after the grace


async def test_two_clients_the_latest_active_sets_the_size(
    rpc: RpcClient, socket_path: Path
) -> None:
    a = await attached_shell(socket_path, rpc, cols=100, rows=30)
    b = await TerminalClient.connect(socket_path, a.id)
    await b.attach(cols=70, rows=20)
    await a.type("stty size\n")  # a typed: its size again
    await a.until_output(b"30 100")
    await b.call("terminals.resize", cols=90, rows=25)
    await b.type("stty size\n")
    await a.until_output(b"25 90")
    await b.aclose()  # detached: the other client's size comes back
    await a.type("stty size\n")
    await a.until(lambda c: bytes(c.output).count(b"30 100") >= 2)
    await a.aclose()


async def test_a_read_only_viewer_cannot_type_or_resize(rpc: RpcClient, socket_path: Path) -> None:
    term = await attached_shell(socket_path, rpc)
    viewer = await TerminalClient.connect(socket_path, term.id)
    reply = await viewer.attach(readOnly=True, cols=10, rows=5)
    assert reply["readOnly"] is True and (reply["cols"], reply["rows"]) == (80, 24)
    typed = await viewer.rpc.error("terminals.input", id=term.id, text="echo no\n")
    assert typed.code == -32030 and "read-only" in typed.message
    resized = await viewer.rpc.error("terminals.resize", id=term.id, cols=10, rows=5)
    assert resized.code == -32030
    await term.type("echo seen-by-both\n")
    await viewer.until_output(b"seen-by-both\r\n")
    listed = await rpc.call("terminals.list")
    assert (listed[0]["attached"], listed[0]["readOnly"]) == (2, 1)
    await viewer.aclose()
    await term.aclose()


async def test_flow_control_bounds_memory_and_ctrl_c_comes_back_fast(
    daemon: Daemon, rpc: RpcClient, socket_path: Path, short_tmp: Path
) -> None:
    big = short_tmp / "big.txt"
    with big.open("wb") as f:
        line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"\n"
        block = line * (1024 * 1024 // len(line))
        for _ in range(200):
            f.write(block)
    term = await attached_shell(socket_path, rpc)
    term.keep = False
    term.delay = 0.02  # a slow reader: at most one chunk every 20 ms
    rss_before = _rss()
    await term.type(f"cat {big}\n")
    await term.until(lambda c: c.received > 3_000_000, timeout=30)
    grown = _rss() - rss_before
    terminal = daemon.terminals.get(term.id)
    assert terminal.scrollback.end - term.offset < 1024 * 1024  # the program waits for us
    started = time.monotonic()
    await term.type("\x03")
    await term.until(lambda c: PROMPT.encode() in bytes(c.output)[-200:])
    took = time.monotonic() - started
    assert took < 0.25, f"the prompt came back after {took:.3f} s"
    assert term.received < 20_000_000  # the 200 MB never flowed: cat was stopped
    assert grown < 32 * 1024 * 1024, f"memory grew by {grown} bytes"
    await term.aclose()


async def test_a_read_only_viewer_that_reads_nothing_never_stalls_the_program(
    daemon: Daemon, rpc: RpcClient, socket_path: Path
) -> None:
    terminal_id = await new_terminal(
        rpc, ["bash", "-c", "head -c 20000000 /dev/zero | tr '\\0' y; echo; echo DONE; sleep 30"]
    )
    viewer = await TerminalClient.connect(socket_path, terminal_id)
    await viewer.attach(readOnly=True)  # then reads nothing for a while
    scrollback = daemon.terminals.get(terminal_id).scrollback
    await eventually(lambda: b"DONE" in scrollback.read(0, 1 << 30), 20)
    # Reading again, it is brought back with a replay of the scrollback and then follows.
    await viewer.until(lambda c: c.replays >= 1 and b"DONE" in c.output, timeout=20)
    await viewer.aclose()


async def test_an_interactive_client_that_stops_acknowledging_is_no_longer_waited_for(
    isolated_env: Path, socket_path: Path
) -> None:
    async with running_daemon(
        socket_path, isolated_env / "state", **{"terminals.stall_seconds": 0.5}
    ) as daemon:
        async with await RpcClient.connect(socket_path) as rpc:
            terminal_id = await new_terminal(
                rpc, ["bash", "-c", "head -c 5000000 /dev/zero | tr '\\0' z; echo END; sleep 30"]
            )
            silent = await TerminalClient.connect(socket_path, terminal_id)
            silent.ack = False
            await silent.attach(cols=80, rows=24)
            await silent.until(lambda c: c.received >= 256 * 1024)
            scrollback = daemon.terminals.get(terminal_id).scrollback
            await eventually(lambda: b"END" in scrollback.read(0, 1 << 30), 15)
            await silent.aclose()


async def test_bad_input_is_refused_and_nothing_is_spawned(
    rpc: RpcClient, socket_path: Path, short_tmp: Path
) -> None:
    before = children()
    (short_tmp / "file").write_text("x")
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"cwd": str(short_tmp / "missing")}, -32602, "no such folder"),
        ({"cwd": str(short_tmp / "file")}, -32602, "not a folder"),
        ({"cwd": "relative/path"}, -32602, "absolute"),
        ({"argv": []}, -32602, "argv: must be a list of 1 to 256 items, not 0 items"),
        ({"argv": [""]}, -32602, "cannot be empty"),
        ({"argv": ["no-such-program-here"]}, -32602, "command not found"),
        ({"argv": ["echo", "a\x00b"]}, -32602, "NUL"),
        ({"name": "bad\x1bname"}, -32602, "U+001B"),
        ({"cols": 0}, -32602, "cols: must be an integer from 1 to 1000, not 0"),
        ({"env": {"BAD-NAME": "x"}}, -32602, "'BAD-NAME' is not an environment variable name"),
    ]
    for params, code, words in cases:
        error = await rpc.error("terminals.create", **params)
        assert error.code == code, (params, error)
        assert words in str(error.message) + str(error.data), (params, error)
    assert children() == before
    unknown = await rpc.error("terminals.attach", id="00000000")
    assert unknown.code == -32001 and "no terminal" in unknown.message
    forged = await rpc.error("terminals.attach", id="../../etc")
    assert forged.code == -32602


async def test_limits_are_refused_with_32040(isolated_env: Path, socket_path: Path) -> None:
    async with running_daemon(
        socket_path,
        isolated_env / "state",
        **{"terminals.max_terminals": 2, "terminals.max_input_bytes": 1024},
    ):
        async with await RpcClient.connect(socket_path) as rpc:
            first = await new_terminal(rpc, ["sleep", "30"])
            await new_terminal(rpc, ["sleep", "30"])
            before = children()
            third = await rpc.error("terminals.create", argv=["sleep", "30"])
            assert third.code == -32040 and "terminals.max_terminals" in third.message
            assert children() == before
            big = await rpc.error("terminals.input", id=first, text="x" * 1025)
            assert big.code == -32040 and "1024-byte limit" in big.message
            taken = await rpc.error("terminals.rename", id=first, name="sleep-2")
            assert taken.code == -32011


async def test_the_daemon_stop_hangs_up_every_terminal(
    isolated_env: Path, socket_path: Path, short_tmp: Path
) -> None:
    heard = short_tmp / "heard"
    async with running_daemon(
        socket_path, isolated_env / "state", **{"terminals.stop_grace_seconds": 0.5}
    ) as daemon:
        async with await RpcClient.connect(socket_path) as rpc:
            # A shell with a background job (a process group of its own)...
            term = await attached_shell(socket_path, rpc)
            await term.type("sleep 300 & echo job=$!\n")
            await term.until(lambda c: re.search(rb"job=(\d+)", c.output))
            match = re.search(rb"job=(\d+)", term.output)
            assert match is not None
            job = int(match.group(1))
            # ...a program that says when it hears the hang-up...
            listening = await new_terminal(
                rpc,
                [
                    "bash",
                    "-c",
                    f"trap 'echo HUP >> {heard}; exit' HUP; echo ready; "
                    "while :; do sleep 0.05; done",
                ],
            )
            # ...and one that ignores HUP and TERM: only KILL ends it.
            stubborn = await new_terminal(
                rpc, ["bash", "-c", "trap '' HUP TERM; echo ready; while :; do sleep 0.05; done"]
            )
            for terminal_id in (listening, stubborn):
                watcher = await TerminalClient.connect(socket_path, terminal_id)
                await watcher.attach()
                await watcher.until_output(b"ready")
                await watcher.aclose()
            pids = [t["pid"] for t in await rpc.call("terminals.list")]
            await term.aclose()
        started = time.monotonic()
        daemon.request_stop()
    took = time.monotonic() - started
    assert heard.read_text() == "HUP\n"
    for pid in [job, *pids]:
        assert not alive(pid), pid
    assert took < 0.5 * 2 + 1.5, took


async def _no_terminals(rpc: RpcClient) -> bool:
    return not await rpc.call("terminals.list")


def _ignores_hup(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGHUP - 1)))
    return False


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_without_pidfds_the_exit_is_still_reported(
    rpc: RpcClient, socket_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(pid: int, flags: int = 0) -> int:
        raise OSError(errno.ENOSYS, "pidfd_open")

    monkeypatch.setattr(os, "pidfd_open", refused)  # a kernel before 5.3, or a sandbox
    terminal_id = await new_terminal(rpc, ["bash", "-c", "echo bye; exit 4"])
    term = await TerminalClient.connect(socket_path, terminal_id)
    await term.attach()
    assert (await term.until_exited())["code"] == 4
    assert b"bye" in term.output
    await term.aclose()


async def test_the_stop_ends_even_with_a_viewer_that_reads_nothing(
    isolated_env: Path, socket_path: Path
) -> None:
    started = 0.0
    async with running_daemon(
        socket_path, isolated_env / "state", **{"terminals.stop_grace_seconds": 0.2}
    ) as daemon:
        async with await RpcClient.connect(socket_path) as rpc:
            terminal_id = await new_terminal(rpc, ["bash", "-c", "yes | head -c 50000000"])
            viewer = await TerminalClient.connect(socket_path, terminal_id)
            await viewer.attach(readOnly=True)  # and never reads again: its socket fills up
            await anyio.sleep(1)
            started = time.monotonic()
            daemon.request_stop()
    assert time.monotonic() - started < 5
    await viewer.aclose()


async def test_input_waiting_when_the_program_ends_is_dropped_without_spinning(
    daemon: Daemon, rpc: RpcClient
) -> None:
    # A program that reads nothing: typed bytes wait in the daemon once the PTY is full.
    terminal_id = await new_terminal(rpc, ["bash", "-c", "stty -icanon; sleep 1"])
    for _ in range(12):
        await rpc.call("terminals.input", id=terminal_id, text="x" * 60000)
    terminal = daemon.terminals.get(terminal_id)
    assert terminal._pending_input  # the PTY's input queue is full: the rest waits
    await eventually(lambda: terminal.finished, 5)
    cpu = time.process_time()
    await anyio.sleep(0.5)
    assert time.process_time() - cpu < 0.2  # the loop is idle: nothing spins on the PTY
    assert not terminal._pending_input


async def test_what_a_program_leaves_behind_is_hung_up_too(
    daemon: Daemon, rpc: RpcClient, socket_path: Path
) -> None:
    # The program ends at HUP; the child it started ignores HUP and lives on, holding nothing.
    terminal_id = await new_terminal(
        rpc,
        [
            "bash",
            "-c",
            "(trap '' HUP; exec sleep 1000) </dev/null >/dev/null 2>&1 & "
            "echo child=$!; exec sleep 1000",
        ],
    )
    term = await TerminalClient.connect(socket_path, terminal_id)
    await term.attach()
    await term.until(lambda c: re.search(rb"child=(\d+)", c.output))
    match = re.search(rb"child=(\d+)", term.output)
    assert match is not None
    child = int(match.group(1))
    await eventually(lambda: _ignores_hup(child), 5)  # its trap is set
    await rpc.call("terminals.kill", id=terminal_id, remove=True)
    assert (await term.until_exited())["signal"] == "SIGHUP"
    assert alive(child)  # it ignored the hang-up...
    await eventually(lambda: not alive(child), 5)  # ...and TERM, after the grace, ended it
    await term.aclose()


async def test_a_removed_terminal_is_not_kept_by_the_connection_that_attached_it(
    daemon: Daemon, rpc: RpcClient
) -> None:
    import gc
    import weakref

    terminal_id = await new_terminal(rpc, ["true"])
    await rpc.call("terminals.attach", id=terminal_id)
    kept = weakref.ref(daemon.terminals.get(terminal_id))
    await eventually(lambda: kept() is not None and kept().finished, 5)  # type: ignore[union-attr]
    await rpc.call("terminals.detach", id=terminal_id)
    await rpc.call("terminals.kill", id=terminal_id)  # exited: removed
    gc.collect()
    assert kept() is None  # the connection is still open; the terminal is gone


async def test_a_viewer_behind_when_the_terminal_is_removed_still_gets_everything(
    rpc: RpcClient, socket_path: Path
) -> None:
    terminal_id = await new_terminal(rpc, ["bash", "-c", "head -c 8000000 /dev/zero | tr '\\0' v"])
    viewer = await TerminalClient.connect(socket_path, terminal_id)
    viewer.keep = False
    await viewer.attach(readOnly=True)  # then reads nothing until the program has ended
    await eventually(lambda: _exited_in(rpc, terminal_id), 20)
    await rpc.call("terminals.kill", id=terminal_id)  # removed from the list at once...
    assert await rpc.call("terminals.list") == []
    exited = await viewer.until_exited(timeout=20)  # ...and the viewer still hears the end
    assert exited["code"] == 0
    await viewer.aclose()


async def _exited_in(rpc: RpcClient, terminal_id: str) -> bool:
    listed = {t["id"]: t for t in await rpc.call("terminals.list")}
    return listed[terminal_id]["exited"] is not None


async def test_attaching_at_the_same_size_still_asks_for_a_redraw(
    rpc: RpcClient, socket_path: Path
) -> None:
    terminal_id = await new_terminal(
        rpc,
        ["bash", "-c", "trap 'echo redraw' WINCH; echo ready; while :; do sleep 0.05; done"],
        cols=80,
        rows=24,
    )
    first = await TerminalClient.connect(socket_path, terminal_id)
    await first.attach(cols=80, rows=24)
    await first.until_output(b"ready")
    await first.aclose()
    again = await TerminalClient.connect(socket_path, terminal_id)
    await again.attach(cols=80, rows=24)  # the size it has: a nudge is the only SIGWINCH
    await again.until_output(b"redraw")
    await again.aclose()


async def test_every_chunk_holds_whole_characters_even_when_cut_by_size(
    rpc: RpcClient, socket_path: Path
) -> None:
    terminal_id = await new_terminal(
        rpc, ["bash", "-c", "printf '€%.0s' $(seq 1 200000); echo; echo END; sleep 30"]
    )
    term = await TerminalClient.connect(socket_path, terminal_id)
    term.keep = False
    pieces: list[bytes] = []
    original = term._take

    async def take(message: dict[str, Any]) -> None:
        if message["method"] == "terminal.output":
            pieces.append(base64.b64decode(message["params"]["data"]))
        await original(message)

    term._take = take  # type: ignore[method-assign]
    await term.attach()
    await anyio.sleep(0.5)  # behind: large chunks come at once
    await term.until(lambda c: b"END" in c.output, timeout=20)
    assert any(len(p) >= 100_000 for p in pieces)
    for piece in pieces:
        piece.decode()  # whole characters each
    await term.aclose()


async def test_names_that_read_as_ids_or_options_and_huge_environments_are_refused(
    rpc: RpcClient,
) -> None:
    before = children()
    for name, words in (("0123abcd", "looks like a terminal's id"), ("-x", "start with '-'")):
        error = await rpc.error("terminals.create", argv=["true"], name=name)
        assert error.code == -32602 and words in str(error.data), error
    huge = {f"V{i}": "x" * 32000 for i in range(200)}  # 6.4 MB: more than exec takes
    error = await rpc.error("terminals.create", argv=["true"], env=huge)
    assert error.code == -32602 and "larger than the system allows" in error.message
    assert children() == before


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except FileNotFoundError:
        return None


async def test_an_exited_program_keeps_its_pid_until_the_terminal_is_removed(
    rpc: RpcClient,
) -> None:
    """Signals go to the session by the program's pid: held as a zombie while the terminal
    is listed, no other process can lead a session of that id and be signalled instead."""
    terminal_id = await new_terminal(rpc, ["true"])
    pid = (await rpc.call("terminals.list"))[0]["pid"]
    await eventually(lambda: _exited_in(rpc, terminal_id), 5)
    assert _state(pid) == "Z"
    await rpc.call("terminals.kill", id=terminal_id)  # removed: now reaped
    await eventually(lambda: _state(pid) is None, 5)


async def test_a_removed_terminal_closes_when_its_last_client_behind_leaves(
    daemon: Daemon, rpc: RpcClient, socket_path: Path
) -> None:
    terminal_id = await new_terminal(rpc, ["bash", "-c", "head -c 8000000 /dev/zero | tr '\\0' w"])
    terminal = daemon.terminals.get(terminal_id)
    viewer = await TerminalClient.connect(socket_path, terminal_id)
    await viewer.attach(readOnly=True)  # reads nothing: behind when the program ends
    await eventually(lambda: terminal.finished, 20)
    await rpc.call("terminals.kill", id=terminal_id)
    assert await rpc.call("terminals.list") == []
    assert terminal._master is not None  # kept open for the client still behind...
    await viewer.aclose()
    await eventually(lambda: terminal._master is None, 5)  # ...and closed once it left
    assert not daemon.terminals._retiring


async def test_a_default_name_follows_the_naming_rules(rpc: RpcClient, short_tmp: Path) -> None:
    odd = short_tmp / "0123abcd"  # a program whose name reads as an id
    odd.symlink_to("/bin/true")
    created = await rpc.call("terminals.create", argv=[str(odd)])
    assert created["name"] == "terminal"


async def test_a_kernel_without_waitid_on_pidfds_still_reports_the_exit(
    rpc: RpcClient, socket_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waitid = os.waitid

    def without_p_pidfd(idtype: int, ident: int, options: int) -> os.waitid_result | None:
        if idtype == os.P_PIDFD:
            raise OSError(errno.EINVAL, "Invalid argument")  # Linux 5.3
        return waitid(idtype, ident, options)

    monkeypatch.setattr(os, "waitid", without_p_pidfd)
    terminal_id = await new_terminal(rpc, ["bash", "-c", "echo bye; exit 6"])
    term = await TerminalClient.connect(socket_path, terminal_id)
    await term.attach()
    assert (await term.until_exited())["code"] == 6
    await term.aclose()
