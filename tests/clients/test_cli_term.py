"""``simpleaide term``: its pure parts (detach keys, raw mode, finding a terminal, the attach
loop against a scripted daemon), then the installed command on a real PTY against the daemon
it starts, its screen read through ``pyte`` (a headless terminal emulator)."""

from __future__ import annotations

import base64
import json
import os
import pty
import re
import signal
import socket
import termios
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyte
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simpleaide.attach import CLEAR, RESET, Detached, Exited, SignalPipe, _Loop
from simpleaide.commands.term import pick_terminal, state_words
from simpleaide.detachkeys import DetachFilter, key_names, parse_detach_keys
from simpleaide.rawmode import RawMode, looks_raw, raw_attrs
from simpleaide.session import CliError
from tests.support.ptys import CliPty
from tests.support.sandbox import Sandbox
from tests.support.waiting import eventually_blocking

BOUND = 15.0  # seconds: generous, only a failing test waits this long
PROMPT = "sa$ "
SHELL = ["--env", f"PS1={PROMPT}", "--", "bash", "--norc", "--noprofile", "-i"]
ID = re.compile(r"^[0-9a-f]{8}$")


# -- detach keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "sequence"),
    [
        ("ctrl-p,ctrl-q", b"\x10\x11"),
        ("CTRL-A,d", b"\x01d"),
        ("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", b"\x00\x1b\x1c\x1d\x1e\x1f"),
        ("q", b"q"),
        ("~", b"~"),
    ],
)
def test_detach_keys_are_read_as_docker_writes_them(text: str, sequence: bytes) -> None:
    assert parse_detach_keys(text) == sequence
    assert parse_detach_keys(key_names(sequence)) == sequence


@pytest.mark.parametrize("text", ["", "ctrl-", "ctrl-1", "ctrl-pq", "ab", "a,,b", "é", "\x01"])
def test_detach_keys_that_cannot_be_read_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="empty|no such key"):
        parse_detach_keys(text)


def fed(keys: DetachFilter, *chunks: bytes) -> tuple[bytes, bool]:
    """What ``keys`` sends for ``chunks`` typed one after the other, and whether it detached."""
    sent = b""
    for chunk in chunks:
        out, detached = keys.feed(chunk)
        sent += out
        if detached:
            return sent, True
    return sent, False


@pytest.mark.parametrize(
    ("chunks", "sent", "detached"),
    [
        ((b"~.",), b"", True),  # the very first key starts a line
        ((b"ls\r~.",), b"ls\r", True),
        ((b"ls\n~.rest",), b"ls\n", True),  # Ctrl-J ends a line too; what follows is dropped
        ((b"a~.",), b"a~.", False),  # not at the start of a line
        ((b"~~.",), b"~.", False),  # ~~ is one ~, and the line has started
        ((b"~x",), b"~x", False),
        ((b"~\r~.",), b"~\r", True),
        ((b"\r~", b"."), b"\r", True),  # split between two reads
        ((b"\r~",), b"\r", False),  # held back until the next key
        ((b"~", b"~", b"~", b"."), b"~~.", False),
    ],
)
def test_enter_tilde_dot_detaches(chunks: tuple[bytes, ...], sent: bytes, detached: bool) -> None:
    assert fed(DetachFilter(), *chunks) == (sent, detached)


@pytest.mark.parametrize(
    ("chunks", "sent", "detached"),
    [
        ((b"a\x10", b"\x11"), b"a", True),
        ((b"\x10b",), b"\x10b", False),
        ((b"\x10\x10\x11",), b"\x10", True),  # the key that broke the match starts a new one
        ((b"x\x10",), b"x", False),  # held back
        ((b"\r~.",), b"\r", True),  # Enter ~ . still works
        ((b"\x10\r~.",), b"\x10\r", True),
    ],
)
def test_a_detach_sequence_of_ones_own(
    chunks: tuple[bytes, ...], sent: bytes, detached: bool
) -> None:
    assert fed(DetachFilter(parse_detach_keys("ctrl-p,ctrl-q")), *chunks) == (sent, detached)


