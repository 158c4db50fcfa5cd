"""The status routes: ``GET /api/status`` and its event stream.

``GET /api/status`` answers the status document (the same as ``status.get``) with an
``ETag``, so a header polling every few seconds gets ``304 Not Modified`` for next to
nothing; ``GET /api/status/stream`` sends it as Server-Sent Events whenever it changes. At
most ``MAX_EVENT_STREAMS`` streams are open at once (``http.public_status`` lets anyone open
them); one more is answered ``503``. A rotated token ends them all (``close_streams``): a
client that opened one with the old token must come back with the new one.

Each document sent carries an ``id`` above every id sent before, by this daemon or the ones
it replaced (``EventIds``), so a client that drops ids it has seen never drops an update. A
stream starts with the current document whatever ``Last-Event-ID`` the client sends, and
with an id above that one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from typing import Any

import anyio
import orjson
from anyio.abc import TaskGroup
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from simpleaided.domain.errors import SimpleaideError
from simpleaided.services.events import EventHub
from simpleaided.services.status import StatusService
from simpleaided.transports.http.etags import not_modified
from simpleaided.transports.http.security import refusal

# How often an event stream checks its document: sent again when what it shows changed (ages
# in the chips' words, the vault's countdown), else a "ping" event, which a page can see (a
# comment it cannot), so it can tell a silent daemon from a quiet one.
HEARTBEAT_SECONDS = 5.0
# Event streams open at once, whoever opened them. Not counted against limits.max_connections
# (the JSON-RPC connections): a stream is one subscription and one sender, and a page needs
# one; the cap bounds what clients need no token for when http.public_status is on.
MAX_EVENT_STREAMS = 64
# The clock event ids are read from: the machine's, counted from its boot (through suspend),
# which no change of the date or time steps back, and which goes on across restarts of the
# daemon (unlike a counter in its memory, or its own monotonic clock).
_BOOT_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)
# The largest Last-Event-ID taken from a client: with room above it, below 2**53 (the largest
# integer a JavaScript client reads exactly).
MAX_CLIENT_EVENT_ID = 2**52


class EventIds:
    """Event ids: the boot clock in microseconds, or one more than the last id when events
    come faster. So they increase strictly, across restarts of the daemon too (its next run
    reads the same clock, further on), and are never stepped back by a change of the date.
    After a reboot they start low again: no client on this machine saw the ones before, and
    a browser's ``EventSource`` says which it saw (``Last-Event-ID``), which a stream then
    goes above (``next(above=...)``)."""

    def __init__(self) -> None:
        self._last = 0

    def next(self, above: int = 0) -> int:
        """A new id, above every id given out before and above ``above``."""
        now = time.clock_gettime_ns(_BOOT_CLOCK) // 1000
        self._last = max(self._last + 1, now)
        return max(self._last, above + 1)


def last_event_id(header: str | None) -> int:
    """The id a reconnecting client saw last (its ``Last-Event-ID``), when it is one this
    daemon could have sent (decimal digits, at most ``MAX_CLIENT_EVENT_ID``); else 0."""
    if not header or len(header) > 16 or not header.isascii() or not header.isdigit():
        return 0
    seen = int(header)
    return seen if seen <= MAX_CLIENT_EVENT_ID else 0


def stable_view(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without what changes by the millisecond (answer time, ages, latencies):
    what the ``ETag`` is made of. The chips stay: their words change with ages in whole
    units ("2m ago"), so a header still updates when they do."""
    runs = doc["runs"]
    last = runs.get("last")
    llm = doc["llm"]
    return {
        **doc,
        "generatedAt": None,
        "runs": {**runs, "last": {**last, "ageMs": None} if last else None},
        "vault": {**doc["vault"], "autoLockRemainingMs": None},
        "db": {**doc["db"], "latencyMs": None, "checkedAt": None},
        "llm": {
            **llm,
            "backends": [{**b, "latencyMs": None, "checkedAt": None} for b in llm["backends"]],
        },
    }


def etag_of(doc: dict[str, Any]) -> str:
    """A weak validator of the document's meaning (see ``stable_view``)."""
    digest = hashlib.blake2b(orjson.dumps(stable_view(doc)), digest_size=12).hexdigest()
    return f'W/"{digest}"'


class _StreamSubscriber:
    """Plays the part of a connection for ``EventHub``: its notifications go to a stream."""

    def __init__(self) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[dict[str, Any]](16)
        self.pumps: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self.closers: dict[str, Callable[[], object]] = {}

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        await self.send.send(params)

    def start_after_reply(self, task: Callable[[], Coroutine[Any, Any, None]]) -> None:
        async def pump() -> None:
            try:
                await task()
            finally:
                # The hub ended the subscription (its workspace was removed, say): end the
                # stream too, so the client reconnects and learns why.
                self.send.close()

        self.pumps.append(pump)

    def on_close(self, key: str, callback: Callable[[], object]) -> None:
        self.closers[key] = callback

    def close(self) -> None:
        """End the subscription and the stream (twice is harmless)."""
        closers, self.closers = self.closers, {}
        for callback in closers.values():
            callback()
        self.send.close()
        self.receive.close()


