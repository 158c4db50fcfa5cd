"""A protocol fuzzer: every method that ``rpc.discover`` describes, called with params generated
from its own schema (valid, hostile and wrongly typed), over both framings; then the framing
itself, fed broken bytes on fresh connections.

It drives a real daemon process over its socket with a plain blocking client, so a crash shows
as the process exiting. Each reply must be one JSON-RPC 2.0 response with the request's id and,
on failure, a declared error code, never ``-32603`` (that is a bug) and never a traceback. At
the end the daemon must still answer, its counts must match the run folders on disk, and its
log must hold no traceback. Seeds are fixed and examples few, so it takes a few seconds.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs; jsonrpcserver brings it
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from tests.support.daemon import DAEMON, daemon_env, wait_until_answering
from tests.support.waiting import eventually_blocking

MAX_MESSAGE = 1 << 20  # the daemon's limit here: oversized input stays cheap to send
REPLY_TIMEOUT = 10.0
PASSPHRASE = "correct horse battery"
RUN_ID_RE = re.compile(r"^\d{8}T\d{9}Z-[0-9a-f]{8}$")

# Every code the README declares; -32603 is not among them on purpose: an
# internal error means the fuzzer found a bug.
DECLARED_CODES = frozenset(
    {-32700, -32600, -32601, -32602, -32001, -32010, -32011}
    | {-32020, -32021, -32022, -32030, -32040, -32050}
)
TRACEBACK_MARKS = ("Traceback", 'File "')

# Methods never called, and why. Everything else that rpc.discover lists is fuzzed.
EXCLUDED_SUFFIXES = (".stop", ".shutdown", ".restart", ".reload", ".exit")
EXCLUDED = {
    # It would start programs from a generated argv.
    "terminals.create": "spawns programs",
}
# Params that name a folder on this machine: confined to the test's own folder.
PATH_PARAMS = frozenset({"path", "workspace", "cwd", "file", "folder", "dir", "directory"})

# FUZZ_SCALE=N runs N times the examples with fresh random seeds: a longer hunt, by hand.
# The default, 1, is the suite's: fixed seeds, a few seconds.
SCALE = int(os.environ.get("FUZZ_SCALE", "1"))
FUZZ_SETTINGS = settings(
    deadline=None,
    derandomize=SCALE == 1,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)


def excluded(method: str) -> bool:
    return method in EXCLUDED or method.endswith(EXCLUDED_SUFFIXES)


# -- a blocking client ------------------------------------------------------------------------


@dataclass
class Tally:
    """What the fuzzer sent: framed messages, and raw sessions (bytes on fresh connections)."""

    messages: int = 0
    sessions: int = 0
    session_bytes: int = 0


SENT = Tally()
# Per method, how its replies went ("ok" or the error code): the run's coverage, printed last.
OUTCOMES: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)


def frame(body: bytes, framing: str) -> bytes:
    if framing == "content-length":
        return b"Content-Length: %d\r\n\r\n" % len(body) + body
    return body + b"\n"


def encode(message: Any) -> bytes:
    return json.dumps(message, ensure_ascii=False).encode()


class ReplyReader:
    """Splits what the daemon sent into messages, whatever their framing."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.framings: list[str] = []

    def next(self) -> bytes | None:
        """The next whole message's body, or ``None`` if more bytes are needed."""
        if self.buffer.startswith(b"Content-Length:"):
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return None
            length = int(self.buffer[len(b"Content-Length:") : end])
            if len(self.buffer) < end + 4 + length:
                return None
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self.framings.append("content-length")
            return body
        end = self.buffer.find(b"\n")
        if end < 0:
            return None
        body = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        self.framings.append("ndjson")
        return body


class Wire:
    """One connection in one framing; notifications are set aside when waiting for replies."""

    def __init__(self, path: Path, framing: str) -> None:
        self.framing = framing
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(REPLY_TIMEOUT)
        self.sock.connect(str(path))
        self.reader = ReplyReader()
        self.notifications = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, message: Any) -> None:
        self.send_body(encode(message))

    def send_body(self, body: bytes) -> None:
        self.sock.sendall(frame(body, self.framing))
        SENT.messages += 1

    def receive(self) -> Any:
        while (body := self.reader.next()) is None:
            chunk = self.sock.recv(1 << 16)
            assert chunk, "the daemon closed a connection that did nothing wrong"
            self.reader.buffer += chunk
        assert self.reader.framings[-1] == self.framing, "a reply in the other framing"
        return json.loads(body)

    def reply(self) -> Any:
        """The next message that is not a notification."""
        while True:
            message = self.receive()
            if isinstance(message, dict) and "method" in message and "id" not in message:
                self.notifications += 1
                continue
            return message

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": "call"}
        if params is not None:
            message["params"] = params
        self.send(message)
        reply = self.reply()
        assert reply.get("id") == "call" and "result" in reply, reply
        return reply["result"]


# -- the daemon under test and what the fuzzer knows of it ----------------------------------


