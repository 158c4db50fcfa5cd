"""The CLI with odd data: control characters never reach the terminal, artifacts of any size
stream through in constant memory, odd files on disk are listed, not fatal."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.support.sandbox import Sandbox, simpleaide_command
from tests.support.waiting import eventually_blocking

ESC = b"\x1b"
# What a hostile title could hold: ESC (C0), CSI and NEL (C1), a bidi override, a zero-width
# space, a line separator, DEL.
HOSTILE = "\x1b[31mRED\u009b2J\u0085\u202eevil\u200b\u2028\x7f"
RAW_BYTES = [
    ESC,
    "\u009b".encode(),
    "\u0085".encode(),
    "\u202e".encode(),
    "\u200b".encode(),
    "\u2028".encode(),
    b"\x7f",
]


def assert_clean(text: bytes | str, where: str) -> None:
    data = text.encode() if isinstance(text, str) else text
    for raw in RAW_BYTES:
        assert raw not in data, (where, raw, data[:500])


def test_control_characters_are_escaped_on_every_output(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws, "--title", HOSTILE)
    sandbox.ok("steps", "add", run_id, "plan", "--start")
    sandbox.ok("steps", "fail", run_id, "plan", "--message", HOSTILE)
    for args in (
        ("runs", "ls", "--all"),
        ("runs", "show", run_id),
        ("steps", "ls", run_id),
        ("runs", "ls", "--all", "--json"),
        ("runs", "show", run_id, "--json"),
    ):
        result = sandbox.ok(*args)
        assert_clean(result.out, " ".join(args))
        assert_clean(result.err, " ".join(args))
    shown = sandbox.ok("runs", "show", run_id).stdout
    # Line breaks (NEL, U+2028) become spaces on a one-line field; the rest is escaped.
    assert "\\x1b[31mRED\\x9b2J \\u202eevil\\u200b \\x7f" in shown
    # JSON stays JSON, with the same text inside.
    as_json = sandbox.ok("runs", "show", run_id, "--json").json()
    assert as_json["title"] == HOSTILE and as_json["steps"][0]["errorMessage"] == HOSTILE
    # Errors on stderr: a daemon message that quotes what it was given.
    bad = sandbox.run("runs", "create", "--workspace", f"/nonexistent/{HOSTILE}")
    assert bad.code == 1 and "nonexistent" in bad.err
    assert_clean(bad.err, "runs create error")
    bad = sandbox.run("artifacts", "get", run_id, "1", HOSTILE)
    assert bad.code == 1 and "is not an artifact name" in bad.err
    assert_clean(bad.err, "artifacts get error")


def test_odd_files_on_disk_are_listed_escaped_and_marked(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    sandbox.ok("steps", "add", run_id, "plan")
    sandbox.ok("artifacts", "put", run_id, "plan", "ok.txt", "-", input=b"fine")
    folder = ws / ".simpleaide" / "runs" / run_id / "01_plan" / "artifacts"
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for raw in (b"bad\xff.txt", "esc\x1b[31m\u009b.txt".encode()):
            os.close(os.open(raw, os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=dir_fd))
    finally:
        os.close(dir_fd)
    listed = sandbox.ok("artifacts", "ls", run_id)
    assert_clean(listed.out, "artifacts ls")
    lines = {line.split()[1]: line for line in listed.stdout.splitlines()[1:]}
    assert "invalid name" in lines["bad\\xff.txt"]
    assert "invalid name" in lines["esc\\x1b[31m\\x9b.txt"]
    assert "invalid name" not in lines["ok.txt"]
    as_json = sandbox.ok("artifacts", "ls", run_id, "--json")
    assert_clean(as_json.out, "artifacts ls --json")
    assert {a["name"] for a in as_json.json()} >= {"bad\\xff.txt", "esc\x1b[31m\u009b.txt"}
    refused = sandbox.run("artifacts", "get", run_id, "1", "bad\\xff.txt")
    assert refused.code == 1 and "not UTF-8 on disk" in refused.err, refused
    refused = sandbox.run("artifacts", "get", run_id, "1", "esc\x1b[31m\u009b.txt")
    assert refused.code == 1 and "U+001B" in refused.err, refused
    assert_clean(refused.err, "artifacts get error")


def test_an_artifact_on_a_terminal_is_escaped_but_exact_through_a_pipe(
    sandbox: Sandbox,
) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    sandbox.ok("steps", "add", run_id, "plan")
    body = b"line 1\n\x1b]52;c;aGk=\x07 tab\there\n"
    sandbox.ok("artifacts", "put", run_id, "1", "log.txt", "-", input=body)
    assert sandbox.ok("artifacts", "get", run_id, "1", "log.txt").out == body  # a pipe
    # On a terminal (a pseudo-terminal here), the escape sequence is shown, not obeyed.
    import pty

    main_fd, sub_fd = pty.openpty()
    try:
        proc = subprocess.run(
            [simpleaide_command(), "artifacts", "get", run_id, "1", "log.txt"],
            stdout=sub_fd,
            stderr=subprocess.PIPE,
            env=sandbox.env,
            cwd=sandbox.cwd,
            timeout=30,
            check=True,
        )
        os.close(sub_fd)
        sub_fd = -1
        shown = b""
        while True:
            try:
                chunk = os.read(main_fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main_fd)
        if sub_fd >= 0:
            os.close(sub_fd)
    assert proc.returncode == 0
    assert ESC not in shown and b"\x07" not in shown
    assert b"\\x1b]52;c;aGk=\\x07 tab\there" in shown


MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[1:])\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "sys.stderr.write(f'\\nPEAK_KIB={peak}\\n')\n"
    "sys.exit(code)\n"
)


def measured(sandbox: Sandbox, args: list[str], stdin: Path | None, stdout: Path) -> int:
    """Run ``simpleaide ARGS`` and return its peak resident memory in bytes."""
    with open(stdin or os.devnull, "rb") as inp, open(stdout, "wb") as out:
        proc = subprocess.run(
            [sys.executable, "-c", MEASURE, simpleaide_command(), *args],
            stdin=inp,
            stdout=out,
            stderr=subprocess.PIPE,
            env=sandbox.env,
            cwd=sandbox.cwd,
            timeout=120,
            check=False,
        )
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, err
    return int(err.rpartition("PEAK_KIB=")[2].split()[0]) * 1024


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def write_file(path: Path, total: int) -> str:
    """Write ``total`` bytes of varied content to ``path`` quickly; return its sha256."""
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(0, total, len(block)):
            data = (i.to_bytes(8, "big") + block)[: min(len(block), total - i)]
            digest.update(data)
            f.write(data)
    return digest.hexdigest()


def test_a_200_mb_artifact_streams_through_the_cli_in_bounded_memory(sandbox: Sandbox) -> None:
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)  # the daemon runs before anything is measured
    sandbox.ok("steps", "add", run_id, "plan")
    stored = ws / ".simpleaide" / "runs" / run_id / "01_plan" / "artifacts"
    bound = 100 * 1024 * 1024
    sink = sandbox.root / "out.txt"
    big, small = sandbox.root / "big.bin", sandbox.root / "small.bin"
    big_sum = write_file(big, 200 * 1000 * 1000)
    small_sum = write_file(small, 20 * 1000 * 1000 + 7)  # several chunks, the last one short
    # 200 MB from a file and back to stdout; 20 MB from stdin and back to a file (-o).
    peak = measured(sandbox, ["artifacts", "put", run_id, "1", "a.bin", str(big)], None, sink)
    assert peak < bound and sha256_of(stored / "a.bin") == big_sum
    copy = sandbox.root / "copy.bin"
    peak = measured(sandbox, ["artifacts", "get", run_id, "1", "a.bin"], None, copy)
    assert peak < bound and sha256_of(copy) == big_sum
    peak = measured(sandbox, ["artifacts", "put", run_id, "1", "b.bin"], small, sink)
    assert peak < bound and sha256_of(stored / "b.bin") == small_sum
    copy.unlink()
    peak = measured(
        sandbox, ["artifacts", "get", run_id, "1", "b.bin", "-o", str(copy)], None, sink
    )
    assert peak < bound and sha256_of(copy) == small_sum
    listed = json.loads(sandbox.ok("artifacts", "ls", run_id, "--json").out)
    assert {(a["name"], a["size"]) for a in listed} == {
        ("a.bin", 200 * 1000 * 1000),
        ("b.bin", 20 * 1000 * 1000 + 7),
    }
    assert sorted(os.listdir(stored)) == ["a.bin", "b.bin"]  # no staged upload left behind


def test_artifacts_fit_whatever_the_message_limit(sandbox: Sandbox) -> None:
    sandbox.configure("[limits]\nmax_message_bytes = 65536\n")
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    sandbox.ok("steps", "add", run_id, "plan")
    # Smaller than the CLI's chunk, larger than this daemon's messages; and text that JSON
    # escapes six-fold (each control character becomes \u00XX).
    for name, body in (("blob.bin", os.urandom(300_000)), ("ctl.txt", b"\x01" * 30_000)):
        sandbox.ok("artifacts", "put", run_id, "1", name, "-", input=body)
        assert sandbox.ok("artifacts", "get", run_id, "1", name).out == body


def rpc(sock: Path, method: str, **params: object) -> Any:
    """One request to the daemon on a socket of its own; the result."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock))
        s.sendall(
            json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
            + b"\n"
        )
        reply = b""
        while not reply.endswith(b"\n"):
            part = s.recv(1 << 20)
            assert part, "the daemon hung up"
            reply += part
    answer = json.loads(reply)
    assert "result" in answer, answer
    return answer["result"]


