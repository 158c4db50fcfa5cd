"""The OpenAPI description of the HTTP shim (``GET /openapi.json``), with the status
document's schema generated from the same pydantic model the daemon answers with, and the
token its routes need (a bearer token; ``http.public_status`` opens the status routes)."""

from __future__ import annotations

from typing import Any

from simpleaided import __version__
from simpleaided.domain.names import MAX_WORKSPACE_PATH_BYTES
from simpleaided.domain.status import StatusDocument


def openapi_document(base: str, *, public_status: bool = False) -> dict[str, Any]:
    """The OpenAPI description of the shim, with the status document's schema;
    ``public_status``: the status routes answer without the token."""
    schema = StatusDocument.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.pop("$defs", {})
    components["StatusDocument"] = schema
    workspace = {
        "name": "workspace",
        "in": "query",
        "required": False,
        "description": "count only the runs of this served workspace (an absolute path)",
        # What the daemon accepts as a workspace path: absolute, no NUL, no ".." segment.
        "schema": {
            "type": "string",
            "pattern": r"^(?!.*(^|/)\.\.(/|$))/[^\x00]*$",
            "maxLength": MAX_WORKSPACE_PATH_BYTES // 4,  # 4 bytes a character at most
        },
    }
    status_ref = {"$ref": "#/components/schemas/StatusDocument"}
    text = {"text/plain": {"schema": {"type": "string"}}}
    unauthorized = {
        "description": "No token, or not the daemon's (WWW-Authenticate: Bearer)",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}},
                    "required": ["error"],
                }
            }
        },
    }
    # The status routes: open when configured so, else the token like every other route.
    status_security: list[dict[str, list[str]]] = [] if public_status else [{"bearer": []}]
    status_refusals = {} if public_status else {"401": unauthorized}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "simpleaided HTTP shim",
            "version": __version__,
            "description": (
                "Read-only status of the SimpleAide daemon, for browser headers. Every route "
                "but /healthz needs the token, as `Authorization: Bearer <token>`: "
                "HMAC-SHA256 of `<host>:<port>` (this server's) keyed with the token in the "
                "file http-token beside the daemon's socket, in hex (`simpleaide open "
                "--print` shows it in a URL); with http.public_status = true the status "
                "routes answer without it. Methods other than GET and HEAD are refused."
            ),
        },
        "servers": [{"url": base}],
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
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The document; ETag names its meaning",
                            "content": {"application/json": {"schema": status_ref}},
                        },
                        "304": {"description": "Not modified since the ETag given"},
                        "400": {
                            "description": "The workspace is not a valid path",
                            "content": text,
                        },
                        "404": {"description": "The workspace is not served", "content": text},
                        **status_refusals,
                    },
                }
            },
            "/api/status/stream": {
                "get": {
                    "summary": "The status document as Server-Sent Events, on every change",
                    "operationId": "streamStatus",
                    "security": status_security,
                    "parameters": [workspace],
                    "responses": {
                        "200": {
                            "description": "event: status, data: the document (JSON)",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        "400": {
                            "description": "The workspace is not a valid path",
                            "content": text,
                        },
                        "404": {"description": "The workspace is not served", "content": text},
                        **status_refusals,
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
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {"status": {"const": "ok"}},
                                        "required": ["status"],
                                    }
                                }
                            },
                        }
                    },
                }
            },
        },
        "security": [{"bearer": []}],
        "components": {
            "schemas": components,
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
