"""The HTTP shim as the daemon runs it, and the token that guards it (README: Security of
the HTTP side).

The shim serves from the start when the configuration enables it (``http.enabled``), or from
the first ``http.open`` (on 127.0.0.1, a free port), in the daemon's task group either way:
it stops when the daemon stops. A reload never stops it (``http`` is a restart-only setting:
a shim started by ``http.open`` stays until the daemon stops, even if a reload says
``enabled = false``). The token is read (or made, at the first start) once the socket's folder
is claimed, kept in memory, and replaced by ``http.rotateToken``. The shim accepts, and
``http.open`` hands out, not that token but one derived from it for the shim's address
(``HttpShim.token``): a token offered on another port (to whoever took it once the daemon
stopped) is worth nothing on the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from simpleaided.domain.errors import BackendUnavailable
from simpleaided.domain.status import unconfigured_sections
from simpleaided.domain.vocabulary import EnvProfile
from simpleaided.store.tokenfile import TokenFile

log = logging.getLogger(__name__)

OPEN_HOST = "127.0.0.1"  # where http.open serves the shim when the configuration does not


class HttpAccess:
    """The shim (``shim``: the running one, or ``None``) and its token (``token``)."""

    def __init__(
        self,
        token: TokenFile,
        make_shim: Callable[[str, int], Any],
        *,
        configured: tuple[str, int] | None,
        socket_path: str,
        env: EnvProfile,
        on_change: Callable[[], None],
    ) -> None:
        """``make_shim(host, port)`` builds a shim (``ImportError`` without the ``http``
        extra), when the daemon starts; ``configured`` is where the configuration has one
        serve from the start."""
        self.token = token
        self._make_shim = make_shim
        self._socket_path = socket_path
        self._off = unconfigured_sections(env, socket_path)["api"]
        self._on_change = on_change
        self._configured = configured
        self._tasks: TaskGroup | None = None  # the daemon's, once it serves
        self._opening = anyio.Lock()
        self.shim: Any = None  # the one serving (or bound, about to)

    def section(self) -> dict[str, Any]:
        """The status document's ``api`` section: where the shim serves, if it does."""
        if self.shim is None:
            return dict(self._off)
        result: dict[str, Any] = self.shim.section(self._socket_path)
        return result

    # -- lifecycle (the daemon's) ------------------------------------------------------------

    def bind(self) -> None:
        """Listen now on the configured address, if any (a port in use stops the start)."""
        if self._configured is not None and self.shim is None:
            shim = self._make_shim(*self._configured)
            shim.bind()
            self.shim = shim

    def load_token(self) -> None:
        """Read the token (or make it): once the socket's folder is ours."""
        self.token.load()

    async def start(self, tasks: TaskGroup) -> None:
        """Serve the configured shim in ``tasks`` (the daemon's), where ``open`` starts one
        later if there is none."""
        self._tasks = tasks
        if self.shim is not None:
            await tasks.start(self.shim.serve)

    def close(self) -> None:
        """Release a shim bound but never served (a start that failed)."""
        if self.shim is not None:
            self.shim.close()

    # -- http.open, http.rotateToken ------------------------------------------------------------

    def link(self) -> dict[str, Any]:
        """The console's address and the token its shim accepts (both ``None`` while no
        shim serves: the token is bound to the address)."""
        if self.shim is None:
            return {"url": None, "token": None}
        return {"url": self.shim.url + "/", "token": self.shim.token()}

    async def open(self) -> dict[str, Any]:
        """The running shim's address and the token; a shim is started first if none serves
        (on ``OPEN_HOST``, a free port)."""
        async with self._opening:  # two at once start one shim
            if self.shim is None:
                if self._tasks is None:
                    raise BackendUnavailable("the daemon is still starting; try again")
                try:
                    shim = self._make_shim(OPEN_HOST, 0)
                except ImportError as exc:
                    raise BackendUnavailable(
                        f"the HTTP side needs Starlette and uvicorn ({exc.name} is missing): "
                        "install the http extra "
                        "(pip install '.[http]' in simpleaided's source folder)"
                    ) from None
                try:
                    shim.bind()
                except OSError as exc:  # the shim's CannotListen says why in ``reason``
                    why = getattr(exc, "reason", None) or exc.strerror or exc
                    raise BackendUnavailable(
                        f"cannot start the HTTP side on {OPEN_HOST}: {why}"
                    ) from None
                try:
                    await self._tasks.start(shim.serve)
                except BaseException:
                    shim.close()
                    raise
                self.shim = shim
                log.info("HTTP shim started on request at %s", shim.url)
                self._on_change()
        return self.link()

    async def rotate_token(self) -> dict[str, Any]:
        """Replace the token (file and memory): the old one is refused from now on, and what
        authenticated with it (open WebSockets) is closed."""
        before = self.token.current()
        try:
            await anyio.to_thread.run_sync(self.token.rotate)  # a durable write: off the loop
        except OSError as exc:
            if self.token.current() == before:
                raise BackendUnavailable(
                    f"cannot write the HTTP token file {self.token.path} "
                    f"({exc.strerror or exc}); the token was not changed"
                ) from None
            # Written, then a later step failed (fsyncing the folder): the new token is the
            # one in the file and in use, so what used the old one goes as after a rotation.
            log.warning("the HTTP token file was replaced, but %s", exc.strerror or exc)
        log.info("the HTTP token was rotated")
        if self.shim is not None:
            self.shim.token_rotated()
        return self.link()
