"""The params schemas that ``rpc.discover`` publishes keep the rules the daemon enforces: a
value the daemon refuses, a validator generated from the published schema refuses too, and a
value the daemon takes, that validator takes. Where no JSON Schema keyword can say a rule (a
length in UTF-8 bytes, Unicode NFC, a name that looks like an id), the daemon alone refuses
and the param's ``description`` says so.

Schemas are applied with ``jsonschema_rs``, which reads patterns as ECMA-262, the regex
dialect of JSON Schema (Python's ``jsonschema`` uses ``re.search``, where ``$`` also matches
before a final newline). The daemon's verdict is its answer on the socket: refused when it
answers ``-32602`` naming the field.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs; jsonrpcserver brings it
import jsonschema_rs
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from simpleaided.app.daemon import Daemon
from simpleaided.domain import names
from tests.support.rpc import RpcClient

RUN = "<the test's run>"
EXAMPLE_RUN = names.RUN_ID_EXAMPLE


@dataclass(frozen=True)
class Case:
    """Values of one param, sent to ``method`` with ``params`` (which refuse something else
    where an accepted value would change state: the call then does nothing either way)."""

    method: str
    param: str
    params: dict[str, Any]
    refused: list[Any]
    accepted: list[Any]
    # Refused by the daemon alone, and the word of the param's description that says why.
    daemon_only: list[tuple[Any, str]] = field(default_factory=list)


CASES = [
    Case(
        "runs.get",
        "runId",
        {},
        refused=[
            "nope",
            "",
            "../x",
            "/etc/passwd",
            "20261124T101500123Z-1A2B3C4D",
            "２０２６１２０６T２２０３０６４３４Z-c00cb50f",
            f"{EXAMPLE_RUN}\n",
            f"{EXAMPLE_RUN}\x00",
            f"{EXAMPLE_RUN}/..",
            5,
            None,
        ],
        accepted=[EXAMPLE_RUN, RUN],
    ),
    Case("runs.list", "before", {}, refused=["x", 7, [EXAMPLE_RUN]], accepted=[EXAMPLE_RUN]),
    Case(
        "steps.create",
        "name",
        {"runId": RUN},
        refused=[
            "",
            "Plan",
            "-x",
            "_x",
            "a/b",
            "..",
            "a b",
            "x" * 65,
            "code\n",
            "a\x00",
            "a\u200b",
        ],
        accepted=["plan", "0", "code-review", "x" * 64],
    ),
    Case("artifacts.list", "step", {"runId": RUN}, refused=[0, 100, -1, 1.5], accepted=[1, 99]),
    Case(
        "runs.list",
        "workspace",
        {},
        refused=[
            "relative",
            "",
            "/a/../b",
            "/..",
            "/a/..",
            "/a\x00b",
            "../x",
            5,
            "/",
            "//",
            "/./.",
        ],
        accepted=["/nowhere", "/a/./b/", "//a", "/.hidden", "/a..b/...", "/x/..y", "/./a"],
        daemon_only=[("/" + "é" * 2100, "bytes")],
    ),
    Case(
        "artifacts.get",
        "name",
        {"runId": RUN, "step": 1},
        refused=[
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "/etc/passwd",
            "a\\b",
            "a\x00b",
            "a\tb",
            "plan.md\n",
            "\x1b[31mred",
            "a\x7fb",
            "a\u0085b",
            "a\u009bb",
            "evil\u202egpj.exe",
            "a\u2068b",
            "plan\u200b.md",
            "\ufeffplan.md",
            "pl\u00adan.md",
            "a\u2028b",
            "a\u2029b",
            "a\ufff9b",
            "a" * 256,
            7,
        ],
        accepted=[
            "plan.md",
            "a" * 255,
            "r\u00e9sum\u00e9.txt",
            "計画.md",
            "my plan.md",
            "my\u00a0plan.md",
            "x..y",
            "\ue000.txt",
            "\u2714\ufe0f.txt",
            "خطة.md",
        ],
        daemon_only=[
            ("re\u0301sume\u0301.txt", "NFC"),
            ("é" * 128, "bytes"),
            ("a" * 254 + "€", "bytes"),
            ("a\U000e0041b", "Cf"),
        ],
    ),
    Case(
        "vault.get",
        "name",
        {},
        refused=["", "a b", "-x", ".x", "x" * 129, "api-key\n", "clé"],
        accepted=["api-key", "db.password", "t_1", "A" * 128],
    ),
    Case(
        "terminals.ack",
        "id",
        {"offset": 0},
        refused=["nope", "0F3A9C21", "0f3a9c2", "0f3a9c210", "../../etc", ""],
        accepted=["0f3a9c21", "00000000"],
    ),
    Case(
        "terminals.rename",
        "name",
        {"id": "00000000"},
        refused=["", " ", "\u3000 ", "-x", "a\x1bb", "a\u202eb", "x" * 65, "a\u2028"],
        accepted=["build", " build", "a b", "日本", " -x"],
        daemon_only=[("0123abcd", "terminal id")],
    ),
    # terminals.create with cols 0: refused whatever else is given, so nothing is spawned.
    Case(
        "terminals.create",
        "cwd",
        {"cols": 0},
        refused=["relative", "/a\x00b", ""],
        accepted=["/tmp", "/"],
    ),
    Case(
        "terminals.create",
        "argv",
        {"cols": 0},
        refused=[[], ["a\x00"], "ls", ["x" * 4097]],
        accepted=[["true"], ["echo", "x"]],
    ),
    Case(
        "terminals.create",
        "env",
        {"cols": 0},
        refused=[{"A B": "x"}, {"1A": "x"}, {"": "x"}, {"OK": "a\x00"}, {"OK": 1}],
        accepted=[{"PATH": "/bin"}, {"_X1": ""}, {}],
    ),
    # runs.create with a relative workspace and runs.fail with a bad run id: never applied.
    Case(
        "runs.create",
        "title",
        {"workspace": "relative"},
        refused=["", "x" * 501, "a\x00b"],
        accepted=["t", "x" * 500, "日本\n語"],
    ),
    Case(
        "runs.fail",
        "errorMessage",
        {"runId": "nope"},
        refused=["", "a\x00", "x" * 10_001],
        accepted=["boom", "x" * 10_000],
    ),
    Case(
        "db.describe",
        "table",
        {},
        refused=["", "t\x00", "x" * 1025],
        accepted=["users", 'we"ird name', "x" * 1024],
    ),
    # An empty table name: refused, so no edit is tried.
    Case(
        "db.edit",
        "changes",
        {"table": ""},
        refused=[
            [],
            [{"op": "insert", "values": {"a\x00": 1}}],
            [{"op": "insert", "values": {"": 1}}],
            [{"op": "upsert", "values": {"a": 1}}],
            [{"op": "insert", "vals": {"a": 1}}],
        ],
        accepted=[
            [{"op": "insert", "values": {"a": 1}}],
            [{"op": "delete", "key": [1], "expect": {"a": 1}}],
        ],
    ),
    Case(
        "db.cancel",
        "queryId",
        {},
        refused=["", "a b", "x" * 65, "q1\n"],
        accepted=["q1", "A.b_c-1", "x" * 64],
    ),
    # step 0: refused, so no chunk is written.
    Case(
        "artifacts.put",
        "uploadId",
        {"runId": RUN, "step": 0, "name": "a", "text": "x", "offset": 1, "final": True},
        refused=["zz", "1-abc", "1f-8C2E44A90B1D7E35"],
        accepted=["1f-8c2e44a90b1d7e35"],
    ),
    Case("runs.list", "limit", {}, refused=[0, 1001, "x", 2.5, None], accepted=[1, 1000]),
    # An empty passphrase: refused, so no unlock is tried.
    Case(
        "vault.unlock",
        "ttlSeconds",
        {"passphrase": ""},
        refused=[0, -1, 30 * 86400 + 1],
        accepted=[1, 0.5, 30 * 86400],
    ),
]


def param_schema(doc: dict[str, Any], method: str, param: str) -> dict[str, Any]:
    """The published schema of ``param``, with the document's components for its refs."""
    described = next(m for m in doc["methods"] if m["name"] == method)
    schema = next(p["schema"] for p in described["params"] if p["name"] == param)
    return {**schema, "components": doc["components"]}


