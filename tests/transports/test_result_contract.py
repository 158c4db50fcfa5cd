"""Every method's replies keep its published contract: each successful reply, raw as it came
off the socket, validates strictly against the result model the method declares, carries no
key the model does not declare, and keeps to the result schema ``rpc.discover`` publishes.

One scripted session calls every method of the daemon's table, in as many of its states as
are cheap to reach (a vault uninitialised, locked and unlocked; runs pending, running, finished
and corrupt; artifacts whole, chunked, binary and badly named; backends online and offline).
A method added to the table without a call here fails the test.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import anyio
import jsonschema  # type: ignore[import-untyped]  # no stubs; jsonrpcserver brings it
import orjson
import pytest
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from simpleaided.domain import api, names
from simpleaided.transports.rpc import Method
from tests.support.daemon import running_daemon
from tests.support.llm_servers import OLLAMA_TAGS, LlmServer, Route, refused_url
from tests.support.rpc import RpcClient
from tests.support.waiting import eventually

FAST_VAULT = {"vault.kdf_memory_kib": 8192, "vault.kdf_iterations": 1, "vault.kdf_lanes": 1}
PASS = "a long enough passphrase"
NEW_PASS = "another long passphrase"
ResultT = TypeVar("ResultT")


class Reply(BaseModel, Generic[ResultT]):
    """A JSON-RPC success reply carrying a ``ResultT``, and nothing else."""

    model_config = ConfigDict(extra="forbid")

    jsonrpc: Literal["2.0"]
    id: int
    result: ResultT


def reply_model(method: Method) -> TypeAdapter[Any]:
    """The whole success reply of ``method``: the envelope, with its declared result."""
    generic: Any = Reply  # parametrised at run time: a type checker cannot follow that
    return TypeAdapter(generic[method.result])


def undeclared(declared: Any, sent: Any, where: str = "result") -> list[str]:
    """Where ``sent`` holds a key that ``declared`` (the reply validated, dumped back as JSON
    with only the fields that were given) lost: a key the model does not know of."""
    if isinstance(sent, dict) and isinstance(declared, dict):
        return [
            problem
            for key, value in sent.items()
            for problem in (
                undeclared(declared[key], value, f"{where}.{key}")
                if key in declared
                else [f"{where}.{key}"]
            )
        ]
    if isinstance(sent, list) and isinstance(declared, list) and len(sent) == len(declared):
        return [
            problem
            for n, (d, s) in enumerate(zip(declared, sent, strict=True))
            for problem in undeclared(d, s, f"{where}[{n}]")
        ]
    return [] if declared == sent else [f"{where}: {sent!r} came back as {declared!r}"]


def kept_extra(value: Any, where: str = "result") -> list[str]:
    """Keys a model that allows extra keys kept without declaring them (a run's and a step's
    records keep what another tool wrote into their files): the daemon's own sends none."""
    if isinstance(value, BaseModel):
        found = [f"{where}.{key}" for key in value.model_extra or {}]
        for name in type(value).model_fields:
            found += kept_extra(getattr(value, name), f"{where}.{name}")
        return found
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in kept_extra(item, f"{where}.{key}")]
    if isinstance(value, list | tuple):
        return [p for n, item in enumerate(value) for p in kept_extra(item, f"{where}[{n}]")]
    return []


class Checked:
    """A client that checks every reply against the method table before handing it back."""

    def __init__(self, client: RpcClient, methods: dict[str, Method]) -> None:
        self.client = client
        self.methods = methods
        self.adapters = {name: reply_model(m) for name, m in methods.items()}
        self.schemas: dict[str, Any] = {}  # once published: each method's result validator
        self.called: dict[str, int] = {}

    async def discover(self) -> set[str]:
        """Learn the published result schemas; the names of the methods published."""
        document = await self.call("rpc.discover")
        for described in document["methods"]:
            schema = {**described["result"]["schema"], "components": document["components"]}
            self.schemas[described["name"]] = jsonschema.Draft202012Validator(schema)
        return set(self.schemas)

    async def call(self, method: str, **params: Any) -> Any:
        """The result of ``method``, after checking its raw reply; an error reply fails."""
        request = {"jsonrpc": "2.0", "method": method, "id": sum(self.called.values()) + 1}
        if params:
            request["params"] = params
        await self.client.send_raw(orjson.dumps(request) + b"\n")
        while True:
            raw = await self.client.receive_line()
            reply = orjson.loads(raw)
            if "id" in reply:
                break
            self.client.notifications.append(reply)  # for RpcClient.notification
        assert reply["id"] == request["id"]
        assert "error" not in reply, f"{method}({params}) failed: {reply['error']}"
        try:
            validated = self.adapters[method].validate_json(raw, strict=True)
        except ValidationError as exc:
            pytest.fail(f"{method}({params}) broke its declared result: {exc}")
        dumped = self.adapters[method].dump_python(
            validated, mode="json", by_alias=True, exclude_unset=True
        )
        assert undeclared(dumped["result"], reply["result"]) == [], method
        assert kept_extra(validated.result) == [], method
        if self.schemas:
            self.schemas[method].validate(reply["result"])
        self.called[method] = self.called.get(method, 0) + 1
        return reply["result"]

    async def wait_status(self, done: Callable[[dict[str, Any]], bool]) -> None:
        """Until a ``status.changed`` document satisfies ``done`` (status subscribed)."""
        with anyio.fail_after(10):
            while not done((await self.client.notification("status.changed"))["status"]):
                pass


