"""LLM backends: what one is (``LlmBackendSpec``), where its model list lives, and what an
answer from there means (``classify``), in the short words the status chips show.

A backend is online when its model-list endpoint answers with a non-empty list of models and,
if a model is configured, that model is among them. Everything else is offline with a reason:
an HTTP error (with the server's own message when it gives one, such as llama.cpp's
``Loading model``), a URL that answers but is not that API, an empty list, a missing model.
"""

from __future__ import annotations

import http
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from simpleaided.domain.vocabulary import LlmKind

MAX_LISTED_MODELS = 100  # a hosted API can list hundreds; every status query carries the list
MAX_NAME_CHARS = 200
MAX_MESSAGE_CHARS = 120  # a server's error message, as shown in a tooltip
SHOWN_IN_MISSING = 3  # names listed in "model 'x' not available (has: a, b, c …)"

NOT_PROBED = "not probed yet"


@dataclass(frozen=True, slots=True)
class LlmBackendSpec:
    """One configured backend; ``api_key`` is a vault reference (``vault:NAME``), never the key."""

    name: str
    kind: LlmKind
    url: str  # base URL: http://127.0.0.1:11434, http://host:8080, https://api.x.com/v1
    model: str | None = None  # if set, online also requires this model to be listed
    api_key: str | None = None


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """What one probe found: online or not, the models listed, and why not."""

    online: bool
    models: list[str]
    error: str | None

    @classmethod
    def offline(cls, error: str) -> ProbeOutcome:
        """An offline outcome with no models."""
        return cls(False, [], error)


def models_url(spec: LlmBackendSpec) -> str:
    """The model-list endpoint: ``/api/tags`` for Ollama, ``/v1/models`` for an OpenAI-style
    API (``/models`` when the base URL already ends with ``/v1``)."""
    parts = urlsplit(spec.url)
    base = parts.path.rstrip("/")
    if spec.kind == "ollama":
        path = f"{base}/api/tags"
    else:
        path = f"{base}/models" if base.endswith("/v1") else f"{base}/v1/models"
    return urlunsplit(parts._replace(path=path))