@dataclass
class World:
    """The test folder, the daemon's socket, and names worth guessing (learned as we go)."""

    tmp: Path
    sock: Path
    log: Path
    proc: subprocess.Popen[bytes] = field(repr=False)
    discover: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    workspaces: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list, init=False, repr=False)
    passphrase: str = PASSPHRASE
    validators: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def pick_run(self, n: int) -> str:
        """A known run id, most often a recent one (older ones may be deleted by now)."""
        if not self.runs:
            return "20261124T101500123Z-1a2b3c4d"
        pool = self.runs if n % 4 == 3 else self.runs[-3:]
        return pool[-1 - n % len(pool)]

    def confine(self, value: Any) -> Any:
        """Keep a path param inside the test folder: an absolute path elsewhere is moved
        under it; anything the daemon refuses anyway (relative, NUL, not a string) stays.

        Even where ``..`` would lead out (the daemon refuses ``..``, but if it ever did not,
        it must not create folders elsewhere on this machine)."""
        root = str(self.tmp)

        def inside(path: str) -> bool:
            path = os.path.normpath(path)
            return path == root or path.startswith(root + "/")

        if not isinstance(value, str) or not value.startswith("/") or inside(value):
            return value
        moved = root + "/fz" + value
        return moved if inside(moved) else root + "/fz/" + value.replace("/", "_")

    def learn(self, result: Any) -> None:
        """Remember run ids from a successful result."""
        if isinstance(result, dict):
            for key in ("id", "runId"):
                found = result.get(key)
                if isinstance(found, str) and RUN_ID_RE.match(found) and found not in self.runs:
                    self.runs.append(found)
            if isinstance(result.get("run"), dict):
                self.learn(result["run"])
            if isinstance(result.get("runs"), list):
                for row in result["runs"][:5]:
                    self.learn(row)


CONFIG = f"""
[limits]
max_message_bytes = {MAX_MESSAGE}

[vault]
# Cheap keys and short waits after a wrong passphrase: the fuzzer tries many.
kdf_memory_kib = 8192
kdf_iterations = 1
kdf_lanes = 1
failed_unlock_delay_seconds = 0.01
"""


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """A daemon process in its own folder, with a few runs, steps, artifacts and a vault."""
    tmp = Path(tempfile.mkdtemp(prefix="sa-fz-", dir="/tmp"))
    sock = tmp / "run" / "d.sock"
    config = tmp / "config.toml"
    config.write_text(CONFIG)
    log = tmp / "daemon.log"
    with log.open("wb") as stderr:
        # A file, not a pipe: a pipe nobody reads would block the daemon's logging.
        proc = subprocess.Popen(
            [*DAEMON, "--socket", str(sock), "--config", str(config)],
            env=daemon_env(tmp),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_until_answering(sock, proc)
        w = World(tmp, sock, log, proc)
        seed(w)
        yield w
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)


def fresh_run(w: World, c: Wire, workspace: str) -> str:
    """A new run with a completed step holding two artifacts and a running second step."""
    run: str = c.call("runs.create", {"workspace": workspace, "title": "seed"})["id"]
    c.call("steps.create", {"runId": run, "name": "plan", "start": True})
    c.call("artifacts.put", {"runId": run, "step": 1, "name": "plan.md", "text": "# p"})
    c.call("artifacts.put", {"runId": run, "step": 1, "name": "out.bin", "base64": "AAE="})
    c.call("steps.complete", {"runId": run, "step": 1})
    c.call("steps.create", {"runId": run, "name": "code", "start": True})
    w.learn({"id": run})
    return run


def seed(w: World) -> None:
    """Runs in every state, with steps and artifacts, in two workspaces; an initialized vault."""
    for name in ("ws1", "ws2", "nested/deep"):
        (w.tmp / name).mkdir(parents=True)
    w.workspaces = [str(w.tmp / "ws1"), str(w.tmp / "ws2"), str(w.tmp / "nested/deep")]
    c = Wire(w.sock, "ndjson")
    try:
        w.discover = c.call("rpc.discover")
        for ws in w.workspaces[:2]:
            w.learn(c.call("runs.create", {"workspace": ws, "title": "pending"}))
        done, failed = fresh_run(w, c, w.workspaces[0]), fresh_run(w, c, w.workspaces[1])
        c.call("steps.complete", {"runId": done, "step": 2})
        c.call("runs.complete", {"runId": done})
        c.call("steps.fail", {"runId": failed, "step": 2, "errorMessage": "boom"})
        c.call("vault.init", {"passphrase": PASSPHRASE})
        c.call("vault.set", {"name": "api-key", "value": "s3cret"})
    finally:
        c.close()


# -- JSON Schema -> strategies ----------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)


def anything() -> st.SearchStrategy[Any]:
    """Any JSON value: the wrong type for most params."""
    return st.recursive(
        JSON_SCALARS,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=10,
    )


class Huge(str):
    """A long string that a failure report shows by its length."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{len(self)} x {self[:1]!r}>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis's reports
        printer.text(repr(self))


def sized(n: int) -> str:
    return Huge("x" * n) if n > 300 else "x" * n


HOSTILE_TEXT = [
    "",
    " ",
    ".",
    "..",
    "../..",
    "../../../../etc/passwd",
    "/",
    "//",
    "/..",
    "a/b",
    "a\\b",
    ".hidden",
    "a\x00b",
    "\x00",
    "\x01\x1f\x7f",
    "\t\n\r",
    "\u202e\ufeff",
    "é",
    "😀",
    "CON",
    "%2e%2e%2f",
    "~",
    "$HOME",
    "-rf",
    "null",
    "0",
    "-1",
    "__proto__",
    "x" * 256,
    "é" * 128,
    Huge("A" * 100_000),  # huge, yet well within the message limit
]
HOSTILE_NUMBERS = [0, -1, 100, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**64, 1.5, -0.0, 1e308]


def hostile(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values a careless server trips on: path tricks, control characters, sizes at and over
    the declared bounds, numbers at the edges, wrong types."""
    texts = list(HOSTILE_TEXT)
    for bound in ("maxLength", "minLength"):
        if isinstance(schema.get(bound), int):
            texts += [sized(schema[bound]), sized(schema[bound] + 1), sized(schema[bound] - 1)]
    numbers: list[Any] = list(HOSTILE_NUMBERS)
    for bound in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if isinstance(schema.get(bound), int | float):
            numbers += [schema[bound], schema[bound] - 1, schema[bound] + 1]
    mixed = st.builds(
        lambda a, b, c: a + b + c,
        st.sampled_from([t for t in texts if not isinstance(t, Huge)]),
        st.text(max_size=12),
        st.sampled_from(["", "/..", "\x00", "/x", "\n"]),
    )
    return st.one_of(
        st.sampled_from(texts),
        mixed,
        st.sampled_from(numbers),
        st.sampled_from([True, False, None, [], {}, [None], {"": ""}]),
    )


def resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        *_, name = schema["$ref"].split("/")
        schema = doc["components"]["schemas"][name]
    return schema


def integer_bounds(schema: dict[str, Any]) -> tuple[int | None, int | None]:
    """The smallest and largest integers ``schema``'s bounds allow (``None``: unbounded)."""
    low: int | None = None
    high: int | None = None
    if "exclusiveMinimum" in schema:
        low = math.floor(schema["exclusiveMinimum"]) + 1
    elif "minimum" in schema:
        low = math.ceil(schema["minimum"])
    if "exclusiveMaximum" in schema:
        high = math.ceil(schema["exclusiveMaximum"]) - 1
    elif "maximum" in schema:
        high = math.floor(schema["maximum"])
    return low, high


def from_schema(schema: dict[str, Any], doc: dict[str, Any], depth: int = 0) -> Any:
    """A strategy for values valid against ``schema`` (the subset of JSON Schema that
    pydantic writes: types, bounds, patterns, enums, anyOf/oneOf, objects, arrays, $ref)."""
    schema = resolve(schema, doc)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(s, doc, depth + 1) for s in schema[key]])
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(resolve(part, doc))
        return from_schema(merged, doc, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}, doc, depth + 1) for k in kind])
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(
                lambda s: low <= len(s) <= (high if high is not None else len(s))
            )
        strategy = st.text(min_size=low, max_size=low + 40 if high is None else min(high, low + 40))
        return strategy if high is None else strategy | st.just(sized(high))
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        ints = st.integers(*integer_bounds(schema))
        if kind == "integer":
            return ints
        floats = st.floats(
            low,
            high,
            exclude_min="exclusiveMinimum" in schema,
            exclude_max="exclusiveMaximum" in schema,
            allow_nan=False,
            allow_infinity=False,
        )
        return ints | floats
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = from_schema(schema.get("items", {}), doc, depth + 1)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=4)
    if kind == "object" and depth < 4:
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        extra = schema.get("additionalProperties", True)
        if not properties and extra is not False:
            values = anything() if extra is True else from_schema(extra, doc, depth + 1)
            return st.dictionaries(st.text(max_size=12), values, max_size=4)
        return st.fixed_dictionaries(
            {k: from_schema(v, doc, depth + 1) for k, v in properties.items() if k in required},
            optional={
                k: from_schema(v, doc, depth + 1)
                for k, v in properties.items()
                if k not in required
            },
        )
    return anything()


# -- params and messages ----------------------------------------------------------------------


def hint(w: World, method: str, param: str) -> st.SearchStrategy[Any] | None:
    """Values the daemon will recognise (existing runs, steps, names): they reach the code
    behind the validation."""
    group = method.split(".")[0]
    if param in ("runId", "before"):
        return st.integers(0, 1 << 20).map(w.pick_run)
    if param in ("step", "fromStep"):
        return st.sampled_from([2, 1, 3])  # a fresh run's running step, its done one, none
    if param in PATH_PARAMS:
        inside = [*w.workspaces, str(w.tmp), str(w.tmp / "missing"), str(w.tmp / "ws1" / "x")]
        return st.sampled_from(inside) | st.sampled_from(inside).map(lambda p: p + "/./")
    if param == "passphrase":
        return st.builds(lambda: w.passphrase)
    if param == "name":
        names = {
            "steps": ["plan", "code", "test", "x-1"],
            "artifacts": ["plan.md", "out.bin", "log.txt"],
            "vault": ["api-key", "db.password", "t_1"],
        }.get(group)
        return st.sampled_from(names) if names else None
    return None


def good_value(w: World, method: str, param: str, schema: dict[str, Any]) -> Any:
    """A value the schema allows, often one the daemon knows (an existing run...)."""
    strategy = from_schema(schema, w.discover)
    known = hint(w, method, param)
    if known is not None:
        strategy = st.one_of(known, known, known, known, strategy)
    return strategy.map(w.confine) if param in PATH_PARAMS else strategy


def bad_value(w: World, param: str, schema: dict[str, Any]) -> Any:
    """A hostile value, or one of any type."""
    strategy = st.one_of(hostile(resolve(schema, w.discover)), anything())
    return strategy.map(w.confine) if param in PATH_PARAMS else strategy


OMIT = object()
EXTRA_KEYS = st.sampled_from(["extra", "jsonrpc", "__class__", "run_id", "", "id"]) | st.text(
    max_size=10
)
BAD_SHAPES = st.sampled_from([OMIT, None, 1, "x", True, "positional"])


VALID, ONE_WRONG, CHAOS = "valid", "one wrong", "chaos"