@given(
    typed=st.lists(st.sampled_from(b"a~.\r\n\x10\x11"), max_size=40).map(bytes),
    cuts=st.lists(st.integers(0, 40), max_size=6),
)
def test_what_is_sent_does_not_depend_on_how_the_keys_were_read(
    typed: bytes, cuts: list[int]
) -> None:
    bounds = sorted({0, len(typed), *(c for c in cuts if c < len(typed))})
    chunks = [typed[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    sequence = b"\x10\x11"
    whole = fed(DetachFilter(sequence), typed)
    assert fed(DetachFilter(sequence), *chunks) == whole


@given(st.lists(st.sampled_from(b"a.\r\n\x11\x1b"), max_size=40).map(bytes))
def test_keys_without_a_tilde_or_the_sequence_go_through_as_typed(typed: bytes) -> None:
    assert fed(DetachFilter(b"\x10\x11"), typed) == (typed, False)


# -- raw mode ------------------------------------------------------------------------------


@pytest.fixture
def tty() -> Iterator[int]:
    """The terminal side of a new PTY."""
    master, slave = pty.openpty()
    yield slave
    os.close(slave)
    os.close(master)


def test_raw_mode_turns_off_echo_line_editing_and_signals_and_restores(tty: int) -> None:
    before = termios.tcgetattr(tty)
    assert not looks_raw(before)
    with RawMode(tty):
        during = termios.tcgetattr(tty)
        assert looks_raw(during)
        assert not during[3] & (termios.ISIG | termios.IEXTEN)
        assert not during[0] & (termios.ICRNL | termios.IXON)
        assert not during[1] & termios.OPOST
        assert during[6][termios.VMIN] == 1
    assert termios.tcgetattr(tty) == before


def test_raw_mode_is_restored_when_an_exception_leaves(tty: int) -> None:
    before = termios.tcgetattr(tty)
    with pytest.raises(RuntimeError), RawMode(tty):
        raise RuntimeError("boom")
    assert termios.tcgetattr(tty) == before


def test_a_terminal_found_raw_is_left_as_it_was_found(tty: int) -> None:
    raw = raw_attrs(termios.tcgetattr(tty))
    termios.tcsetattr(tty, termios.TCSANOW, raw)
    found = termios.tcgetattr(tty)
    assert looks_raw(found)
    with RawMode(tty) as guard:
        assert guard.saved == found
    assert termios.tcgetattr(tty) == found


def test_a_password_prompt_is_not_raw(tty: int) -> None:
    attrs = termios.tcgetattr(tty)
    attrs[3] &= ~termios.ECHO
    assert not looks_raw(attrs)


# -- finding a terminal and showing it -----------------------------------------------------


TERMINALS = [
    {"id": "a1b2c3d4", "name": "bash"},
    {"id": "a1ff0000", "name": "build"},
    {"id": "0badcafe", "name": "a1b2c3d4x"},
    {"id": "cafe0001", "name": "cafe"},
]


@pytest.mark.parametrize(
    ("wanted", "found"),
    [
        ("a1b2c3d4", "a1b2c3d4"),
        ("build", "a1ff0000"),
        ("a1b", "a1b2c3d4"),  # a unique start of an id
        ("0", "0badcafe"),
        ("a1b2c3d4x", "0badcafe"),  # a name
        ("cafe", "cafe0001"),  # the name wins over the start of an id (cafe0001's own)
    ],
)
def test_a_terminal_is_found_by_id_name_or_start_of_id(wanted: str, found: str) -> None:
    assert pick_terminal(TERMINALS, wanted)["id"] == found


def test_an_ambiguous_start_names_the_candidates() -> None:
    with pytest.raises(CliError) as caught:
        pick_terminal(TERMINALS, "a1")
    assert caught.value.message == (
        "'a1' is the start of several terminals' ids: a1b2c3d4 (bash), a1ff0000 (build); "
        "give more of it"
    )


@pytest.mark.parametrize("wanted", ["nope", "", "A1B2"])
def test_an_unknown_terminal_is_said_so(wanted: str) -> None:
    with pytest.raises(CliError, match=f"no terminal '{wanted}' \\(simpleaide term ls"):
        pick_terminal(TERMINALS, wanted)


def test_state_words() -> None:
    assert state_words(None) == "running"
    assert state_words({"code": 0, "signal": None}) == "exited 0"
    assert state_words({"code": None, "signal": "SIGKILL"}) == "killed by SIGKILL"


# -- the attach loop against a scripted daemon ---------------------------------------------


def note(method: str, **params: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params}).encode() + b"\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def scripted(
    script: bytes, attached: dict[str, Any], *, keys: bytes = b"", read_only: bool = False
) -> tuple[Any, bytes, list[dict[str, Any]]]:
    """Run the loop on a socket the daemon's side of which holds ``script``, with ``keys``
    typed (then standard input at its end); its outcome, what it wrote to standard output,
    and the messages it sent."""
    ours, theirs = socket.socketpair()
    keys_read, keys_write = os.pipe()
    out_read, out_write = os.pipe()
    try:
        theirs.sendall(script)
        os.write(keys_write, keys)
        os.close(keys_write)
        with SignalPipe() as signals:
            loop = _Loop(
                ours,
                "t1",
                signals,
                DetachFilter(),
                read_only=read_only,
                stdin=keys_read,
                stdout=out_write,
                size=None,
            )
            try:
                outcome = loop.run(attached, b"", [])
            finally:
                loop.leave()
                ours.close()
        os.close(out_write)
        written = b""
        while chunk := os.read(out_read, 65536):
            written += chunk
        theirs.settimeout(BOUND)
        sent = b""
        while chunk := theirs.recv(65536):
            sent += chunk
        return outcome, written, [json.loads(line) for line in sent.splitlines()]
    finally:
        theirs.close()
        os.close(keys_read)
        os.close(out_read)