def display_url(url: str) -> str:
    """``url`` without credentials: no ``user:pass@``, and no query or fragment (a query can
    carry a token, as in ``?key=…``)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:  # e.g. a bad IPv6 literal: strip what looks like userinfo anyway
        return re.sub(r"//[^/?#]*@", "//", url).split("?")[0].split("#")[0]


def timed_out(seconds: float) -> str:
    """The reason given when a backend does not answer within ``seconds``."""
    return f"timed out after {seconds:g} s"


def classify(
    spec: LlmBackendSpec,
    status_code: int,
    body: bytes,
    content_type: str | None,
    *,
    location: str | None = None,
) -> ProbeOutcome:
    """What an answer from ``models_url(spec)`` means; ``location`` is where a redirect that
    was not followed pointed."""
    request = f"GET {urlsplit(models_url(spec)).path}"
    if 300 <= status_code < 400:
        where = f" to {display_url(location)[:80]}" if location else ""
        return ProbeOutcome.offline(f"HTTP {status_code}: redirects{where} (not followed)")
    if status_code in (404, 405):
        return ProbeOutcome.offline(_not_the_api(spec, f"{request}: HTTP {status_code}"))
    if not 200 <= status_code < 300:
        return ProbeOutcome.offline(f"HTTP {status_code}: {_http_reason(spec, status_code, body)}")

    data = _json(body)
    if data is None:
        return ProbeOutcome.offline(
            _not_the_api(spec, f"{request} answered {_what_it_is(body, content_type)}")
        )
    names = _model_names(spec.kind, data)
    if names is None:
        return ProbeOutcome.offline(
            _not_the_api(spec, f"{request} answered JSON without a model list")
        )
    listed = names[:MAX_LISTED_MODELS]
    if not names:
        hint = "run 'ollama pull'" if spec.kind == "ollama" else "still loading?"
        return ProbeOutcome(False, listed, f"no models yet (the server lists none; {hint})")
    if spec.model is not None and not has_model(spec, names):
        shown = ", ".join(names[:SHOWN_IN_MISSING])
        more = " …" if len(names) > SHOWN_IN_MISSING else ""
        return ProbeOutcome(
            False, listed, f"model {spec.model!r} not available (has: {shown}{more})"
        )
    return ProbeOutcome(True, listed, None)


def has_model(spec: LlmBackendSpec, names: Sequence[str]) -> bool:
    """Whether ``spec.model`` is among ``names``; for Ollama an untagged name means ``:latest``
    (``llama3`` is ``llama3:latest``)."""
    if spec.model is None:
        return True
    if spec.kind != "ollama":
        return spec.model in names
    wanted = _ollama_tagged(spec.model)
    return any(_ollama_tagged(name) == wanted for name in names)


def _ollama_tagged(name: str) -> str:
    # The tag follows the last colon of the last path part ("host:5000/ns/model" has none).
    return name if ":" in name.rpartition("/")[2] else f"{name}:latest"


def _not_the_api(spec: LlmBackendSpec, detail: str) -> str:
    api = "Ollama API" if spec.kind == "ollama" else "OpenAI-compatible API"
    return f"no {api} at this URL ({detail})"


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # also UnicodeDecodeError
        return None


def _what_it_is(body: bytes, content_type: str | None) -> str:
    kind = (content_type or "").split(";")[0].strip().lower()
    if "html" in kind or body.lstrip()[:1] == b"<":
        return "HTML"
    if not body.strip():
        return "nothing"
    return f"non-JSON ({kind})" if kind else "non-JSON"


def _model_names(kind: LlmKind, data: Any) -> list[str] | None:
    """The names listed (``models[].name`` for Ollama, ``data[].id`` for OpenAI), or ``None``
    when ``data`` is not a model list at all."""
    key, field = ("models", "name") if kind == "ollama" else ("data", "id")
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        return None
    entries: list[Any] = data[key]
    names: list[str] = []
    for entry in entries:
        name = entry.get(field) if isinstance(entry, dict) else None
        if kind == "ollama" and not isinstance(name, str) and isinstance(entry, dict):
            name = entry.get("model")  # newer Ollama lists both; either one will do
        if isinstance(name, str) and name.strip():
            names.append(name.strip()[:MAX_NAME_CHARS])
    if entries and not names:
        return None  # entries, but none with a name: not the shape this API has
    return names


def _http_reason(spec: LlmBackendSpec, status_code: int, body: bytes) -> str:
    if status_code in (401, 403):
        # A fixed phrase: servers echo (part of) the key in these messages (OpenAI does).
        return "the API key was refused" if spec.api_key else "the server wants an API key"
    message = _error_message(_json(body))
    if message:
        return message
    try:
        return http.HTTPStatus(status_code).phrase.lower()
    except ValueError:
        return "error"


def _error_message(data: Any) -> str | None:
    """The message of a JSON error body: llama.cpp and OpenAI ``{"error": {"message"}}``,
    Ollama ``{"error": "..."}``, vLLM ``{"message"}``, FastAPI ``{"detail": "..."}``."""
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    candidates = [
        error.get("message") if isinstance(error, dict) else error,
        data.get("message"),
        data.get("detail"),
    ]
    for text in candidates:
        if isinstance(text, str) and text.strip():
            return _short_phrase(text)
    return None


def _short_phrase(text: str) -> str:
    """One line, at most ``MAX_MESSAGE_CHARS``, lowercase-first unless it starts an acronym."""
    text = " ".join(text.split())
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 1].rstrip() + "…"
    if text[:1].isupper() and not text[1:2].isupper():
        text = text[0].lower() + text[1:]
    return text


def backend_entry(
    spec: LlmBackendSpec,
    outcome: ProbeOutcome,
    *,
    latency_ms: float | None = None,
    checked_at: str | None = None,
) -> dict[str, Any]:
    """One backend of the status document's ``llm`` section (see ``status.LlmBackend``)."""
    return {
        "name": spec.name,
        "kind": spec.kind,
        "url": display_url(spec.url),
        "model": spec.model,
        "online": outcome.online,
        "latencyMs": None if latency_ms is None else round(latency_ms, 1),
        "models": list(outcome.models),
        "error": outcome.error,
        "checkedAt": checked_at,
    }


def llm_section(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``llm`` section from its backend entries."""
    return {
        "online": sum(1 for entry in entries if entry["online"]),
        "total": len(entries),
        "backends": list(entries),
    }
