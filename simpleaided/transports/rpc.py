"""JSON-RPC 2.0 dispatch: the only module that knows ``jsonrpcserver``.

We parse with ``orjson``, check the envelope ourselves (strict, but cheaper than the
library's jsonschema validation, and per batch element as the spec asks), validate params
with the method's pydantic model, and let ``jsonrpcserver`` route each request — synchronously
for methods that only read memory, asynchronously for the rest. Project errors become their
JSON-RPC codes here, once; anything unexpected becomes a generic internal error. A connection
may refuse some methods (``refused``: the web console's WebSocket refuses those that hand out
secrets or keys); they answer ``-32060`` from the same pipeline, before their params are read.

Each request goes through ``jsonrpcserver``'s per-request pipeline (``dispatch_request``:
the method lookup, the argument check against the handler's signature, the call with its
errors caught; then ``to_response``), and batches are walked here. Its whole-message entry
points only add, around that pipeline, parsing and validation that our knobs turn into
identity functions, list plumbing and, when async, an ``asyncio.gather`` per message:
measured, 4–5 µs of the library's ~11 µs per request (README, "Benchmarks").
The pipeline functions live in ``jsonrpcserver.dispatcher``; pyproject pins the 5.0 series.
"""

from __future__ import annotations

import errno as errno_codes
import inspect
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import anyio.lowlevel
import orjson
from jsonrpcserver import Error, Success
from jsonrpcserver import async_dispatcher as _async_pipeline
from jsonrpcserver import dispatcher as _pipeline
from jsonrpcserver.response import to_serializable_one
from jsonrpcserver.sentinels import NOID
from pydantic import BaseModel, ValidationError

from simpleaided.domain.errors import (
    BackendUnavailable,
    Cancelled,
    Conflict,
    InvalidInput,
    InvalidTransition,
    LimitExceeded,
    NotFound,
    ReadOnly,
    SimpleaideError,
    SocketOnly,
    VaultDamaged,
    VaultLocked,
    WrongPassphrase,
)

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
NOT_FOUND = -32001
INVALID_TRANSITION = -32010
CONFLICT = -32011
VAULT_LOCKED = -32020
WRONG_PASSPHRASE = -32021
VAULT_DAMAGED = -32022
READ_ONLY = -32030
LIMIT_EXCEEDED = -32040
BACKEND_UNAVAILABLE = -32050
SOCKET_ONLY = -32060
CANCELLED = -32800

MAX_BATCH = 10_000

# Most specific first.
_ERROR_CODES: list[tuple[type[SimpleaideError], int]] = [
    (NotFound, NOT_FOUND),
    (InvalidTransition, INVALID_TRANSITION),
    (Conflict, CONFLICT),
    (InvalidInput, INVALID_PARAMS),
    (LimitExceeded, LIMIT_EXCEEDED),
    (VaultLocked, VAULT_LOCKED),
    (WrongPassphrase, WRONG_PASSPHRASE),
    (VaultDamaged, VAULT_DAMAGED),
    (ReadOnly, READ_ONLY),
    (BackendUnavailable, BACKEND_UNAVAILABLE),
    (SocketOnly, SOCKET_ONLY),
    (Cancelled, CANCELLED),
]

Handler = Callable[[Any, Any], Any]
_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Method:
    """One JSON-RPC method: its name, contract and handler ``handler(params, connection)``."""

    name: str
    summary: str
    params: type[BaseModel]
    result: Any
    handler: Handler

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)


def error_code(exc: SimpleaideError) -> int:
    """The JSON-RPC code of a project error."""
    for cls, code in _ERROR_CODES:
        if isinstance(exc, cls):
            return code
    return INTERNAL_ERROR