class _EventStream(StreamingResponse):
    """A streaming answer that says when it has ended (``on_end``), even if its body was
    never started (the client went away first)."""

    def __init__(self, *args: Any, on_end: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_end = on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                # Its body ends now (its ``finally`` runs: the subscription is ended), not
                # whenever the garbage collector finds it.
                body = self.body_iterator
                if isinstance(body, AsyncGenerator):
                    with anyio.CancelScope(shield=True):
                        await body.aclose()
            finally:
                self._on_end()


class StatusRoutes:
    """Serves the status document and its event streams, whose senders run in the shim's
    task group (``start``) until the shim stops (``close``)."""

    def __init__(
        self,
        status: StatusService,
        events: EventHub,
        scope: Callable[[str | None], str | None],
    ) -> None:
        self._status = status
        self._events = events
        self._scope = scope
        self._ids = EventIds()
        self._tasks: TaskGroup | None = None  # runs the event streams' senders
        self._streams: set[_StreamSubscriber] = set()
        self._reserved = 0  # streams answered and not ended yet (started or about to)
        self._generation = 0  # one more each time the open streams are ended
        self._closing = False

    def routes(self) -> list[Route]:
        """The routes, for the shim's application."""
        return [
            Route("/api/status", self._get_status, methods=["GET"]),
            Route("/api/status/stream", self._stream_status, methods=["GET"]),
        ]

    def start(self, tasks: TaskGroup) -> None:
        """Serve event streams from now on, their senders running in ``tasks``."""
        self._tasks = tasks

    def close(self) -> None:
        """Serve no more event streams, and end those open now."""
        self._closing = True
        self.close_streams()

    def close_streams(self) -> None:
        """End the event streams open now (the token was rotated), and those answered but
        not started yet; new ones are served as before."""
        self._generation += 1
        for subscriber in list(self._streams):
            subscriber.close()

    def _workspace(self, request: Request) -> str | None:
        return self._scope(request.query_params.get("workspace"))

    async def _get_status(self, request: Request) -> Response:
        try:
            doc = self._status.document(self._workspace(request))
        except SimpleaideError as exc:
            return refusal(exc)
        etag = etag_of(doc)
        headers = {"ETag": etag, "Cache-Control": "no-store"}
        if not_modified(request.headers, etag):
            return Response(status_code=304, headers=headers)
        return Response(orjson.dumps(doc), media_type="application/json", headers=headers)

    async def _stream_status(self, request: Request) -> Response:
        try:
            workspace = self._workspace(request)
        except SimpleaideError as exc:
            return refusal(exc)
        if self._tasks is None or self._closing:
            return Response("shutting down\n", 503, media_type="text/plain")
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        if request.method == "HEAD":  # the headers only: an endless body is never started
            return Response(media_type="text/event-stream", headers=headers)
        if self._reserved >= MAX_EVENT_STREAMS:
            return JSONResponse(
                {"error": f"too many event streams open ({MAX_EVENT_STREAMS}); try again later"},
                503,
                headers={"Retry-After": "5"},
            )
        # Counted from now (no await since the token was checked: a rotation either ended
        # the streams before this one's generation was read, or ends this one as it starts)
        # until its answer ends, started or not.
        self._reserved += 1
        seen = last_event_id(request.headers.get("last-event-id"))
        return _EventStream(
            self._events_of(workspace, self._generation, seen),
            media_type="text/event-stream",
            headers=headers,
            on_end=self._release,
        )

    def _release(self) -> None:
        self._reserved -= 1

    async def _events_of(
        self, workspace: str | None, generation: int, seen: int
    ) -> AsyncIterator[bytes]:
        """The event stream of one client: the document now, then after each change, and
        every ``HEARTBEAT_SECONDS`` either the document (if what it shows moved on) or a
        ``ping``, which also keeps proxies from timing the stream out. ``seen``: the last
        id the client saw (``Last-Event-ID``), which its ids go above.

        The subscription is made here, when the stream starts, so a client gone before
        that leaves nothing behind."""
        last_id = seen

        def event(params: dict[str, Any]) -> bytes:
            nonlocal last_id
            last_id = self._ids.next(above=last_id)
            data = orjson.dumps(params["status"])
            return b"event: status\nid: %d\ndata: %s\n\n" % (last_id, data)

        assert self._tasks is not None
        subscriber = _StreamSubscriber()
        try:
            if generation != self._generation:
                return  # the token it was asked with was rotated before it started
            try:
                snapshot = self._events.subscribe_status(subscriber, workspace)
            except SimpleaideError:
                return  # its workspace was removed since the route checked it: as below
            for pump in subscriber.pumps:  # the hub's sender for this subscription
                self._tasks.start_soon(pump)
            self._streams.add(subscriber)
            yield b"retry: 2000\n" + event(snapshot)
            sent = etag_of(snapshot["status"])
            while True:
                params = None
                with anyio.move_on_after(HEARTBEAT_SECONDS):
                    params = await subscriber.receive.receive()
                if params is None:
                    try:
                        doc = self._status.document(workspace)
                    except SimpleaideError:
                        return  # its workspace is no longer served: the reconnect says so
                    if etag_of(doc) == sent:
                        yield b"event: ping\ndata: {}\n\n"
                        continue
                    params = {"seq": self._events.seq, "status": doc}
                sent = etag_of(params["status"])
                yield event(params)
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return  # the shim is stopping
        finally:
            self._streams.discard(subscriber)
            subscriber.close()