def params_strategy(
    w: World, method: dict[str, Any], modes: tuple[str, ...] = (VALID, VALID, ONE_WRONG, CHAOS)
) -> Any:
    """Params for ``method``: valid (to reach the code behind the checks), with one thing
    wrong (a hostile value, a missing or extra key, another shape), or anything anywhere."""
    described = method["params"]
    names = [p["name"] for p in described]
    required = [p["name"] for p in described if p["required"]]
    good = {p["name"]: good_value(w, method["name"], p["name"], p["schema"]) for p in described}
    bad = {p["name"]: bad_value(w, p["name"], p["schema"]) for p in described}
    likely = dict(good)  # valid mode: values the daemon knows, where there are such
    for p in described:
        known = hint(w, method["name"], p["name"])
        if known is not None and p["name"] not in PATH_PARAMS:
            likely[p["name"]] = known

    @st.composite
    def build(draw: Callable[..., Any]) -> Any:
        mode = draw(st.sampled_from(modes))
        params: dict[str, Any] = {}
        for p in described:
            if p["required"] or draw(st.booleans()):
                wrong = mode == CHAOS and draw(st.integers(0, 2)) == 0
                pool = bad if wrong else likely if mode == VALID else good
                params[p["name"]] = draw(pool[p["name"]])
        twist = draw(st.integers(0, 3)) if mode != VALID else None
        if twist == 0 and names:
            name = draw(st.sampled_from(names))
            params[name] = draw(bad[name])
        elif twist == 1 and required:
            del params[draw(st.sampled_from(required))]
        elif twist == 2:
            key = draw(EXTRA_KEYS)
            if key not in good:  # an unknown key, not a replaced value
                params[key] = draw(anything())
        elif twist == 3:
            shape = draw(BAD_SHAPES)
            # By position is refused too: the methods take their params by name.
            return list(params.values()) if shape == "positional" else shape
        return params

    return build()


def message_strategy(w: World, methods: list[dict[str, Any]]) -> Any:
    """One request (sometimes a notification, sometimes a broken envelope). A closure, not
    arguments: a failure report would print the whole method list."""
    params_of = {m["name"]: params_strategy(w, m) for m in methods}

    @st.composite
    def message(draw: Callable[..., Any]) -> Any:
        method = draw(st.sampled_from(methods))
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method["name"]}
        params = draw(params_of[method["name"]])
        if params is not OMIT:
            request["params"] = params
        request["id"] = draw(request_ids())
        envelope = draw(st.integers(0, 29))
        if envelope == 0:
            del request["id"]  # a notification: no reply, whatever happens
        elif envelope == 1:
            request["jsonrpc"] = draw(st.sampled_from(["1.0", 2.0, None]))
        elif envelope == 2:
            request["method"] = draw(st.sampled_from(["nope", "", "rpc.", "daemon.ping ", 7]))
        elif envelope == 3:
            request["id"] = draw(st.sampled_from([True, [1], {"a": 1}]))
        elif envelope == 4:
            request[draw(st.sampled_from(["result", "error", "extra"]))] = 1
        elif envelope == 5:
            del request["jsonrpc"]
        return request

    return message()


def request_ids() -> st.SearchStrategy[Any]:
    # Within int64: larger integers come back as floats (the parser reads them so).
    return st.one_of(
        st.integers(-(2**63), 2**63 - 1),
        st.text(max_size=16),
        st.floats(allow_nan=False, allow_infinity=False),
        st.none(),
    )


def valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))


def envelope_ok(message: Any) -> bool:
    """Whether ``message`` is a JSON-RPC 2.0 request object (params aside)."""
    return (
        isinstance(message, dict)
        and message.get("jsonrpc") == "2.0"
        and isinstance(message.get("method"), str)
        and ("params" not in message or isinstance(message["params"], dict | list))
        and ("id" not in message or valid_id(message["id"]))
        and set(message) <= {"jsonrpc", "method", "params", "id"}
    )


def expects_reply(message: Any) -> bool:
    """The spec's rule: a request gets a reply, a notification none, an invalid one an error."""
    return not envelope_ok(message) or "id" in message


# -- what every reply must be -----------------------------------------------------------------


def check_response(reply: Any, sent: Any, w: World) -> None:
    """One JSON-RPC 2.0 response to ``sent``: its id, a declared code, no traceback, and a
    result that keeps to the method's described result schema."""
    assert isinstance(reply, dict), reply
    assert reply.get("jsonrpc") == "2.0", reply
    assert ("result" in reply) != ("error" in reply), reply
    assert set(reply) <= {"jsonrpc", "id", "result", "error"}, reply
    if envelope_ok(sent):
        assert "id" in reply and same_id(reply["id"], sent["id"]), (sent, reply)
    else:
        assert "error" in reply and reply["error"]["code"] == -32600, (sent, reply)
        rid = sent.get("id") if isinstance(sent, dict) else None
        assert reply["id"] is None or same_id(reply["id"], rid), (sent, reply)
    method = sent.get("method") if isinstance(sent, dict) else None
    outcome = str(reply["error"]["code"]) if "error" in reply else "ok"
    OUTCOMES[method if isinstance(method, str) else "(not a request)"][outcome] += 1
    if "error" in reply:
        check_error(reply["error"], sent)
    else:
        check_result(w, sent["method"], reply["result"])
        w.learn(reply["result"])
        if sent["method"] == "vault.changePassphrase":
            w.passphrase = sent["params"]["newPassphrase"]


def same_id(a: Any, b: Any) -> bool:
    """Equal ids of the same kind (a number may come back as an int or a float)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    numbers = isinstance(a, int | float) and isinstance(b, int | float)
    return (numbers or type(a) is type(b)) and a == b


def check_error(error: Any, sent: Any) -> None:
    assert isinstance(error, dict) and isinstance(error.get("message"), str), error
    assert isinstance(error.get("code"), int), error
    assert error["code"] != -32603, f"internal error (a daemon bug) for {short(sent)}: {error}"
    assert error["code"] in DECLARED_CODES, error
    # Searched in the decoded strings, where a traceback would read as one.
    said = [error["message"], *strings(error.get("data"))]
    echoed = strings(sent)
    for mark in TRACEBACK_MARKS:
        if not any(mark in text for text in echoed):
            assert not any(mark in text for text in said), error


def strings(value: Any) -> list[str]:
    """Every string in a JSON value, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *strings(v))]
    return []


def check_result(w: World, method: str, result: Any) -> None:
    """A result keeps to the result schema that ``rpc.discover`` describes."""
    if method not in w.validators:
        described = next(m for m in w.discover["methods"] if m["name"] == method)
        schema = {**described["result"]["schema"], "components": w.discover["components"]}
        w.validators[method] = jsonschema.Draft202012Validator(schema)
    w.validators[method].validate(result)


