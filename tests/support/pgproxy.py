"""The machine's PostgreSQL (``PG_URL``), and a TCP proxy that tests control, to play a
database server that stops, comes back or hangs.

``stop()`` closes the listener and every proxied connection (as a server that exits would);
``start()`` listens again on the same port; ``freeze()`` keeps the connections open but lets
nothing through (a server that hangs). Without an upstream it is a server that accepts
connections and never answers.
"""

from __future__ import annotations

from types import TracebackType

import anyio
import anyio.abc
from anyio.abc import SocketAttribute, TaskStatus

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"


class TcpProxy:
    """Relays connections on 127.0.0.1:``port`` to ``upstream``, or answers none without one."""

    def __init__(self, upstream: tuple[str, int] | None) -> None:
        self.upstream = upstream
        self.port = 0  # chosen by the first start, kept by the next ones
        self._tg: anyio.abc.TaskGroup | None = None
        self._scope: anyio.CancelScope | None = None
        self._stopped = anyio.Event()
        self._thawed = anyio.Event()
        self._thawed.set()

    async def __aenter__(self) -> TcpProxy:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            await self.start()
        except BaseException as exc:
            await self._tg.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self.stop()
        assert self._tg is not None
        return await self._tg.__aexit__(exc_type, exc, tb)

    async def start(self) -> None:
        """Listen (again) and relay new connections."""
        assert self._tg is not None, "use it as an async context manager"
        if self._scope is None:
            await self._tg.start(self._serve)

    async def stop(self) -> None:
        """Close the listener and every connection, and wait until they are closed."""
        if self._scope is not None:
            self._scope.cancel()
            await self._stopped.wait()

    def freeze(self) -> None:
        """Hold every byte from now on, in both directions; connections stay open."""
        if self._thawed.is_set():
            self._thawed = anyio.Event()

    def thaw(self) -> None:
        """Let bytes through again."""
        self._thawed.set()

    async def _serve(self, *, task_status: TaskStatus[None]) -> None:
        self._stopped = anyio.Event()
        try:
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
            with anyio.CancelScope() as scope:
                self._scope = scope
                async with listener, anyio.create_task_group() as connections:
                    self.port = listener.extra(SocketAttribute.local_port)
                    task_status.started()
                    await listener.serve(self._handle, task_group=connections)
        finally:
            self._scope = None
            self._stopped.set()

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        async with client:
            address = self.upstream
            if address is None:
                await anyio.sleep_forever()
                return
            try:
                upstream = await anyio.connect_tcp(*address)
            except OSError:
                return
            async with upstream, anyio.create_task_group() as tg:
                tg.start_soon(self._pump, client, upstream, tg.cancel_scope)
                tg.start_soon(self._pump, upstream, client, tg.cancel_scope)

    async def _pump(
        self,
        source: anyio.abc.SocketStream,
        sink: anyio.abc.SocketStream,
        both: anyio.CancelScope,
    ) -> None:
        try:
            async for chunk in source:
                while not self._thawed.is_set():
                    await self._thawed.wait()
                await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        both.cancel()  # one side ended: end the other too