def refusal(reply: dict[str, Any], param: str) -> str | None:
    """The daemon's words if ``reply`` refuses ``param`` itself, else ``None``."""
    error = reply.get("error")
    if not error or error["code"] != -32602 or not isinstance(error.get("data"), dict):
        return None
    for problem in error["data"]["errors"]:
        if problem["field"] == param or problem["field"].startswith((f"{param}.", f"{param}[")):
            return str(problem["msg"])
    return None


async def verdicts(
    client: RpcClient, doc: dict[str, Any], case: Case, run: str, value: Any
) -> tuple[str | None, bool]:
    """The daemon's refusal of ``value`` (its words; ``None``: taken), and whether the
    published schema takes it."""
    value = run if value == RUN else value
    params = {k: run if v == RUN else v for k, v in case.params.items()}
    reply = await client.request(case.method, {**params, case.param: value})
    validator = jsonschema_rs.validator_for(param_schema(doc, case.method, case.param))
    return refusal(reply, case.param), validator.is_valid(value)


async def test_what_the_daemon_refuses_the_published_schema_refuses(
    client: RpcClient, workspace: Path
) -> None:
    doc = await client.call("rpc.discover")
    run = (await client.call("runs.create", workspace=str(workspace)))["id"]
    await client.call("steps.create", runId=run, name="first")
    wrong = []
    for case in CASES:
        where = f"{case.method} {case.param}"
        schema = param_schema(doc, case.method, case.param)
        described = json.dumps({k: v for k, v in schema.items() if k != "components"})
        for value in case.refused:
            daemon, published = await verdicts(client, doc, case, run, value)
            if daemon is None or published:
                wrong.append(f"{where}={value!r}: the daemon says {daemon}, the schema {published}")
        for value in case.accepted:
            daemon, published = await verdicts(client, doc, case, run, value)
            if daemon is not None or not published:
                wrong.append(f"{where}={value!r}: the daemon says {daemon}, the schema {published}")
        for value, word in case.daemon_only:
            daemon, published = await verdicts(client, doc, case, run, value)
            if daemon is None or not published or word not in described:
                wrong.append(f"{where}={value!r}: {daemon}, {published}, {word!r} not described")
    assert wrong == []