def error_object(code: int, message: str, data: Any = None) -> dict[str, Any]:
    """A JSON-RPC error object (``data`` omitted when ``None``)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return error


def error_response(code: int, message: str, data: Any = None, id: Any = None) -> bytes:
    """A whole JSON-RPC error response, serialized."""
    return orjson.dumps({"jsonrpc": "2.0", "error": error_object(code, message, data), "id": id})


def _validation_data(exc: ValidationError) -> list[dict[str, Any]]:
    # No "input": it may be large, or a secret.
    return [
        {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def _unexpected(exc: Exception, method: str) -> Any:
    if isinstance(exc, OSError) and exc.errno is not None:
        # Disk full, permission denied...: say what, never where (no paths to clients).
        log.error("%s failed: %s", method, exc)
        return Error(
            INTERNAL_ERROR,
            f"storage error: {os.strerror(exc.errno)}",
            {"errno": errno_codes.errorcode.get(exc.errno, str(exc.errno))},
        )
    incident = secrets.token_hex(4)
    log.exception("%s failed (incident %s)", method, incident)
    return Error(INTERNAL_ERROR, "Internal error", {"incident": incident})


def _defaults(model: type[BaseModel]) -> BaseModel | None:
    """The params of a call without any, validated once (they are immutable), or ``None``
    when the method requires some."""
    try:
        return model.model_validate({})
    except ValidationError:
        return None


def _parse_params(
    method: Method, default: BaseModel | None, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if args:
        return Error(INVALID_PARAMS, "Invalid params", "params must be an object (by name)")
    if not kwargs and default is not None:
        return default  # the status-line case: no params, nothing to validate again
    try:
        return method.params.model_validate(kwargs)
    except ValidationError as exc:
        return Error(INVALID_PARAMS, "Invalid params", _validation_data(exc))


def _refusal(method: Method) -> Any:
    """The error for ``method`` called on a connection that refuses it (the web console's
    WebSocket refuses the methods that hand out secrets or keys)."""
    return Error(
        SOCKET_ONLY,
        f"{method.name} is not served over the web: secret values and keys stay on the "
        "owner-only socket; use the `simpleaide` command on this machine",
    )


def _refuses(connection: Any, method: Method) -> bool:
    """Whether ``connection`` (a ``server.Connection``; ``None`` in tests) refuses ``method``."""
    refused: frozenset[str] | None = getattr(connection, "refused", None)
    return refused is not None and method.name in refused


def _wrap_sync(method: Method) -> Callable[..., Any]:
    default = _defaults(method.params)

    def call(connection: Any, /, *args: Any, **kwargs: Any) -> Any:
        if _refuses(connection, method):
            return _refusal(method)
        params = _parse_params(method, default, args, kwargs)
        if not isinstance(params, BaseModel):
            return params
        try:
            return Success(method.handler(params, connection))
        except SimpleaideError as exc:
            return Error(error_code(exc), exc.message, exc.data)
        except Exception as exc:
            return _unexpected(exc, method.name)

    return _with_signature(call)


def _with_signature(call: _F) -> _F:
    """Precompute ``call``'s signature: jsonrpcserver binds every request's arguments to it
    (its check for -32602), and ``inspect.signature`` is several microseconds per call
    unless the function carries ``__signature__``."""
    call.__signature__ = inspect.signature(call)  # type: ignore[attr-defined]
    return call


def _wrap_async(method: Method) -> Callable[..., Awaitable[Any]]:
    default = _defaults(method.params)

    async def call(connection: Any, /, *args: Any, **kwargs: Any) -> Any:
        if _refuses(connection, method):
            return _refusal(method)
        params = _parse_params(method, default, args, kwargs)
        if not isinstance(params, BaseModel):
            return params
        try:
            return Success(await method.handler(params, connection))
        except SimpleaideError as exc:
            return Error(error_code(exc), exc.message, exc.data)
        except Exception as exc:
            return _unexpected(exc, method.name)

    return _with_signature(call)


def _envelope_problem(request: Any) -> str | None:
    """Why ``request`` is not a JSON-RPC 2.0 request object, or ``None`` if it is."""
    if not isinstance(request, dict):
        return "a request must be a JSON object"
    if request.get("jsonrpc") != "2.0":
        return "'jsonrpc' must be \"2.0\""
    if not isinstance(request.get("method"), str):
        return "'method' must be a string"
    if "params" in request and not isinstance(request["params"], dict | list):
        return "'params' must be an object or an array"
    if "id" in request and not _valid_id(request["id"]):
        return "'id' must be a string, a number or null"
    if not _MEMBERS.issuperset(request):
        return f"unknown member(s): {', '.join(sorted(set(request) - _MEMBERS))}"
    return None


_MEMBERS = frozenset({"jsonrpc", "method", "params", "id"})


def _valid_id(value: Any) -> bool:
    # The spec allows any number (fractions are discouraged, not forbidden).
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))


class Dispatcher:
    """Turns a raw message into a raw reply (or ``None`` for notifications)."""

    def __init__(self, methods: Iterable[Method], *, max_reply_bytes: int) -> None:
        self.methods = {m.name: m for m in methods}
        self._max_reply = max_reply_bytes
        self._sync = {m.name: _wrap_sync(m) for m in self.methods.values() if not m.is_async}
        self._async = {m.name: _wrap_async(m) for m in self.methods.values() if m.is_async}
        # Awaited before each request of a batch after the first: a batch is a pipeline in
        # one message. The server makes it a turn in its lane; alone, a trip through the loop.
        self.between_batch_items: Callable[[], Awaitable[None]] = anyio.lowlevel.checkpoint

    async def handle(self, raw: bytes, connection: Any) -> bytes | None:
        """Dispatch one message (a request, a notification or a batch)."""
        try:
            request = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return error_response(PARSE_ERROR, "Parse error", str(exc))
        if isinstance(request, list):
            if not request:
                return error_response(INVALID_REQUEST, "Invalid request", "empty batch")
            if len(request) > MAX_BATCH:
                return error_response(
                    LIMIT_EXCEEDED,
                    f"a batch of {len(request)} requests exceeds the {MAX_BATCH}-request limit",
                )
            replies = [await self._one(request[0], connection)]
            for item in request[1:]:
                # Methods that only read memory never wait: let other clients in between.
                await self.between_batch_items()
                replies.append(await self._one(item, connection))
            present = [r for r in replies if r is not None]
            return self._encode(present) if present else None
        reply = await self._one(request, connection)
        return None if reply is None else self._encode(reply)

    async def _one(self, request: Any, connection: Any) -> dict[str, Any] | None:
        problem = _envelope_problem(request)
        if problem is not None:
            rid = request.get("id") if isinstance(request, dict) else None
            return {
                "jsonrpc": "2.0",
                "error": error_object(INVALID_REQUEST, "Invalid request", problem),
                "id": rid if _valid_id(rid) else None,
            }
        call = _pipeline.create_request(request)
        if call.method in self._sync:
            call, result = _pipeline.dispatch_request(self._sync, connection, call)
        else:  # an async method, or one that does not exist (jsonrpcserver says which)
            call, result = await _async_pipeline.dispatch_request(self._async, connection, call)
        if call.id is NOID:
            return None  # a notification: no reply, whatever happened
        reply = to_serializable_one(_pipeline.to_response(call, result))
        return cast("dict[str, Any]", reply)  # jsonrpcserver is untyped here

    def _encode(self, reply: Any) -> bytes:
        try:
            data = orjson.dumps(reply)
        except TypeError:
            log.exception("a reply could not be serialized")
            return error_response(INTERNAL_ERROR, "Internal error", None, _reply_id(reply))
        if len(data) > self._max_reply:
            return error_response(
                LIMIT_EXCEEDED,
                f"the reply is {len(data)} bytes, over the {self._max_reply}-byte limit",
                None,
                _reply_id(reply),
            )
        return data


def _reply_id(reply: Any) -> Any:
    return reply.get("id") if isinstance(reply, dict) else None
