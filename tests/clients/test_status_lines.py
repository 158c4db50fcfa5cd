"""Status lines against a real daemon: ``simpleaide status --format plain|tmux|waybar`` checked
against the status document in each state a bar shows, and ``status --follow``."""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.llm_servers import OLLAMA_TAGS, LlmServer, Route, refused_url
from tests.support.sandbox import Sandbox, Watcher
from tests.support.waiting import eventually_blocking

PASS = b"a long enough passphrase\n"
FAST_VAULT = """
[vault]
kdf_memory_kib = 8192
kdf_iterations = 1
kdf_lanes = 1
"""
SLOW_PROBES = """
[db]
probe_seconds = 3600
[llm]
probe_seconds = 3600
"""
# The colours README documents for the tmux format, by chip level.
TMUX_COLOURS = {
    "ok": "green",
    "warn": "yellow",
    "bad": "red",
    "off": "colour244",
    "info": "default",
    "checking": "default",
}


def document(sandbox: Sandbox) -> dict[str, Any]:
    result: dict[str, Any] = sandbox.ok("status", "--json").json()
    return result


def expected(doc: dict[str, Any], fmt: str) -> str:
    """What a status line must print for ``doc``, derived from its chips alone."""
    shown = [(c["text"], c["level"]) for c in doc["chips"]]
    if doc["warnings"]:
        shown.append((f"⚠ {len(doc['warnings'])}", "warn"))
    plain = " · ".join(text for text, _ in shown)
    if fmt == "plain":
        return plain
    if fmt == "tmux":
        return " · ".join(f"#[fg={TMUX_COLOURS[level]}]{text}#[default]" for text, level in shown)
    runs, last = doc["runs"], doc["runs"]["last"] or {}
    classes = [doc["env"].lower()]
    if runs["active"]:
        classes.append("busy")
    elif last.get("status") in ("failed", "cancelled", "completed"):
        classes.append(last["status"])
    if doc["warnings"]:
        classes.append("warning")
    if any(c["level"] == "checking" for c in doc["chips"]):
        classes.append("checking")
    tooltip = [f"SimpleAide {doc['env']}", *(c["tooltip"] for c in doc["chips"])]
    tooltip += [f"Warning: {w}" for w in doc["warnings"]]
    pango = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}  # waybar renders Pango markup
    text, tip = ("".join(pango.get(c, c) for c in t) for t in (plain, "\n".join(tooltip)))
    return json.dumps({"text": text, "tooltip": tip, "class": classes})


def check_formats(sandbox: Sandbox) -> dict[str, Any]:
    """Each format's output matches the document read around it; returns that document.

    Words with ages ("failed 2s ago") change at second boundaries: a pair of documents that
    differ is read again (a few times at most) rather than compared across a change.
    """
    for _ in range(5):
        before = document(sandbox)
        outputs = {
            fmt: sandbox.ok("status", "--format", fmt).stdout for fmt in ("plain", "tmux", "waybar")
        }
        after = document(sandbox)
        if before["chips"] == after["chips"] and before["warnings"] == after["warnings"]:
            break
    else:
        pytest.fail("the status kept changing")
    assert outputs["plain"] == expected(before, "plain") + "\n"
    assert outputs["tmux"] == expected(before, "tmux") + "\n"
    assert json.loads(outputs["waybar"]) == json.loads(expected(before, "waybar"))
    return before


def wait_for_document(sandbox: Sandbox, condition: Any) -> dict[str, Any]:
    """Poll the status (its probes run in the background) until ``condition`` holds."""
    doc: dict[str, Any] = {}

    def reached() -> bool:
        nonlocal doc
        doc = document(sandbox)
        return bool(condition(doc))

    try:
        eventually_blocking(reached, 15, interval=0.1)
    except TimeoutError:
        pytest.fail(f"never reached: {json.dumps(doc)[:2000]}")
    return doc


def test_nothing_set_up_yet(sandbox: Sandbox) -> None:
    doc = check_formats(sandbox)
    assert expected(doc, "plain") == "DEV 🟢 · Vault – · DB OFF · LLM – · Run –"
    assert json.loads(expected(doc, "waybar"))["class"] == ["dev"]