async def test_the_published_param_schemas_are_valid_and_say_what_a_value_is(
    client: RpcClient,
) -> None:
    doc = await client.call("rpc.discover")
    titled = {}
    for method in doc["methods"]:
        for param in method["params"]:
            schema = param_schema(doc, method["name"], param["name"])
            jsonschema.Draft202012Validator.check_schema(schema)
            jsonschema_rs.validator_for(schema)  # patterns compile as ECMA-262
            assert (
                "title" not in param["schema"]
                or " " in param["schema"]["title"]
                or (param["schema"]["title"].islower())
            ), (method["name"], param)  # a type's name ("run id"), not "Runid"
            for branch in [param["schema"], *param["schema"].get("anyOf", [])]:
                if branch.get("pattern", names.NO_NUL_PATTERN) != names.NO_NUL_PATTERN:
                    titled[(method["name"], param["name"])] = branch.get("title")
    # Every param of a pattern (other than "no NUL") says what it is: the words of its errors
    # are made of that.
    assert titled and all(titled.values()), titled


def published_checks(
    doc: dict[str, Any], daemon: Daemon, method: str, param: str, base: dict[str, Any]
) -> tuple[Callable[[str], bool], Callable[[str], bool]]:
    """The daemon's check of ``param`` (its method's params model, ``base`` for the rest)
    and the published schema's, as two predicates on one value."""
    model = daemon.dispatcher.methods[method].params

    def daemon_takes(value: str) -> bool:
        try:
            model.model_validate({**base, param: value})
        except ValidationError:
            return False
        return True

    return daemon_takes, jsonschema_rs.validator_for(param_schema(doc, method, param)).is_valid


