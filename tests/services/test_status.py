"""The vault, db and llm sections and the chips, end to end: the real daemon on its socket,
a real SQLite file, the machine's PostgreSQL, and real HTTP servers as LLM backends."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from simpleaided.domain.errors import ReadOnly
from simpleaided.domain.status import StatusDocument
from tests.support.daemon import running_daemon
from tests.support.http import bearer
from tests.support.llm_servers import LLAMACPP_LOADING, OLLAMA_TAGS, OPENAI_MODELS, LlmServer, Route
from tests.support.pgproxy import PG_HOST, PG_PORT, TcpProxy
from tests.support.rpc import RpcClient

FAST_VAULT = {"vault.kdf_memory_kib": 8192, "vault.kdf_iterations": 1, "vault.kdf_lanes": 1}
PASS = "a long enough passphrase"


def chip(doc: dict[str, Any], name: str) -> dict[str, str]:
    found: list[dict[str, str]] = [c for c in doc["chips"] if c["name"] == name]
    assert len(found) == 1
    return found[0]


async def changed_until(
    client: RpcClient, done: Callable[[dict[str, Any]], bool], seconds: float = 5
) -> dict[str, Any]:
    """The first ``status.changed`` document for which ``done`` holds."""
    with anyio.fail_after(seconds):
        while True:
            doc: dict[str, Any] = (await client.notification("status.changed"))["status"]
            if done(doc):
                return doc


async def test_the_default_database_is_a_sqlite_file_in_the_workspace(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    settings = {"workspaces": [str(workspace)]}
    async with (
        running_daemon(socket_path, isolated_env / "s", **settings),
        await RpcClient.connect(socket_path) as client,
    ):
        snapshot = await client.call("status.subscribe")
        doc = snapshot["status"]
        if not doc["db"]["connected"]:
            doc = await changed_until(client, lambda d: d["db"]["connected"])
        StatusDocument.model_validate(doc)
        assert doc["db"]["type"] == "sqlite" and doc["db"]["readOnly"] is False
        assert chip(doc, "db")["text"] == "DB ✅"
        assert chip(doc, "db")["tooltip"].startswith("DEV database: read-write (sqlite, ")
        described = await client.call("db.status")
        target = described.pop("target")
        assert described == (await client.call("status.get"))["db"]
        assert target["type"] == "sqlite"
        assert target["path"] == str(workspace / ".simpleaide" / "dev.sqlite3")
    path = workspace / ".simpleaide" / "dev.sqlite3"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_a_daemon_without_configuration_adopts_the_first_workspace_used(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    async with (
        running_daemon(socket_path, isolated_env / "s"),
        await RpcClient.connect(socket_path) as client,
    ):
        snapshot = await client.call("status.subscribe")
        assert snapshot["status"]["db"]["error"] == "not configured"
        assert chip(snapshot["status"], "db")["text"] == "DB OFF"
        await client.call("runs.create", workspace=str(workspace))  # serves the workspace
        doc = await changed_until(client, lambda d: d["db"]["connected"])
        assert doc["db"]["type"] == "sqlite"
    assert (workspace / ".simpleaide" / "dev.sqlite3").is_file()


async def test_prod_postgres_from_a_vault_url_is_read_only_and_never_shown(
    isolated_env: Path,
    socket_path: Path,
    short_tmp: Path,
    postgres: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = {
        "env": "PROD",
        "db.PROD.url": "vault:pg-url",
        "vault.file": str(short_tmp / "vault.json"),
        **FAST_VAULT,
    }
    async with (
        running_daemon(socket_path, isolated_env / "s", **settings) as daemon,
        await RpcClient.connect(socket_path) as client,
    ):
        doc = (await client.call("status.subscribe"))["status"]
        if doc["db"]["error"] is None:  # not probed yet
            doc = await changed_until(client, lambda d: d["db"]["error"] is not None)
        assert "vault" in doc["db"]["error"] and doc["db"]["connected"] is False
        assert chip(doc, "db")["text"] == "DB OFF RO"  # PROD: no writes even when it connects

        await client.call("vault.init", passphrase=PASS)
        await client.call("vault.set", name="pg-url", value=postgres)
        await client.call("vault.lock")
        await client.call("vault.unlock", passphrase=PASS)  # the database is probed again now
        doc = await changed_until(client, lambda d: d["db"]["connected"])
        assert doc["db"]["type"] == "postgres" and doc["db"]["readOnly"] is True
        # The test machine's role is a superuser: read-only transactions do not stop it from
        # writing server files or running programs, and the chip warns of it.
        assert [w for w in doc["db"]["warnings"] if "superuser" in w] == doc["db"]["warnings"]
        assert len(doc["db"]["warnings"]) == 1
        assert chip(doc, "db")["text"] == "DB ⚠️ RO" and chip(doc, "db")["level"] == "warn"
        assert chip(doc, "db")["tooltip"].startswith("PROD database: read-only (postgres, ")
        assert "superuser" in chip(doc, "db")["tooltip"]
        assert chip(doc, "env")["text"] == "PROD 🔴"

        # The daemon's own connection refuses writes: PostgreSQL itself says no.
        with pytest.raises(ReadOnly, match="read-only transaction"):
            await daemon.database.execute("CREATE TABLE simpleaide_should_not_exist (x int)")
        shown = json.dumps(await client.call("status.get")) + json.dumps(
            await client.call("daemon.info")
        )
    for text in (shown, caplog.text):
        assert postgres not in text and PASS not in text


async def test_llm_backends_probed_with_their_traps_named(
    isolated_env: Path, socket_path: Path
) -> None:
    with (
        LlmServer({"/api/tags": Route(body=OLLAMA_TAGS)}) as ollama,
        LlmServer({"/v1/models": Route(503, LLAMACPP_LOADING)}) as llamacpp,
    ):
        settings = {
            "llm.backends": [
                {"name": "ollama", "kind": "ollama", "url": ollama.url, "model": "llama3"},
                {"name": "llamacpp", "kind": "openai", "url": llamacpp.url},
            ],
            "llm.probe_seconds": 600,
        }
        async with (
            running_daemon(socket_path, isolated_env / "s", **settings),
            await RpcClient.connect(socket_path) as client,
        ):
            llm = await client.call("llm.probe")
            assert (llm["online"], llm["total"]) == (1, 2)
            by_name = {b["name"]: b for b in llm["backends"]}
            assert by_name["ollama"]["models"] == ["llama3:latest", "qwen2.5-coder:7b"]
            assert by_name["llamacpp"]["error"] == "HTTP 503: loading model"
            doc = await client.call("status.subscribe")
            assert chip(doc["status"], "llm") == {
                "name": "llm",
                "text": "LLM 1/2",
                "level": "warn",
                "tooltip": "LLM: ollama online, llamacpp: HTTP 503: loading model",
                "href": "#/llm",
            }
            llamacpp.routes["/v1/models"] = Route(body=OPENAI_MODELS)  # loaded now
            await client.call("llm.probe")
            doc = await changed_until(client, lambda d: d["llm"]["online"] == 2)
            assert chip(doc, "llm")["text"] == "LLM 2/2"
            assert await client.call("llm.status") == (await client.call("status.get"))["llm"]


async def test_an_api_key_comes_from_the_vault_when_it_unlocks(
    isolated_env: Path, socket_path: Path, short_tmp: Path
) -> None:
    with LlmServer({"/v1/models": Route(body=OPENAI_MODELS)}) as server:
        settings = {
            "llm.backends": [
                {"name": "api", "kind": "openai", "url": server.url, "api_key": "vault:key"}
            ],
            "llm.probe_seconds": 600,
            "vault.file": str(short_tmp / "vault.json"),
            **FAST_VAULT,
        }
        async with (
            running_daemon(socket_path, isolated_env / "s", **settings),
            await RpcClient.connect(socket_path) as client,
        ):
            llm = await client.call("llm.probe")
            assert llm["online"] == 0 and "locked" in llm["backends"][0]["error"]
            await client.call("vault.init", passphrase=PASS)
            await client.call("vault.set", name="key", value="sk-test-123")
            await client.call("status.subscribe")
            await client.call("vault.lock")
            await client.call("vault.unlock", passphrase=PASS)  # probes again, at once
            await changed_until(client, lambda d: d["llm"]["online"] == 1)
        assert server.requests[-1].headers.get("Authorization") == "Bearer sk-test-123"


async def test_the_status_api_section_names_the_socket(
    client: RpcClient, socket_path: Path
) -> None:
    api = (await client.call("status.get"))["api"]
    assert api == {"enabled": False, "url": None, "port": None, "socket": str(socket_path)}


async def test_the_db_chip_reads_checking_until_the_first_probe_answers(
    isolated_env: Path, socket_path: Path, postgres: str
) -> None:
    async with TcpProxy((PG_HOST, PG_PORT)) as proxy:
        proxy.freeze()  # the server takes the connection, and says nothing until thawed
        settings = {
            "db.DEV.url": f"postgresql://postgres@127.0.0.1:{proxy.port}/test",
            "db.timeout_seconds": 60,
            "db.probe_seconds": 3600,
            "http.listen": "127.0.0.1:0",
            "http.public_status": True,
        }
        async with (
            running_daemon(socket_path, isolated_env / "s", **settings) as daemon,
            await RpcClient.connect(socket_path) as client,
        ):
            try:
                doc = (await client.call("status.subscribe"))["status"]
                StatusDocument.model_validate(doc)
                assert doc["db"]["checking"] is True
                assert doc["db"]["connected"] is False and doc["db"]["error"] is None
                assert chip(doc, "db") == {
                    "name": "db",
                    "text": "DB …",
                    "level": "checking",
                    "tooltip": "DEV database (postgres): checking, no answer yet",
                    "href": "#/db",
                }
                assert (await client.call("db.status"))["checking"] is True
                async with httpx.AsyncClient(
                    base_url=doc["api"]["url"], headers=bearer(daemon)
                ) as http:
                    assert (await http.get("/api/status")).json()["db"]["checking"] is True
                    # The published schemas name the state and the level.
                    schemas = (await http.get("/openapi.json")).json()["components"]["schemas"]
                assert "checking" in schemas["DbSection"]["required"]
                assert "checking" in schemas["Chip"]["properties"]["level"]["enum"]
                discovered = json.dumps(await client.call("rpc.discover"))
                assert '"checking"' in discovered

                proxy.thaw()
                doc = await changed_until(client, lambda d: not d["db"]["checking"], seconds=30)
                assert doc["db"]["connected"] is True, doc["db"]
                assert chip(doc, "db")["text"] == "DB ✅" and chip(doc, "db")["level"] == "ok"
            finally:
                proxy.thaw()  # a failed test: the daemon's stop need not wait for the probe


async def test_the_run_chip_names_the_active_runs_while_they_are_few(
    isolated_env: Path, socket_path: Path, workspace: Path
) -> None:
    async with (
        running_daemon(socket_path, isolated_env / "s"),
        await RpcClient.connect(socket_path) as client,
    ):

        async def start(title: str | None) -> str:
            run = await client.call("runs.create", workspace=str(workspace), title=title)
            await client.call("steps.create", runId=run["id"], name="plan", start=True)
            return str(run["id"])

        first = await start("fix the parser")
        doc = await client.call("status.get")
        assert chip(doc, "runs")["text"] == "Run ⏳ 1"
        assert chip(doc, "runs")["tooltip"] == f"1 run running: {first} “fix the parser”"
        assert doc["runs"]["activeRuns"] == [
            {"id": first, "title": "fix the parser", "status": "running"}
        ]
        second = await start(None)
        third = await start("write tests")
        doc = await client.call("status.get", workspace=str(workspace))
        assert chip(doc, "runs")["tooltip"] == (
            f"3 runs running: {third} “write tests”, {second}, {first} “fix the parser”"
        )
        await client.call("runs.complete", runId=second, force=True)
        doc = await client.call("status.get")
        assert chip(doc, "runs")["tooltip"].startswith(
            f"2 runs running: {third} “write tests”, {first} “fix the parser”"
        )
        await start("a")
        await start("b")
        doc = await client.call("status.get")
        assert doc["runs"]["activeRuns"] == []
        assert chip(doc, "runs")["tooltip"].startswith("4 runs running; last run running ")
        StatusDocument.model_validate(doc)