def test_vault_unlocked_db_connected_llm_partial_runs_active(sandbox: Sandbox) -> None:
    with LlmServer({"/api/tags": Route(body=OLLAMA_TAGS)}) as ollama:
        sandbox.configure(
            FAST_VAULT
            + SLOW_PROBES
            + f'[[llm.backends]]\nname = "local"\nkind = "ollama"\nurl = "{ollama.url}"\n'
            + '[[llm.backends]]\nname = "gone"\nkind = "openai"\n'
            + f'url = "{refused_url()}/v1"\n'
        )
        workspace = sandbox.workspace()
        run_id = sandbox.new_run(workspace)
        sandbox.ok("steps", "add", run_id, "plan", "--start")
        sandbox.ok("vault", "init", input=PASS * 2)
        sandbox.ok("llm", "status", "--probe")
        wait_for_document(sandbox, lambda d: d["db"]["connected"])
        doc = check_formats(sandbox)
    assert expected(doc, "plain") == "DEV 🟢 · Vault 🔓 · DB ✅ · LLM 1/2 · Run ⏳ 1"
    assert [c["level"] for c in doc["chips"]] == ["ok", "warn", "ok", "warn", "warn"]
    assert json.loads(expected(doc, "waybar"))["class"] == ["dev", "busy"]
    # The waybar tooltip names the running run (check_formats compared it with the chip's).
    assert doc["chips"][4]["tooltip"] == f"1 run running: {run_id}"


def test_prod_read_only_vault_locked_last_run_failed(sandbox: Sandbox) -> None:
    prod = sandbox.root / "prod.sqlite3"
    sqlite3.connect(prod).close()
    sandbox.configure(
        f'env = "PROD"\n{FAST_VAULT}{SLOW_PROBES}[db.PROD]\nurl = "sqlite://{prod}"\n'
    )
    workspace = sandbox.workspace()
    run_id = sandbox.new_run(workspace)
    sandbox.ok("steps", "add", run_id, "plan", "--start")
    sandbox.ok("runs", "fail", run_id, "--message", "3 tests failed: expected <Foo> & got None")
    sandbox.ok("vault", "init", input=PASS * 2)
    sandbox.ok("vault", "lock")
    wait_for_document(sandbox, lambda d: d["db"]["connected"])
    doc = check_formats(sandbox)
    assert expected(doc, "plain") == "PROD 🔴 · Vault 🔒 · DB ✅ RO · LLM – · Run ✗"
    assert doc["chips"][4]["tooltip"].endswith("ago: 3 tests failed: expected <Foo> & got None")
    waybar = json.loads(sandbox.ok("status", "--format", "waybar").stdout)
    assert waybar["tooltip"].endswith("3 tests failed: expected &lt;Foo&gt; &amp; got None")
    assert json.loads(expected(doc, "waybar"))["class"] == ["prod", "failed"]


def test_database_off_and_a_warning(sandbox: Sandbox) -> None:
    sandbox.configure(
        f'workspaces = ["{sandbox.root / "missing"}"]\n{SLOW_PROBES}'  # missing: a warning
        f'[db.DEV]\nurl = "{refused_url().replace("http", "postgresql", 1)}/x"\n'
    )
    doc = wait_for_document(sandbox, lambda d: d["db"]["error"] and d["db"]["checkedAt"])
    doc = check_formats(sandbox)
    assert expected(doc, "plain") == "DEV 🟢 · Vault – · DB OFF · LLM – · Run – · ⚠ 1"
    assert doc["chips"][2]["level"] == "off" and "DEV database: off (" in doc["chips"][2]["tooltip"]
    assert json.loads(expected(doc, "waybar"))["class"] == ["dev", "warning"]