def short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 400 else text[:400] + "..."


def check_batch_reply(w: World, wire: Wire, batch: list[Any]) -> None:
    wanted = [m for m in batch if expects_reply(m)]
    if not wanted:
        expect_nothing_before_ping(wire)
        return
    reply = wire.reply()
    assert isinstance(reply, list) and len(reply) == len(wanted), (short(batch), short(reply))
    for sent, got in zip(wanted, reply, strict=True):  # the daemon keeps the batch's order
        check_response(got, sent, w)


def expect_nothing_before_ping(wire: Wire) -> None:
    wire.send({"jsonrpc": "2.0", "method": "daemon.ping", "id": "after-notification"})
    reply = wire.reply()
    assert reply == {"jsonrpc": "2.0", "result": "pong", "id": "after-notification"}, reply


def vault_messages(sent: Any) -> list[dict[str, Any]]:
    items = sent if isinstance(sent, list) else [sent]
    return [
        m
        for m in items
        if isinstance(m, dict)
        and isinstance(m.get("method"), str)
        and m["method"].startswith("vault.")
    ]


def resync_vault(w: World, wire: Wire, sent: Any) -> None:
    """Keep the vault open with a known passphrase: each wrong one in a row doubles the wait
    before the next attempt, and a passphrase change sent as a notification says nothing."""
    touched = vault_messages(sent)
    if not touched:
        return
    candidates: list[Any] = [w.passphrase]
    for m in touched:
        params = m.get("params")
        if m["method"] == "vault.changePassphrase" and "id" not in m and isinstance(params, dict):
            candidates.append(params.get("newPassphrase"))
    if len(candidates) > 1:
        wire.call("vault.lock")  # which passphrase opens it now?
    status = wire.call("vault.status")
    if status["state"] == "unlocked" and status["retryAfterMs"] == 0:
        return
    for candidate in candidates:
        if not isinstance(candidate, str):
            continue
        wire.send(
            {
                "jsonrpc": "2.0",
                "method": "vault.unlock",
                "id": "resync",
                "params": {"passphrase": candidate},
            }
        )
        if "result" in wire.reply():
            w.passphrase = candidate
            return
    raise AssertionError("the vault opens with none of the passphrases it was given")


# -- the tests --------------------------------------------------------------------------------


def fuzzed_methods(w: World) -> list[dict[str, Any]]:
    return [m for m in w.discover["methods"] if not excluded(m["name"])]


@pytest.fixture(scope="module")
def wires(world: World) -> Iterator[dict[str, Wire]]:
    """One connection per framing, kept across examples (subscriptions included)."""
    opened = {f: Wire(world.sock, f) for f in ("ndjson", "content-length")}
    yield opened
    for wire in opened.values():
        wire.close()


def send_both(w: World, wires: dict[str, Wire], message: Any) -> None:
    """Send ``message`` on each framing's connection and check what comes back (nothing,
    for a notification: a ping sent after it must be the next reply)."""
    for wire in wires.values():
        wire.send(message)
        if isinstance(message, list):
            check_batch_reply(w, wire, message)
        elif expects_reply(message):
            check_response(wire.reply(), message, w)
        else:
            expect_nothing_before_ping(wire)
        resync_vault(w, wire, message)
        assert w.proc.poll() is None, "the daemon exited"


def test_each_method_with_generated_params_over_both_framings(
    world: World, wires: dict[str, Wire]
) -> None:
    for method in fuzzed_methods(world):
        # Valid params first (they reach the code behind the checks), then hostile ones;
        # a fresh run gives the valid ones steps and artifacts to act on.
        if any(p["name"] == "runId" and p["required"] for p in method["params"]):
            fresh_run(world, wires["ndjson"], world.workspaces[0])
        fuzz_one_method(world, wires, method, (VALID,), 5)()
        fuzz_one_method(world, wires, method, (ONE_WRONG, CHAOS), 8)()


def fuzz_one_method(
    w: World, wires: dict[str, Wire], method: dict[str, Any], modes: tuple[str, ...], count: int
) -> Callable[[], None]:
    @settings(FUZZ_SETTINGS, max_examples=count * SCALE)
    @given(params=params_strategy(w, method, modes), rid=request_ids())
    def one_method(params: Any, rid: Any) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method["name"], "id": rid}
        if params is not OMIT:
            message["params"] = params
        send_both(w, wires, message)

    return one_method


def test_mixed_calls_batches_and_broken_envelopes_over_both_framings(
    world: World, wires: dict[str, Wire]
) -> None:
    methods = fuzzed_methods(world)

    @settings(FUZZ_SETTINGS, max_examples=40 * SCALE)
    @given(
        messages=st.lists(message_strategy(world, methods), min_size=1, max_size=5),
        as_batch=st.booleans(),
    )
    def mixed(messages: list[Any], as_batch: bool) -> None:
        if as_batch:
            batch = [
                {**m, "id": f"b{n}"} if valid_id(m.get("id", True)) else m  # distinct ids
                for n, m in enumerate(messages)
            ]
            send_both(world, wires, batch)
        else:
            for message in messages:
                send_both(world, wires, message)

    mixed()


# -- the framing, byte by byte ----------------------------------------------------------------

# What a framed body must get back: a response with this id, an error (id null) with one of
# these codes, a batch reply of errors, or nothing.
Expect = tuple[str, Any]


def request_body(n: int) -> tuple[bytes, Expect]:
    method = ["daemon.ping", "status.get", "runs.list", "workspaces.list"][n % 4]
    return encode({"jsonrpc": "2.0", "method": method, "id": n}), ("reply", n)