TEXT = st.text(
    st.characters(codec="utf-8") | st.sampled_from("./\\-_ \n\x00\u202e\u200b\u0301é0a"),
    max_size=80,
)
SETTINGS = settings(max_examples=300, derandomize=True, database=None, deadline=None)
# Params whose pattern is the whole rule: the daemon and the published schema agree on every
# string (a pattern to draw from besides any text, so that valid ones come up too).
WHOLE_RULES: list[tuple[str, str, dict[str, Any], str]] = [
    ("runs.get", "runId", {}, names.RUN_ID_PATTERN),
    ("steps.create", "name", {"runId": EXAMPLE_RUN}, names.STEP_NAME_PATTERN),
    ("vault.get", "name", {}, r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
    ("terminals.ack", "id", {"offset": 0}, r"^[0-9a-f]{8}$"),
    ("db.cancel", "queryId", {}, r"^[A-Za-z0-9._-]{1,64}$"),
]


def check_agreement(
    daemon_takes: Callable[[str], bool],
    schema_takes: Callable[[str], bool],
    strings: st.SearchStrategy[str],
    where: str,
) -> None:
    """The daemon and the schema take and refuse the same strings."""

    @SETTINGS
    @given(strings)
    def agree(value: str) -> None:
        assert daemon_takes(value) == schema_takes(value), (where, value)

    agree()


async def test_where_a_pattern_is_the_whole_rule_both_agree_on_any_string(
    client: RpcClient, daemon: Daemon
) -> None:
    doc = await client.call("rpc.discover")
    for method, param, base, pattern in WHOLE_RULES:
        daemon_takes, schema_takes = published_checks(doc, daemon, method, param, base)
        strings = TEXT | st.from_regex(pattern, fullmatch=True)
        check_agreement(daemon_takes, schema_takes, strings, f"{method} {param}")


def artifact_gap(value: str) -> bool:
    """What only the daemon refuses in an artifact name: not NFC, over 255 bytes in UTF-8, a
    refused character above the BMP."""
    return (
        not unicodedata.is_normalized("NFC", value)
        or len(value.encode()) > names.MAX_ARTIFACT_NAME_BYTES
        or any(
            ord(c) > 0xFFFF and unicodedata.category(c) in names.REFUSED_CATEGORIES for c in value
        )
    )


def workspace_gap(value: str) -> bool:
    """What only the daemon refuses in a workspace path: over 4096 bytes in UTF-8, a path in
    /proc, /sys or /dev (however written: ``//proc``, ``/./sys``)."""
    plain = "/" + os.path.normpath(value).lstrip("/")
    return len(value.encode()) > names.MAX_WORKSPACE_PATH_BYTES or any(
        plain == tree or plain.startswith(f"{tree}/") for tree in names.KERNEL_TREES
    )


# Params with a rule that is more than its pattern, and what of it only the daemon checks.
PARTIAL_RULES: list[tuple[str, str, dict[str, Any], Callable[[str], bool]]] = [
    ("artifacts.get", "name", {"runId": EXAMPLE_RUN, "step": 1}, artifact_gap),
    ("runs.list", "workspace", {}, workspace_gap),
    (
        "terminals.rename",
        "name",
        {"id": "00000000"},
        lambda value: re.fullmatch("[0-9a-f]{8}", value) is not None,
    ),
]


def check_bounded(
    daemon_takes: Callable[[str], bool],
    schema_takes: Callable[[str], bool],
    gap: Callable[[str], bool],
    where: str,
) -> None:
    """The schema takes what the daemon takes, and more only within ``gap``."""

    @SETTINGS
    @given(TEXT | TEXT.map(lambda s: "/" + s) | st.sampled_from(["0123abcd", "é" * 128]))
    def bounded(value: str) -> None:
        if daemon_takes(value):
            assert schema_takes(value), (where, value)  # never stricter than the daemon
        elif schema_takes(value):
            assert gap(value), (where, value)  # looser only where its description says

    bounded()


async def test_where_a_rule_is_more_than_a_pattern_the_schema_is_looser_only_where_it_says(
    client: RpcClient, daemon: Daemon
) -> None:
    doc = await client.call("rpc.discover")
    for method, param, base, gap in PARTIAL_RULES:
        daemon_takes, schema_takes = published_checks(doc, daemon, method, param, base)
        check_bounded(daemon_takes, schema_takes, gap, f"{method} {param}")