def small_messages(sandbox: Sandbox) -> tuple[Path, str]:
    """A daemon whose messages are 64 KiB (so a few MB take many chunks), and a run."""
    sandbox.configure("[limits]\nmax_message_bytes = 65536\n")
    ws = sandbox.workspace()
    run_id = sandbox.new_run(ws)
    sandbox.ok("steps", "add", run_id, "plan")
    return ws / ".simpleaide" / "runs" / run_id / "01_plan" / "artifacts", run_id


def test_a_log_being_appended_to_is_read_up_to_its_size_at_the_start(sandbox: Sandbox) -> None:
    stored, run_id = small_messages(sandbox)
    start = os.urandom(2_000_000)
    (stored / "build.log").write_bytes(start)
    stop = threading.Event()

    def append() -> None:
        while not stop.is_set():
            rpc(
                sandbox.socket,
                "artifacts.put",
                runId=run_id,
                step=1,
                name="build.log",
                text="line\n",
                append=True,
            )

    appender = threading.Thread(target=append)
    appender.start()
    try:
        got = sandbox.ok("artifacts", "get", run_id, "1", "build.log").out
    finally:
        stop.set()
        appender.join()
    # All it held when the read began (lines appended before then included), nothing torn.
    assert got.startswith(start)
    assert (stored / "build.log").read_bytes().startswith(got)
    assert got[len(start) :] == b"line\n" * ((len(got) - len(start)) // 5)


def test_a_failed_get_never_removes_what_it_did_not_create(sandbox: Sandbox) -> None:
    stored, run_id = small_messages(sandbox)
    (stored / "big.bin").write_bytes(os.urandom(20_000_000))
    out_dir = sandbox.root / "out"
    out_dir.mkdir()
    target = out_dir / "precious.txt"
    target.write_bytes(b"precious\n")

    def replace() -> None:
        rpc(sandbox.socket, "artifacts.put", runId=run_id, step=1, name="big.bin", text="new")

    def progress() -> bool:
        return any(p.stat().st_size > 9 for p in out_dir.iterdir())

    # An existing file: the transfer goes to a file of its own; the replace midway fails it.
    proc = subprocess.Popen(
        [simpleaide_command(), "artifacts", "get", run_id, "1", "big.bin", "-o", str(target)],
        stderr=subprocess.PIPE,
        env=sandbox.env,
        cwd=sandbox.cwd,
    )
    try:
        eventually_blocking(progress, 30, interval=0.001)  # the transfer started
        proc.send_signal(signal.SIGSTOP)
        replace()
        proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1 and "changed while it was read" in err.decode()
    assert target.read_bytes() == b"precious\n"
    assert os.listdir(out_dir) == ["precious.txt"]  # its own file is gone again
    # A FIFO (like a device or /dev/stdout) is written directly and never removed.
    (stored / "big.bin").write_bytes(os.urandom(20_000_000))
    fifo = out_dir / "pipe"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [simpleaide_command(), "artifacts", "get", run_id, "1", "big.bin", "-o", str(fifo)],
        stderr=subprocess.PIPE,
        env=sandbox.env,
        cwd=sandbox.cwd,
    )
    try:
        with open(fifo, "rb") as reader:
            assert len(reader.read(100_000)) == 100_000
            replace()
            while reader.read(1 << 20):
                pass
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1 and "changed while it was read" in err.decode()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_an_interrupted_upload_is_told_in_the_users_words(sandbox: Sandbox) -> None:
    stored, run_id = small_messages(sandbox)
    proc = subprocess.Popen(
        [simpleaide_command(), "artifacts", "put", run_id, "1", "up.bin", "-"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=sandbox.env,
        cwd=sandbox.cwd,
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(os.urandom(8 << 20))  # the first 4 MiB piece goes, the next is held
        proc.stdin.flush()

        def staged_piece() -> bool:
            return any(
                p.name.startswith(".upload-") and p.stat().st_size == 4 << 20
                for p in stored.iterdir()
            )

        eventually_blocking(staged_piece, 30, interval=0.001)
        # The step is rerun meanwhile: the staged upload goes with its folder.
        rpc(sandbox.socket, "steps.deleteFrom", runId=run_id, fromStep=1)
        rpc(sandbox.socket, "steps.create", runId=run_id, name="plan")
        _, err = proc.communicate(input=b"rest", timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert "interrupted or replaced by another; run the command again" in err.decode()
    assert "Traceback" not in err.decode()
