"""The shim's OpenAPI description, as third-party tools read it: valid OpenAPI 3.2
(openapi-spec-validator), clean under Redocly's ``recommended`` rules (its CLI, from npm),
every operation stating its security, its refusals and the headers it sends; served with an
``ETag``. That the routes answer as described: ``test_http``'s schemathesis run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from simpleaided.app.daemon import Daemon
from simpleaided.domain.api.base import ScopeParams, params_schema
from simpleaided.transports.http.openapi import openapi_document
from tests.support.daemon import running_daemon
from tests.support.http import bearer

REDOCLY = "@redocly/cli@2.77.0"  # pinned: a new release may add rules
STATUS_ROUTES = {"/api/status", "/api/status/stream"}
# Words in npm's output when the registry cannot be reached (no network outside CI).
OFFLINE = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ENETUNREACH")


def described(public_status: bool) -> dict[str, Any]:
    return openapi_document("http://127.0.0.1:7433", public_status=public_status)


def operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (path, operation) for path, item in document["paths"].items() for operation in item.values()
    ]


@pytest.mark.parametrize("public_status", [False, True])
def test_the_description_is_valid_openapi(public_status: bool) -> None:
    document = described(public_status)
    assert document["openapi"] == "3.2.0"  # itemSchema (the event stream's events) came in 3.2
    validate(document)  # raises, saying where, when it is not


def test_the_workspace_parameter_takes_what_the_daemon_takes() -> None:
    # The schema every method's params publish for a workspace path (rpc.discover): the same
    # pattern and length, from the same place.
    published = params_schema(ScopeParams)["properties"]["workspace"]["anyOf"]
    (path,) = [schema for schema in published if schema.get("type") == "string"]
    for route in STATUS_ROUTES:
        (parameter,) = [
            p for p in described(False)["paths"][route]["get"]["parameters"] if p["in"] == "query"
        ]
        assert parameter["name"] == "workspace"
        assert parameter["schema"] == path, route


@pytest.mark.parametrize("public_status", [False, True])
def test_each_operation_states_its_security_refusals_and_headers(public_status: bool) -> None:
    document = described(public_status)
    assert document["info"]["license"] == {"name": "MIT", "identifier": "MIT"}
    assert document["security"] == [{"bearer": []}]
    for path, operation in operations(document):
        needs_token = path != "/healthz" and not (public_status and path in STATUS_ROUTES)
        assert operation["security"] == ([{"bearer": []}] if needs_token else []), path
        responses = operation["responses"]
        assert ("401" in responses) is needs_token, path
        assert "403" in responses, path  # a foreign Host, on every route
        assert responses["200"]["headers"]["Cache-Control"], path
    status = document["paths"]["/api/status"]["get"]["responses"]
    assert set(status["200"]["headers"]) == {"ETag", "Cache-Control"}
    assert set(status) >= {"200", "304", "400", "403", "404"}
    stream = document["paths"]["/api/status/stream"]["get"]
    assert "Last-Event-ID" in [p["name"] for p in stream["parameters"]]
    assert set(stream["responses"]) >= {"200", "400", "403", "404", "503"}
    assert "itemSchema" in stream["responses"]["200"]["content"]["text/event-stream"]


@pytest.fixture
async def shim(isolated_env: Path, socket_path: Path) -> AsyncIterator[Daemon]:
    async with running_daemon(
        socket_path, isolated_env / "state", **{"http.listen": "127.0.0.1:0"}
    ) as daemon:
        yield daemon


async def test_the_served_description_is_the_documents_with_an_etag(shim: Daemon) -> None:
    url = shim.http.url
    async with httpx.AsyncClient(base_url=url, headers=bearer(shim)) as http:
        reply = await http.get("/openapi.json")
        assert reply.status_code == 200
        assert reply.json() == openapi_document(url)
        assert reply.headers["cache-control"] == "no-cache"
        etag = reply.headers["etag"]
        again = await http.get("/openapi.json", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag and again.headers["cache-control"] == "no-cache"
        assert (
            await http.get("/openapi.json", headers={"If-None-Match": '"x"'})
        ).status_code == 200


async def test_a_path_not_described_is_answered_as_the_description_says(shim: Daemon) -> None:
    url = shim.http.url
    description = openapi_document(url)["info"]["description"]
    assert "Any other path is answered 401 without the token and 404 with it" in description
    assert "(a console file that does not exist: 404)" in description
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/no/such/path")).status_code == 401
        assert (await http.get("/no/such/path", headers=bearer(shim))).status_code == 404
        assert (await http.get("/static/no-such-file.js")).status_code == 404


def _npx() -> str:
    """The path of ``npx``; without it the test skips, unless ``CI`` is set: then it fails
    (``.ci/run`` installs Node.js and npm)."""
    path = shutil.which("npx")
    if path is None:
        reason = "npx is not installed: Redocly's lint runs from npm (install Node.js and npm)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set: this test must run)")
        pytest.skip(reason)
    return path


@pytest.mark.parametrize("public_status", [False, True])
def test_redocly_recommended_rules_find_nothing(public_status: bool, tmp_path: Path) -> None:
    npx = _npx()
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(described(public_status)))
    env = {**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"}
    env.update(NO_UPDATE_NOTIFIER="1", npm_config_update_notifier="false")
    argv = [npx, "--yes", REDOCLY, "lint", "--extends", "recommended", "--format", "json"]
    done = subprocess.run(
        [*argv, str(document)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    if done.returncode != 0 and any(word in done.stderr for word in OFFLINE):
        reason = f"the npm registry cannot be reached for {REDOCLY}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set: this test must run)\n{done.stderr[-2000:]}")
        pytest.skip(reason)
    assert done.stdout.strip(), done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["problems"] == [], json.dumps(report["problems"], indent=1)[:4000]
    assert report["totals"] == {"errors": 0, "warnings": 0, "ignored": 0}
    assert done.returncode == 0, done.stderr[-2000:]
