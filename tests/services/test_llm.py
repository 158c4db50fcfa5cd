"""LLM backend probes: the answers of real loopback servers (Ollama, OpenAI-style, llama.cpp
loading, not-an-API, slow, silent, refused) become the ``llm`` status section."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from simpleaided.domain.errors import NotFound, VaultLocked
from simpleaided.domain.llm import (
    MAX_LISTED_MODELS,
    LlmBackendSpec,
    ProbeOutcome,
    classify,
    display_url,
    has_model,
    models_url,
)
from simpleaided.domain.status import LlmSection
from simpleaided.services import llm as llm_service
from simpleaided.services.llm import LlmService
from tests.support.llm_servers import (
    HTML_HOME,
    LLAMACPP_LOADING,
    OLLAMA_TAGS,
    OPENAI_MODELS,
    LlmServer,
    Route,
    SilentServer,
    refused_url,
)

TIMEOUT = 0.5  # each probe's bound in these tests
MARGIN = 0.5  # what a timed-out probe may take beyond it here
API_KEY = "sk-test-0123456789abcdef-never-shown"


def ollama(url: str, **more: Any) -> LlmBackendSpec:
    return LlmBackendSpec(name=more.pop("name", "local"), kind="ollama", url=url, **more)


def openai(url: str, **more: Any) -> LlmBackendSpec:
    return LlmBackendSpec(name=more.pop("name", "api"), kind="openai", url=url, **more)


def vault(secrets: dict[str, str]) -> Callable[[str], str]:
    """A resolver backed by ``secrets`` (names without the ``vault:`` prefix)."""

    def resolve(reference: str) -> str:
        name = reference.removeprefix("vault:")
        if name not in secrets:
            raise NotFound(f"secret {name!r} is not in the vault")
        return secrets[name]

    return resolve


def locked_vault(reference: str) -> str:
    raise VaultLocked("the vault is locked")


class Changes:
    """Counts ``on_change`` calls; ``event`` is set at each one."""

    def __init__(self) -> None:
        self.count = 0
        self.event = anyio.Event()

    def __call__(self) -> None:
        self.count += 1
        self.event.set()
        self.event = anyio.Event()


@contextlib.asynccontextmanager
async def service(
    *specs: LlmBackendSpec,
    resolve: Callable[[str], str] | None = None,
    changes: Callable[[], None] = lambda: None,
    probe_seconds: float = 3600.0,
) -> AsyncIterator[LlmService]:
    svc = LlmService(
        specs,
        probe_seconds=probe_seconds,
        timeout_seconds=TIMEOUT,
        resolve_secret=resolve or vault({}),
        on_change=changes,
    )
    try:
        yield svc
    finally:
        await svc.aclose()


async def probe_one(spec: LlmBackendSpec, **kwargs: Any) -> dict[str, Any]:
    """Probe ``spec`` alone; its entry in the (validated) section."""
    async with service(spec, **kwargs) as svc:
        with anyio.fail_after(TIMEOUT + MARGIN):
            section = await svc.probe()
    LlmSection.model_validate(section)
    assert section["total"] == 1
    entry: dict[str, Any] = section["backends"][0]
    assert section["online"] == int(entry["online"])
    return entry


# --- the pure part ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (ollama("http://127.0.0.1:11434"), "http://127.0.0.1:11434/api/tags"),
        (ollama("http://127.0.0.1:11434/"), "http://127.0.0.1:11434/api/tags"),
        (openai("http://host:8080"), "http://host:8080/v1/models"),
        (openai("https://api.x.com/v1"), "https://api.x.com/v1/models"),
        (openai("https://api.x.com/v1/"), "https://api.x.com/v1/models"),
        (openai("https://gw.example/openai"), "https://gw.example/openai/v1/models"),
    ],
)
def test_models_url(spec: LlmBackendSpec, expected: str) -> None:
    assert models_url(spec) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:pa55@host:8080/v1", "http://host:8080/v1"),
        ("https://token@api.x.com/v1", "https://api.x.com/v1"),
        ("http://u:p@ss@host/x", "http://host/x"),  # an unescaped @ in the password
        ("https://api.x.com/v1?key=abc#frag", "https://api.x.com/v1"),
        ("http://127.0.0.1:11434", "http://127.0.0.1:11434"),
        ("http://u:secret@[::1/x", "http://[::1/x"),  # unparsable, still stripped
    ],
)
def test_display_url_strips_credentials(url: str, expected: str) -> None:
    assert display_url(url) == expected


OLLAMA = ollama("http://h:11434")
OPENAI = openai("http://h:8080")
JSON = "application/json"
NOT_OLLAMA = "no Ollama API at this URL (GET /api/tags"
NOT_OPENAI = "no OpenAI-compatible API at this URL (GET /v1/models"
NO_LIST = "answered JSON without a model list)"


def body(data: Any) -> bytes:
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("spec", "status", "data", "content_type", "error"),
    [
        (OLLAMA, 200, body(OLLAMA_TAGS), JSON, None),
        (OPENAI, 200, body(OPENAI_MODELS), JSON, None),
        (OPENAI, 503, body(LLAMACPP_LOADING), JSON, "HTTP 503: loading model"),
        (OLLAMA, 500, body({"error": "runner crashed"}), JSON, "HTTP 500: runner crashed"),
        (OPENAI, 503, b"<html>Oops</html>", "text/html", "HTTP 503: service unavailable"),
        (OPENAI, 502, b"", None, "HTTP 502: bad gateway"),
        (OPENAI, 599, b"", None, "HTTP 599: error"),
        (OPENAI, 422, body({"detail": "Unprocessable"}), JSON, "HTTP 422: unprocessable"),
        (OPENAI, 400, body({"message": "API quota gone"}), JSON, "HTTP 400: API quota gone"),
        (OLLAMA, 404, b"404 page not found", "text/plain", f"{NOT_OLLAMA}: HTTP 404)"),
        (OPENAI, 404, body({"error": {"message": "no"}}), JSON, f"{NOT_OPENAI}: HTTP 404)"),
        (OPENAI, 405, b"", None, f"{NOT_OPENAI}: HTTP 405)"),
        (OPENAI, 200, HTML_HOME.encode(), "text/html", f"{NOT_OPENAI} answered HTML)"),
        (OPENAI, 200, HTML_HOME.encode(), None, f"{NOT_OPENAI} answered HTML)"),
        (OLLAMA, 200, b"Ollama is running", "text/plain; charset=utf-8",
         f"{NOT_OLLAMA} answered non-JSON (text/plain))"),
        (OLLAMA, 200, b"\xff\xfe", None, f"{NOT_OLLAMA} answered non-JSON)"),
        (OLLAMA, 200, b"", None, f"{NOT_OLLAMA} answered nothing)"),
        (OLLAMA, 200, body({"status": "ok"}), JSON, f"{NOT_OLLAMA} {NO_LIST}"),
        (OLLAMA, 200, body(OPENAI_MODELS), JSON, f"{NOT_OLLAMA} {NO_LIST}"),  # the other shape
        (OPENAI, 200, body({"data": [{"name": "x"}]}), JSON, f"{NOT_OPENAI} {NO_LIST}"),
        (OPENAI, 200, body({"data": "gpt"}), JSON, f"{NOT_OPENAI} {NO_LIST}"),
        (OPENAI, 200, body([1, 2]), JSON, f"{NOT_OPENAI} {NO_LIST}"),
        (OPENAI, 200, body({"object": "list", "data": []}), JSON,
         "no models yet (the server lists none; still loading?)"),
        (OLLAMA, 200, body({"models": []}), JSON,
         "no models yet (the server lists none; run 'ollama pull')"),
    ],
)  # fmt: skip
def test_classify(
    spec: LlmBackendSpec, status: int, data: bytes, content_type: str | None, error: str | None
) -> None:
    outcome = classify(spec, status, data, content_type)
    assert outcome.error == error
    assert outcome.online is (error is None)


def test_classify_lists_the_models() -> None:
    assert classify(OLLAMA, 200, body(OLLAMA_TAGS), JSON) == ProbeOutcome(
        True, ["llama3:latest", "qwen2.5-coder:7b"], None
    )
    assert classify(OPENAI, 200, body(OPENAI_MODELS), JSON).models == [
        "gpt-4o-mini",
        "text-embedding-3-small",
    ]


def test_classify_caps_a_long_model_list() -> None:
    many = {"data": [{"id": f"m{i}"} for i in range(MAX_LISTED_MODELS + 50)]}
    wanted = f"m{MAX_LISTED_MODELS + 10}"  # listed by the server, past the cap
    outcome = classify(openai("http://h", model=wanted), 200, body(many), JSON)
    assert outcome.online
    assert len(outcome.models) == MAX_LISTED_MODELS


def test_a_missing_model_is_named_with_a_few_of_those_available() -> None:
    models = {"data": [{"id": name} for name in ["a", "b", "c", "d", "e"]]}
    outcome = classify(openai("http://h", model="x"), 200, body(models), JSON)
    assert outcome == ProbeOutcome(
        False, ["a", "b", "c", "d", "e"], "model 'x' not available (has: a, b, c …)"
    )
    few = {"data": [{"id": "a"}, {"id": "b"}]}
    outcome = classify(openai("http://h", model="x"), 200, body(few), JSON)
    assert outcome.error == "model 'x' not available (has: a, b)"


@pytest.mark.parametrize(
    ("kind", "model", "names", "found"),
    [
        ("ollama", "llama3", ["llama3:latest"], True),
        ("ollama", "llama3:latest", ["llama3"], True),
        ("ollama", "llama3:8b", ["llama3:latest"], False),
        ("ollama", "llama3", ["llama3:8b"], False),
        ("ollama", "registry.local:5000/ns/coder", ["registry.local:5000/ns/coder:latest"], True),
        ("openai", "gpt-4o", ["gpt-4o-mini"], False),
        ("openai", "llama3", ["llama3:latest"], False),  # only Ollama has implicit tags
    ],
)
def test_model_names(kind: str, model: str, names: list[str], found: bool) -> None:
    spec = LlmBackendSpec(name="b", kind=kind, url="http://h", model=model)  # type: ignore[arg-type]
    assert has_model(spec, names) is found


def test_a_refused_key_is_never_echoed() -> None:
    # OpenAI echoes part of a wrong key in its message: the reason is a fixed phrase instead.
    message = {"error": {"message": "Incorrect API key provided: sk-abc***xyz"}}
    keyed = openai("http://h", api_key="vault:k")
    assert classify(keyed, 401, body(message), JSON).error == "HTTP 401: the API key was refused"
    assert (
        classify(OPENAI, 401, body(message), JSON).error == "HTTP 401: the server wants an API key"
    )


def test_long_or_multiline_messages_are_cut_to_one_short_line() -> None:
    message = {"error": "Line one\n  line two " + "x" * 300}
    error = classify(OLLAMA, 500, body(message), JSON).error
    assert error is not None
    assert error.startswith("HTTP 500: line one line two x")
    assert "\n" not in error
    assert len(error) <= len("HTTP 500: ") + 120
    assert error.endswith("…")


def test_a_redirect_says_where_to_without_credentials() -> None:
    outcome = classify(OPENAI, 302, b"", None, location="https://u:pw@other.host/v1/models?t=1")
    assert outcome.error == "HTTP 302: redirects to https://other.host/v1/models (not followed)"


# --- probing real servers -----------------------------------------------------------------


async def test_an_ollama_server_is_online_with_its_models() -> None:
    with LlmServer({"/api/tags": Route(body=OLLAMA_TAGS)}) as server:
        entry = await probe_one(ollama(server.url, model="llama3"))
    assert entry["online"] is True
    assert entry["error"] is None
    assert entry["models"] == ["llama3:latest", "qwen2.5-coder:7b"]
    assert entry["url"] == server.url
    assert entry["kind"] == "ollama"
    assert entry["model"] == "llama3"
    assert isinstance(entry["latencyMs"], float)
    assert entry["latencyMs"] == round(entry["latencyMs"], 1)
    assert entry["checkedAt"].endswith("Z")
    assert [r.path for r in server.requests] == ["/api/tags"]


async def test_an_openai_server_is_online_at_a_v1_base_url() -> None:
    with LlmServer({"/v1/models": Route(body=OPENAI_MODELS)}) as server:
        entry = await probe_one(openai(server.url + "/v1", model="gpt-4o-mini"))
    assert entry["online"] is True
    assert entry["models"] == ["gpt-4o-mini", "text-embedding-3-small"]
    assert [r.path for r in server.requests] == ["/v1/models"]


@pytest.mark.parametrize(
    ("make_spec", "routes", "error"),
    [
        pytest.param(
            openai,
            {"/v1/models": Route(503, LLAMACPP_LOADING)},
            "HTTP 503: loading model",
            id="llama.cpp-loading",
        ),
        pytest.param(
            openai,
            {"/v1/models": Route(body={"object": "list", "data": []})},
            "no models yet (the server lists none; still loading?)",
            id="empty-list",
        ),
        pytest.param(
            ollama,
            {"/": Route(body=HTML_HOME, content_type="text/html")},
            "no Ollama API at this URL (GET /api/tags: HTTP 404)",
            id="a-web-page-not-ollama",
        ),
        pytest.param(
            openai,
            {"/v1/models": Route(body=HTML_HOME, content_type="text/html")},
            "no OpenAI-compatible API at this URL (GET /v1/models answered HTML)",
            id="html-on-the-api-path",
        ),
    ],
)
async def test_servers_that_answer_but_are_not_ready(
    make_spec: Callable[[str], LlmBackendSpec], routes: dict[str, Route], error: str
) -> None:
    with LlmServer(routes) as server:
        entry = await probe_one(make_spec(server.url))
    assert entry["online"] is False
    assert entry["error"] == error
    assert isinstance(entry["latencyMs"], float)  # it did answer


async def test_a_configured_model_must_be_listed() -> None:
    with LlmServer({"/api/tags": Route(body=OLLAMA_TAGS)}) as server:
        present = await probe_one(ollama(server.url, model="qwen2.5-coder:7b"))
        missing = await probe_one(ollama(server.url, model="mistral"))
    assert present["online"] is True
    assert missing["online"] is False
    assert (
        missing["error"] == "model 'mistral' not available (has: llama3:latest, qwen2.5-coder:7b)"
    )
    assert missing["models"] == ["llama3:latest", "qwen2.5-coder:7b"]


@pytest.mark.parametrize(
    "route",
    [
        pytest.param(Route(body=OLLAMA_TAGS, delay=30), id="answers-too-late"),
        # Each byte comes well within httpx's read timeout: only the hard bound stops it.
        pytest.param(Route(body=OLLAMA_TAGS, trickle=0.05), id="trickles-bytes"),
    ],
)
async def test_a_slow_server_times_out_within_the_bound(route: Route) -> None:
    with LlmServer({"/api/tags": route}) as server:
        entry = await probe_one(ollama(server.url))  # bounded by TIMEOUT + MARGIN
    assert entry["online"] is False
    assert entry["error"] == "timed out after 0.5 s"
    assert entry["latencyMs"] is None


async def test_a_server_that_accepts_and_never_answers_times_out() -> None:
    with SilentServer() as silent:
        entry = await probe_one(ollama(silent.url))
    assert entry["error"] == "timed out after 0.5 s"


async def test_nothing_listening_is_connection_refused() -> None:
    entry = await probe_one(openai(refused_url()))
    assert entry["online"] is False
    assert entry["error"] == "connection refused"
    assert entry["latencyMs"] is None


async def test_backends_are_probed_concurrently() -> None:
    slow = Route(body=OLLAMA_TAGS, delay=30)
    with LlmServer({"/api/tags": slow}) as one, LlmServer({"/api/tags": slow}) as two:
        async with service(ollama(one.url, name="one"), ollama(two.url, name="two")) as svc:
            with anyio.fail_after(TIMEOUT + MARGIN):  # one timeout, not two
                section = await svc.probe()
    assert [b["error"] for b in section["backends"]] == ["timed out after 0.5 s"] * 2
    LlmSection.model_validate(section)


async def test_concurrent_callers_share_one_probe() -> None:
    with LlmServer({"/api/tags": Route(body=OLLAMA_TAGS, delay=0.2)}) as server:
        async with service(ollama(server.url)) as svc:
            results: list[dict[str, Any]] = []

            async def call() -> None:
                results.append(await svc.probe())

            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    for _ in range(3):
                        tg.start_soon(call)
        assert len(server.requests) == 1
    assert results[0] is results[1] is results[2]
    assert results[0]["online"] == 1


async def test_a_probe_whose_caller_goes_away_still_completes_for_the_others() -> None:
    with LlmServer({"/api/tags": Route(body=OLLAMA_TAGS, delay=0.3)}) as server:
        async with service(ollama(server.url)) as svc:
            waiter: list[dict[str, Any]] = []

            async def wait_for_it() -> None:
                waiter.append(await svc.probe())  # joins the probe the first caller started

            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    with anyio.move_on_after(0.1):  # the first caller (a client) goes away
                        tg.start_soon(wait_for_it)
                        await svc.probe()
            assert waiter[0]["online"] == 1 and svc.section()["backends"][0]["checkedAt"]


async def test_every_kind_of_backend_at_once() -> None:
    with (
        LlmServer({"/api/tags": Route(body=OLLAMA_TAGS)}) as good,
        LlmServer({"/v1/models": Route(503, LLAMACPP_LOADING)}) as loading,
        SilentServer() as silent,
    ):
        specs = [
            ollama(good.url, name="ollama"),
            openai(loading.url, name="llamacpp"),
            openai(silent.url, name="silent"),
            ollama(refused_url(), name="down"),
        ]
        async with service(*specs) as svc:
            with anyio.fail_after(TIMEOUT + MARGIN):
                section = await svc.probe()
    LlmSection.model_validate(section)
    assert section["online"] == 1
    assert section["total"] == 4
    assert {b["name"]: b["error"] for b in section["backends"]} == {
        "ollama": None,
        "llamacpp": "HTTP 503: loading model",
        "silent": "timed out after 0.5 s",
        "down": "connection refused",
    }


# --- API keys and credentials -------------------------------------------------------------


async def test_the_api_key_is_sent_as_a_bearer_token_only_when_configured() -> None:
    with LlmServer({"/v1/models": Route(body=OPENAI_MODELS)}) as server:
        keyed = await probe_one(
            openai(server.url, api_key="vault:openai"), resolve=vault({"openai": API_KEY})
        )
        plain = await probe_one(openai(server.url))
    assert keyed["online"] is True
    assert plain["online"] is True
    assert server.requests[0].headers.get("Authorization") == f"Bearer {API_KEY}"
    assert "Authorization" not in server.requests[1].headers


async def test_a_locked_vault_or_a_missing_secret_keeps_the_backend_offline() -> None:
    with LlmServer({"/v1/models": Route(body=OPENAI_MODELS)}) as server:
        locked = await probe_one(openai(server.url, api_key="vault:openai"), resolve=locked_vault)
        missing = await probe_one(openai(server.url, api_key="vault:openai"), resolve=vault({}))
        assert server.requests == []  # no request without the key
    assert locked["online"] is False
    assert locked["error"] == "API key needs the vault, which is locked"
    assert missing["error"] == "API key secret 'openai' not in the vault"


async def test_secrets_never_reach_the_section_or_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log requests at INFO and DEBUG
    password = "url-pa55word-never-shown"
    echo = {"error": {"message": f"Quota exceeded for key {API_KEY}"}}
    with LlmServer({"/v1/models": Route(429, echo)}) as server:
        url = server.url.replace("http://", f"http://user:{password}@")
        spec = openai(url, api_key="vault:openai")
        async with service(spec, resolve=vault({"openai": API_KEY})) as svc:
            await svc.probe()
            section = svc.section()
        server.routes["/v1/models"] = Route(body=OPENAI_MODELS)
        basic = await probe_one(openai(url))
        assert server.requests[1].headers["Authorization"].startswith("Basic ")
    entry = section["backends"][0]
    assert entry["error"] == "HTTP 429: quota exceeded for key ***"
    assert entry["url"] == server.url
    assert basic["url"] == server.url
    for text in (json.dumps(section), json.dumps(basic), caplog.text):
        assert API_KEY not in text
        assert password not in text
    assert "is offline: HTTP 429" in caplog.text


# --- redirects and limits -----------------------------------------------------------------


async def test_a_redirect_is_followed_within_the_same_origin_only() -> None:
    with LlmServer({"/v1/models": Route(body=OPENAI_MODELS)}) as target:
        moved = Route(308, headers={"Location": "/new/v1/models"})
        away = Route(302, headers={"Location": f"{target.url}/v1/models"})
        routes = {"/old/v1/models": moved, "/new/v1/models": Route(body=OPENAI_MODELS)}
        with LlmServer({**routes, "/v1/models": away}) as server:
            followed = await probe_one(openai(server.url + "/old"))
            elsewhere = await probe_one(openai(server.url))
        assert len(target.requests) == 0
    assert followed["online"] is True
    assert [r.path for r in server.requests][:2] == ["/old/v1/models", "/new/v1/models"]
    assert elsewhere["online"] is False
    assert elsewhere["error"] == f"HTTP 302: redirects to {target.url}/v1/models (not followed)"


async def test_an_oversized_answer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llm_service, "MAX_ANSWER_BYTES", 1024 * 1024)
    huge = {"models": [{"name": f"model-{i}"} for i in range(50_000)]}
    with LlmServer({"/api/tags": Route(body=huge)}) as server:
        entry = await probe_one(ollama(server.url))
    assert entry["error"] == "answer larger than 1 MiB"


# --- the section, changes and the loop ---------------------------------------------------


async def test_before_the_first_probe() -> None:
    spec = ollama("http://user:pw@127.0.0.1:1", model="llama3")
    async with service(spec) as svc:
        section = svc.section()
        assert svc.section() is section
    LlmSection.model_validate(section)
    assert section == {
        "online": 0,
        "total": 1,
        "backends": [
            {
                "name": "local",
                "kind": "ollama",
                "url": "http://127.0.0.1:1",
                "model": "llama3",
                "online": False,
                "latencyMs": None,
                "models": [],
                "error": "not probed yet",
                "checkedAt": None,
            }
        ],
    }


async def test_on_change_is_called_when_the_meaning_changes_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="simpleaided.services.llm")
    changes = Changes()
    with LlmServer({"/v1/models": Route(503, LLAMACPP_LOADING)}) as server:
        async with service(openai(server.url, name="box"), changes=changes) as svc:
            first = await svc.probe()
            assert changes.count == 1  # "not probed yet" → the 503
            again = await svc.probe()
            assert changes.count == 1  # same answer: only checkedAt and latency moved
            assert again is not first
            assert svc.section() is again  # stable until the next probe

            server.routes["/v1/models"] = Route(body=OPENAI_MODELS)
            online = await svc.probe()
            assert changes.count == 2  # offline → online
            assert online["online"] == 1
            await svc.probe()
            assert changes.count == 2

            server.routes["/v1/models"] = Route(body={"data": [{"id": "other"}]})
            await svc.probe()
            assert changes.count == 3  # the models changed
    messages = [r.getMessage() for r in caplog.records if r.name == "simpleaided.services.llm"]
    assert messages == [
        "LLM backend box is offline: HTTP 503: loading model",
        "LLM backend box is online",
    ]


async def test_run_starts_at_once_then_probes_and_wakes_on_probe_soon() -> None:
    changes = Changes()
    with SilentServer() as silent, LlmServer({"/api/tags": Route(503)}) as server:
        specs = [ollama(server.url), ollama(silent.url, name="silent")]
        async with service(*specs, changes=changes) as svc, anyio.create_task_group() as tg:
            with anyio.fail_after(TIMEOUT / 2):  # started before any backend answers
                await tg.start(svc.run)
            with anyio.fail_after(TIMEOUT + MARGIN):
                while svc.section()["backends"][1]["checkedAt"] is None:
                    await changes.event.wait()
            assert [b["error"] for b in svc.section()["backends"]] == [
                "HTTP 503: service unavailable",
                "timed out after 0.5 s",
            ]

            server.routes["/api/tags"] = Route(body=OLLAMA_TAGS)
            svc.probe_soon()  # probe_seconds is an hour: only this can wake it
            with anyio.fail_after(TIMEOUT + MARGIN):
                while not svc.section()["online"]:
                    await changes.event.wait()
            tg.cancel_scope.cancel()


async def test_run_with_no_backends_probes_nothing() -> None:
    async with service() as svc, anyio.create_task_group() as tg:
        await tg.start(svc.run)
        svc.probe_soon()
        assert svc.section() == {"online": 0, "total": 0, "backends": []}
        assert await svc.probe() == {"online": 0, "total": 0, "backends": []}
        tg.cancel_scope.cancel()
