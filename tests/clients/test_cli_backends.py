"""``simpleaide vault``, ``db`` and ``llm`` against the daemon the CLI starts itself."""

from __future__ import annotations

import os
import pty
import select
import signal
import time

from tests.support.llm_servers import OLLAMA_TAGS, LlmServer, Route, refused_url
from tests.support.sandbox import Sandbox, simpleaide_command

FAST_VAULT = """
[vault]
kdf_memory_kib = 8192
kdf_iterations = 1
kdf_lanes = 1
failed_unlock_delay_seconds = 0.05
"""
PASS = b"a long enough passphrase\n"


def test_the_vault_from_the_command_line(sandbox: Sandbox) -> None:
    # The wait after a wrong passphrase must outlast starting `simpleaide vault status` (tens
    # of ms, more on a loaded machine) for the status to still show it.
    sandbox.configure(FAST_VAULT.replace("= 0.05", "= 1.0"))
    assert "not set up" in sandbox.ok("vault", "status").stdout
    assert (
        sandbox.ok("vault", "init", input=PASS * 2).stdout
        == "vault unlocked (locks in 15m; 0 secrets)\n"
    )
    assert sandbox.ok("vault", "set", "api-key", input=b"sk-123\n").stdout == "stored api-key\n"
    assert sandbox.ok("vault", "set", "api-key", input=b"sk-456\n").stdout == "replaced api-key\n"
    assert sandbox.ok("vault", "get", "api-key").stdout == "sk-456\n"
    assert sandbox.ok("vault", "ls").stdout == "api-key\n"
    assert "Vault 🔓" in sandbox.ok("status").stdout

    assert sandbox.ok("vault", "lock").stdout == "vault locked\n"
    locked = sandbox.run("vault", "get", "api-key")
    assert locked.code == 1 and "the vault is locked" in locked.err and "sk-" not in locked.err
    wrong = sandbox.run("vault", "unlock", input=b"not it\n")
    assert wrong.code == 1 and wrong.err.strip() == "simpleaide: wrong passphrase"
    assert "next unlock attempt waits" in sandbox.ok("vault", "status").stdout
    unlocked = sandbox.ok("vault", "unlock", "--ttl", "60", input=PASS).stdout
    assert unlocked == "vault unlocked (locks in 1m; 1 secret)\n"

    new = b"another passphrase\n"
    assert sandbox.ok("vault", "passwd", input=PASS + new * 2).stdout == "passphrase changed\n"
    sandbox.ok("vault", "lock")
    assert sandbox.run("vault", "unlock", input=PASS).code == 1
    sandbox.ok("vault", "unlock", input=b"another passphrase\n")
    assert sandbox.ok("vault", "rm", "api-key").stdout == "deleted api-key\n"
    missing = sandbox.run("vault", "get", "api-key")
    assert missing.code == 1
    assert missing.err == "simpleaide: no secret with that name (see simpleaide vault ls)\n"


def test_secrets_are_never_taken_from_the_command_line(sandbox: Sandbox) -> None:
    for argv in (
        ["vault", "unlock", "--passphrase", "x"],
        ["vault", "set", "name", "value"],
        ["vault", "init", "secret"],
    ):
        result = sandbox.run(*argv)
        assert result.code == 2, result
    empty = sandbox.run("vault", "init")  # stdin is not a terminal, and empty
    assert empty.code == 1 and "on stdin, got end of input" in empty.err


def test_a_new_passphrase_from_stdin_is_confirmed_by_a_second_line(sandbox: Sandbox) -> None:
    sandbox.configure(FAST_VAULT)
    differ = sandbox.run("vault", "init", input=b"first passphrase\nsecond passphrase\n")
    assert differ.code == 1, differ
    assert differ.err.strip() == "simpleaide: the two entries differ; nothing changed"
    assert "not set up" in sandbox.ok("vault", "status").stdout
    once = sandbox.run("vault", "init", input=PASS)  # no second line to confirm it
    assert once.code == 1 and "got end of input" in once.err, once
    assert "not set up" in sandbox.ok("vault", "status").stdout

    sandbox.ok("vault", "init", input=PASS * 2)
    passwd = sandbox.run("vault", "passwd", input=PASS + b"new passphrase 1\nnew passphrase 2\n")
    assert passwd.code == 1 and "differ; nothing changed" in passwd.err, passwd
    sandbox.ok("vault", "lock")
    sandbox.ok("vault", "unlock", input=PASS)  # the old one still opens it


def test_every_vault_answer_has_json(sandbox: Sandbox) -> None:
    sandbox.configure(FAST_VAULT)
    status = sandbox.ok("vault", "init", "--json", input=PASS * 2).json()
    assert status["state"] == "unlocked" and status["secrets"] == 0
    assert sandbox.ok("vault", "ls", "--json").json() == {"names": []}