def corrupt_run(workspace: Path) -> None:
    """A run folder whose metadata does not parse: listed as ``corrupt``."""
    run_id = names.new_run_id(1_700_000_000_000)
    folder = workspace / ".simpleaide" / "runs" / run_id
    folder.mkdir(mode=0o700, parents=True)
    (folder / "metadata.json").write_text("{not json")
    os.chmod(folder / "metadata.json", 0o600)
    for parent in (folder.parent, folder.parent.parent):
        os.chmod(parent, 0o700)


async def test_every_reply_of_every_method_matches_its_declared_result(
    isolated_env: Path, socket_path: Path, workspace: Path, short_tmp: Path
) -> None:
    corrupt_run(workspace)
    other = short_tmp / "other"
    other.mkdir()
    with LlmServer({"/api/tags": Route(body=OLLAMA_TAGS)}) as ollama:
        settings = {
            "workspaces": [str(workspace)],
            "vault.file": str(short_tmp / "vault.json"),
            **FAST_VAULT,
            "llm.backends": [
                {"name": "ollama", "kind": "ollama", "url": ollama.url, "model": "llama3"},
                {"name": "gone", "kind": "openai", "url": refused_url()},
            ],
            "llm.probe_seconds": 600,
        }
        async with (
            running_daemon(socket_path, isolated_env / "s", **settings) as daemon,
            await RpcClient.connect(socket_path) as client,
        ):
            rpc = Checked(client, daemon.dispatcher.methods)
            published = await rpc.discover()
            await session(rpc, workspace, other)

    assert published == set(rpc.methods)
    assert set(rpc.called) == set(rpc.methods), (
        f"never called: {sorted(set(rpc.methods) - set(rpc.called))}"
    )