@st.composite
def body_strategy(draw: Callable[..., Any], rid: int) -> tuple[bytes, Expect]:
    """One message body whose reply is known in advance."""
    kind = draw(st.integers(0, 10))
    if kind == 0:
        return encode({"jsonrpc": "2.0", "method": "daemon.ping"}), ("none", None)
    if kind == 1:  # garbage that is no JSON at all
        junk = draw(st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")))
        return b"#" + junk, ("error", {-32700})
    if kind == 2:  # invalid UTF-8 inside a string
        bad = draw(st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]))
        return b'{"jsonrpc":"2.0","method":"daemon.ping","id":1,"x":"' + bad + b'"}', (
            "error",
            {-32700},
        )
    if kind == 3:
        return draw(st.sampled_from([b"[]", b"[ ]", b"[\t]"])), ("error", {-32600})
    if kind == 4:  # nested arrays: a batch of non-requests, one error each
        batch = draw(st.lists(st.lists(st.integers(0, 9), max_size=3), min_size=1, max_size=4))
        return encode(batch), ("errors", len(batch))
    if kind == 5:  # a batch of requests and notifications
        size = draw(st.integers(1, 5))
        items, ids = [], []
        for k in range(size):
            item: dict[str, Any] = {"jsonrpc": "2.0", "method": "daemon.ping"}
            if draw(st.booleans()):
                item["id"] = rid * 10 + k
                ids.append(item["id"])
            items.append(item)
        return encode(items), ("batch", ids) if ids else ("none", None)
    if kind == 6:  # deep nesting: parsed (a batch of one bad request) or refused as too deep
        depth = draw(st.sampled_from([2, 10, 500, 1023, 1024, 1025, 5000, 100_000]))
        return b"[" * depth + b"]" * depth, ("one", None)
    if kind == 7:  # deep nesting inside params
        depth = draw(st.sampled_from([10, 1000, 2000]))
        body = b'{"jsonrpc":"2.0","method":"daemon.ping","id":%d,"params":{"a":' % rid
        return body + b"[" * depth + b"]" * depth + b"}}", ("one", None)
    if kind == 8:  # large, within the limit
        pad = "p" * draw(st.sampled_from([1000, 200_000, MAX_MESSAGE - 200]))
        big = {"jsonrpc": "2.0", "method": "status.get", "id": rid, "params": {"workspace": pad}}
        return encode(big), ("reply", rid)
    if kind == 9:  # a JSON value that is no request
        value = draw(JSON_SCALARS)
        return encode(value), ("error", {-32600})
    return request_body(rid)


def check_expected(reply: Any, expect: Expect) -> None:
    kind, detail = expect
    if kind == "reply":
        assert isinstance(reply, dict) and reply.get("id") == detail, (expect, reply)
        check_raw_reply(reply)
    elif kind == "error":
        assert isinstance(reply, dict) and reply.get("id") is None, reply
        check_raw_reply(reply)
        assert reply["error"]["code"] in detail, reply
    elif kind == "errors":
        assert isinstance(reply, list) and len(reply) == detail, reply
        for item in reply:
            check_raw_reply(item)
            assert item["error"]["code"] == -32600 and item["id"] is None, item
    elif kind == "batch":
        assert isinstance(reply, list) and [r.get("id") for r in reply] == detail, reply
        for item in reply:
            check_raw_reply(item)
    else:
        assert kind == "one", expect
        for item in reply if isinstance(reply, list) else [reply]:
            check_raw_reply(item)


def check_raw_reply(reply: Any) -> None:
    assert isinstance(reply, dict) and reply.get("jsonrpc") == "2.0", reply
    assert ("result" in reply) != ("error" in reply) and "id" in reply, reply
    if "error" in reply:
        check_error(reply["error"], None)


class Session:
    """Bytes sent on one fresh connection, and the replies they must get (``loose``: only
    that each is well formed). A plain class: failure reports show its short repr."""

    def __init__(
        self,
        chunks: list[bytes],
        expects: list[Expect],
        framing: str | None,
        loose: bool = False,
        tail_errors: tuple[int, int, frozenset[int]] = (0, 0, frozenset()),  # min, max, codes
    ) -> None:
        self.chunks = chunks
        self.expects = expects
        self.framing = framing
        self.loose = loose
        self.tail_errors = tail_errors

    def __repr__(self) -> str:
        data = b"".join(self.chunks)
        shown = data if len(data) <= 600 else data[:300] + b"..." + data[-300:]
        return (
            f"Session({len(self.chunks)} chunks, {len(data)} bytes: {shown!r}, "
            f"expects={self.expects!r}, tail_errors={self.tail_errors!r})"
        )


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


NO_REPLY: tuple[int, int, frozenset[int]] = (0, 0, frozenset())
PARSE_ERROR = (1, 1, frozenset({-32700}))
TOO_LARGE = (1, 1, frozenset({-32040}))
LENGTH_VALUES = [
    b"abc",
    b"-1",
    b"",
    b"1.5",
    b"0x10",
    b"+3",
    b"1 2",
    b"\xff",
    b"\xd9\xa3",
    b"\xc2\xb2",
]

