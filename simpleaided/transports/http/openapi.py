"""The OpenAPI description of the HTTP shim (``GET /openapi.json``): its API routes, what each
answers (the refusals and the headers included), and the token each needs (a bearer token;
``http.public_status`` opens the status routes). The status document's schema is generated
from the same pydantic model the daemon answers with; the event stream's events are
described one by one (OpenAPI 3.2's ``itemSchema``)."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import TypeAdapter

from simpleaided import __version__
from simpleaided.domain.api.fields import WorkspacePath
from simpleaided.domain.status import StatusDocument

OPENAPI_VERSION = "3.2.0"


@cache
def _workspace_path_schema() -> dict[str, Any]:
    """The JSON Schema of a workspace path, as the daemon's params publish it."""
    return TypeAdapter(WorkspacePath).json_schema()


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _text(description: str, **headers: Any) -> dict[str, Any]:
    """A plain-text answer (a refusal saying why)."""
    answer: dict[str, Any] = {
        "description": description,
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
    if headers:
        answer["headers"] = headers
    return answer


def _error(description: str, **headers: Any) -> dict[str, Any]:
    """A JSON answer ``{"error": "..."}`` (a refusal saying why, and what to do)."""
    return {
        "description": description,
        "headers": headers,
        "content": {"application/json": {"schema": _ref("schemas", "Error")}},
    }


def _events() -> dict[str, Any]:
    """The schemas of the event stream's events, as a client reads them (``event``, ``id``,
    ``retry``, ``data``), ``data`` being JSON text."""
    return {
        "StatusEvent": {
            "type": "object",
            "description": (
                "The status document: at once (after `retry`, the reconnection delay in "
                "ms), then after each change, and again when what it shows moved on with "
                "time (an age in the chips' words, the vault's countdown)"
            ),
            "properties": {
                "event": {"const": "status"},
                "id": {
                    "type": "string",
                    "pattern": "^[0-9]{1,16}$",
                    "description": (
                        "A decimal integer below 2^53, above every id sent before by this "
                        "daemon and by the ones it replaced (on this machine since its boot), "
                        "and above the `Last-Event-ID` the client sent"
                    ),
                },
                "retry": {"type": "integer", "minimum": 0},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": _ref("schemas", "StatusDocument"),
                },
            },
            "required": ["event", "id", "data"],
            "additionalProperties": False,
        },
        "PingEvent": {
            "type": "object",
            "description": (
                "Every 5 s when nothing changed: the daemon is there (a page can see it; it "
                "cannot see a comment). No id of its own: a client keeps the last one"
            ),
            "properties": {
                "event": {"const": "ping"},
                "data": {"const": "{}"},
                "id": {"type": "string"},
                "retry": {"type": "integer", "minimum": 0},
            },
            "required": ["event", "data"],
            "additionalProperties": False,
        },
    }