async def session(rpc: Checked, workspace: Path, other: Path) -> None:
    """Every method, most in several states."""
    ws = str(workspace)

    # The daemon and the workspaces.
    assert await rpc.call("daemon.ping") == "pong"
    await rpc.call("daemon.info")
    await rpc.call("workspaces.list")
    await rpc.call("workspaces.add", path=str(other))
    await rpc.call("workspaces.list")

    # Status, before any run: no latest run, nothing active.
    await rpc.call("status.subscribe")
    await rpc.call("status.get")
    await rpc.call("status.get", workspace=str(other))
    assert await rpc.call("runs.latest", workspace=str(other)) is None
    await rpc.call("runs.activeCount")
    await rpc.call("runs.busy")
    await rpc.call("runs.subscribe")

    # A run with steps and artifacts of every kind.
    run = await rpc.call("runs.create", workspace=ws, title="contract", ownerPid=os.getpid())
    run_id = run["id"]
    await rpc.call("runs.get", runId=run_id)
    await rpc.call("steps.create", runId=run_id, name="plan")
    await rpc.call("steps.start", runId=run_id, step=1)
    put = {"runId": run_id, "step": 1}
    await rpc.call("artifacts.put", **put, name="plan.md", text="# plan\n")
    await rpc.call(
        "artifacts.put", **put, name="blob.bin", base64=base64.b64encode(b"\0\1").decode()
    )
    staged = await rpc.call("artifacts.put", **put, name="log.txt", text="a", offset=0, final=False)
    await rpc.call(
        "artifacts.put", **put, name="log.txt", text="b", offset=1, final=True,
        uploadId=staged["uploadId"],
    )  # fmt: skip
    await rpc.call("artifacts.put", **put, name="log.txt", text="c\n", append=True)
    folder = workspace / ".simpleaide" / "runs" / run_id / "01_plan" / "artifacts"
    (folder / "bad\x01name").write_bytes(b"listed, never read")
    listed = await rpc.call("artifacts.list", runId=run_id)
    assert any(a["invalidName"] for a in listed) and staged["staged"]
    await rpc.call("artifacts.list", runId=run_id, step=1)
    await rpc.call("artifacts.get", **put, name="plan.md")
    await rpc.call("artifacts.get", **put, name="blob.bin")
    await rpc.call("artifacts.get", **put, name="log.txt", encoding="base64", offset=1, length=2)
    await rpc.call("artifacts.delete", **put, name="blob.bin")
    await rpc.call("steps.complete", runId=run_id, step=1)
    await rpc.call("steps.create", runId=run_id, name="code", start=True)
    await rpc.call("steps.skip", runId=run_id, step=2)
    await rpc.call("steps.create", runId=run_id, name="test", start=True)
    await rpc.call("steps.fail", runId=run_id, step=3, errorMessage="red", failRun=False)
    await rpc.call("steps.create", runId=run_id, name="retry")
    await rpc.call("steps.list", runId=run_id)
    await rpc.call("runs.get", runId=run_id, steps=True)
    await rpc.call("runs.activeCount", workspace=ws)
    await rpc.call("runs.busy", workspace=ws)
    await rpc.call("runs.latest")
    await rpc.call("steps.deleteFrom", runId=run_id, fromStep=3)
    await rpc.call("steps.create", runId=run_id, name="again", start=True)
    await rpc.call("runs.complete", runId=run_id, force=True)

    # Runs that end every other way.
    failed = (await rpc.call("runs.create", workspace=ws))["id"]
    await rpc.call("steps.create", runId=failed, name="only", start=True)
    await rpc.call("runs.fail", runId=failed, errorMessage="broken")
    cancelled = (await rpc.call("runs.create", workspace=ws, title="never"))["id"]
    await rpc.call("runs.cancel", runId=cancelled)
    pending = (await rpc.call("runs.create", workspace=str(other)))["id"]
    assert "corrupt" in {row["status"] for row in (await rpc.call("runs.list"))["runs"]}
    await rpc.call("runs.list", workspace=ws, status=["completed", "corrupt"], limit=1)
    assert (await rpc.call("runs.resolve", prefix=run_id))["count"] == 1
    await rpc.call("runs.resolve", prefix="", workspace=ws, limit=1)
    await rpc.call("runs.prune", workspace=ws, keep=1, dryRun=True)
    await rpc.call("runs.prune", workspace=ws, olderThanDays=1000, keep=1)
    await rpc.call("runs.delete", runId=pending)
    await rpc.call("runs.subscribe", runId=run_id)
    await rpc.call("runs.unsubscribe")

    # The vault in each of its states.
    assert (await rpc.call("vault.status"))["state"] == "uninitialized"
    await rpc.call("vault.init", passphrase=PASS)
    await rpc.call("vault.set", name="token", value="s3cret")
    await rpc.call("vault.set", name="token", value="s3cret too")
    await rpc.call("vault.get", name="token")
    await rpc.call("vault.list")
    await rpc.call("vault.lock")
    assert (await rpc.call("vault.status"))["state"] == "locked"
    await rpc.call("vault.unlock", passphrase=PASS, ttlSeconds=600)
    await rpc.call("vault.changePassphrase", passphrase=PASS, newPassphrase=NEW_PASS)
    await rpc.call("vault.delete", name="token")
    await rpc.call("vault.status")

    # The database (the configured workspace's SQLite file) and the LLM backends.
    await rpc.call("db.status")
    await rpc.wait_status(lambda doc: doc["db"]["connected"])
    assert (await rpc.call("db.status"))["connected"]
    await rpc.call("db.query", sql="CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT, b BLOB)")
    await rpc.call("db.query", sql="CREATE VIEW v AS SELECT s FROM t")
    await rpc.call("db.query", sql="INSERT INTO t (s, b) VALUES ('a', x'00'), (NULL, NULL)")
    await rpc.call("db.query", sql="SELECT * FROM t WHERE id > ?", params=[0], limit=1)
    await rpc.call("db.tables")
    await rpc.call("db.describe", table="t")
    await rpc.call("db.describe", table="v")
    first = await rpc.call("db.rows", table="t", limit=1, cellBytes=16)
    await rpc.call("db.rows", table="t", after=first["next"])
    await rpc.call("db.rows", table="t", sort=[{"column": "s", "desc": True}])
    await rpc.call("db.rows", table="v", filters=[{"column": "s", "op": "is-null"}])
    await rpc.call("db.cell", table="t", key=first["keys"][0], column="b")
    await rpc.call("db.count", table="t")
    await rpc.call("db.count", table="t", filters=[{"column": "s", "op": "=", "value": "a"}])
    edit = {"op": "update", "key": first["keys"][0], "values": {"s": "b"}, "expect": {"s": "a"}}
    delete = {"op": "delete", "key": [2], "expect": {"s": None}}
    await rpc.call("db.edit", table="t", changes=[{"op": "insert", "values": {}}, edit, delete])
    assert (await rpc.call("db.cancel", queryId="none"))["cancelled"] is False
    await rpc.call("llm.status")
    assert (await rpc.call("llm.probe"))["online"] == 1  # of two
    await rpc.call("llm.status")

    # The HTTP side: off (no address), started by http.open, its token rotated.
    assert (await rpc.call("http.rotateToken"))["url"] is None
    await rpc.call("http.open")
    assert (await rpc.call("http.rotateToken"))["url"] is not None
    assert (await rpc.call("daemon.info"))["httpUrl"] is not None

    # Terminals: one running, then exited (listed with its exit), renamed, removed.
    term = await rpc.call("terminals.create", argv=["cat"], cols=40, rows=10, name="cat")
    await rpc.call("terminals.attach", id=term["id"], cols=50, rows=12)
    await rpc.call("terminals.input", id=term["id"], text="hello\n")
    await rpc.call("terminals.resize", id=term["id"], cols=60, rows=20)
    await rpc.call("terminals.ack", id=term["id"], offset=0)
    await rpc.call("terminals.rename", id=term["id"], name="kitten")
    assert (await rpc.call("terminals.list"))[0]["exited"] is None
    await rpc.call("terminals.input", id=term["id"], data=base64.b64encode(b"\x04").decode())
    await eventually(lambda: _exited(rpc), 5)
    assert (await rpc.call("terminals.attach", id=term["id"]))["exited"]["code"] == 0
    await rpc.call("terminals.detach", id=term["id"])
    await rpc.call("terminals.kill", id=term["id"])
    assert await rpc.call("terminals.list") == []

    await rpc.call("status.get", workspace=ws)
    await rpc.call("status.unsubscribe")
    await rpc.call("workspaces.remove", path=str(other))
    # This daemon has no configuration to read again: refused, and it says why.
    assert (await rpc.call("daemon.reload"))["reloaded"] is False
    await rpc.call("rpc.discover")