def test_output_is_written_in_order_and_acknowledged_once_written() -> None:
    script = (
        note("terminal.output", id="t1", offset=5, data=b64(b"hello"))
        + note("terminal.output", id="other", offset=0, data=b64(b"not ours"))
        + note("terminal.output", id="t1", offset=8, data=b64(b"lo world"))  # overlaps
        + note("terminal.output", id="t1", offset=16, data=b64(b"\r\n"))
        + note("terminal.exited", id="t1", code=3, signal=None)
    )
    attached = {"replay": b64(b"start"), "start": 0, "offset": 5, "exited": None}
    outcome, written, sent = scripted(script, attached)
    assert isinstance(outcome, Exited) and (outcome.code, outcome.signal_name) == (3, None)
    assert written == b"start" + b"hello" + b" world" + b"\r\n"  # not a tty: no clear, no modes
    acks = [m["params"]["offset"] for m in sent if m["method"] == "terminals.ack"]
    assert all("id" not in m for m in sent if m["method"] == "terminals.ack")  # notifications
    assert acks == sorted(acks) and acks[-1] == 18
    assert all(m["params"]["id"] == "t1" for m in sent)


def test_a_replay_notification_starts_the_screen_again_and_is_acknowledged_to_its_end() -> None:
    script = (
        note("terminal.output", id="t1", offset=0, data=b64(b"old"))
        + note(
            "terminal.output",
            id="t1",
            offset=100,
            end=120,
            data=b64(b"x" * 20 + b"\x1b[?25l"),
            replay=True,
        )
        + note("terminal.output", id="t1", offset=120, data=b64(b"new"))
        + note("terminal.exited", id="t1", code=None, signal="SIGKILL")
    )
    attached = {"replay": "", "start": 0, "offset": 0, "exited": None}
    outcome, written, sent = scripted(script, attached)
    assert isinstance(outcome, Exited) and outcome.signal_name == "SIGKILL"
    assert written == b"old" + b"x" * 20 + b"\x1b[?25l" + b"new"
    acks = [m["params"]["offset"] for m in sent if m["method"] == "terminals.ack"]
    assert acks[-1] == 123


def test_keys_go_as_requests_and_a_terminal_already_ended_is_shown_and_left() -> None:
    attached = {"replay": b64(b"bye\r\n"), "start": 0, "offset": 5}
    attached["exited"] = {"code": 0, "signal": None}
    outcome, written, sent = scripted(b"", attached)
    assert isinstance(outcome, Exited) and outcome.code == 0
    assert written == b"bye\r\n"
    outcome, written, sent = scripted(b"", {**attached, "exited": None}, keys=b"ls\r~.")
    assert isinstance(outcome, Detached)
    inputs = [m for m in sent if m["method"] == "terminals.input"]
    assert [base64.b64decode(m["params"]["data"]) for m in inputs] == [b"ls\r"]
    assert all(isinstance(m["id"], int) for m in inputs)  # requests: their replies are read