def test_the_database_reads_checking_until_its_first_probe_answers(sandbox: Sandbox) -> None:
    # A PostgreSQL host that accepts connections (the kernel does, from the backlog) and never
    # answers: the daemon's first probe waits for it.
    silent = socket.create_server(("127.0.0.1", 0), backlog=8)
    port = silent.getsockname()[1]
    try:
        sandbox.configure(
            f"[db]\nprobe_seconds = 3600\ntimeout_seconds = 60\n"
            f'[db.DEV]\nurl = "postgresql://postgres@127.0.0.1:{port}/test"\n'
        )
        doc = check_formats(sandbox)  # the first command starts the daemon
        assert doc["db"]["checking"] is True and doc["db"]["connected"] is False
        assert expected(doc, "plain") == "DEV 🟢 · Vault – · DB … · LLM – · Run –"
        assert doc["chips"][2] == {
            "name": "db",
            "text": "DB …",
            "level": "checking",
            "tooltip": "DEV database (postgres): checking, no answer yet",
            "href": "#/db",
        }
        waybar = json.loads(sandbox.ok("status", "--format", "waybar").stdout)
        assert waybar["class"] == ["dev", "checking"]
        assert "#[fg=default]DB …#[default]" in sandbox.ok("status", "--format", "tmux").stdout
    finally:
        silent.close()  # the waiting connection is reset: the probe answers at last
    doc = wait_for_document(sandbox, lambda d: not d["db"]["checking"])
    doc = check_formats(sandbox)
    assert doc["db"]["connected"] is False and doc["db"]["error"]
    assert expected(doc, "plain") == "DEV 🟢 · Vault – · DB OFF · LLM – · Run –"
    assert json.loads(expected(doc, "waybar"))["class"] == ["dev"]


def test_the_llm_chip_reads_checking_until_a_first_probe_answers(sandbox: Sandbox) -> None:
    # An LLM server that accepts connections and never answers: the first probe waits.
    silent = socket.create_server(("127.0.0.1", 0), backlog=8)
    port = silent.getsockname()[1]
    try:
        sandbox.configure(
            "[llm]\nprobe_seconds = 3600\ntimeout_seconds = 60\n"
            f'[[llm.backends]]\nname = "local"\nkind = "ollama"\nurl = "http://127.0.0.1:{port}"\n'
        )
        doc = check_formats(sandbox)  # the first command starts the daemon
        assert doc["llm"]["backends"][0]["checkedAt"] is None
        assert expected(doc, "plain").endswith(" · LLM … · Run –")
        llm = doc["chips"][3]
        assert (llm["text"], llm["level"]) == ("LLM …", "checking")
        assert llm["tooltip"] == "LLM: checking 1 backend, no answer yet"
    finally:
        silent.close()  # the waiting connection is reset: the probe answers at last
    doc = wait_for_document(sandbox, lambda d: d["llm"]["backends"][0]["checkedAt"])
    doc = check_formats(sandbox)
    llm = doc["chips"][3]
    assert (llm["text"], llm["level"]) == ("LLM 0/1", "bad")


@pytest.fixture
def follow(sandbox: Sandbox) -> Iterator[Watcher]:
    """``simpleaide status --follow --format waybar``, as a waybar module runs it."""
    sandbox.ok("daemon", "start")
    follow = Watcher(sandbox, "--follow", "--format", "waybar", command="status")
    yield follow
    follow.kill()


def test_follow_prints_a_line_per_change_off_while_the_daemon_is_gone_and_resumes(
    sandbox: Sandbox, follow: Watcher
) -> None:
    first = json.loads(follow.next_line())
    assert first["text"] == "DEV 🟢 · Vault – · DB OFF · LLM – · Run –"
    workspace = sandbox.workspace()
    run_id = sandbox.new_run(workspace)
    sandbox.ok("steps", "add", run_id, "plan", "--start")
    changed = json.loads(follow.wait_for("Run ⏳ 1"))
    assert changed["class"] == ["dev", "busy"]
    sandbox.ok("daemon", "stop")
    assert json.loads(follow.wait_for("SimpleAide OFF"))["class"] == ["offline"]
    # A bar's program waits for the daemon (waybar hides a module whose program exits)
    # and never starts one itself: the user stopped it.
    assert not sandbox.socket.exists()
    sandbox.ok("daemon", "start")
    back = json.loads(follow.wait_for("Run ⏳ 1"))
    assert back["class"] == ["dev", "busy"]
