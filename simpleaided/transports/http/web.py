"""The console's files (``clients/web/``): ``GET /`` is its ``index.html``, ``GET /static/<path>``
any other file below that folder, ``GET /favicon.ico`` its icon (where browsers look for one,
on any page: a JSON answer too), read-only and served without the token (they hold no data).

A path is walked one component at a time from the web folder, never following a symlink
(``O_NOFOLLOW`` on every component); empty, ``.``, ``..`` and hidden components, NUL and
backslashes are refused, so nothing outside the folder can be named. Each answer carries an
``ETag`` of the file's version, and ``304`` when the browser has it already; the browser asks
again before each use (``no-cache``: an upgraded console is never mixed with old files), but
for the icon, kept a day.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simpleaided.transports.http.etags import not_modified

# The console's files: inside the installed package (the wheel carries them as
# simpleaided/web), else in the repository's clients/web (an editable install, a checkout).
_PACKAGED_WEB = Path(__file__).resolve().parents[2] / "web"
WEB_ROOT = (
    _PACKAGED_WEB
    if _PACKAGED_WEB.is_dir()
    else Path(__file__).resolve().parents[3] / "clients" / "web"
)
MAX_FILE_BYTES = 16 << 20  # the console's largest file (a vendored library) is far below
MAX_PATH_CHARS = 1024
MAX_DEPTH = 16

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".txt": "text/plain; charset=utf-8",
}
FALLBACK_MEDIA_TYPE = "application/octet-stream"
REVALIDATE = "no-cache"
ICON_CACHE = "max-age=86400"  # browsers ask for it on every page: a day, then its ETag
_ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC  # the root is ours: it may be a link
_DIR_FLAGS = _ROOT_FLAGS | os.O_NOFOLLOW
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class _Missing(Exception):
    """No such file to serve (or one that may not be served)."""


def media_type(name: str) -> str:
    """The ``Content-Type`` of a file served, by its extension."""
    return MEDIA_TYPES.get(os.path.splitext(name)[1].lower(), FALLBACK_MEDIA_TYPE)


def safe_parts(path: str) -> list[str] | None:
    """The components of a path below the web folder, or ``None`` if it may not be served."""
    if not path or len(path) > MAX_PATH_CHARS or "\x00" in path or "\\" in path:
        return None
    parts = path.split("/")
    if len(parts) > MAX_DEPTH or any(not p or p.startswith(".") for p in parts):
        return None  # empty, ".", ".." and hidden components alike
    return parts


def read_below(root: Path, parts: list[str]) -> tuple[bytes, str]:
    """The bytes of the regular file ``root/parts...`` and an ``ETag`` of its version,
    walked without following any symlink; ``_Missing`` otherwise."""
    opened: list[int] = []
    try:
        try:
            opened.append(os.open(root, _ROOT_FLAGS))
            for part in parts[:-1]:
                opened.append(os.open(part, _DIR_FLAGS, dir_fd=opened[-1]))
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=opened[-1])
        except OSError:  # missing, a symlink (ELOOP, ENOTDIR), unreadable, a name too long...
            raise _Missing from None
        opened.append(fd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_FILE_BYTES:
            raise _Missing
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_FILE_BYTES:  # grew while read
                raise _Missing
        return b"".join(chunks), f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'
    finally:
        for fd in reversed(opened):
            os.close(fd)


class WebFiles:
    """Serves the files below ``root`` (the console's, ``WEB_ROOT``, by default)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else WEB_ROOT

    def routes(self) -> list[Route]:
        """The routes, for the shim's application."""
        return [
            Route("/", self._index, methods=["GET"]),
            Route("/favicon.ico", self._icon, methods=["GET"]),
            Route("/static/{path:path}", self._static, methods=["GET"]),
        ]

    async def _index(self, request: Request) -> Response:
        return await self._serve(request, ["index.html"])

    async def _icon(self, request: Request) -> Response:
        return await self._serve(request, ["favicon.ico"], cache=ICON_CACHE)

    async def _static(self, request: Request) -> Response:
        parts = safe_parts(request.path_params["path"])
        if parts is None:
            return JSONResponse({"error": "no such file"}, 404)
        return await self._serve(request, parts)

    async def _serve(
        self, request: Request, parts: list[str], *, cache: str = REVALIDATE
    ) -> Response:
        try:
            body, etag = await anyio.to_thread.run_sync(read_below, self.root, parts)
        except _Missing:
            return JSONResponse({"error": "no such file"}, 404)
        headers = {"ETag": etag, "Cache-Control": cache}
        if not_modified(request.headers, etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=media_type(parts[-1]), headers=headers)
