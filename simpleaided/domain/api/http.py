"""The ``http.*`` contract: the web console's address and its token (socket only: the
WebSocket refuses both methods, the token must not be handed out over HTTP)."""

from __future__ import annotations

from pydantic import BaseModel


class ConsoleLink(BaseModel):
    """``http.open`` and ``http.rotateToken``: where the console is served and its token.

    ``url`` is ``http://127.0.0.1:PORT/``; ``token`` the one that shim accepts, derived from
    the token file's for its address (another port refuses it); both ``None``
    (``http.rotateToken`` only) while no shim serves. The console opens at
    ``url + "#token=" + token``."""

    url: str | None
    token: str | None