# How a session ends, and the errors that ending gets before the daemon closes the connection.
NDJSON_TAILS: dict[str, tuple[bytes, tuple[int, int, frozenset[int]]]] = {
    "clean end": (b"", NO_REPLY),
    "partial line": (b'{"jsonrpc":"2.0","meth', PARSE_ERROR),
    "oversized, no newline": (b"[" + b" " * (MAX_MESSAGE + 10), TOO_LARGE),
    "oversized line": (b"[" + b" " * (MAX_MESSAGE + 10) + b"]\n", TOO_LARGE),
}
_CUT_BODY = encode({"jsonrpc": "2.0", "method": "daemon.ping", "id": 7})
LSP_TAILS: dict[str, tuple[bytes, tuple[int, int, frozenset[int]]]] = {
    "clean end": (b"", NO_REPLY),
    # Input that ends inside a message: "the connection ended in the middle of a message".
    "body shorter than announced": (b'Content-Length: 50\r\n\r\n{"jsonrpc":"2.0"', PARSE_ERROR),
    "length not a number": (b"", PARSE_ERROR),  # the value is drawn from LENGTH_VALUES
    "length of 20 digits": (b"Content-Length: " + b"9" * 20 + b"\r\n\r\n{}", TOO_LARGE),
    "length of 4300 digits": (b"Content-Length: " + b"9" * 4300 + b"\r\n\r\n{}", TOO_LARGE),
    "length of 4301 digits": (b"Content-Length: " + b"9" * 4301 + b"\r\n\r\n{}", TOO_LARGE),
    "length of 6000 digits": (b"Content-Length: " + b"9" * 6000 + b"\r\n\r\n{}", TOO_LARGE),
    "no Content-Length": (b"Content-Type: text/plain\r\n\r\n{}", PARSE_ERROR),
    "header line without colon": (b"Content-Length: 2\r\nno colon\r\n\r\n{}", PARSE_ERROR),
    "endless header block": (b"Content-Length: 2\r\nX-Pad: " + b"a" * 9000, PARSE_ERROR),
    "length over the limit": (b"Content-Length: %d\r\n\r\n" % (MAX_MESSAGE + 1), TOO_LARGE),
    # The body cut short gets its parse error; its last bytes are then read as a header that
    # the input ends in: a second one.
    "length shorter than the body": (
        b"Content-Length: %d\r\n\r\n" % (len(_CUT_BODY) - 5) + _CUT_BODY,
        (2, 2, frozenset({-32700})),
    ),
}