def test_db_status_shows_the_default_sqlite_database(sandbox: Sandbox) -> None:
    workspace = sandbox.workspace()
    sandbox.configure(f'workspaces = ["{workspace}"]\n[db]\nprobe_seconds = 0.2\n')
    sandbox.ok("daemon", "start")
    for _ in range(50):  # the first probe runs in the background, just after start-up
        shown = sandbox.ok("db", "status", "--json").json()
        if shown["connected"]:
            break
        time.sleep(0.1)
    assert shown["type"] == "sqlite" and shown["readOnly"] is False
    lines = sandbox.ok("db", "status").stdout.splitlines()
    assert lines[:5] == [
        "database:  connected",
        "type:      sqlite",
        f"file:      {workspace}/.simpleaide/dev.sqlite3",
        "env:       DEV",
        "read-only: no",
    ]
    assert "DB ✅" in sandbox.ok("status").stdout


def test_llm_status_is_a_table_and_probe_probes(sandbox: Sandbox) -> None:
    with LlmServer({"/api/tags": Route(body=OLLAMA_TAGS)}) as server:
        sandbox.configure(
            f'[llm]\nprobe_seconds = 600\n[[llm.backends]]\nname = "local"\nkind = "ollama"\n'
            f'url = "{server.url}"\nmodel = "qwen2.5-coder:7b"\n'
            f'[[llm.backends]]\nname = "gone"\nkind = "openai"\nurl = "{refused_url()}"\n'
        )
        lines = sandbox.ok("llm", "status", "--probe").stdout.splitlines()
        assert lines[0].split() == ["NAME", "KIND", "STATE", "LATENCY", "MODELS", "ERROR"]
        assert lines[1].split()[:3] == ["local", "ollama", "online"]
        assert "llama3:latest, qwen2.5-coder:7b" in lines[1]
        assert lines[2].split()[:3] == ["gone", "openai", "OFF"]
        assert lines[2].endswith("connection refused")
        assert lines[3] == "1/2 online"
        assert "LLM 1/2" in sandbox.ok("status").stdout
    assert sandbox.ok("llm", "status", "--json").json()["total"] == 2


def test_no_llm_backends_is_said_plainly(sandbox: Sandbox) -> None:
    assert sandbox.ok("llm", "status").stdout == (
        "no LLM backends configured ([[llm.backends]] in the config file)\n"
    )


def on_a_terminal(sandbox: Sandbox, args: list[str], answers: list[bytes]) -> tuple[int, bytes]:
    """Run ``simpleaide ARGS`` with a pseudo-terminal as its controlling terminal, typing one
    answer at each prompt; returns the exit status and everything the terminal showed."""
    pid, master = pty.fork()
    if pid == 0:  # the child: its terminal is the pty
        try:
            os.chdir(sandbox.cwd)
            os.execve(simpleaide_command(), ["simpleaide", *args], sandbox.env)
        finally:
            os._exit(127)
    shown = b""
    pending = list(answers)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
                if pending and shown.endswith(b": "):  # a prompt, waiting for its answer
                    os.write(master, pending.pop(0) + b"\r")
        else:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(master)
    return os.waitstatus_to_exitcode(status), shown


def test_passphrases_are_read_from_the_terminal_without_echo(sandbox: Sandbox) -> None:
    sandbox.configure(FAST_VAULT)
    secret = b"typed-but-never-shown"
    code, shown = on_a_terminal(sandbox, ["vault", "init"], [secret, secret])
    assert code == 0, shown
    assert b"New passphrase: " in shown and b"New passphrase (again): " in shown
    assert secret not in shown  # no echo
    assert b"vault unlocked" in shown
    code, shown = on_a_terminal(sandbox, ["vault", "set", "token"], [b"value-not-echoed"])
    assert code == 0 and b"value-not-echoed" not in shown and b"stored token" in shown
    assert sandbox.ok("vault", "get", "token").stdout == "value-not-echoed\n"
    code, shown = on_a_terminal(sandbox, ["vault", "passwd"], [secret, b"one", b"two"])
    assert code == 1 and b"the two entries differ; nothing changed" in shown


def test_a_secret_from_stdin_may_span_lines(sandbox: Sandbox) -> None:
    sandbox.configure(FAST_VAULT)
    sandbox.ok("vault", "init", input=PASS * 2)
    pem = b"-----BEGIN KEY-----\nAAAA\nBBBB\n-----END KEY-----\n"
    sandbox.ok("vault", "set", "pem", input=pem)
    assert sandbox.ok("vault", "get", "pem").out == pem  # all of it (one newline is printed)