def test_a_read_only_viewer_sends_no_keys_and_leaves_on_ctrl_c() -> None:
    attached = {"replay": "", "start": 0, "offset": 0, "exited": None}
    outcome, _, sent = scripted(b"", attached, keys=b"echo hi\r\x03", read_only=True)
    assert isinstance(outcome, Detached)
    assert [m for m in sent if m["method"] != "terminals.ack"] == []


def test_clearing_and_resetting_are_what_a_terminal_understands() -> None:
    screen = pyte.Screen(20, 3)
    stream = pyte.ByteStream(screen)
    stream.feed(b"one\r\ntwo" + CLEAR + b"x")
    assert [line.rstrip() for line in screen.display] == ["x", "", ""]
    stream.feed(b"\x1b[?25l" + RESET + b"y")
    assert [line.rstrip() for line in screen.display] == ["y", "", ""]
    assert not screen.cursor.hidden


# -- the command on a real PTY -------------------------------------------------------------


class Pty(CliPty):
    """A ``CliPty`` that knows the test shell's prompt."""

    def until_prompts(self, count: int) -> None:
        self.until(lambda: self.text.count(PROMPT.rstrip()) >= count, f"{count} prompts")


@pytest.fixture
def ptys() -> Iterator[list[Pty]]:
    """Closes the PTYs a test opened (the client killed first if it still runs)."""
    opened: list[Pty] = []
    yield opened
    for opened_pty in opened:
        opened_pty.close()


@pytest.fixture
def open_pty(sandbox: Sandbox, ptys: list[Pty]) -> Callable[..., Pty]:
    def start(*args: str, **options: Any) -> Pty:
        started = Pty(sandbox, *args, **options)
        ptys.append(started)
        return started

    return start


def listed(sandbox: Sandbox) -> list[dict[str, Any]]:
    return sandbox.ok("term", "ls", "--json").json()  # type: ignore[no-any-return]