@st.composite
def ndjson_session(draw: Callable[..., Any], tail: str) -> Session:
    """Lines with known replies (blank lines and CRLF endings among them), then ``tail``."""
    bodies = [draw(body_strategy(100 + n)) for n in range(draw(st.integers(0, 6)))]
    lines, expects = [], []
    for body, expect in bodies:
        ending = draw(st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\n   \n"]))
        lines.append(draw(st.sampled_from([b"", b"  ", b"\t"])) + body + ending)
        if expect[0] != "none":
            expects.append(expect)
    # The first bytes never look like a header name: "#", JSON and whitespace do not.
    ending, errors = NDJSON_TAILS[tail]
    data = b"".join(lines) + ending
    cuts = draw(st.lists(st.integers(0, 1 << 30), max_size=6))
    return Session(split(data, cuts), expects, "ndjson", False, errors)


@st.composite
def lsp_session(draw: Callable[..., Any], tail: str) -> Session:
    """Content-Length frames with known replies (header spellings and extra headers vary),
    then ``tail``."""
    frames, expects = [], []
    for n in range(draw(st.integers(1, 5))):
        body, expect = draw(body_strategy(200 + n))
        if draw(st.integers(0, 6)) == 0:
            body, expect = b"", ("error", {-32700})
        name = draw(st.sampled_from([b"Content-Length", b"content-length", b"CONTENT-LENGTH"]))
        header = name + b":" + draw(st.sampled_from([b" ", b"", b"   "])) + b"%d" % len(body)
        header += draw(st.sampled_from([b"", b"  "]))
        extra = b"Content-Type: application/vscode-jsonrpc; charset=utf-8"
        lines = [header, extra] if draw(st.booleans()) else [header]
        if n and draw(st.booleans()):
            lines.reverse()  # only after the first frame: the first bytes pick the framing
        frames.append(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        if expect[0] != "none":
            expects.append(expect)
    ending, errors = LSP_TAILS[tail]
    if tail == "length not a number":
        ending = b"Content-Length: " + draw(st.sampled_from(LENGTH_VALUES)) + b"\r\n\r\n{}"
    data = b"".join(frames) + ending
    cuts = draw(st.lists(st.integers(0, 1 << 30), max_size=6))
    return Session(split(data, cuts), expects, "content-length", False, errors)


@st.composite
def random_session(draw: Callable[..., Any]) -> Session:
    """Bytes with little structure: random, header-like, JSON-like; replies only well formed."""
    pieces = draw(
        st.lists(
            st.one_of(
                st.binary(max_size=80),
                st.sampled_from(
                    [
                        b"Content-Length: 2\r\n\r\n{}",
                        b"Content-Length:",
                        b"Content-",
                        b"\r\n\r\n",
                        b"\n",
                        b"{",
                        b"[",
                        b'{"jsonrpc":"2.0","method":"daemon.ping","id":1}\n',
                        b"Content-Length: 99999999999999999999999\r\n\r\n",
                        b"X-Any-Header: 1\r\n",
                        b"\x00\xff\xfe",
                    ]
                ),
                anything().map(lambda v: encode(v) + b"\n"),
            ),
            max_size=8,
        )
    )
    data = b"".join(pieces)
    cuts = draw(st.lists(st.integers(0, 1 << 30), max_size=6))
    return Session(split(data, cuts), [], None, loose=True)


def play(w: World, session: Session) -> None:
    """Send the session on a fresh connection (from a thread, so replies never back up into
    a deadlock), end it, and read until the daemon closes it."""
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(REPLY_TIMEOUT)
    sock.connect(str(w.sock))
    sender_failed: list[BaseException] = []

    def send() -> None:
        try:
            for chunk in session.chunks:
                sock.sendall(chunk)
                SENT.session_bytes += len(chunk)
            sock.shutdown(socket.SHUT_WR)
        except OSError as exc:  # the daemon refused the connection and closed it
            sender_failed.append(exc)

    SENT.sessions += 1
    sender = threading.Thread(target=send)
    sender.start()
    reader = ReplyReader()
    replies: list[Any] = []
    try:
        while True:
            try:
                chunk = sock.recv(1 << 16)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                break
            reader.buffer += chunk
            while (body := reader.next()) is not None:
                replies.append(json.loads(body))
    finally:
        sender.join()
        sock.close()
    assert not reader.buffer, f"a reply cut short: {bytes(reader.buffer[:200])!r}"
    if session.framing is not None:
        assert set(reader.framings) <= {session.framing}, reader.framings
    assert len(set(reader.framings)) <= 1, reader.framings
    if session.loose:
        for reply in replies:
            for item in reply if isinstance(reply, list) else [reply]:
                check_raw_reply(item)
    else:
        low, high, codes = session.tail_errors
        head, tail = replies[: len(session.expects)], replies[len(session.expects) :]
        assert len(head) == len(session.expects), (session.expects, replies)
        for reply, expect in zip(head, session.expects, strict=True):
            check_expected(reply, expect)
        assert low <= len(tail) <= high, (session.tail_errors, tail)
        for reply in tail:
            check_raw_reply(reply)
            assert reply["error"]["code"] in codes and reply["id"] is None, reply
    assert not sender_failed or session.loose or session.tail_errors[1], sender_failed


@pytest.fixture(scope="module")
def bystanders(world: World) -> Iterator[list[Wire]]:
    """Connections that only ever send good requests, open while others misbehave."""
    opened = [Wire(world.sock, "ndjson"), Wire(world.sock, "content-length")]
    yield opened
    for wire in opened:
        wire.close()


def still_serving(w: World, bystanders: list[Wire]) -> None:
    assert w.proc.poll() is None, "the daemon exited"
    for wire in bystanders:
        assert wire.call("daemon.ping") == "pong"


@pytest.mark.parametrize("tail", list(NDJSON_TAILS))
def test_newline_framing_fuzzed_then_broken(
    world: World, bystanders: list[Wire], tail: str
) -> None:
    fuzz_sessions(world, bystanders, ndjson_session(tail), 10)


@pytest.mark.parametrize("tail", list(LSP_TAILS))
def test_content_length_framing_fuzzed_then_broken(
    world: World, bystanders: list[Wire], tail: str
) -> None:
    fuzz_sessions(world, bystanders, lsp_session(tail), 10)


def test_random_bytes_never_cost_the_daemon_or_other_connections(
    world: World, bystanders: list[Wire]
) -> None:
    fuzz_sessions(world, bystanders, random_session(), 80)


def fuzz_sessions(w: World, bystanders: list[Wire], sessions: Any, count: int) -> None:
    """Play ``count`` generated sessions, each on a fresh connection; after each one the
    daemon still runs and the connections that behaved still get answers."""

    @settings(FUZZ_SETTINGS, max_examples=count * SCALE)
    @given(session=sessions)
    def sessions_on_fresh_connections(session: Session) -> None:
        note(repr(session))
        play(w, session)
        still_serving(w, bystanders)

    sessions_on_fresh_connections()


# -- after all of it --------------------------------------------------------------------------


def test_the_daemon_survives_with_true_counts_and_a_clean_log(
    world: World, record_property: Callable[[str, object], None]
) -> None:
    assert world.proc.poll() is None, "the daemon exited"
    for framing in ("ndjson", "content-length"):
        wire = Wire(world.sock, framing)
        try:
            assert wire.call("daemon.ping") == "pong"
        finally:
            wire.close()
    wire = Wire(world.sock, "ndjson")
    try:
        # Polled: a workspace made inside another's run folder goes when that run is
        # deleted, and the daemon learns that from the watcher, a moment later.
        mismatch = ""

        def agree() -> bool:
            nonlocal mismatch
            mismatch = "the daemon did not answer in time"  # until it does
            mismatch = count_mismatch(wire)
            return not mismatch

        with contextlib.suppress(TimeoutError):  # the bound, or a call: said below
            eventually_blocking(agree, 5, interval=0.02)
        assert not mismatch, mismatch
        corrupt = wire.call("runs.list", {"status": "corrupt", "limit": 1000})["runs"]
        assert corrupt == [], "the daemon wrote a record it cannot read back"
    finally:
        wire.close()
    log = world.log.read_text(errors="replace")
    for mark in ("Traceback", "failed; closing it", "incident"):
        at = log.find(mark)
        assert at < 0, log[max(0, at - 300) : at + 3000]
    if OUTCOMES:  # the fuzzing tests ran: each method they were to call got replies
        assert {m["name"] for m in fuzzed_methods(world)} <= set(OUTCOMES)
    record_property("fuzz_messages_sent", SENT.messages)
    record_property("fuzz_raw_sessions", SENT.sessions)
    print(
        f"\nprotocol fuzzer: {SENT.messages} messages sent, {SENT.sessions} raw sessions "
        f"({SENT.session_bytes} bytes); replies per method:"
    )
    for method, outcomes in sorted(OUTCOMES.items()):
        print(f"  {method:28} {dict(sorted(outcomes.items()))}")


def count_mismatch(wire: Wire) -> str:
    """How the daemon's run counts differ from the run folders on disk ("" if they agree)."""
    served = wire.call("workspaces.list")
    for ws in served:
        on_disk = count_run_folders(Path(ws["path"]))
        if ws["runs"] != on_disk:
            return f"{ws['path']}: the daemon counts {ws['runs']} runs, the disk has {on_disk}"
    total = wire.call("status.get")["runs"]["total"]
    on_disk = sum(count_run_folders(Path(ws["path"])) for ws in served)
    return "" if total == on_disk else f"status.get counts {total} runs, the disk has {on_disk}"


def count_run_folders(workspace: Path) -> int:
    runs = workspace / ".simpleaide" / "runs"
    if not runs.is_dir():
        return 0
    return sum(1 for p in runs.iterdir() if RUN_ID_RE.match(p.name) and p.is_dir())