async def _exited(rpc: Checked) -> bool:
    return (await rpc.call("terminals.list"))[0]["exited"] is not None


class _Stored(BaseModel):
    name: str
    replaced: bool


def test_a_reply_off_its_contract_is_caught() -> None:
    """The checks above can fail: a wrong or coercible type, a missing or undeclared key."""
    adapter = reply_model(Method("x.set", "", BaseModel, _Stored, lambda p, c: None))
    adapter.validate_json(b'{"jsonrpc":"2.0","id":1,"result":{"name":"a","replaced":false}}')
    for result in (b'{"name":"a","replaced":"no"}', b'{"name":"a","replaced":0}',
                   b'{"name":"a"}', b"null"):  # fmt: skip
        with pytest.raises(ValidationError):
            adapter.validate_json(b'{"jsonrpc":"2.0","id":1,"result":' + result + b"}", strict=True)
    extra = b'{"jsonrpc":"2.0","id":1,"result":{"name":"a","replaced":false,"why":"x"}}'
    dumped = adapter.dump_python(
        adapter.validate_json(extra, strict=True), mode="json", by_alias=True, exclude_unset=True
    )
    assert undeclared(dumped["result"], orjson.loads(extra)["result"]) == ["result.why"]
    # A run's record keeps undeclared keys when it validates: caught all the same, nested.
    now = "2026-12-06T23:00:00.000Z"
    run_id = names.new_run_id(1_700_000_000_000)
    run = {"id": run_id, "workspace": "/w", "status": "running", "startedAt": now,
           "updatedAt": now, "stepCount": 1}  # fmt: skip
    step = {"number": 1, "name": "plan", "status": "running", "folder": "01_plan"}
    change = reply_model(Method("steps.x", "", BaseModel, api.StepChange, lambda p, c: None))
    sent = {"run": {**run, "steps": [{**step, "leak": 1}]}, "step": step}
    validated = change.validate_json(orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": sent}))
    assert kept_extra(validated.result) == ["result.run.steps[0].leak"]