def openapi_document(base: str, *, public_status: bool = False) -> dict[str, Any]:
    """The OpenAPI description of the shim at ``base``, with the status document's schema;
    ``public_status``: the status routes answer without the token."""
    schema = StatusDocument.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.pop("$defs", {})
    components["StatusDocument"] = schema
    components.update(_events())
    components["Error"] = {
        "type": "object",
        "properties": {"error": {"type": "string", "description": "what was wrong, in words"}},
        "required": ["error"],
    }
    workspace = {
        "name": "workspace",
        "in": "query",
        "required": False,
        "description": "count only the runs of this served workspace (an absolute path)",
        # A workspace path as every method's params take it (``rpc.discover``): one rule.
        "schema": _workspace_path_schema(),
    }
    no_store = _ref("headers", "NoStore")
    token: list[dict[str, list[str]]] = [{"bearer": []}]
    # The status routes: open when configured so, else the token like every other route.
    status_security = [] if public_status else token
    status_refusals = {} if public_status else {"401": _ref("responses", "Unauthorized")}
    refused_host = {"403": _ref("responses", "HostRefused")}
    workspace_refusals = {
        "400": _text("The workspace is not a valid path", **{"Cache-Control": no_store}),
        "404": _text("The workspace is not served", **{"Cache-Control": no_store}),
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "simpleaided HTTP shim",
            "version": __version__,
            "license": {"name": "MIT", "identifier": "MIT"},
            "description": (
                "Read-only status of the SimpleAide daemon, for status bars and browser "
                "headers, on loopback. Every route but /healthz needs the token, as "
                "`Authorization: Bearer <token>`: HMAC-SHA256 of `<host>:<port>` (this "
                "server's) keyed with the token in the file http-token beside the daemon's "
                "socket, in hex (`simpleaide open --print` shows it in a URL); with "
                "http.public_status = true the status routes answer without it. Not "
                "described here, and open without the token: the web console's files (`GET "
                "/`, `GET /static/{path}`, `GET /favicon.ico`); with the token: its "
                "JSON-RPC WebSocket (`GET /rpc`). A `Host` that is not a loopback name or a "
                "configured one is refused (403). Methods other than GET and HEAD are "
                "refused on every path: 403 without an `Origin` that is this server's own, "
                "else 405 (`Allow: GET, HEAD`). Any other path is answered 401 without the "
                "token and 404 with it (a console file that does not exist: 404). Every "
                "answer carries a strict Content-Security-Policy, `X-Frame-Options: DENY`, "
                "`Referrer-Policy: no-referrer` and `X-Content-Type-Options: nosniff`."
            ),
        },
        "servers": [{"url": base}],
        "security": token,
        "paths": {
            "/api/status": {
                "get": {
                    "summary": "The status document (as status.get)",
                    "operationId": "getStatus",
                    "security": status_security,
                    "parameters": [
                        workspace,
                        {
                            "name": "If-None-Match",
                            "in": "header",
                            "required": False,
                            "description": "the ETag of the document the client has",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The document; its ETag names its meaning",
                            "headers": {"ETag": _ref("headers", "ETag"), "Cache-Control": no_store},
                            "content": {
                                "application/json": {"schema": _ref("schemas", "StatusDocument")}
                            },
                        },
                        "304": {
                            "description": "Not modified since the ETag given",
                            "headers": {"ETag": _ref("headers", "ETag"), "Cache-Control": no_store},
                        },
                        **workspace_refusals,
                        **status_refusals,
                        **refused_host,
                    },
                }
            },
            "/api/status/stream": {
                "get": {
                    "summary": "The status document as Server-Sent Events, on every change",
                    "operationId": "streamStatus",
                    "security": status_security,
                    "parameters": [
                        workspace,
                        {
                            "name": "Last-Event-ID",
                            "in": "header",
                            "required": False,
                            "description": (
                                "the last id a reconnecting client saw: the stream starts "
                                "with the current document all the same, with an id above it"
                            ),
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": (
                                "An endless stream: `status` events (the document) and "
                                "`ping` events"
                            ),
                            "headers": {"Cache-Control": no_store},
                            "content": {
                                "text/event-stream": {
                                    "itemSchema": {
                                        "oneOf": [
                                            _ref("schemas", "StatusEvent"),
                                            _ref("schemas", "PingEvent"),
                                        ]
                                    }
                                }
                            },
                        },
                        **workspace_refusals,
                        **status_refusals,
                        **refused_host,
                        "503": {
                            "description": (
                                "Too many event streams are open (64, whoever opened them), "
                                "or the daemon is stopping: try again later"
                            ),
                            "headers": {
                                "Retry-After": {
                                    "description": "seconds (when too many are open)",
                                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                                },
                                "Cache-Control": no_store,
                            },
                            "content": {
                                "application/json": {"schema": _ref("schemas", "Error")},
                                "text/plain": {"schema": {"type": "string"}},
                            },
                        },
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "The daemon answers",
                    "operationId": "health",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "ok",
                            "headers": {"Cache-Control": no_store},
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {"status": {"const": "ok"}},
                                        "required": ["status"],
                                    }
                                }
                            },
                        },
                        **refused_host,
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This description",
                    "operationId": "getOpenApi",
                    "security": token,
                    "parameters": [
                        {
                            "name": "If-None-Match",
                            "in": "header",
                            "required": False,
                            "description": "the ETag of the description the client has",
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI description of these routes",
                            "headers": {
                                "ETag": _ref("headers", "ETag"),
                                "Cache-Control": _ref("headers", "NoCache"),
                            },
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "304": {
                            "description": "Not modified since the ETag given",
                            "headers": {
                                "ETag": _ref("headers", "ETag"),
                                "Cache-Control": _ref("headers", "NoCache"),
                            },
                        },
                        "401": _ref("responses", "Unauthorized"),
                        **refused_host,
                    },
                }
            },
        },
        "components": {
            "schemas": components,
            "responses": {
                "Unauthorized": _error(
                    "No token, or not the daemon's; the error says how to get it",
                    **{
                        "WWW-Authenticate": {
                            "required": True,
                            "schema": {"const": "Bearer"},
                        },
                        "Cache-Control": no_store,
                    },
                ),
                "HostRefused": _text(
                    "The Host header is not a loopback name or a configured one (a page on "
                    "another site pointing its own name at this address)",
                    **{"Cache-Control": no_store},
                ),
            },
            "headers": {
                "ETag": {
                    "description": "a validator for If-None-Match (a weak one: its meaning)",
                    "required": True,
                    "schema": {"type": "string", "pattern": '^(W/)?"[^"]+"$'},
                },
                "NoStore": {
                    "description": "never kept by a cache: it changes",
                    "required": True,
                    "schema": {"const": "no-store"},
                },
                "NoCache": {
                    "description": "kept, and asked again with its ETag before each use",
                    "required": True,
                    "schema": {"const": "no-cache"},
                },
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "HMAC-SHA256(file token, '<host>:<port>') in hex, the file token being "
                        "the one in http-token beside the daemon's socket"
                    ),
                }
            },
        },
    }