def in_foreground(session: int, command: str) -> bool:
    """Whether ``command`` runs in the foreground of the terminal whose session leader is
    ``session`` (its process group is the terminal's foreground group)."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue  # exited meanwhile
        comm = stat[stat.index(b"(") + 1 : stat.rindex(b")")].decode()
        fields = stat[stat.rindex(b")") + 2 :].split()
        pgrp, sid, tpgid = int(fields[2]), int(fields[3]), int(fields[5])
        if sid == session and comm == command and pgrp == tpgid:
            return True
    return False


def attached(sandbox: Sandbox) -> int:
    """How many clients are attached to the one terminal (none before it exists)."""
    return sum(t["attached"] for t in listed(sandbox))


def test_a_new_shell_types_interrupts_and_detaches(sandbox: Sandbox, open_pty: Any) -> None:
    term = open_pty("term", "new", "--name", "work", *SHELL)
    term.until_prompts(1)
    assert looks_raw(term.attrs())  # raw while attached
    term.type(b"echo hello\r")
    term.until_line("hello")
    (work,) = listed(sandbox)
    term.type(b"sleep 100\r")
    # Ctrl-C once sleep runs in the foreground (before, bash itself would get the SIGINT).
    term.until(lambda: in_foreground(work["pid"], "sleep"), "sleep in the foreground")
    term.type(b"\x03")  # Ctrl-C: a byte for the program, a SIGINT in its terminal
    term.until_prompts(3)
    term.type(b"echo after-$?\r")
    term.until_line("after-130")
    (work,) = listed(sandbox)
    assert work["name"] == "work" and work["cwd"] == str(sandbox.cwd)  # the current folder
    assert work["attached"] == 1 and work["exited"] is None
    term.type(b"\r~.")
    assert term.wait() == 0
    assert term.attrs() == term.before
    assert f"detached from work ({work['id']}); re-attach: simpleaide term attach work" in (
        term.lines
    )
    # It keeps running, and shows what it printed to the next client.
    (work,) = listed(sandbox)
    assert work["exited"] is None and work["attached"] == 0
    again = open_pty("term", "attach", work["id"][:3])
    again.until_line("after-130")
    assert "hello" in again.lines
    again.type(b"exit 7\r")
    assert again.wait() == 7
    assert "[work exited with code 7]" in again.lines
    assert again.attrs() == again.before
    (work,) = listed(sandbox)
    assert work["exited"] == {"code": 7, "signal": None}


def test_resizing_the_window_resizes_the_terminal(sandbox: Sandbox, open_pty: Any) -> None:
    term = open_pty("term", "new", *SHELL, cols=80, rows=24)
    term.until_prompts(1)
    term.type(b"stty size\r")
    term.until_line("24 80")
    term.resize(100, 30)  # the kernel sends SIGWINCH to the client, its terminal's owner
    term.until(lambda: [t["cols"] for t in listed(sandbox)] == [100], "the new size")
    term.type(b"clear; stty size\r")
    term.until_line("30 100")
    assert listed(sandbox)[0]["rows"] == 30


def test_sigterm_to_the_client_restores_the_terminal(sandbox: Sandbox, open_pty: Any) -> None:
    term = open_pty("term", "new", "--name", "keep", *SHELL)
    term.until_prompts(1)
    assert term.attrs() != term.before
    term.proc.send_signal(signal.SIGTERM)
    assert term.wait() == 143
    assert term.attrs() == term.before
    (keep,) = listed(sandbox)
    assert (
        f"simpleaide: SIGTERM: detached from keep ({keep['id']}); "
        "re-attach: simpleaide term attach keep\r\n"
    ).encode() in term.output
    assert keep["exited"] is None and keep["attached"] == 0  # it keeps running


def test_sighup_to_the_client_restores_the_terminal(sandbox: Sandbox, open_pty: Any) -> None:
    term = open_pty("term", "new", *SHELL)
    term.until_prompts(1)
    term.proc.send_signal(signal.SIGHUP)
    assert term.wait() == 129
    assert term.attrs() == term.before


def test_a_program_that_ends_while_attached_gives_its_status(
    sandbox: Sandbox, open_pty: Any
) -> None:
    term = open_pty("term", "new", "--name", "doomed", *SHELL)
    term.until_prompts(1)
    term.type(b"kill -KILL $$\r")
    assert term.wait() == 128 + 9
    assert "[doomed killed by SIGKILL]" in term.lines
    assert term.attrs() == term.before
    # One that ends before the attach catches it: the replay shows what it printed.
    quick = open_pty("term", "new", "--name", "quick", "--", "sh", "-c", "echo bye; exit 4")
    assert quick.wait() == 4
    assert "bye" in quick.lines and "[quick exited with code 4]" in quick.lines


def test_tilde_escapes(sandbox: Sandbox, open_pty: Any) -> None:
    term = open_pty("term", "new", "--", "cat")
    term.until(lambda: attached(sandbox) == 1, "the attach")
    term.type(b"~~a\r")  # one ~ (cat's terminal echoes it, then cat prints it)
    term.until(lambda: term.lines[:2] == ["~a", "~a"], "~a twice")
    term.type(b"~b\r")  # a ~ before another key is sent with it
    term.until(lambda: term.lines[:4] == ["~a", "~a", "~b", "~b"], "~b twice")
    term.type(b"x~.\r")  # not at the start of a line: text
    term.until(lambda: term.lines[:6] == ["~a", "~a", "~b", "~b", "x~.", "x~."], "x~. twice")
    term.type(b"~.")
    assert term.wait() == 0
    assert term.attrs() == term.before
    assert "detached from cat (" in term.text


def test_detach_keys_of_ones_own(sandbox: Sandbox, open_pty: Any) -> None:
    term = open_pty("term", "new", "--detach-keys", "ctrl-p,ctrl-q", "--", "cat", "-v")
    term.until(lambda: attached(sandbox) == 1, "the attach")
    term.type(b"a\x10b\r")  # ctrl-p then not ctrl-q: both are sent
    term.until(lambda: "a^Pb" in term.lines, "a^Pb")
    term.type(b"\x10\x11")
    assert term.wait() == 0
    assert term.attrs() == term.before


def test_a_read_only_viewer_sees_but_does_not_type(sandbox: Sandbox, open_pty: Any) -> None:
    term_id = sandbox.ok("term", "new", "-d", "--name", "shared", *SHELL).stdout.strip()
    assert ID.match(term_id)
    writer = open_pty("term", "attach", "shared")
    writer.until_prompts(1)
    viewer = open_pty("term", "attach", "--read-only", term_id, cols=60, rows=10)
    viewer.until_prompts(1)
    assert b"read-only" in viewer.output
    (shared,) = listed(sandbox)
    assert (shared["attached"], shared["readOnly"], shared["cols"]) == (2, 1, 80)
    clients = sandbox.ok("term", "ls").stdout.splitlines()[1]
    assert "2 (1 read-only)" in clients
    viewer.type(b"echo from-viewer\r")
    writer.type(b"echo from-writer\r")
    viewer.until_line("from-writer")
    assert "from-viewer" not in writer.text + viewer.text
    viewer.type(b"\x03")  # Ctrl-C leaves a read-only viewer
    assert viewer.wait() == 0
    assert viewer.attrs() == viewer.before
    assert b"re-attach: simpleaide term attach shared --read-only\r\n" in viewer.output
    writer.type(b"\r~.")
    assert writer.wait() == 0


def test_a_flood_of_output_is_acknowledged_and_arrives_whole(
    sandbox: Sandbox, open_pty: Any
) -> None:
    # The daemon never gives up waiting for an interactive client here: without its
    # acknowledgements the program would stay blocked and the test time out.
    sandbox.configure("[terminals]\nstall_seconds = 3600\n")
    term = open_pty("term", "new", "--", "sh", "-c", "seq 1 300000; echo done-$((6*7))")
    assert term.wait() == 0
    assert "done-42" in term.lines
    assert term.output.count(b"\r\n") >= 300000


def test_the_daemon_going_away_restores_the_terminal(sandbox: Sandbox, open_pty: Any) -> None:
    term = open_pty("term", "new", *SHELL)
    term.until_prompts(1)
    info = sandbox.ok("daemon", "status", "--json").json()
    os.kill(info["pid"], signal.SIGKILL)
    assert term.wait() == 3
    assert term.attrs() == term.before
    assert "simpleaide: the daemon closed the connection" in term.text


def test_a_terminal_left_raw_is_warned_about(sandbox: Sandbox, ptys: list[Pty]) -> None:
    master, slave = pty.openpty()
    raw = raw_attrs(termios.tcgetattr(slave))
    os.close(master)
    os.close(slave)
    term = Pty(sandbox, "term", "new", "--", "sh", "-c", "exit 0", attrs=raw)
    ptys.append(term)
    assert term.wait() == 0
    assert b"warning: this terminal was already in raw mode" in term.output
    assert b"run reset" in term.output
    assert term.attrs() == term.before  # left as it was found


# -- ls, kill, rename, and mistakes --------------------------------------------------------


def test_ls_kill_and_rename(sandbox: Sandbox) -> None:
    assert sandbox.ok("term", "ls").err == "no terminals (simpleaide term new starts one)\n"
    sleeper = sandbox.ok("term", "new", "-d", "--name", "nap", "--", "sleep", "100").stdout
    three = sandbox.ok("term", "new", "-d", "--", "sh", "-c", "exit 3").stdout.strip()
    killed = sandbox.ok("term", "new", "-d", "--", "sh", "-c", "kill -KILL $$").stdout.strip()

    def ended() -> bool:
        return sum(t["exited"] is not None for t in listed(sandbox)) == 2

    eventually_blocking(ended, BOUND)
    table = sandbox.ok("term", "ls").stdout.splitlines()
    assert table[0].split() == [
        "ID", "NAME", "COMMAND", "FOLDER", "STATE", "CLIENTS", "SIZE", "CREATED"
    ]  # fmt: skip
    rows = {line.split()[0]: line for line in table[1:]}
    assert len(rows) == 3
    nap = rows[sleeper.strip()]
    assert re.search(r"\bnap\s+sleep 100\s+\S+\s+running\s+0\s+80x24\s+\d{4}-", nap), nap
    assert "exited 3" in rows[three] and "sh -c 'exit 3'" in rows[three]
    assert "killed by SIGKILL" in rows[killed]

    renamed = sandbox.ok("term", "rename", "nap", "siesta")
    assert renamed.stdout == f"renamed nap ({sleeper.strip()}) to siesta\n"
    taken = sandbox.run("term", "rename", three, "siesta")
    assert taken.code == 1
    assert taken.err == f"simpleaide: a terminal is already named 'siesta' ({sleeper.strip()})\n"

    gone = sandbox.ok("term", "kill", "siesta")
    assert gone.stdout == f"siesta ({sleeper.strip()}) has ended (SIGHUP) and is removed\n"
    removed = sandbox.ok("term", "kill", three[:4])
    assert removed.stdout == f"removed sh ({three}), which had exited with code 3\n"
    assert [t["id"] for t in listed(sandbox)] == [killed]


def test_kill_with_a_signal_that_does_not_end(sandbox: Sandbox) -> None:
    term_id = sandbox.ok("term", "new", "-d", "--", "sleep", "100").stdout.strip()
    stopped = sandbox.ok("term", "kill", term_id, "--signal", "sigstop")
    assert stopped.stdout == f"sent SIGSTOP to sleep ({term_id})\n"
    ended = sandbox.ok("term", "kill", term_id, "-s", "9")
    assert ended.stdout == f"sleep ({term_id}) has ended (SIGKILL) and is removed\n"
    assert listed(sandbox) == []


def test_mistakes_are_one_line_each(sandbox: Sandbox) -> None:
    missing = sandbox.run("term", "attach", "nope")
    assert (missing.code, missing.err) == (
        1,
        "simpleaide: no terminal 'nope' (simpleaide term ls lists them)\n",
    )
    no_folder = sandbox.run("term", "new", "--cwd", str(sandbox.root / "absent"))
    assert no_folder.code == 1
    assert no_folder.err == (
        f"simpleaide: cannot start a terminal in {sandbox.root / 'absent'}: it does not exist\n"
    )
    no_program = sandbox.run("term", "new", "-d", "--", "no-such-program-here")
    assert (no_program.code, no_program.err.count("\n")) == (1, 1)
    assert "command not found: no-such-program-here" in no_program.err
    for args in (
        ["term", "attach", "x", "--detach-keys", "ctrl-1"],
        ["term", "kill", "x", "--signal", "SEGV"],
        ["term", "new", "--env", "NOEQUALS"],
    ):
        usage = sandbox.run(*args)
        assert usage.code == 2, usage
        assert usage.err.splitlines()[-1].startswith("simpleaide term "), usage


def test_an_ambiguous_start_of_an_id_lists_the_candidates(sandbox: Sandbox) -> None:
    # Ids are random: among 17 terminals two start with the same hex digit, often sooner.
    seen: dict[str, str] = {}
    while True:
        term_id = sandbox.ok("term", "new", "-d", "--", "sleep", "100").stdout.strip()
        if term_id[0] in seen:
            break
        seen[term_id[0]] = term_id
    start = term_id[0]
    ambiguous = sandbox.run("term", "kill", start)
    assert ambiguous.code == 1
    candidates = [t for t in listed(sandbox) if t["id"].startswith(start)]  # oldest first
    assert [t["id"] for t in candidates] == [seen[start], term_id]
    named = ", ".join(f"{t['id']} ({t['name']})" for t in candidates)
    assert ambiguous.err == (
        f"simpleaide: '{start}' is the start of several terminals' ids: {named}; give more of it\n"
    )
    assert len(listed(sandbox)) == len(seen) + 1  # nothing was killed


def test_help_explains_the_detach_keys(sandbox: Sandbox) -> None:
    for command in ("new", "attach"):
        shown = sandbox.ok("term", command, "--help").stdout
        assert "Enter ~ ." in shown and "~ types one ~" in shown
        assert "--detach-keys" in shown
    assert "--read-only" in sandbox.ok("term", "attach", "--help").stdout
    assert "HUP" in sandbox.ok("term", "kill", "--help").stdout
